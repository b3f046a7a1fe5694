/**
 * Slots judged by event time (CaseContext.slotsByEventTime, the `slots-by-event-time` patch).
 * A case whose worker runs behind takes its messages in late; before this rule the first message
 * it took in judged every slot whose time had passed meanwhile, so a check sent in time but taken
 * in after another message counted for nothing and the person who was seen was escalated; and a
 * check taken in a later slot's window counted for an earlier slot still watched, leaving its own
 * slot to be judged missed. Each test runs the same events with the rule off (the old behaviour,
 * kept for the cases started before it) and on.
 */
import type { CaseEvent } from '../../src/domain/case/model';
import { nextWakeAt } from '../../src/domain/case/decide';
import { DAY, nurse, labActor, shortPolicy, World } from '../support/decider-world';
import type { Policy } from '../../src/domain/policy';
import { nextCheckSlot } from '../../src/domain/schedule';

function inObservation(byEventTime: boolean, policy: Policy = shortPolicy({ stayDays: 6 })): World {
  const w = new World(policy, undefined, false, true, byEventTime);
  for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
  expect(w.state.phase).toBe('OBSERVATION');
  return w;
}

const check = (id: string, takenAt: number): CaseEvent => ({
  type: 'healthCheck',
  checkId: id,
  takenAt: new Date(takenAt).toISOString(),
  temperatureC: 36.5,
  symptoms: [],
  by: nurse,
});
const missed = (w: World) => w.state.escalations.filter((e) => e.kind === 'missed_check');
const dueOf = (w: World, id: string) => w.state.checks.find((c) => c.checkId === id)?.dueAt;
/** The slot after `slot` by the case's schedule. */
const after = (w: World, slot: number) => nextCheckSlot(w.policy, Date.parse(w.state.stayStart!), slot + 1, Infinity)!;
const judgedAt = (w: World, slot: number) =>
  slot + w.policy.checkWindowAfterMs + (w.policy.missedCheckSteps[0]?.afterMs ?? 0);

describe.each([false, true])('slots by event time: %s', (byEventTime) => {
  test('two checks sent in time, taken in late in one task: both count when judged by event time', () => {
    const w = inObservation(byEventTime);
    const a = Date.parse(w.state.currentSlot!);
    // The worker was away: both checks were sent on time, and the case takes them in a day later.
    w.now = a + DAY;
    const b = after(w, a);
    w.send(check('a', a));
    expect(dueOf(w, 'a')).toBe(new Date(a).toISOString());
    w.send(check('b', b));
    if (byEventTime) {
      expect(dueOf(w, 'b')).toBe(new Date(b).toISOString());
      expect(missed(w)).toEqual([]);
    } else {
      // The first check's decision judged slot b missed before the second check was taken in.
      expect(dueOf(w, 'b')).toBeUndefined();
      expect(missed(w)).toHaveLength(1);
    }
  });

  test('a lab result taken in late does not judge the slot a check after it was sent in time for', () => {
    const w = inObservation(byEventTime);
    const a = Date.parse(w.state.currentSlot!);
    w.now = judgedAt(w, a) + 10;
    w.send({
      type: 'labResult',
      sampleId: 'no-such-sample',
      result: 'negative',
      labId: 'LAB1',
      by: labActor('LAB1'),
    } as CaseEvent);
    w.send(check('a', a - 5));
    expect(dueOf(w, 'a')).toBe(byEventTime ? new Date(a).toISOString() : undefined);
    expect(missed(w)).toHaveLength(byEventTime ? 0 : 1);
    // Judged by event time, the tick after them (the same task) finds nothing missed.
    w.send({ type: 'tick' });
    expect(missed(w)).toHaveLength(byEventTime ? 0 : 1);
  });

  test("a check in a later slot's window counts for that slot; the slot before it was missed", () => {
    const w = inObservation(byEventTime);
    const a = Date.parse(w.state.currentSlot!);
    // Nobody checked at a. The worker is behind: the case has not judged a yet when the check
    // taken in the next slot's window comes in.
    const b = after(w, a);
    const takenAt = b - w.policy.checkWindowBeforeMs / 2;
    w.now = takenAt + 5;
    w.send(check('b', takenAt));
    if (byEventTime) {
      expect(dueOf(w, 'b')).toBe(new Date(b).toISOString());
      // a was missed (nobody checked in its window): on record, and closed by the check that followed.
      const [esc, ...more] = missed(w);
      expect(more).toEqual([]);
      expect(esc).toMatchObject({ status: 'closed', closedReason: 'check_received' });
      expect(esc!.reason).toContain(new Date(a).toISOString());
      expect(Date.parse(w.state.currentSlot!)).toBeGreaterThan(b);
    } else {
      // Counted for a; b is still watched and is judged missed though the person was seen in its window.
      expect(dueOf(w, 'b')).toBe(new Date(a).toISOString());
      expect(w.state.currentSlot).toBe(new Date(b).toISOString());
      w.now = judgedAt(w, b);
      w.send({ type: 'tick' });
      expect(missed(w).filter((e) => e.status === 'open')).toHaveLength(1);
    }
  });

  test('a case held past its release due date with one check a day: an early check still finds tomorrow', () => {
    const w = inObservation(byEventTime, shortPolicy({ stayDays: 2, checkTimes: ['08:00'] }));
    // Held: the home failed its inspection, so release waits past the due date.
    const releaseDue = Date.parse(w.state.releaseDue!);
    while (w.now < releaseDue + DAY / 2) {
      w.drive();
      if (w.state.inspection.status === 'requested' || w.state.inspection.status === 'requesting')
        w.apply({ k: 'inspection', pass: false, stale: false });
    }
    expect(w.state.closing).toBeUndefined();
    const slot = Date.parse(w.state.currentSlot!);
    w.now = slot - w.policy.checkWindowBeforeMs / 2;
    w.send(check('early', w.now));
    expect(dueOf(w, 'early')).toBe(new Date(slot).toISOString());
    if (byEventTime) expect(w.state.currentSlot).toBe(new Date(slot + DAY).toISOString());
    // The old rule plans a policy day past now, just short of tomorrow's slot: checks stop.
    else expect(w.state.currentSlot).toBeUndefined();
  });

  test('a slot whose time came while a message was taken in is never slept through', () => {
    const w = inObservation(byEventTime);
    const a = Date.parse(w.state.currentSlot!);
    w.now = judgedAt(w, a) + 10;
    w.apply({ k: 'door' });
    const next = nextWakeAt(w.state, w.ctx, w.now);
    expect(next).toBeDefined();
    // Judged by event time the slot is still watched, and the case wakes at once to judge it.
    if (byEventTime) expect(next).toBe(w.now + 1);
    w.now = next!;
    w.send({ type: 'tick' });
    expect(missed(w)).toHaveLength(1);
  });
});

describe('judged by event time, what a message may no longer do before the tick', () => {
  test('a message that would release the case waits for the tick to judge a slot whose time came', () => {
    const w = inObservation(true, shortPolicy({ stayDays: 2 }));
    // Drive to just before release, every slot checked, every sample answered.
    const releaseDue = Date.parse(w.state.releaseDue!);
    for (let i = 0; i < 200 && w.now < releaseDue - DAY / 3; i++) {
      w.settle();
      const slot = Date.parse(w.state.currentSlot ?? 'x');
      if (!Number.isNaN(slot) && slot <= w.now + DAY / 3) {
        w.now = Math.max(w.now, slot);
        w.send(check(`c${i}`, slot));
      }
    }
    // Nobody checks the slot before release; the worker is away past its judge time and past
    // the due date; the message taken in first would let the case go.
    const slot = Date.parse(w.state.currentSlot!);
    w.now = Math.max(judgedAt(w, slot), releaseDue) + 1;
    w.apply({ k: 'door' });
    expect(w.state.closing).toBeUndefined();
    expect(nextWakeAt(w.state, w.ctx, w.now)).toBe(w.now + 1);
    // The tick judges the slot first: on record, and then release goes by its rules.
    w.now += 1;
    w.send({ type: 'tick' });
    expect(missed(w).length + w.records.filter((r) => r.kind === 'check_missed').length).toBeGreaterThan(0);
  });

  test('a missed-check chain climbs on the tick, not on a message taken in late; a check in hand closes it first', () => {
    const w = inObservation(true);
    const a = Date.parse(w.state.currentSlot!);
    w.now = judgedAt(w, a);
    w.send({ type: 'tick' });
    const [esc] = missed(w);
    expect(esc).toMatchObject({ status: 'open', level: 'reminder' });
    // The nurse step's time passes with the worker away; a door alarm, then a check, are taken in.
    const nurseStep = a + w.policy.checkWindowAfterMs + w.policy.missedCheckSteps[1]!.afterMs;
    w.now = nurseStep + 5;
    w.apply({ k: 'door' });
    expect(w.state.escalations.find((e) => e.id === esc!.id)!.level).toBe('reminder');
    expect(nextWakeAt(w.state, w.ctx, w.now)).toBe(w.now + 1);
    w.send(check('late-but-in-hand', nurseStep - 10));
    w.send({ type: 'tick' });
    const after = w.state.escalations.find((e) => e.id === esc!.id)!;
    expect(after).toMatchObject({ status: 'closed', closedReason: 'check_received', level: 'reminder' });
    expect(w.tasksSeen.filter((t) => t.kind === 'notify' && t.subject === esc!.id)).toHaveLength(1);
  });

  test('a slot judged missed by a check that then closes its chain announces nothing', () => {
    const w = inObservation(true);
    const a = Date.parse(w.state.currentSlot!);
    const b = after(w, a);
    w.now = b;
    w.send(check('b', b - 5));
    const [esc] = missed(w);
    expect(esc).toMatchObject({ status: 'closed', closedReason: 'check_received' });
    const notices = w.state.tasks.filter((t) => t.kind === 'notify' && t.subject === esc!.id);
    expect(notices.every((t) => t.status === 'dropped')).toBe(true);
  });
});
