import { Context } from '@temporalio/activity';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq, inArray, sql } from 'drizzle-orm';

import type { Db } from '../db';
import { directiveCases, directives } from '../db/schema';
import type { Logger } from '../log';
import { applyPolicyUpdate } from '../workflows/messages';
import { caseNoFor, workflowIdFor } from '../api/ids';
import type { Policy } from '../domain/policy';
import { SYSTEM_ACTOR, type TransferRequest } from '../domain/types';
import { caseStartSearchAttributes } from '../temporal/search-attributes';
import type { DecisionCoreType } from '../workflows/case-types';
import type { DirectiveBatchInput, DirectiveBatchResult, DirectiveOutcome } from './types';

/** How long one case may take to answer before it is counted as failed (unanswered). */
const UPDATE_DEADLINE_MS = 30_000;
const isDeadline = (err: unknown): boolean =>
  err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
  (err instanceof Error && /deadline|DEADLINE_EXCEEDED|timed? ?out/i.test(err.message + String(err.cause ?? '')));

interface CaseOutcome {
  caseNo: string;
  outcome: DirectiveOutcome;
  reason?: string;
  before?: unknown;
  after?: unknown;
}

/**
 * What one case answered to a directive. The update is keyed by the directive (the case keeps
 * the answer under the key), so a batch retried after a crash gets the same answer from a case
 * that already applied it, and nothing twice.
 */
async function applyToCase(client: Client, input: DirectiveBatchInput, caseNo: string): Promise<CaseOutcome> {
  const handle = client.workflow.getHandle(workflowIdFor(caseNo));
  try {
    // No idempotency key: the case answers a directive by its id (a client's key cannot collide).
    const r = await client.connection.withDeadline(Date.now() + UPDATE_DEADLINE_MS, () =>
      handle.executeUpdate(applyPolicyUpdate, {
        args: [
          {
            directiveId: input.directiveId,
            issuedAt: input.issuedAt,
            policy: input.policy,
            reason: input.reason,
            by: input.by,
          },
        ],
        updateId: `directive:${input.directiveId}`,
      }),
    );
    const applied = r.applied === true;
    const skipped = typeof r.skipped === 'string' ? r.skipped : undefined;
    return {
      caseNo,
      // A case that had it already (a retry after the row was lost) counts as applied.
      outcome: applied || skipped === 'already_applied' ? 'applied' : 'skipped',
      ...(skipped && skipped !== 'already_applied' ? { reason: skipped } : {}),
      before: r.before ?? null,
      after: r.after ?? null,
    };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { caseNo, outcome: 'skipped', reason: 'no_case' };
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause;
      const message = cause instanceof Error ? cause.message : String(cause);
      // A case on older code (no handler), or one that refused the policy (another clock).
      if (/handler|unknown update/i.test(message)) return { caseNo, outcome: 'skipped', reason: 'not_supported' };
      return { caseNo, outcome: 'skipped', reason: `refused: ${message}`.slice(0, 200) };
    }
    // The workflow ended between the selection and now: nothing to apply.
    if (err instanceof Error && /already completed|workflow execution.*(closed|completed)/i.test(err.message))
      return { caseNo, outcome: 'skipped', reason: 'ended' };
    // A case that does not answer (its worker stuck, its task failing) must not hold the rest:
    // it is counted as failed, and a later directive can reach it.
    if (isDeadline(err)) return { caseNo, outcome: 'failed', reason: 'unanswered' };
    throw err;
  }
}

export function createDirectiveActivities(deps: { db: Db; log: Logger; client?: () => Client }) {
  const { db } = deps;
  const log = deps.log.child({ component: 'directives' });
  return {
    async applyDirectiveBatch(input: DirectiveBatchInput): Promise<DirectiveBatchResult> {
      const ctx = Context.current();
      const client = deps.client?.() ?? ctx.client;
      // Cases already done in an earlier attempt of this batch (heartbeat) are not asked again.
      const doneBefore = new Set<string>((ctx.info.heartbeatDetails as string[] | undefined) ?? []);
      const todo = input.caseNos.filter((c) => !doneBefore.has(c));
      const done = [...doneBefore];
      const concurrency = Math.max(1, input.concurrency ?? 4);
      let next = 0;
      const worker = async () => {
        while (next < todo.length) {
          const caseNo = todo[next++]!;
          ctx.heartbeat(done);
          const o = await applyToCase(client, input, caseNo);
          await db
            .insert(directiveCases)
            .values({
              directiveId: input.directiveId,
              caseNo,
              outcome: o.outcome,
              reason: o.reason ?? null,
              before: o.before ?? null,
              after: o.after ?? null,
            })
            .onConflictDoUpdate({
              target: [directiveCases.directiveId, directiveCases.caseNo],
              set: { outcome: o.outcome, reason: o.reason ?? null, after: o.after ?? null },
              // A retry never turns an applied case back into another outcome.
              setWhere: sql`${directiveCases.outcome} <> 'applied'`,
            });
          done.push(caseNo);
          ctx.heartbeat(done);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
      const rows = await db
        .select({ outcome: directiveCases.outcome, n: sql<number>`count(*)::int` })
        .from(directiveCases)
        .where(and(eq(directiveCases.directiveId, input.directiveId), inArray(directiveCases.caseNo, input.caseNos)))
        .groupBy(directiveCases.outcome);
      const count = (k: string) => rows.find((r) => r.outcome === k)?.n ?? 0;
      if (rows.reduce((a, r) => a + r.n, 0) !== input.caseNos.length)
        throw ApplicationFailure.retryable('directive outcomes not all recorded', 'DirectiveIncomplete');
      log.info('directive batch', { directiveId: input.directiveId, cases: input.caseNos.length });
      return { applied: count('applied'), skipped: count('skipped'), failed: count('failed') };
    },

    async finishDirective(input: { directiveId: string; status: 'completed' | 'cancelled' }): Promise<void> {
      await db
        .update(directives)
        .set({ status: input.status, finishedAt: new Date() })
        .where(eq(directives.id, input.directiveId));
    },
  };
}

/**
 * Home monitoring: a fever at home starts a new case for the person, by vehicle from home, under
 * the case's own rules. Its requestId is derived from the original's, so a retried activity finds
 * the case it started instead of starting another.
 */
export function createReturnTransferActivity(caseWorkflowType: DecisionCoreType) {
  return {
    async startReturnTransfer(input: {
      workflowId: string;
      caseNo: string;
      request: TransferRequest;
      homeAddress: string;
      policy: Policy;
    }): Promise<{ caseNo: string }> {
      const ctx = Context.current();
      // '#' is not allowed in an API requestId: no transfer filed through the API can take this case number.
      const requestId = `${input.request.requestId}#return`;
      const caseNo = caseNoFor(requestId);
      const request: TransferRequest = {
        ...input.request,
        requestId,
        caseNo,
        requestedAt: new Date().toISOString(),
        requestedBy: SYSTEM_ACTOR,
        transport: 'vehicle',
        homeAddress: input.homeAddress,
        pickupAddress: input.homeAddress,
        note: `Fever during home monitoring after case ${input.caseNo}`,
      };
      try {
        // The type new cases start (CASE_WORKFLOW_TYPE, as the API's): v4, or v3 (v2) while workers
        // of a build without v4 (v3) still poll. An older case's return is a v4 case once they are gone.
        await ctx.client.workflow.start(caseWorkflowType, {
          workflowId: workflowIdFor(caseNo),
          taskQueue: ctx.info.taskQueue,
          args: [{ request, policy: input.policy }],
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          typedSearchAttributes: caseStartSearchAttributes({ request, policy: input.policy }),
          memo: { bodyHash: `return:${input.caseNo}`, district: request.district, street: request.street },
        });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      return { caseNo };
    },
  };
}
