/**
 * A nurse's rounds (src/domain/rounds.ts) list, from a case's read-model row alone, the slots the
 * case will watch from now on. Property: for generated cases (check times, windows, stays,
 * extensions, checks on time, late or never), the slots the rounds list at any moment are the
 * slots the decision core then watches, in order, as the nurse checks each on time; only a case
 * that ends meanwhile watches fewer.
 */
import fc from 'fast-check';

import { decide, policyOf } from '../../src/domain/case/decide';
import type { CaseState } from '../../src/domain/case/model';
import { checkScheduleOf, roundSlots, MAX_SLOTS_PER_CASE, type RoundsCase } from '../../src/domain/rounds';
import { DAY, nurse, shortPolicy, World } from '../support/decider-world';

const ms = (t: string | undefined) => (t === undefined ? undefined : Date.parse(t));

/** The read-model row's view of a case, as the case writes it (src/workflows/case-v2.ts). */
function rowOf(w: World): RoundsCase {
  const s = w.state;
  return {
    schedule: s.closing || !s.currentSlot ? null : checkScheduleOf(policyOf(s, w.ctx)),
    stayStart: ms(s.stayStart),
    releaseDue: ms(s.releaseDue),
    nextCheckDue: s.closing ? undefined : ms(s.currentSlot),
  };
}

/**
 * The slots the case watches from now on while a nurse checks each in its window (taken anywhere
 * in it, `early` of the way before the slot; taken in by the case `lag` later, its worker behind),
 * up to `to` or `limit` slots or the case's end. Each check must count for the slot it was taken for.
 */
function watchedFromNow(
  w: World,
  to: number,
  limit: number,
  early: number,
  lag: number,
): { slots: number[]; ended: boolean } {
  let s: CaseState = w.state;
  let now = w.now;
  const slots: number[] = [];
  for (let i = 0; ; i++) {
    const slot = ms(s.currentSlot);
    if (s.closing) return { slots, ended: true };
    // A case in observation always watches a slot: checks never just stop.
    expect(slot).toBeDefined();
    if (slot! > to || slots.length >= limit) return { slots, ended: false };
    slots.push(slot!);
    const takenAt = Math.max(slot! - Math.floor(early * w.policy.checkWindowBeforeMs), ms(s.stayStart)!);
    now = Math.max(now, takenAt + lag);
    const d = decide(
      s,
      {
        type: 'healthCheck',
        checkId: `round-${i}`,
        takenAt: new Date(takenAt).toISOString(),
        temperatureC: 36.5,
        symptoms: [],
        by: nurse,
      },
      w.ctx,
      now,
    );
    s = d.state;
    expect(s.checks.find((c) => c.checkId === `round-${i}`)?.dueAt).toBe(new Date(slot!).toISOString());
  }
}

const step = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ k: 'drive' as const }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('wait' as const), ms: fc.integer({ min: 1, max: 2 * DAY }) }) },
  {
    weight: 4,
    arbitrary: fc.record({ k: fc.constant('check' as const), offset: fc.integer({ min: -DAY / 4, max: DAY / 4 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('stay' as const), days: fc.integer({ min: -2, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'settle' as const }) },
);

const clock = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
  .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);

test('the rounds list exactly the slots the case then watches, in order', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(clock, { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 0, max: Math.floor(DAY / 12) }),
      fc.integer({ min: 0, max: Math.floor(DAY / 12) }),
      fc.array(step, { minLength: 1, maxLength: 40 }),
      fc.integer({ min: -DAY, max: 2 * DAY }),
      fc.integer({ min: 0, max: 4 * DAY }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.integer({ min: 0, max: 3 * DAY }),
      (checkTimes, before, after, steps, ahead, span, early, lag) => {
        const w = new World(
          shortPolicy({ stayDays: 5, checkTimes, checkWindowBeforeMs: before, checkWindowAfterMs: after }),
          undefined,
          false,
          true,
          true,
        );
        for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
        for (const st of steps) {
          if (st.k === 'drive') w.drive();
          else if (st.k === 'settle') w.settle();
          else if (st.k === 'wait') w.apply({ k: 'wait', ms: st.ms });
          else if (st.k === 'stay') w.apply({ k: 'stay', days: st.days });
          else w.apply({ k: 'check', symptoms: false, temperatureC: 36.4, offsetMs: st.offset, reuse: false });
          if (w.state.phase !== 'OBSERVATION' && w.state.phase !== 'RELEASE_PENDING') continue;
          // Any window the nurse asks about: from a day back to two days ahead, up to four days long.
          const from = w.now + ahead;
          const to = from + span;
          const listed = roundSlots(rowOf(w), from, to, w.now);
          const { slots, ended } = watchedFromNow(w, to, 10 * MAX_SLOTS_PER_CASE, early, lag);
          // Before the release due date the rounds cannot know the case will be held past it: they
          // list the slots up to it (the watched one whatever its time); once past it, a day ahead.
          const releaseDue = ms(w.state.releaseDue)!;
          const expected = slots
            .filter((x, i) => i === 0 || w.now >= releaseDue || x < releaseDue)
            .filter((x) => x + after >= from)
            .slice(0, MAX_SLOTS_PER_CASE);
          const got = listed.map((x) => x.slotAt);
          // A case that ended on the way (released, its hold lifted by a check) watched a prefix of them.
          if (ended) expect(got.slice(0, expected.length)).toEqual(expected);
          else expect(got).toEqual(expected);
          for (const x of listed) {
            expect(x.opensAt).toBe(x.slotAt - before);
            expect(x.closesAt).toBe(x.slotAt + after);
            expect(x.watched).toBe(x.slotAt === ms(w.state.currentSlot));
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('a row without a schedule (a case started before it was kept) lists its watched slot alone', () => {
  const slot = Date.parse('2026-12-06T08:00:00Z');
  const row = { schedule: null, stayStart: slot - DAY, releaseDue: slot + 5 * DAY, nextCheckDue: slot };
  expect(roundSlots(row, slot - 1, slot + DAY, slot - 1)).toEqual([{ slotAt: slot, watched: true }]);
  expect(roundSlots(row, slot + 1, slot + DAY, slot)).toEqual([]);
  expect(roundSlots({ ...row, nextCheckDue: undefined }, 0, slot + DAY, slot)).toEqual([]);
});

test('a case owes no slot after its release due date unless it is held past it', () => {
  const w = new World(shortPolicy({ stayDays: 2, checkTimes: ['08:00', '16:00'] }));
  for (let i = 0; i < 20 && w.state.phase !== 'OBSERVATION'; i++) w.settle();
  const row = rowOf(w);
  const releaseDue = row.releaseDue!;
  const listed = roundSlots(row, w.now, releaseDue + 3 * DAY, w.now);
  expect(listed.length).toBeGreaterThan(0);
  expect(listed.every((x) => x.slotAt < releaseDue || x.watched)).toBe(true);
  // Held past the due date: the slots go on.
  const held = roundSlots(row, releaseDue, releaseDue + 3 * DAY, releaseDue + DAY / 2);
  expect(held.some((x) => x.slotAt > releaseDue)).toBe(true);
  // Each next slot as the case plans it, a policy day past the one it leaves: two a day for three days.
  expect(held.length).toBe(6);
  expect(held.every((x, i) => i === 0 || x.slotAt - held[i - 1]!.slotAt < DAY)).toBe(true);
});
