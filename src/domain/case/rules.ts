/**
 * Pure rules of the v2 case: what counts towards release, and which samples a stay plans.
 */
import type { CasePolicy } from '../policy';
import { clockAt, dayStart } from '../schedule';
import type { EscalationKind, Role } from '../types';
import type { CaseCheck, CaseEscalation, CaseSample, CloseReason, InspectionStatus } from './model';

/** Why each kind of escalation may close on its own (besides `resolved` by a person with a note). */
/** Why closing cancels the samples still planned (a release, hospital transfer or cancel). */
export const CLOSING_CANCEL_REASON = 'case ended';

export const CLOSE_REASONS: Record<EscalationKind, readonly CloseReason[]> = {
  no_room: ['room_assigned', 'case_ended'],
  late_arrival: ['arrived', 'case_ended'],
  late_departure: ['departed'],
  missed_check: ['check_received', 'case_ended'],
  door_alarm: ['case_ended'],
  failed_inspection: ['inspection_passed', 'new_address', 'case_ended'],
  release_blocked: ['released', 'case_ended'],
  integration_failure: ['retry_succeeded', 'not_needed'],
  fever: [],
  symptom: [],
  positive_result: ['transferred_to_hospital'],
  antigen_positive: ['transferred_to_hospital'],
  result_corrected: [],
  late_result: [],
  unknown_sample: [],
  unexpected_result: [],
  // Home monitoring: a later check-in, or the home phase over.
  missed_home_check: ['check_received', 'case_ended'],
  // The person is back in a transfer (the return case was started).
  home_fever: ['returned_to_quarantine'],
};

/** Who may report a rapid antigen result at the door: it is a medical result, not a driver's. */
export const ANTIGEN_REPORTERS: readonly Role[] = ['hotel', 'medical', 'admin'];

export type UnmetCriterion =
  | 'end_date_not_reached'
  | 'result_pending'
  | 'sample_not_taken'
  | 'positive_result'
  | 'not_enough_negatives'
  | 'negatives_too_close'
  | 'open_blocking_escalation'
  | 'address_not_approved'
  | 'no_recent_afebrile_check';

export interface ReleaseFacts {
  now: number;
  releaseDue: number;
  samples: readonly CaseSample[];
  escalations: readonly CaseEscalation[];
  inspection: InspectionStatus;
  /** The case's recorded health checks (the observation rule). */
  checks: readonly Pick<CaseCheck, 'takenAt' | 'fever' | 'temperatureC'>[];
}

/**
 * The observation rule (policy.release.afebrileCheckWithinMs): the latest health check with a
 * temperature is below the fever threshold and was taken within that long before `now` (or
 * after it, within the clock skew a report may have). A check without a temperature does not
 * count; a later fever undoes an earlier normal check. Someone whose every check was missed is
 * not released on the date alone.
 */
export function hasRecentAfebrileCheck(
  policy: CasePolicy,
  checks: readonly Pick<CaseCheck, 'takenAt' | 'fever' | 'temperatureC'>[],
  now: number,
): boolean {
  const within = policy.release.afebrileCheckWithinMs ?? 0;
  if (within <= 0) return true;
  return afebrileCheckExpiry(policy, checks) >= now;
}

/** Until when the observation rule holds (-Infinity: it does not). */
export function afebrileCheckExpiry(
  policy: CasePolicy,
  checks: readonly Pick<CaseCheck, 'takenAt' | 'fever' | 'temperatureC'>[],
): number {
  const within = policy.release.afebrileCheckWithinMs ?? 0;
  let latest: Pick<CaseCheck, 'takenAt' | 'fever'> | undefined;
  for (const c of checks)
    if (c.temperatureC !== undefined && (!latest || Date.parse(c.takenAt) >= Date.parse(latest.takenAt))) latest = c;
  if (!latest || latest.fever) return -Infinity;
  return Date.parse(latest.takenAt) + within;
}

/** A sample with a result counts, timed by when it was taken (its order), never by its plan. */
export const hasResult = (s: CaseSample): boolean => s.status === 'resulted' || s.status === 'corrected';
export const takenAt = (s: CaseSample): number => Date.parse(s.order!.takenAt);

/**
 * The release criteria (DOMAIN.md 8–9): end date reached; no ordered sample waiting for its
 * result and no planned one not yet taken; no positive; the latest resulted sample of the
 * policy's type negative, with N negatives chained back at least minApart apart; no open
 * escalation of a blocking severity; the current address inspected and passed. Returns every
 * unmet criterion, so a supervisor sees all of what holds a release.
 */
export function unmetCriteria(policy: CasePolicy, f: ReleaseFacts): UnmetCriterion[] {
  const unmet: UnmetCriterion[] = [];
  if (f.now < f.releaseDue) unmet.push('end_date_not_reached');
  if (f.samples.some((s) => s.status === 'ordered')) unmet.push('result_pending');
  if (f.samples.some((s) => s.status === 'planned')) unmet.push('sample_not_taken');
  const resulted = f.samples.filter(hasResult);
  if (resulted.some((s) => s.result === 'positive')) unmet.push('positive_result');
  const shortfall = negativesShortfall(policy, resulted);
  if (shortfall) unmet.push(shortfall);
  // Acknowledged is not resolved: a red escalation holds release until it is closed.
  if (f.escalations.some((e) => e.status !== 'closed' && policy.release.blockingSeverities.includes(e.severity)))
    unmet.push('open_blocking_escalation');
  if (f.inspection !== 'passed') unmet.push('address_not_approved');
  if (!hasRecentAfebrileCheck(policy, f.checks, f.now)) unmet.push('no_recent_afebrile_check');
  return unmet;
}

/**
 * The negatives rule over resulted samples only: the latest of the policy's type must be
 * negative, and going back, each earlier negative at least minApart before the one after it
 * joins the chain until it holds N. An extra sample a few hours after a scheduled one does
 * not spoil a pair that was already far enough apart; any positive breaks the chain.
 */
export function negativesShortfall(
  policy: CasePolicy,
  resulted: readonly CaseSample[],
): 'not_enough_negatives' | 'negatives_too_close' | undefined {
  const n = policy.release.requiredNegatives;
  if (n <= 0) return undefined;
  const typed = resulted.filter((s) => s.type === policy.sampling.type).sort((a, b) => takenAt(a) - takenAt(b));
  const latest = typed[typed.length - 1];
  if (!latest || latest.result !== 'negative') return 'not_enough_negatives';
  const chain = [latest];
  for (let i = typed.length - 2; i >= 0 && chain.length < n; i--) {
    const candidate = typed[i]!;
    if (candidate.result !== 'negative') break;
    if (takenAt(chain[chain.length - 1]!) - takenAt(candidate) >= policy.release.minApartMs) chain.push(candidate);
  }
  if (chain.length >= n) return undefined;
  const lastPositive = typed.map((s) => s.result).lastIndexOf('positive');
  return typed.length - (lastPositive + 1) >= n ? 'negatives_too_close' : 'not_enough_negatives';
}

export interface PlannedSlot {
  /** "start:4" or "end:13": which day of the policy's plan it fills. */
  slot: string;
  anchor: 'start' | 'end';
  day: number;
  dueAt: number;
}

/**
 * The policy's sampling days for a stay. The last `requiredNegatives` days are counted from the
 * end of the stay (they are the release pair: day 13 of 14 is "the day before release"), so an
 * extension moves them with the release date; the others are counted from arrival. A day
 * already past at arrival is taken at arrival; a day at or after release is not planned.
 */
export function samplingSlots(
  policy: CasePolicy,
  stayStart: number,
  releaseDue: number,
  adjustDays: number,
): PlannedSlot[] {
  const days = [...new Set(policy.sampling.days)].sort((a, b) => a - b);
  const endAnchored = new Set(days.slice(Math.max(0, days.length - policy.release.requiredNegatives)));
  const out: PlannedSlot[] = [];
  for (const d of days) {
    const anchor = endAnchored.has(d) ? 'end' : 'start';
    const day = anchor === 'end' ? d + adjustDays : d;
    if (day < 1) continue;
    const dueAt = Math.max(stayStart, clockAt(policy, dayStart(policy, stayStart, day), policy.sampling.time));
    if (dueAt >= releaseDue) continue;
    out.push({ slot: `${anchor}:${d}`, anchor, day, dueAt });
  }
  return out;
}
