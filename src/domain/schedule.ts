import type { Policy } from './policy';
import { policyDayMs } from './policy';

/** What the schedule maths read of a policy: its clock and, for checks, its check times. */
export type ScheduleClock = Pick<Policy, 'clock'>;
export type CheckClock = Pick<Policy, 'clock' | 'checkTimes'>;

/**
 * Schedule maths: when days start, when checks and samples are due, when release is due.
 * Pure and deterministic (Intl is part of the language), so the workflow uses it directly.
 * Day 1 is the day of arrival.
 */

const DAY = 86_400_000;

export function parseClock(hhmm: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) throw new Error(`bad clock time ${hhmm}`);
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h > 23 || min > 59) throw new Error(`bad clock time ${hhmm}`);
  return h * 60 + min;
}

/** The zone's UTC offset at instant t, in ms (positive east of Greenwich). */
export function zoneOffsetMs(timeZone: string, t: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(t));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(t / 1000) * 1000;
}

/** Start of day `day` (1-based) of a stay that began at stayStart. */
export function dayStart(policy: ScheduleClock, stayStart: number, day: number): number {
  if (policy.clock.kind === 'compressed') return stayStart + (day - 1) * policy.clock.dayMs;
  const offset = zoneOffsetMs(policy.clock.timeZone, stayStart);
  const localMidnight = Math.floor((stayStart + offset) / DAY) * DAY - offset;
  return localMidnight + (day - 1) * DAY;
}

/** The instant of clock time hh:mm on the day that starts at `start`. */
export function clockAt(policy: ScheduleClock, start: number, hhmm: string): number {
  const minutes = parseClock(hhmm);
  if (policy.clock.kind === 'compressed') return start + Math.round((minutes / 1440) * policy.clock.dayMs);
  return start + minutes * 60_000;
}

/** Release is due stayDays after arrival, moved by supervisors' extensions (in days). */
export function releaseDueAt(policy: Policy, stayStart: number, adjustDays = 0): number {
  return stayStart + (policy.stayDays + adjustDays) * policyDayMs(policy);
}

/** Which day of the stay instant t falls in (1 = arrival day). */
export function dayOfStay(policy: ScheduleClock, stayStart: number, t: number): number {
  const first = dayStart(policy, stayStart, 1);
  return Math.floor((t - first) / policyDayMs(policy)) + 1;
}

/** The first health-check slot at or after `from`, or undefined when none is before `until`. */
export function nextCheckSlot(policy: CheckClock, stayStart: number, from: number, until: number): number | undefined {
  if (policy.checkTimes.length === 0) return undefined;
  const startDay = Math.max(1, dayOfStay(policy, stayStart, from));
  for (let day = startDay; ; day++) {
    const start = dayStart(policy, stayStart, day);
    if (start >= until) return undefined;
    const slots = policy.checkTimes.map((c) => clockAt(policy, start, c)).sort((a, b) => a - b);
    for (const slot of slots) {
      if (slot >= until) return undefined;
      if (slot >= from) return slot;
    }
  }
}

export interface PlannedSample {
  day: number;
  dueAt: number;
}

/** Scheduled samples within the stay; a day already past at arrival is taken at arrival. */
export function samplingPlan(policy: Policy, stayStart: number, releaseDue: number): PlannedSample[] {
  const plan: PlannedSample[] = [];
  for (const day of [...policy.sampling.days].sort((a, b) => a - b)) {
    const due = Math.max(stayStart, clockAt(policy, dayStart(policy, stayStart, day), policy.sampling.time));
    if (due < releaseDue) plan.push({ day, dueAt: due });
  }
  return plan;
}

/** Age in whole years on a date; birthDate is YYYY-MM-DD. */
export function ageOn(birthDate: string, on: number): number {
  const [y, m, d] = birthDate.split('-').map(Number) as [number, number, number];
  const now = new Date(on);
  let age = now.getUTCFullYear() - y;
  const beforeBirthday = now.getUTCMonth() + 1 < m || (now.getUTCMonth() + 1 === m && now.getUTCDate() < d);
  if (beforeBirthday) age--;
  return age;
}
