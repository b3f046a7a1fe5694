/**
 * What a hostile review of home monitoring found, each now a test of the answer it must get (at
 * the pure-decider level, and the return-transfer activity with a fake client), with its fuzz.
 */
import fc from 'fast-check';
import { MockActivityEnvironment } from '@temporalio/testing/lib/mocking-activity-environment';

import { createReturnTransferActivity } from '../../src/activities/directives';
import { TransferBody } from '../../src/api/schemas';
import { decide, isComplete, nextWakeAt } from '../../src/domain/case/decide';
import type { CaseState } from '../../src/domain/case/model';
import { withCaseDefaults, type Policy } from '../../src/domain/policy';
import {
  community,
  DAY,
  InvariantError,
  nurse,
  shortPolicy,
  supervisor,
  World,
  type Intent,
} from '../support/decider-world';

const homePolicy = (days = 3): Policy => shortPolicy({ name: '4+3', homeMonitoringDays: days });

/** Runs a case to HOME_MONITORING; `during` runs once the person is in observation. */
function toHome(p: Policy, during?: (w: World) => void): World {
  const w = new World(p);
  let done = false;
  for (let i = 0; i < 100 && w.state.phase !== 'HOME_MONITORING' && !w.state.endedAt; i++) {
    w.drive();
    if (!done && w.state.phase === 'OBSERVATION') {
      done = true;
      during?.(w);
    }
    if (w.state.samples.some((x) => x.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
    if (w.state.inspection.status === 'requested') w.apply({ k: 'inspection', pass: true, stale: false });
    if (w.state.room && !w.state.arrivedAt) w.apply({ k: 'arrival', offsetMs: 0, by: 'hotel' });
    if (w.state.releaseBlockers.includes('no_recent_afebrile_check'))
      w.apply({ k: 'check', temperatureC: 36.6, symptoms: false, offsetMs: 0, reuse: false });
  }
  return w;
}

const homeCheckIn = (w: World, checkInId: string, temperatureC = 36.5, takenAt = w.now) =>
  w.send({
    type: 'homeCheckIn',
    checkInId,
    takenAt: new Date(takenAt).toISOString(),
    temperatureC,
    symptoms: [],
    by: community,
  });

const nurseCheck = (w: World, checkId: string) =>
  w.send({
    type: 'healthCheck',
    checkId,
    takenAt: new Date(w.now).toISOString(),
    temperatureC: 36.6,
    symptoms: [],
    by: nurse,
  });

// ---------------------------------------------------------------------------------------------
// R1/R2: check-in ids share one namespace with the hotel's health checks.
// ---------------------------------------------------------------------------------------------
test("R1 a check-in whose id is a hotel health check's is refused, not swallowed; under its own id the fever sends the person back", () => {
  const w = toHome(homePolicy(3), (w) => nurseCheck(w, '1'));
  expect(w.state.phase).toBe('HOME_MONITORING');
  expect(w.state.checks.some((c) => c.checkId === '1' && !c.home)).toBe(true);
  const d = homeCheckIn(w, '1', 39.2);
  // Told plainly (409), nothing kept as if it had been applied.
  expect(d.reply).toMatchObject({ ok: false, code: 'conflict' });
  expect(w.state.escalations.some((e) => e.kind === 'home_fever')).toBe(false);
  homeCheckIn(w, 'h-1', 39.2);
  expect(w.state.escalations.some((e) => e.kind === 'home_fever')).toBe(true);
  expect(w.state.tasks.some((t) => t.kind === 'returnTransfer')).toBe(true);
});

test('R2 a home check-in with a hotel check id while NOT at home throws instead of a clean refusal', () => {
  const w = toHome(homePolicy(0), (w) => nurseCheck(w, 'chk-7'));
  // Also in observation: any case in the community's street whose nurse used this id.
  const obs = new World(homePolicy(3));
  for (let i = 0; i < 30 && obs.state.phase !== 'OBSERVATION'; i++) obs.settle();
  nurseCheck(obs, 'chk-7');
  for (const x of [w, obs]) {
    const run = () =>
      decide(
        x.state,
        {
          type: 'homeCheckIn',
          checkInId: 'chk-7',
          takenAt: new Date(x.now).toISOString(),
          temperatureC: 36.5,
          symptoms: [],
          by: community,
        },
        x.ctx,
        x.now,
      );
    expect(run).not.toThrow();
    expect(run().reply).toMatchObject({ ok: false, code: 'conflict' });
  }
});

// ---------------------------------------------------------------------------------------------
// R3: a positive result (a lab correction) while at home does not send the person back.
// ---------------------------------------------------------------------------------------------
test('R3 a positive correction while at home: home days run on and end "completed", no return transfer', () => {
  const w = toHome(homePolicy(3));
  expect(w.state.phase).toBe('HOME_MONITORING');
  w.apply({ k: 'correct', pick: 0 });
  expect(w.state.samples.some((x) => x.status === 'corrected' && x.result === 'positive')).toBe(true);
  // Every day checked in, no fever: the case ends as completed home monitoring.
  const start = Date.parse(w.state.home!.startedAt);
  for (let day = 1; day <= 3; day++) {
    w.now = start + (day - 1) * DAY + 1;
    w.send({ type: 'tick' });
    w.runDueTasks();
    if (w.state.home?.doneAt) break;
    homeCheckIn(w, `h${day}`);
  }
  w.now = Date.parse(w.state.home!.until);
  w.send({ type: 'tick' });
  w.runDueTasks();
  const outcome = {
    outcome: w.state.home?.outcome,
    returnTask: w.state.tasks.some((t) => t.kind === 'returnTransfer'),
  };
  // A positive person at home must be sent back (like a fever), not signed off.
  expect(outcome).not.toEqual({ outcome: 'completed', returnTask: false });
});

// ---------------------------------------------------------------------------------------------
// R4/R5: check-in dating.
// ---------------------------------------------------------------------------------------------
test('R4 a check-in back-dated to day 1, sent on day 3, closes the day-2 missed escalation as check_received', () => {
  const w = toHome(homePolicy(5));
  const start = Date.parse(w.state.home!.startedAt);
  w.now = start + 2 * DAY + 1; // days 1 and 2 passed without a check-in
  w.send({ type: 'tick' });
  const missed = w.state.escalations.filter((e) => e.kind === 'missed_home_check');
  expect(missed).toHaveLength(2);
  homeCheckIn(w, 'late', 36.5, start + DAY / 2); // "seen on day 1"
  const h = w.state.home!;
  // Day 1 is now both missed and checked; day 2's escalation is closed by a check from before it.
  const day2 = w.state.escalations.find((e) => e.id === missed[1]!.id)!;
  expect({
    both: h.checkedDays.filter((d) => h.missedDays.includes(d)),
    day2: day2.closedReason ?? day2.status,
  }).toEqual({
    both: [],
    day2: 'open',
  });
});

test('R5 a check-in dated into the future (within clockSkewMs) is booked to a later day and pre-fills it', () => {
  const w = toHome(homePolicy(3));
  const start = Date.parse(w.state.home!.startedAt);
  w.now = start + 1; // day 1
  // 4 real minutes ahead: the drill policy keeps clockSkewMs at 5 real minutes (= 30 drill days).
  const d = homeCheckIn(w, 'ahead', 36.5, w.now + 4 * 60_000);
  expect(d.reply).toMatchObject({ ok: true, value: { day: 1 } });
  expect(w.state.home!.checkedDays).toEqual([1]);
});

// ---------------------------------------------------------------------------------------------
// R6: the return transfer.
// ---------------------------------------------------------------------------------------------
test('R6 the address changed during the stay: the return transfer picks up at the original request address', async () => {
  const w = toHome(homePolicy(3), (w) =>
    w.send({ type: 'setAddress', address: 'new home 9', reason: 'single room', by: supervisor }),
  );
  expect(w.state.phase).toBe('HOME_MONITORING');
  expect(w.state.homeAddress).toBe('new home 9');
  homeCheckIn(w, 'hot', 38.9);
  expect(w.state.tasks.some((t) => t.kind === 'returnTransfer')).toBe(true);
  // What the workflow passes (src/workflows/case-v2.ts runTask 'returnTransfer'): the input request.
  const started: Array<{ args: Array<{ request: { pickupAddress?: string; homeAddress: string } }> }> = [];
  const types: string[] = [];
  const client = {
    withAbortSignal: (_s: unknown, fn: () => unknown) => fn(),
    workflow: {
      start: async (t: string, o: (typeof started)[number]) => {
        types.push(t);
        started.push(o);
      },
    },
  };
  const env = new MockActivityEnvironment(undefined, { client: client as never });
  // A worker held on v2 during a rolling upgrade (CASE_WORKFLOW_TYPE) starts the return on v2.
  const acts = createReturnTransferActivity('caseWorkflowV2');
  await env.run(acts.startReturnTransfer, {
    workflowId: 'case-C1',
    caseNo: 'C1',
    request: w.ctx.request as never,
    homeAddress: w.state.homeAddress,
    policy: withCaseDefaults(w.policy),
  });
  const sent = started[0]!.args[0]!.request;
  expect(types).toEqual(['caseWorkflowV2']);
  expect({ pickupAddress: sent.pickupAddress, homeAddress: sent.homeAddress }).toEqual({
    pickupAddress: w.state.homeAddress,
    homeAddress: w.state.homeAddress,
  });
});

const validTransferBody = (requestId: string) => ({
  requestId,
  district: 'D1',
  street: 'S1',
  person: { name: '张三', idNumber: '110101199001011234', phone: '13800138000', birthDate: '1990-01-01' },
  homeAddress: 'home 1',
  transport: 'vehicle',
  reason: 'close_contact',
});

test('R7 the return case number cannot be taken by a transfer filed through the API', async () => {
  const started: Array<{ args: Array<{ request: { requestId: string } }> }> = [];
  const client = {
    withAbortSignal: (_s: unknown, fn: () => unknown) => fn(),
    workflow: { start: async (_t: string, o: (typeof started)[number]) => void started.push(o) },
  };
  const env = new MockActivityEnvironment(undefined, { client: client as never });
  const w = new World(homePolicy(3));
  await env.run(createReturnTransferActivity('caseWorkflowV3').startReturnTransfer, {
    workflowId: 'case-C1',
    caseNo: 'C1',
    request: w.ctx.request as never,
    homeAddress: 'home 1',
    policy: withCaseDefaults(w.policy),
  });
  const requestId = started[0]!.args[0]!.request.requestId;
  expect(requestId).toMatch(/#return$/);
  // The API refuses that requestId, so no filed transfer can own the derived case number.
  const parsed = TransferBody.safeParse(validTransferBody(requestId));
  expect(parsed.success).toBe(false);
  expect(parsed.error!.issues.some((i) => i.path[0] === 'requestId')).toBe(true);
});

// ---------------------------------------------------------------------------------------------
// R8: a fever reported between release and the hand-over (home not started yet) is refused.
// ---------------------------------------------------------------------------------------------
test('R8 released, hand-over still failing: a fever at home is taken and sends the person back', () => {
  const w = new World(homePolicy(3));
  for (let i = 0; i < 100 && w.state.closing?.target !== 'RELEASED'; i++) {
    // Like toHome, but the hand-over to the community keeps failing.
    w.now = Math.max(w.now, nextWakeAt(w.state, w.ctx, w.now) ?? w.now + DAY / 4);
    w.send({ type: 'tick' });
    for (const t of w.state.tasks.filter((t) => t.status === 'pending' && Date.parse(t.dueAt) <= w.now)) {
      w.send({ type: 'taskStarted', taskId: t.id });
      if (t.kind === 'handOver') w.send({ type: 'taskFailed', taskId: t.id, error: 'Unavailable' });
      else w.send({ type: 'taskSucceeded', taskId: t.id, result: w.resultFor(t.kind, t.id, 0.5) });
    }
    if (w.state.samples.some((x) => x.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
    if (w.state.inspection.status === 'requested') w.apply({ k: 'inspection', pass: true, stale: false });
    if (w.state.room && !w.state.arrivedAt) w.apply({ k: 'arrival', offsetMs: 0, by: 'hotel' });
    if (w.state.releaseBlockers.includes('no_recent_afebrile_check'))
      w.apply({ k: 'check', temperatureC: 36.6, symptoms: false, offsetMs: 0, reuse: false });
  }
  // Home monitoring starts at release, whatever the hand-over does.
  expect(w.state.phase).toBe('HOME_MONITORING');
  const d = homeCheckIn(w, 'hot', 39.5);
  expect(d.reply).toMatchObject({ ok: true, value: { fever: true, returning: true } });
});

// ---------------------------------------------------------------------------------------------
// Fuzz (bounded): from HOME_MONITORING, random events; invariants, liveness, return-transfer rules.
// ---------------------------------------------------------------------------------------------
const pick = fc.double({ min: 0, max: 0.999, noNaN: true });
const homeIntent = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Intent>({ k: 'drive' }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 3 * DAY }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('start' as const), pick }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('succeed' as const), pick, variant: pick }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('fail' as const), pick }) },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('homeCheckIn' as const),
      temperatureC: fc.constantFrom(36.5, 36.8, 38.6),
      offsetMs: fc.oneof(fc.constant(0), fc.integer({ min: -3 * DAY, max: DAY })),
      reuse: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('correct' as const), pick }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('lab' as const),
      pick,
      result: fc.constantFrom('negative' as const, 'positive' as const),
      wrongLab: fc.boolean(),
      typo: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant<Intent>({ k: 'door' }) },
  { weight: 1, arbitrary: fc.constant<Intent>({ k: 'cancel' }) },
  { weight: 1, arbitrary: fc.constant<Intent>({ k: 'address' }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('ack' as const), pick }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('resolve' as const), pick }) },
  { weight: 2, arbitrary: fc.constant<Intent>({ k: 'repeat' }) },
  { weight: 1, arbitrary: fc.constant<Intent>({ k: 'json' }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('directive' as const),
      stayDays: fc.integer({ min: 1, max: 8 }),
      days: fc.constant([1]),
      negatives: fc.integer({ min: 0, max: 2 }),
      afebrile: fc.boolean(),
      yellowAge: fc.constant(65),
      again: fc.boolean(),
    }),
  },
);

const base = toHome(homePolicy(3)).state;

function homeRules(w: World, prev: CaseState): string[] {
  const s = w.state;
  const out: string[] = [];
  if (s.endedAt && s.home?.outcome === 'returned' && !s.home.returnCaseNo) out.push('ended before the return case');
  if (s.home?.outcome === 'returned' && !s.home.returnCaseNo && !s.tasks.some((t) => t.kind === 'returnTransfer'))
    out.push('returnTransfer gone without a return case');
  if (prev.home && !s.home) out.push('home vanished');
  if (prev.home?.doneAt && s.home?.doneAt !== prev.home.doneAt) out.push('home end changed');
  const sentBack = s.home?.outcome === 'returned';
  if (s.escalations.some((e) => e.kind === 'home_fever') !== sentBack) out.push('home_fever without returning');
  if (isComplete(s, w.ctx, w.now) && s.escalations.some((e) => e.status !== 'closed' && e.severity === 'red'))
    out.push('complete with a red escalation open');
  return out;
}

test('fuzz: from HOME_MONITORING, invariants + liveness + return-transfer rules (300 runs)', () => {
  fc.assert(
    fc.property(fc.array(homeIntent, { minLength: 1, maxLength: 40 }), (intents) => {
      const w = new World(homePolicy(3));
      w.state = JSON.parse(JSON.stringify(base)) as CaseState;
      w.now = Date.parse(base.home!.startedAt);
      // Keys of this World must not collide with the ones the base run used.
      (w as unknown as { seq: number }).seq = 1_000_000;
      try {
        for (const i of intents) {
          const prev = w.state;
          const before = JSON.stringify(prev);
          const n = w.steps.length;
          w.apply(i as Intent);
          w.checkLiveness();
          for (const st of w.steps.slice(n))
            if (st.event?.type === 'homeCheckIn' && st.reply && !st.reply.ok && JSON.stringify(w.state) !== before)
              throw new Error(`refused check-in changed the case: ${st.reply.message}`);
          const v = homeRules(w, prev);
          if (v.length) throw new InvariantError(v, w.steps);
        }
        // Calm: systems answer, people resolve; the case must end and may complete.
        for (let n = 0; n < 80 && !isComplete(w.state, w.ctx, w.now); n++) {
          const prev = w.state;
          // Activities left running by the generator answer (the World never answers them itself).
          for (const t of w.state.tasks.filter((x) => x.status === 'running'))
            w.send({ type: 'taskSucceeded', taskId: t.id, result: w.resultFor(t.kind, t.id, 0.5) });
          w.settle();
          w.checkLiveness();
          const v = homeRules(w, prev);
          if (v.length) throw new InvariantError(v, w.steps);
        }
        if (!isComplete(w.state, w.ctx, w.now))
          throw new InvariantError(
            [
              `never completes: ${w.state.phase}, ended ${w.state.endedAt}, open ${w.state.escalations.filter((e) => e.status !== 'closed').map((e) => e.kind)} tasks ${w.state.tasks.filter((t) => t.status === 'pending' || t.status === 'running').map((t) => t.kind)}`,
            ],
            w.steps,
          );
      } catch (err) {
        if (err instanceof InvariantError) throw new Error(err.message);
        throw err;
      }
    }),
    { numRuns: 300 },
  );
});

// ---------------------------------------------------------------------------------------------
// What should hold (sanity checks of the claims the report says held).
// ---------------------------------------------------------------------------------------------
test('held: returnTransfer cannot be waived; a failed return keeps the case open; refusal at 0 home days', () => {
  const w = toHome(homePolicy(3));
  homeCheckIn(w, 'hot', 38.6);
  const t = w.state.tasks.find((x) => x.kind === 'returnTransfer')!;
  w.send({ type: 'taskStarted', taskId: t.id });
  w.send({ type: 'taskFailed', taskId: t.id, error: 'x' });
  const integ = w.state.escalations.find((e) => e.kind === 'integration_failure' && e.taskId === t.id)!;
  const r = w.send({ type: 'resolveEscalation', escalationId: integ.id, note: 'by phone', by: supervisor });
  expect(r.reply).toMatchObject({ ok: false, code: 'conflict' });
  // Resolving the home_fever by hand does not drop the transfer either.
  const fever = w.state.escalations.find((e) => e.kind === 'home_fever')!;
  w.send({ type: 'resolveEscalation', escalationId: fever.id, note: 'called', by: supervisor });
  expect(w.state.tasks.find((x) => x.id === t.id)?.status).toBe('pending');
  w.now += 100 * DAY;
  w.send({ type: 'tick' });
  expect(w.state.endedAt).toBeUndefined();
  // A wrong result kind is a failure, not a success.
  w.send({ type: 'taskStarted', taskId: t.id });
  w.send({ type: 'taskSucceeded', taskId: t.id, result: { kind: 'none' } });
  expect(w.state.endedAt).toBeUndefined();

  const z = toHome(homePolicy(0));
  for (let i = 0; i < 20 && !z.state.endedAt; i++) z.settle();
  expect(z.state.home).toBeUndefined();
  expect(z.state.phase).toBe('RELEASED');
  expect(homeCheckIn(z, 'x').reply).toMatchObject({ ok: false, code: 'conflict' });
});

test('held: homeMonitoringDays 0 and absent give the same records; a fever after `until` but before the tick still returns', () => {
  const kinds = (p: Policy) => {
    const w = toHome(p);
    for (let i = 0; i < 20 && !w.state.endedAt; i++) w.settle();
    return { phase: w.state.phase, records: w.steps.map((s) => s.phase), endedAt: w.state.endedAt };
  };
  const absent = shortPolicy({ name: '4+3' });
  expect(kinds(homePolicy(0))).toEqual(kinds(absent));

  const w = toHome(homePolicy(2));
  w.now = Date.parse(w.state.home!.until) + 1; // the tick has not come yet
  const d = homeCheckIn(w, 'late-hot', 38.9);
  expect(d.reply).toMatchObject({ ok: true, value: { fever: true, returning: true } });
  expect(w.state.home?.outcome).toBe('returned');
  expect(w.state.endedAt).toBeUndefined();
});
