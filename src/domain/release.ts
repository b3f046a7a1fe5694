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
  if (n > 0) {
    const typed = taken
      .filter((s) => s.type === policy.sampling.type && s.result !== 'pending')
      .sort((a, b) => sampleTime(a) - sampleTime(b));
    const latest = typed[typed.length - 1];
    if (!latest || latest.result !== 'negative') unmet.push('not_enough_negatives');
    else {
      // The latest negative and, going back, each earlier negative at least minApart before
      // the one after it: an extra sample taken a few hours after a scheduled one does not
      // spoil a pair that was already far enough apart.
      const chain = [latest];
      for (let i = typed.length - 2; i >= 0 && chain.length < n; i--) {
        const candidate = typed[i]!;
        if (candidate.result !== 'negative') break;
        if (sampleTime(chain[chain.length - 1]!) - sampleTime(candidate) >= policy.release.minApartMs)
          chain.push(candidate);
      }
      if (chain.length < n) {
        const lastPositive = typed.map((s) => s.result).lastIndexOf('positive');
        const negatives = typed.slice(lastPositive + 1).length;
        unmet.push(negatives >= n ? 'negatives_too_close' : 'not_enough_negatives');
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
