import {
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';

import type { CaseActivities } from '../activities/types';
import type { Policy } from '../domain/policy';
import type { Actor } from '../domain/types';

export interface DirectiveInput {
  directiveId: string;
  /** When it was issued: cases apply directives in this order. */
  issuedAt: string;
  district: string;
  policy: Policy;
  reason: string;
  by: Actor;
  /** The cases chosen when the directive was issued (case numbers only, no PII). */
  caseNos: string[];
  /** At most this many cases a second (the fan-out's bound on the cluster). */
  ratePerSecond: number;
  batchSize: number;
  /** Carried across continue-as-new. */
  carried?: { next: number; applied: number; skipped: number; failed: number; paused: boolean };
}

export interface DirectiveProgress {
  total: number;
  done: number;
  applied: number;
  skipped: number;
  failed: number;
  paused: boolean;
  cancelled: boolean;
}

export const pauseDirectiveSignal = defineSignal('pauseDirective');
export const resumeDirectiveSignal = defineSignal('resumeDirective');
export const cancelDirectiveSignal = defineSignal('cancelDirective');
export const directiveProgressQuery = defineQuery<DirectiveProgress>('directiveProgress');

const acts = proxyActivities<Pick<CaseActivities, 'applyDirectiveBatch' | 'finishDirective'>>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

/**
 * A directive's fan-out: the cases in batches, at a bounded rate, each case told by an update
 * keyed by the directive (so a batch retried after a worker was killed changes nothing twice).
 * Paused, resumed and cancelled by signals; progress by query and in directive_cases.
 */
export async function directiveWorkflow(input: DirectiveInput): Promise<DirectiveProgress> {
  const c = input.carried ?? { next: 0, applied: 0, skipped: 0, failed: 0, paused: false };
  let paused = c.paused;
  let cancelled = false;
  let next = c.next;
  const counts = { applied: c.applied, skipped: c.skipped, failed: c.failed };
  const progress = (): DirectiveProgress => ({
    total: input.caseNos.length,
    done: next,
    ...counts,
    paused,
    cancelled,
  });
  setHandler(pauseDirectiveSignal, () => {
    paused = true;
  });
  setHandler(resumeDirectiveSignal, () => {
    paused = false;
  });
  setHandler(cancelDirectiveSignal, () => {
    cancelled = true;
  });
  setHandler(directiveProgressQuery, progress);

  const batchSize = Math.max(1, input.batchSize);
  const minBatchMs = Math.ceil((batchSize * 1000) / Math.max(0.1, input.ratePerSecond));
  while (next < input.caseNos.length) {
    await condition(() => !paused || cancelled);
    if (cancelled) break;
    const batch = input.caseNos.slice(next, next + batchSize);
    const started = Date.now();
    const r = await acts.applyDirectiveBatch({
      directiveId: input.directiveId,
      issuedAt: input.issuedAt,
      policy: input.policy,
      reason: input.reason,
      by: input.by,
      caseNos: batch,
    });
    counts.applied += r.applied;
    counts.skipped += r.skipped;
    counts.failed += r.failed;
    next += batch.length;
    const rest = minBatchMs - (Date.now() - started);
    if (rest > 0 && next < input.caseNos.length) await sleep(rest);
    // A cancel that came during the batch stops here, before any continue-as-new.
    if (cancelled) break;
    if (workflowInfo().continueAsNewSuggested && next < input.caseNos.length) {
      await continueAsNew<typeof directiveWorkflow>({ ...input, carried: { next, ...counts, paused } });
    }
  }
  await acts.finishDirective({ directiveId: input.directiveId, status: cancelled ? 'cancelled' : 'completed' });
  return progress();
}
