/**
 * Home monitoring after release (issue 12): the community's daily check-ins, a missed day, a
 * fever at home, and a policy without home days ending at release as before.
 */
import { isComplete } from '../../src/domain/case/decide';
import { withCaseDefaults, type Policy } from '../../src/domain/policy';
import { community, DAY, shortPolicy, World } from '../support/decider-world';

const homePolicy = (days = 3): Policy => shortPolicy({ name: '4+3', homeMonitoringDays: days });

/** Runs a case to its release from the hotel (labs, inspection and nurse all doing their part). */
function released(p: Policy): World {
  const w = new World(p);
  for (let i = 0; i < 100 && w.state.phase !== 'HOME_MONITORING' && !w.state.endedAt; i++) {
    w.drive();
    if (w.state.samples.some((x) => x.status === 'ordered')) w.apply({ k: 'answerAll', result: 'negative' });
    if (w.state.inspection.status === 'requested') w.apply({ k: 'inspection', pass: true, stale: false });
    if (w.state.room && !w.state.arrivedAt) w.apply({ k: 'arrival', offsetMs: 0, by: 'hotel' });
    if (w.state.releaseBlockers.includes('no_recent_afebrile_check'))
      w.apply({ k: 'check', temperatureC: 36.6, symptoms: false, offsetMs: 0, reuse: false });
  }
  return w;
}
const checkIn = (w: World, id: string, temperatureC = 36.5) =>
  w.send({
    type: 'homeCheckIn',
    checkInId: id,
    takenAt: new Date(w.now).toISOString(),
    temperatureC,
    symptoms: [],
    by: community,
  });

test('released with home days: HOME_MONITORING, a check-in a day, a missed day escalates to the community, then done', () => {
  const w = released(homePolicy(3));
  expect(w.state.phase).toBe('HOME_MONITORING');
  expect(w.state.closing?.target).toBe('RELEASED');
  expect(w.state.endedAt).toBeUndefined();
  const home = w.state.home!;
  expect(home.days).toBe(3);
  expect(Date.parse(home.until) - Date.parse(home.startedAt)).toBe(3 * DAY);

  // Day 1: checked in (a retry of the same check-in is one check-in).
  const first = checkIn(w, 'h1');
  expect(first.reply).toMatchObject({ ok: true, value: { day: 1, fever: false, duplicate: false } });
  expect(checkIn(w, 'h1').reply).toMatchObject({ ok: true, value: { duplicate: true } });
  // Day 2 passes without one: an escalation to the community worker, and their system is told.
  w.now = Date.parse(home.startedAt) + 2 * DAY + 1;
  w.send({ type: 'tick' });
  const missed = w.state.escalations.filter((e) => e.kind === 'missed_home_check');
  expect(missed).toHaveLength(1);
  expect(missed[0]).toMatchObject({ level: 'community', status: 'open' });
  expect(w.state.tasks.some((t) => t.kind === 'alertCommunity' && t.subject === missed[0]!.id)).toBe(true);
  // Day 3: a check-in closes it (the person was seen).
  checkIn(w, 'h3');
  expect(w.state.escalations.find((e) => e.id === missed[0]!.id)?.closedReason).toBe('check_received');
  // The last day ends it: HOME_MONITORING_DONE, the case ended.
  w.now = Date.parse(home.until);
  w.send({ type: 'tick' });
  w.runDueTasks();
  expect(w.state.phase).toBe('HOME_MONITORING_DONE');
  expect(w.state.home).toMatchObject({ outcome: 'completed', checkedDays: [1, 3], missedDays: [2] });
  expect(w.state.endedAt).toBeDefined();
  // A check-in after the end is refused and changes nothing.
  expect(checkIn(w, 'late').reply).toMatchObject({ ok: false, code: 'conflict' });
  w.now = Date.parse(w.state.endedAt!) + withCaseDefaults(w.policy).lateResultWindowMs + 1;
  w.send({ type: 'tick' });
  expect(isComplete(w.state, w.ctx, w.now)).toBe(true);
});

test('a fever at home sends the person back through a transfer: a new case, and the escalation closes for that', () => {
  const w = released(homePolicy(5));
  expect(w.state.phase).toBe('HOME_MONITORING');
  const hot = checkIn(w, 'hot', 38.7);
  expect(hot.reply).toMatchObject({ ok: true, value: { fever: true, returning: true } });
  expect(w.state.phase).toBe('HOME_MONITORING_DONE');
  const fever = w.state.escalations.find((e) => e.kind === 'home_fever')!;
  expect(fever).toMatchObject({ severity: 'red', level: 'community', status: 'open' });
  // Not ended until the return transfer is started.
  expect(w.state.endedAt).toBeUndefined();
  const task = w.state.tasks.find((t) => t.kind === 'returnTransfer')!;
  w.send({ type: 'taskStarted', taskId: task.id });
  // A failure is retried (and escalated), never dropped.
  w.send({ type: 'taskFailed', taskId: task.id, error: 'IntegrationUnavailable' });
  expect(w.state.endedAt).toBeUndefined();
  w.now += DAY;
  w.send({ type: 'tick' });
  w.send({ type: 'taskStarted', taskId: task.id });
  w.send({ type: 'taskSucceeded', taskId: task.id, result: { kind: 'returned', caseNo: 'QCBACK000001' } });
  expect(w.state.home?.returnCaseNo).toBe('QCBACK000001');
  expect(w.state.escalations.find((e) => e.id === fever.id)).toMatchObject({
    status: 'closed',
    closedReason: 'returned_to_quarantine',
  });
  w.runDueTasks();
  expect(w.state.endedAt).toBeDefined();
});

test('a policy with 0 home days ends at release, as before', () => {
  const w = released(homePolicy(0));
  for (let i = 0; i < 20 && !w.state.endedAt; i++) w.settle();
  expect(w.state.phase).toBe('RELEASED');
  expect(w.state.home).toBeUndefined();
  expect(w.state.endedAt).toBeDefined();
});
