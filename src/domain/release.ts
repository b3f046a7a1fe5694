import type { Policy } from './policy';
import type { Escalation, InspectionStatus, Sample } from './types';

export interface ReleaseInput {
  now: number;
  releaseDue: number;
  samples: Sample[];
  escalations: Escalation[];
  inspection: InspectionStatus;
}

export type UnmetCriterion =
  | 'end_date_not_reached'
  | 'not_enough_negatives'
  | 'negatives_too_close'
  | 'result_pending'
  | 'positive_result'
  | 'open_blocking_escalation'
  | 'address_not_approved';

/**
 * Release criteria (DOMAIN.md steps 8–9, DESIGN.md RELEASE_PENDING): end date reached; the
 * last N samples of the policy's type negative, consecutive ones at least minApart apart;
 * no result pending; no open escalation of a blocking severity; the address approved.
 * Returns every unmet criterion so that a supervisor sees all of what holds a release.
 */
export function unmetReleaseCriteria(policy: Policy, input: ReleaseInput): UnmetCriterion[] {
  const unmet: UnmetCriterion[] = [];
  // Planned samples not yet taken neither count nor block; a result counts even if it beat its order.
  const taken = input.samples.filter((s) => s.orderedAt || s.result !== 'pending');
  if (input.now < input.releaseDue) unmet.push('end_date_not_reached');
  if (taken.some((s) => s.result === 'pending')) unmet.push('result_pending');
  if (taken.some((s) => s.result === 'positive')) unmet.push('positive_result');

  const n = policy.release.requiredNegatives;
  const typed = taken
    .filter((s) => s.type === policy.sampling.type && s.result !== 'pending')
    .sort((a, b) => sampleTime(a) - sampleTime(b));
  const lastN = typed.slice(-n);
  if (n > 0) {
    if (lastN.length < n || lastN.some((s) => s.result !== 'negative')) unmet.push('not_enough_negatives');
    else {
      for (let i = 1; i < lastN.length; i++) {
        if (sampleTime(lastN[i]!) - sampleTime(lastN[i - 1]!) < policy.release.minApartMs) {
          unmet.push('negatives_too_close');
          break;
        }
      }
    }
  }
  if (
    input.escalations.some(
      (e) => e.status !== 'closed' && e.status !== 'acked' && policy.release.blockingSeverities.includes(e.severity),
    )
  )
    unmet.push('open_blocking_escalation');
  if (input.inspection !== 'passed') unmet.push('address_not_approved');
  return unmet;
}

/** When the sample was taken: ordered time, else its due time. */
export function sampleTime(s: Sample): number {
  return Date.parse(s.orderedAt ?? s.dueAt);
}
