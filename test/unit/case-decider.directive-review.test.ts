/**
 * What a hostile review of directives found (policies applied to running cases), each now a test
 * of the answer it must get, and the review's fuzz: richer directive policies than the property
 * test, inside random sequences, every invariant and the liveness rule after every step.
 */
import fc from 'fast-check';

import { previewPolicy } from '../../src/domain/case/decide';
import type { CaseEvent } from '../../src/domain/case/model';
import type { Policy } from '../../src/domain/policy';
import { PolicyDocument } from '../../src/domain/policy-document';
import { DAY, InvariantError, nurse, shortPolicy, supervisor, World, type Intent } from '../support/decider-world';

const log = (...a: unknown[]) => {
  if (process.env.REVIEW_LOG) console.log('[review]', ...a);
};

const fourteen = (): Policy =>
  shortPolicy({
    name: 'close-contact-14+7',
    stayDays: 14,
    sampling: { days: [1, 4, 7, 13], type: 'PCR', time: '09:00' },
    release: { requiredNegatives: 2, minApartMs: DAY, blockingSeverities: ['red'], afebrileCheckWithinMs: DAY },
    inspectionLeadMs: 2 * DAY,
  });
const seven = (): Policy => ({
  ...fourteen(),
  name: 'close-contact-7+3',
  version: 2,
  stayDays: 7,
  sampling: { days: [1, 5, 6], type: 'PCR', time: '09:00' },
});

/** Directives are issued in the order this is called (unless `issuedAt` is given). */
let issued = Date.parse('2026-01-01T00:00:00Z');
const applyPolicy = (id: string, policy: Policy, key?: string, issuedAt = (issued += 1000)): CaseEvent => ({
  type: 'applyPolicy',
  directiveId: id,
  issuedAt: new Date(issuedAt).toISOString(),
  policy,
  reason: 'national protocol',
  by: supervisor,
  ...(key ? { key } : {}),
});

function caseAtDay(days: number, p: Policy = fourteen()): World {
  const w = new World(p);
  for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
  const start = Date.parse(w.state.stayStart!);
  while (w.now < start + days * DAY) w.settle();
  return w;
}

// -------------------------------------------------------------------------------------------
// Invariant 2: at most once, same answer, skipped when ended
// -------------------------------------------------------------------------------------------

test("a client key shaped like the fan-out's cannot make a case refuse a directive (directives carry no key)", () => {
  const w = caseAtDay(2);
  const hijack = w.send({
    type: 'changeColour',
    colour: 'red',
    reason: 'x',
    by: supervisor,
    key: 'directive:DIR-AAAAAAAAAAAA',
  });
  expect(hijack.reply?.ok).toBe(true);
  const d = w.send(applyPolicy('DIR-AAAAAAAAAAAA', seven()));
  expect(d.reply).toMatchObject({ ok: true, value: { applied: true } });
  expect(w.state.policy?.name).toBe('close-contact-7+3');
});

test('the same directive id again, whatever it carries, gets the first answer and changes nothing', () => {
  const w = caseAtDay(2);
  const first = w.send(applyPolicy('D-1', seven()));
  const other = w.send(
    applyPolicy('D-1', { ...seven(), stayDays: 3, release: { ...seven().release, requiredNegatives: 0 } }),
  );
  expect(other.reply).toEqual(first.reply);
  expect(other.duplicate).toBe(true);
  expect(w.state.policy?.stayDays).toBe(7);
});

test('a retry of the same directive under another key gets the first answer', () => {
  const w = caseAtDay(2);
  const first = w.send(applyPolicy('D-2', seven(), 'k1'));
  const retry = w.send(applyPolicy('D-2', seven(), 'k2'));
  log('first', JSON.stringify(first.reply).slice(0, 90));
  log('retry', JSON.stringify(retry.reply).slice(0, 90));
  expect(retry.reply).toEqual(first.reply);
  expect(Object.keys(w.state.directives ?? {})).toEqual(['D-2']);
});

test('an older directive delivered after a newer one is skipped as superseded', () => {
  const w = caseAtDay(2);
  const v2 = seven();
  const v3: Policy = { ...seven(), name: 'close-contact-10', version: 3, stayDays: 10 };
  // D-new (v3) overtakes D-old (v2): two fan-outs, each rate limited, run side by side.
  const t = Date.parse('2026-06-01T00:00:00Z');
  w.send(applyPolicy('D-new', v3, undefined, t + 60_000));
  const old = w.send(applyPolicy('D-old', v2, undefined, t));
  log(
    'after D-new(v3) then D-old(v2):',
    w.state.policyName,
    'v' + w.state.policyVersion,
    JSON.stringify(old.reply).slice(0, 40),
  );
  expect(w.state.policyVersion).toBe(3);
  expect(old.reply).toMatchObject({ ok: true, value: { applied: false, skipped: 'superseded' } });
});

test('ended and closing cases are skipped and unchanged but for the answer they keep', () => {
  const w = caseAtDay(2);
  w.send({ type: 'cancel', reason: 'x', by: supervisor, key: 'c1' });
  const before = w.state;
  const d = w.send(applyPolicy('D-3', seven()));
  expect(d.reply).toMatchObject({ ok: true, value: { applied: false, skipped: 'ended' } });
  // Unchanged but for the answer it keeps for the directive.
  const { directives: kept, ...rest } = w.state;
  expect(Object.keys(kept ?? {})).toEqual(['D-3']);
  expect(rest).toEqual(before);
  expect(w.state.version).toBe(before.version);
});

// -------------------------------------------------------------------------------------------
// Invariant 1: release
// -------------------------------------------------------------------------------------------

test('a "check" with no temperature does not satisfy the observation rule', () => {
  const w = new World(fourteen());
  for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
  const start = Date.parse(w.state.stayStart!);
  while (w.now < start + 15 * DAY && w.state.releaseBlockers.join() !== 'no_recent_afebrile_check') {
    w.drive();
    if (w.state.samples.some((s) => s.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
    if (w.state.inspection.status === 'requested') w.apply({ k: 'inspection', pass: true, stale: false });
  }
  expect(w.state.releaseBlockers).toEqual(['no_recent_afebrile_check']);
  const checksBefore = w.state.checks.length;
  w.send({
    type: 'healthCheck',
    checkId: 'no-thermometer',
    takenAt: new Date(w.now).toISOString(),
    symptoms: [],
    by: nurse,
  });
  log('no temperature ever recorded (checks before:', checksBefore, ') → phase', w.state.phase);
  expect(w.state.phase).toBe('RELEASE_PENDING');
  expect(w.state.releaseBlockers).toEqual(['no_recent_afebrile_check']);
});

test('a new sampling type applies to the samples not yet on their way', () => {
  const w = caseAtDay(2);
  // The same plan, only the lab test changes (PCR → LAMP): the slots stay the same.
  const lamp: Policy = { ...fourteen(), version: 2, sampling: { days: [1, 4, 7, 13], type: 'LAMP', time: '09:00' } };
  w.send(applyPolicy('D-type', lamp));
  const planned = w.state.samples.filter((x) => x.status === 'planned');
  log('planned after type change:', planned.map((x) => `${x.slot}:${x.type}`).join(', '));
  expect(planned.length).toBeGreaterThan(0);
  expect(planned.every((x) => x.type === 'LAMP')).toBe(true);
  const due = Date.parse(w.state.releaseDue!);
  for (let i = 0; i < 400 && !w.state.endedAt; i++) w.settle();
  log(
    'after the calm spells:',
    w.state.phase,
    'blockers',
    w.state.releaseBlockers.join(),
    'now-due',
    ((w.now - due) / DAY).toFixed(2),
    'samples',
    w.state.samples.map((x) => `${x.reason}/${x.slot ?? '-'}:${x.type}:${x.status}:${x.result ?? ''}`).join(' '),
  );
  expect(w.state.phase).toBe('RELEASED');
  const releasedAt = Date.parse(w.state.closing!.startedAt);
  const taken = w.state.samples.filter((x) => x.order && x.reason !== 'antigen').map((x) => `${x.reason}:${x.type}`);
  log(
    'released',
    ((releasedAt - due) / DAY).toFixed(2),
    'policy days after the due date; samples taken:',
    taken.join(', '),
  );
  expect(releasedAt).toBeGreaterThanOrEqual(due);
  // The release pair was taken as LAMP: no extra release check was needed.
  expect(w.state.samples.filter((x) => x.reason === 'release_check').length).toBe(0);
  expect(w.state.samples.filter((x) => x.type === 'LAMP' && x.result === 'negative').length).toBeGreaterThanOrEqual(2);
});

test('a directive after a personal shortening keeps at least a day of stay; a later extension is taken', () => {
  const w = caseAtDay(1);
  const sh = w.send({ type: 'changeStay', days: -10, reason: 'shortened', by: supervisor, key: 's1' });
  expect(sh.reply?.ok).toBe(true);
  w.send(applyPolicy('D-neg', seven()));
  const start = Date.parse(w.state.stayStart!);
  const due = Date.parse(w.state.releaseDue!);
  log('stay after directive:', (due - start) / DAY, 'days (releaseDue before arrival:', due < start, ')');
  expect(due - start).toBe(DAY);
  const ext = w.send({ type: 'changeStay', days: 2, reason: 'extend by two', by: supervisor, key: 's2' });
  log('extension +2 answered', JSON.stringify(ext.reply));
  expect(ext.reply).toMatchObject({ ok: true });
});

test('the dry run changes nothing and equals the real answer', () => {
  const w = caseAtDay(9);
  const before = JSON.stringify(w.state);
  const e = {
    directiveId: 'D-p',
    issuedAt: new Date(w.now).toISOString(),
    policy: seven(),
    reason: 'r',
    by: supervisor,
  };
  const preview = previewPolicy(w.state, w.ctx, e, w.now);
  expect(JSON.stringify(w.state)).toBe(before);
  const real = w.send({ ...e, type: 'applyPolicy' });
  expect(real.reply).toEqual(preview);
});

// -------------------------------------------------------------------------------------------
// Fuzz: richer directive policies than the property test (type, minApart, blocking severities,
// check times, inspection lead, missed-check steps, sampling time, time zone of the day) inside
// random sequences; every invariant and the liveness rule after every step.
// -------------------------------------------------------------------------------------------

interface DirSpec {
  stayDays: number;
  days: number[];
  negatives: number;
  minApart: number;
  type: string;
  afebrile: number;
  blocking: number;
  checkTimes: number;
  lead: number;
  steps: boolean;
  time: string;
  feverAmber: boolean;
  again: boolean;
}

const base = (): Policy =>
  shortPolicy({
    name: 'base',
    stayDays: 6,
    sampling: { days: [1, 3, 5], type: 'PCR', time: '09:00' },
    release: { requiredNegatives: 2, minApartMs: DAY / 2, blockingSeverities: ['red'], afebrileCheckWithinMs: DAY },
    inspectionLeadMs: DAY,
  });

function policyOfSpec(s: DirSpec, version: number, current: Policy): Policy | undefined {
  const days = s.days.filter((d) => d <= s.stayDays);
  const checkTimes = [['08:00', '16:00'], ['12:00'], ['06:00', '12:00', '18:00']][s.checkTimes]!;
  const p: Policy = {
    ...current,
    name: `dir-${version}`,
    version,
    stayDays: s.stayDays,
    checkTimes,
    missedCheckSteps: s.steps ? current.missedCheckSteps : [],
    sampling: { days, type: s.type, time: s.time },
    release: {
      requiredNegatives: Math.min(s.negatives, days.length),
      minApartMs: Math.min(s.minApart, s.stayDays * DAY - 1),
      blockingSeverities: ([['red'], [], ['red', 'amber']] as const)[
        s.blocking
      ]!.slice() as Policy['release']['blockingSeverities'],
      afebrileCheckWithinMs: s.afebrile,
    },
    inspectionLeadMs: Math.min(s.lead, s.stayDays * DAY - 1),
    severity: { ...current.severity, fever: s.feverAmber ? 'amber' : 'red' },
  };
  const { version: _v, ...doc } = p;
  const r = PolicyDocument.safeParse(doc);
  return r.success ? p : undefined;
}

type FuzzIntent = Intent | { k: 'dir'; spec: DirSpec } | { k: 'bareCheck' };

const dirSpec: fc.Arbitrary<DirSpec> = fc.record({
  stayDays: fc.integer({ min: 1, max: 9 }),
  days: fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 5 }),
  negatives: fc.integer({ min: 0, max: 3 }),
  minApart: fc.constantFrom(0, DAY / 4, DAY / 2, DAY, 2 * DAY),
  type: fc.constantFrom('PCR', 'PCR', 'LAMP'),
  afebrile: fc.constantFrom(0, DAY / 2, DAY, 3 * DAY),
  blocking: fc.integer({ min: 0, max: 2 }),
  checkTimes: fc.integer({ min: 0, max: 2 }),
  lead: fc.constantFrom(0, DAY / 2, DAY, 2 * DAY),
  steps: fc.boolean(),
  time: fc.constantFrom('09:00', '00:00', '23:30'),
  feverAmber: fc.boolean(),
  again: fc.boolean(),
});
const pick = fc.double({ min: 0, max: 0.999, noNaN: true });
const fuzzIntent: fc.Arbitrary<FuzzIntent> = fc.oneof(
  { weight: 10, arbitrary: fc.constant<FuzzIntent>({ k: 'drive' }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 3 * DAY }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('start' as const), pick }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('succeed' as const), pick, variant: pick }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('fail' as const), pick }) },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('lab' as const),
      pick,
      result: fc.constantFrom('negative' as const, 'negative' as const, 'positive' as const),
      wrongLab: fc.constantFrom(false, false, true),
      typo: fc.constantFrom(false, false, true),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('answerAll' as const),
      result: fc.constantFrom('negative' as const, 'negative' as const, 'negative' as const, 'positive' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('correct' as const), pick }) },
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('inspection' as const), pass: fc.boolean(), stale: fc.boolean() }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('check' as const),
      temperatureC: fc.constantFrom(36.6, 38.4),
      symptoms: fc.boolean(),
      offsetMs: fc.constantFrom(0, -DAY / 3, DAY / 100),
      reuse: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'bareCheck' }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('stay' as const), days: fc.integer({ min: -4, max: 4 }) }) },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'address' }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('ack' as const), pick }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('resolve' as const), pick }) },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'repeat' }) },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'json' }) },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'door' }) },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'cancel' }) },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'colour' }) },
  { weight: 1, arbitrary: fc.constant<FuzzIntent>({ k: 'stayShort' }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('arrival' as const),
      offsetMs: fc.constant(0),
      by: fc.constant('hotel' as const),
    }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('dir' as const), spec: dirSpec }) },
);

function runFuzz(intents: FuzzIntent[], fromObservation = true): World {
  const w = new World(base());
  for (let n = 0; fromObservation && n < 10 && w.state.phase !== 'OBSERVATION'; n++) w.settle();
  let dirs = 0;
  let last: CaseEvent | undefined;
  for (const i of intents) {
    if (i.k === 'dir') {
      if (i.spec.again && last) {
        const before = w.state;
        const d = w.send(last);
        if (d.records.some((r) => r.kind === 'policy_applied'))
          throw new InvariantError(['a directive retried was applied again'], w.steps);
        void before;
      } else {
        const p = policyOfSpec(i.spec, ++dirs + 1, w.state.policy ?? w.policy);
        if (p) {
          last = applyPolicy(`D${dirs}`, p);
          w.send(last);
        }
      }
    } else if (i.k === 'bareCheck') {
      w.send({
        type: 'healthCheck',
        checkId: `bare-${w.steps.length}`,
        takenAt: new Date(w.now).toISOString(),
        symptoms: [],
        by: nurse,
        key: `bare-${w.steps.length}`,
      });
    } else {
      w.apply(i);
    }
    w.checkLiveness();
  }
  for (let n = 0; n < 80 && !w.state.endedAt; n++) {
    w.settle();
    w.checkLiveness();
  }
  return w;
}

const RUNS = Number(process.env.HOSTILE_RUNS ?? 1500);
test(`fuzz: ${RUNS} sequences with rich directives keep every invariant and the liveness rule`, () => {
  let released = 0;
  let directed = 0;
  fc.assert(
    fc.property(
      fc.array(fuzzIntent, { minLength: 1, maxLength: 50 }),
      fc.constantFrom(true, true, true, false),
      (intents, fromObs) => {
        try {
          const w = runFuzz(intents, fromObs);
          if (w.state.phase === 'RELEASED') released++;
          if (w.state.policy) directed++;
        } catch (err) {
          if (err instanceof InvariantError) throw new Error(err.message);
          throw err;
        }
      },
    ),
    { numRuns: RUNS, verbose: 1 },
  );
  log(`fuzz: ${RUNS} runs, ${directed} ended under a directive policy, ${released} released`);
});

test('not released while the latest check is a fever, even with fever amber under a directive', () => {
  const amberFever: Policy = { ...seven(), severity: { ...seven().severity, fever: 'amber' } };
  const w = caseAtDay(2);
  w.send(applyPolicy('D-amber', amberFever));
  // Calm, but the home is not inspected yet and nobody checks the person.
  const target = 'address_not_approved,no_recent_afebrile_check';
  for (let i = 0; i < 400 && w.state.releaseBlockers.join() !== target && !w.state.closing; i++) {
    w.drive();
    if (w.state.samples.some((s) => s.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
    const red = w.state.escalations.findIndex((e) => e.status !== 'closed' && e.severity === 'red');
    if (red >= 0) w.apply({ k: 'resolve', pick: red / w.state.escalations.length });
  }
  expect(w.state.releaseBlockers).toEqual(['address_not_approved', 'no_recent_afebrile_check']);
  w.send({
    type: 'healthCheck',
    checkId: 'ok',
    takenAt: new Date(w.now).toISOString(),
    temperatureC: 36.5,
    symptoms: [],
    by: nurse,
  });
  w.now += 100;
  w.send({
    type: 'healthCheck',
    checkId: 'hot',
    takenAt: new Date(w.now).toISOString(),
    temperatureC: 39.2,
    symptoms: [],
    by: nurse,
  });
  for (let i = 0; i < 20 && w.state.samples.some((s) => s.status === 'planned' || s.status === 'ordered'); i++) {
    w.drive();
    if (w.state.samples.some((s) => s.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
  }
  w.apply({ k: 'inspection', pass: true, stale: false });
  const last = w.state.checks[w.state.checks.length - 1]!;
  log(
    'phase',
    w.state.phase,
    '; latest check',
    last.checkId,
    last.temperatureC,
    '°C fever',
    last.fever,
    '; fever escalation',
    w.state.escalations.find((e) => e.kind === 'fever')?.status,
  );
  expect(last.fever).toBe(true);
  expect(w.state.phase).not.toBe('RELEASED');
  expect(w.state.releaseBlockers).toContain('no_recent_afebrile_check');
  // A normal temperature afterwards: released.
  w.now += 100;
  w.send({
    type: 'healthCheck',
    checkId: 'ok-again',
    takenAt: new Date(w.now).toISOString(),
    temperatureC: 36.4,
    symptoms: [],
    by: nurse,
  });
  expect(w.state.phase).toBe('RELEASED');
});
