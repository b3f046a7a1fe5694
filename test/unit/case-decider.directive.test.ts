/**
 * Directives (issue 12): a new policy for cases already inside, and the observation rule. The
 * property test runs directives inside random sequences; these are the field's own cases.
 */
import { previewPolicy } from '../../src/domain/case/decide';
import type { Policy } from '../../src/domain/policy';
import { DAY, nurse, shortPolicy, supervisor, World } from '../support/decider-world';

/** 14 days centralized with samples on days 1, 4, 7 and 13 (the pair 7 and 13 counted from the end). */
const fourteen = (): Policy =>
  shortPolicy({
    name: 'close-contact-14+7',
    stayDays: 14,
    homeMonitoringDays: 7,
    sampling: { days: [1, 4, 7, 13], type: 'PCR', time: '09:00' },
    release: { requiredNegatives: 2, minApartMs: DAY, blockingSeverities: ['red'], afebrileCheckWithinMs: DAY },
    inspectionLeadMs: 2 * DAY,
  });
/** The June 2022 protocol: 7 days centralized, samples on days 1, 2, 3, 5 and 7 (here 1, 5 and 6). */
const seven = (): Policy => ({
  ...fourteen(),
  name: 'close-contact-7+3',
  version: 2,
  stayDays: 7,
  homeMonitoringDays: 3,
  sampling: { days: [1, 5, 6], type: 'PCR', time: '09:00' },
});

let n = 0;
const directive = (w: World, policy: Policy, id = `D-${++n}`) =>
  w.send({
    type: 'applyPolicy',
    directiveId: id,
    issuedAt: new Date(w.now).toISOString(),
    policy,
    reason: 'national protocol',
    by: supervisor,
  });

/** A case in its room, `days` policy days after arrival, every sample so far negative. */
function caseAtDay(days: number): World {
  const w = new World(fourteen());
  for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
  const start = Date.parse(w.state.stayStart!);
  while (w.now < start + days * DAY) w.settle();
  return w;
}
const negativesTaken = (w: World) =>
  w.state.samples.filter((x) => x.result === 'negative' && x.type === 'PCR').map((x) => x.day);

test('14 + 7 to 7 + 3 on day 10: the new date is already past, the taken negatives count, nothing is caught up', () => {
  const w = caseAtDay(9);
  expect(negativesTaken(w)).toEqual([1, 4, 7]);
  const d = directive(w, seven());
  expect(d.reply).toMatchObject({ ok: true, value: { applied: true, samplesPlanned: 0 } });
  const start = Date.parse(w.state.stayStart!);
  expect(Date.parse(w.state.releaseDue!)).toBe(start + 7 * DAY);
  expect(w.state.policy?.name).toBe('close-contact-7+3');
  // Not released on the spot: the home is not inspected yet, and nobody checked them today.
  expect(w.state.phase).toBe('RELEASE_PENDING');
  expect(w.state.releaseBlockers).toContain('address_not_approved');
  const record = d.records.find((r) => r.kind === 'policy_applied')!;
  expect(record.by).toEqual(supervisor);
  expect(record.payload).toMatchObject({
    before: { policy: 'close-contact-14+7', releaseDue: new Date(start + 14 * DAY).toISOString() },
    after: { policy: 'close-contact-7+3', releaseDue: new Date(start + 7 * DAY).toISOString() },
  });
  // The day-13 sample of the old plan is no longer wanted.
  expect(w.state.samples.filter((x) => x.status === 'planned')).toEqual([]);
  for (let i = 0; i < 40 && !w.state.endedAt; i++) w.settle();
  expect(w.state.closing?.target).toBe('RELEASED');
  expect(Date.parse(w.state.closing!.startedAt)).toBeLessThan(start + 10 * DAY);
  // Then 3 days at home (7 + 3), not 7: the directive changed that too.
  expect(w.state.home?.days).toBe(3);
  expect(w.state.phase).toBe('HOME_MONITORING_DONE');
});

test('14 + 7 to 7 + 3 on day 3: the release pair is planned on the new days, and release waits for it', () => {
  const w = caseAtDay(2);
  expect(negativesTaken(w)).toEqual([1]);
  const d = directive(w, seven());
  expect(d.reply).toMatchObject({ ok: true, value: { applied: true, samplesPlanned: 2 } });
  const planned = w.state.samples.filter((x) => x.status === 'planned');
  expect(planned.map((x) => x.day)).toEqual([5, 6]);
  // The old plan's day 4 (not yet taken), 7 and 13 are cancelled.
  expect(w.state.samples.filter((x) => x.cancelReason === 'policy changed').map((x) => x.day)).toEqual([4, 7, 13]);
  for (let i = 0; i < 60 && !w.state.endedAt; i++) w.settle();
  expect(w.state.closing?.target).toBe('RELEASED');
  expect(negativesTaken(w)).toEqual([1, 5, 6]);
});

test('shortened past the date without the negatives: nobody is released; the case plans the PCRs it needs', () => {
  // A case whose day-4 sample came back positive-then-corrected, say: here, simply no results yet.
  const w = new World(fourteen());
  for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
  const start = Date.parse(w.state.stayStart!);
  // Time passes but the lab answers nothing: the samples are taken, their results pending.
  while (w.now < start + 9 * DAY) w.drive();
  expect(w.state.samples.some((x) => x.status === 'ordered')).toBe(true);
  directive(w, { ...seven(), sampling: { days: [1], type: 'PCR', time: '09:00' } });
  expect(w.state.phase).toBe('RELEASE_PENDING');
  expect(w.state.releaseBlockers).toContain('result_pending');
  // Results come in negative, the home passes, a nurse checks: only then, and with two negatives.
  for (let i = 0; i < 60 && !w.state.endedAt; i++) w.settle();
  expect(w.state.closing?.target).toBe('RELEASED');
  expect(w.state.samples.filter((x) => x.result === 'negative').length).toBeGreaterThanOrEqual(2);
});

test('a directive needing more negatives than the case has plans one release check at a time', () => {
  const w = caseAtDay(9);
  directive(w, {
    ...seven(),
    release: { ...seven().release, requiredNegatives: 4 },
    sampling: { days: [1, 2, 5, 6], type: 'PCR', time: '09:00' },
  });
  expect(w.state.releaseBlockers).toContain('not_enough_negatives');
  const extra = w.state.samples.filter((x) => x.reason === 'release_check');
  expect(extra).toHaveLength(1);
  for (let i = 0; i < 80 && !w.state.endedAt; i++) w.settle();
  expect(w.state.closing?.target).toBe('RELEASED');
});

test('the same directive twice changes nothing the second time; a released case is left alone', () => {
  const w = caseAtDay(9);
  const first = directive(w, seven(), 'D-same');
  const again = w.send({
    type: 'applyPolicy',
    directiveId: 'D-same',
    issuedAt: new Date(w.now).toISOString(),
    policy: seven(),
    reason: 'national protocol',
    by: supervisor,
    key: 'another-key',
  });
  expect(first.reply).toMatchObject({ ok: true, value: { applied: true } });
  // The same answer as the first time, and nothing applied again.
  expect(again.reply).toEqual(first.reply);
  expect(again.duplicate).toBe(true);
  expect(again.records.filter((r) => r.kind === 'policy_applied')).toHaveLength(0);
  for (let i = 0; i < 40 && !w.state.endedAt; i++) w.settle();
  expect(w.state.closing?.target).toBe('RELEASED');
  const late = directive(w, { ...seven(), version: 3, stayDays: 10 });
  expect(late.reply).toMatchObject({ ok: true, value: { applied: false, skipped: 'ended' } });
  expect(late.records.filter((r) => r.kind === 'policy_applied')).toHaveLength(0);
});

test('the dry run tells what the directive would do and changes nothing', () => {
  const w = caseAtDay(2);
  const before = JSON.stringify(w.state);
  const r = previewPolicy(
    w.state,
    w.ctx,
    {
      directiveId: 'D-preview',
      issuedAt: new Date(w.now).toISOString(),
      policy: seven(),
      reason: 'preview',
      by: supervisor,
    },
    w.now,
  );
  expect(JSON.stringify(w.state)).toBe(before);
  expect(r).toMatchObject({
    ok: true,
    value: { applied: true, samplesPlanned: 2, samplesCancelled: 3, released: false },
  });
  // A drill case cannot be given a policy on another clock.
  const wrong = previewPolicy(
    w.state,
    w.ctx,
    {
      directiveId: 'D-x',
      issuedAt: new Date(w.now).toISOString(),
      policy: { ...seven(), clock: { kind: 'calendar', timeZone: 'Asia/Shanghai' } },
      reason: 'x',
      by: supervisor,
    },
    w.now,
  );
  expect(wrong).toMatchObject({ ok: false, code: 'invalid' });
});

test('the observation rule: a person whose every check was missed is held until a check without fever', () => {
  const w = new World(fourteen());
  for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
  const start = Date.parse(w.state.stayStart!);
  // Everything else goes well (settle answers labs and inspections) but nobody records a check.
  while (w.now < start + 15 * DAY && w.state.releaseBlockers.join() !== 'no_recent_afebrile_check') {
    w.drive();
    if (w.state.samples.some((s) => s.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
    if (w.state.inspection.status === 'requested') w.apply({ k: 'inspection', pass: true, stale: false });
  }
  expect(w.state.releaseBlockers).toEqual(['no_recent_afebrile_check']);
  expect(w.state.escalations.filter((e) => e.kind === 'missed_check').length).toBeGreaterThan(20);
  // A fever is not the check it needs.
  w.send({
    type: 'healthCheck',
    checkId: 'c-hot',
    takenAt: new Date(w.now).toISOString(),
    temperatureC: 38.5,
    symptoms: [],
    by: nurse,
  });
  expect(w.state.phase).toBe('RELEASE_PENDING');
  // A policy may turn the rule off: the same case under such a directive is released at once
  // once the fever is dealt with; here a normal check does it.
  w.send({
    type: 'healthCheck',
    checkId: 'c-ok',
    takenAt: new Date(w.now).toISOString(),
    temperatureC: 36.6,
    symptoms: [],
    by: nurse,
  });
  expect(w.state.releaseBlockers).not.toContain('no_recent_afebrile_check');
});

test('a policy with the observation rule off releases on the date without checks', () => {
  const off = fourteen();
  off.release = { ...off.release, afebrileCheckWithinMs: 0 };
  const w = new World(off);
  for (let i = 0; i < 200 && !w.state.endedAt; i++) {
    w.drive();
    if (w.state.samples.some((s) => s.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
    if (w.state.inspection.status === 'requested') w.apply({ k: 'inspection', pass: true, stale: false });
    if (w.state.room && !w.state.arrivedAt) w.apply({ k: 'arrival', offsetMs: 0, by: 'hotel' });
  }
  expect(w.state.closing?.target).toBe('RELEASED');
  expect(w.state.checks).toHaveLength(0);
});
