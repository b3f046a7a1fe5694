import { policyDayMs, type Policy } from './policy';
import { nextCheckSlot } from './schedule';

/**
 * A nurse's rounds: the health-check slots each person in a hotel still owes.
 *
 * A case watches one slot at a time (`currentSlot`, the read model's `next_check_due`) and moves to
 * the next when a check comes in or the slot is judged missed. Under load the case's worker may run
 * behind its messages, and a list built from `next_check_due` alone would show a nurse the next slot
 * only once the case has taken in the last check: late, exactly when the system is busiest, and a
 * slot shown late is a check taken late and a missed-check escalation for a person who was seen.
 * So the case also writes its check schedule (the clock and check times of the rules it is judged
 * by), and the rounds list the slots from the watched one on, by the same schedule maths the case
 * uses: what the case will watch next does not wait for the case to get there.
 */
export interface CheckSchedule {
  clock: Policy['clock'];
  /** Local clock times (HH:MM) of the checks. */
  checkTimes: string[];
  /** How early a check counts for its slot, and how long after the slot it may still come. */
  windowBeforeMs: number;
  windowAfterMs: number;
}

export function checkScheduleOf(
  policy: Pick<Policy, 'clock' | 'checkTimes' | 'checkWindowBeforeMs' | 'checkWindowAfterMs'>,
): CheckSchedule {
  return {
    clock: policy.clock,
    checkTimes: [...policy.checkTimes],
    windowBeforeMs: policy.checkWindowBeforeMs,
    windowAfterMs: policy.checkWindowAfterMs,
  };
}

/** What the rounds read of a case's read-model row (instants in ms). */
export interface RoundsCase {
  schedule?: CheckSchedule | null;
  stayStart?: number;
  releaseDue?: number;
  /** The slot the case watches now; none: the case owes no check (not in observation, or closing). */
  nextCheckDue?: number;
}

export interface RoundSlot {
  slotAt: number;
  /** The check's window; absent for a case that wrote no schedule (started before it was kept). */
  opensAt?: number;
  closesAt?: number;
  /** The slot the case watches now; the later ones follow it in order. */
  watched: boolean;
}

/** At most this many slots of one case in one list. */
export const MAX_SLOTS_PER_CASE = 8;
/** At most this many slots looked at per case (the ones before `from` are passed over). */
const MAX_STEPS = 64;

/**
 * The slots a case owes whose window is still open at `from` (it closes at or after it) and that fall
 * at or before `to`, in order: the watched slot, then each slot the case moves to after it. Checks
 * go on past the release due date only while the case is held there (it is still in observation
 * after it), as the case itself plans them.
 */
export function roundSlots(c: RoundsCase, from: number, to: number, now: number): RoundSlot[] {
  const watched = c.nextCheckDue;
  if (watched === undefined || Number.isNaN(watched)) return [];
  const { schedule, stayStart, releaseDue } = c;
  if (!schedule || stayStart === undefined) {
    // No schedule written: the watched slot is all that is known.
    return watched >= from && watched <= to ? [{ slotAt: watched, watched: true }] : [];
  }
  // Before the release due date, the slots up to it (the case is released then unless held); once
  // held past it, each next slot as the case plans it: up to a policy day past the slot it leaves
  // (CaseContext.slotsByEventTime).
  const held = releaseDue === undefined || now >= releaseDue;
  const until = (slot: number) =>
    held ? Math.max(releaseDue ?? 0, Math.max(now, slot) + policyDayMs(schedule) + 1) : releaseDue;
  const out: RoundSlot[] = [];
  // Bounded: a row whose case stopped writing long ago (its watched slot far behind) costs no more.
  for (
    let slot: number | undefined = watched, steps = 0;
    slot !== undefined && slot <= to && out.length < MAX_SLOTS_PER_CASE && steps < MAX_STEPS;
    slot = nextCheckSlot(schedule, stayStart, slot + 1, until(slot)), steps++
  ) {
    if (slot + schedule.windowAfterMs < from) continue;
    out.push({
      slotAt: slot,
      opensAt: slot - schedule.windowBeforeMs,
      closesAt: slot + schedule.windowAfterMs,
      watched: slot === watched,
    });
  }
  return out;
}
