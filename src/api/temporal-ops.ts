import {
  type Client,
  type Connection,
  ServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  isGrpcServiceError,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { ApplicationFailure, type SignalDefinition, type UpdateDefinition } from '@temporalio/common';

import { CasePhaseKey, HotelIdKey } from '../temporal/search-attributes';
import type { CaseView } from '../domain/case/view';
import { legacyView } from './legacy-view';
import { stateQuery, viewQuery, type CaseInput, type CaseState } from '../workflows/messages';
import type { ApiMetrics } from './metrics';
import { HttpProblem } from './problem';
import { workflowIdFor } from './ids';

/** What the transfer route keeps in the workflow memo: no PII, enough to judge a retry. */
export interface CaseMemo {
  bodyHash: string;
  district: string;
  street: string;
}

export interface CaseOps {
  /** Starts the case or finds the existing one; returns its memo and status. */
  start(
    caseNo: string,
    input: CaseInput,
    memo: CaseMemo,
    taskQueue: string,
  ): Promise<{ memo?: CaseMemo; status: string }>;
  signal<T>(caseNo: string, def: SignalDefinition<[T]>, input: T): Promise<void>;
  update<R, T>(caseNo: string, def: UpdateDefinition<R, [T]>, input: T): Promise<R>;
  /** The live view, or undefined when no worker answers in time. */
  query(caseNo: string, timeoutMs: number): Promise<CaseView | undefined>;
  /** Memo and search attributes, or null when there is no such workflow. */
  describe(caseNo: string): Promise<{ memo?: CaseMemo; hotelId?: string; status: string } | null>;
}

const GRPC_NOT_FOUND = 5;
const GRPC_DEADLINE = 4;
const GRPC_UNAVAILABLE = 14;

function grpcCode(err: unknown): number | undefined {
  if (isGrpcServiceError(err)) return err.code;
  if (err instanceof ServiceError && isGrpcServiceError(err.cause)) return err.cause.code;
  return undefined;
}

/**
 * Temporal's failures as HTTP answers: a missing workflow is 404, a closed one 409, an update
 * the workflow rejected 409/422 with its reason, an unreachable cluster or a worker that
 * does not answer 503/504. Anything else stays an error (500) and is logged.
 */
export function temporalProblem(err: unknown, caseNo: string): HttpProblem | undefined {
  if (err instanceof HttpProblem) return err;
  if (err instanceof WorkflowNotFoundError || grpcCode(err) === GRPC_NOT_FOUND) {
    const msg = err instanceof Error ? err.message : '';
    if (/complete|closed|finished/i.test(msg)) {
      return new HttpProblem(409, `Case ${caseNo} is closed and takes no more messages`, { slug: 'case-closed' });
    }
    return new HttpProblem(404, `No case ${caseNo}`);
  }
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause;
    const reason = cause?.message || err.message;
    const code = cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
    const status = code === 'NotFound' ? 404 : code && /invalid|validation/i.test(code) ? 422 : 409;
    return new HttpProblem(status, reason, { slug: 'update-rejected', ...(code ? { code } : {}) });
  }
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || grpcCode(err) === GRPC_DEADLINE) {
    return new HttpProblem(
      504,
      'No worker answered in time: the outcome is unknown. Retry with the same Idempotency-Key.',
      {},
      { 'Retry-After': '5' },
    );
  }
  if (
    grpcCode(err) === GRPC_UNAVAILABLE ||
    (err instanceof Error && /ECONNREFUSED|UNAVAILABLE|connect/i.test(err.message))
  ) {
    return new HttpProblem(503, 'Temporal is unreachable', { slug: 'temporal-unavailable' }, { 'Retry-After': '5' });
  }
  return undefined;
}

export function createCaseOps(client: Client, connection: Connection, metrics: ApiMetrics, timeoutMs: number): CaseOps {
  const handle = (caseNo: string) => client.workflow.getHandle(workflowIdFor(caseNo));
  // Every call has a deadline: an unreachable cluster must answer the caller, not hang it.
  const bounded = <T>(fn: () => Promise<T>): Promise<T> => connection.withDeadline(Date.now() + timeoutMs, fn);

  async function describe(caseNo: string) {
    let d: WorkflowExecutionDescription;
    try {
      d = await bounded(() => handle(caseNo).describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || grpcCode(err) === GRPC_NOT_FOUND) return null;
      throw err;
    }
    return {
      memo: d.memo as CaseMemo | undefined,
      hotelId: d.typedSearchAttributes.get(HotelIdKey),
      status: d.status.name,
    };
  }

  return {
    async start(caseNo, input, memo, taskQueue) {
      try {
        await bounded(() =>
          // New cases run the v2 workflow; v1 cases already running drain on the same worker.
          client.workflow.start('caseWorkflowV2', {
            workflowId: workflowIdFor(caseNo),
            taskQueue,
            args: [input],
            // A second start for the id fails (running or closed) and is judged by the memo
            // below; a new case is ours as sent, so it needs no read-back (one RPC saved).
            workflowIdConflictPolicy: 'FAIL',
            workflowIdReusePolicy: 'REJECT_DUPLICATE',
            typedSearchAttributes: [{ key: CasePhaseKey, value: 'REQUESTED' }],
            memo: { ...memo },
          }),
        );
        return { memo, status: 'RUNNING' };
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) {
          metrics.workflowStarts.inc({ outcome: 'error' });
          throw err;
        }
      }
      // The memo of whichever run holds the id tells a retry from a different request.
      const d = await describe(caseNo);
      if (!d) throw new HttpProblem(503, 'The case was started but cannot be read back yet; retry');
      return { memo: d.memo, status: d.status };
    },

    async signal(caseNo, def, input) {
      try {
        await bounded(() => handle(caseNo).signal(def, input));
        metrics.signals.inc({ signal: def.name, outcome: 'ok' });
      } catch (err) {
        metrics.signals.inc({ signal: def.name, outcome: 'error' });
        throw err;
      }
    },

    async update(caseNo, def, input) {
      try {
        const r = await bounded(() => handle(caseNo).executeUpdate(def, { args: [input] }));
        metrics.updates.inc({ update: def.name, outcome: 'ok' });
        return r;
      } catch (err) {
        metrics.updates.inc({
          update: def.name,
          outcome: err instanceof WorkflowUpdateFailedError ? 'rejected' : 'error',
        });
        throw err;
      }
    },

    async query(caseNo, timeoutMs) {
      try {
        const ask = <T>(q: typeof viewQuery | typeof stateQuery) =>
          withTimeout(
            connection.withDeadline(Date.now() + timeoutMs, () => handle(caseNo).query(q as never) as Promise<T>),
            timeoutMs + 250,
          );
        let view: CaseView;
        try {
          view = await ask<CaseView>(viewQuery);
        } catch (err) {
          // A v1 case knows only the `state` query: the same view, built from its state.
          if (!(err instanceof Error) || !/query.*(not|unknown)|not.*registered|no.*handler/i.test(err.message))
            throw err;
          view = legacyView(await ask<CaseState>(stateQuery));
        }
        metrics.queries.inc({ outcome: 'answered' });
        return view;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw err;
        metrics.queries.inc({ outcome: 'fallback' });
        return undefined;
      }
    },

    describe,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
