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

import { caseStartSearchAttributes, HotelIdKey } from '../temporal/search-attributes';
import type { CaseView } from '../domain/case/view';
import { legacyView } from './legacy-view';
import { stateQuery, viewQuery, type CaseInput, type CaseState, type DecisionCoreType } from '../workflows/messages';
import type { ApiMetrics } from './metrics';
import { HttpProblem } from './problem';
import { workflowIdFor } from './ids';
import { within, type DependencyMonitor } from './dependencies';

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
  /**
   * Sends an update and waits at most `waitMs` (default API_UPDATE_WAIT_MS) for its worker's answer.
   * `updateId` lets a retry with the same idempotency key join the first attempt in Temporal.
   */
  update<R, T>(
    caseNo: string,
    def: UpdateDefinition<R, [T]>,
    input: T,
    opts?: { waitMs?: number; updateId?: string },
  ): Promise<R>;
  /** The case's workflow type if this process already knows it (from its start or a describe), without asking. */
  knownType(caseNo: string): string | undefined;
  /** The case's workflow type (cached: a workflow id keeps its type), or null when there is none. */
  workflowType(caseNo: string): Promise<string | null>;
  /** The live view, or undefined when no worker answers in time. */
  query(caseNo: string, timeoutMs: number): Promise<CaseView | undefined>;
  /** Memo and search attributes, or null when there is no such workflow. */
  describe(caseNo: string): Promise<{ memo?: CaseMemo; hotelId?: string; status: string; type: string } | null>;
}

const GRPC_NOT_FOUND = 5;
const GRPC_DEADLINE = 4;
const GRPC_UNAVAILABLE = 14;

function grpcCode(err: unknown): number | undefined {
  if (isGrpcServiceError(err)) return err.code;
  if (err instanceof ServiceError && isGrpcServiceError(err.cause)) return err.cause.code;
  return undefined;
}

const GRPC_RESOURCE_EXHAUSTED = 8;

/** What the call was: it decides what an unexplained failure may honestly be called. */
export type TemporalCall = 'read' | 'write';

const UNKNOWN_OUTCOME =
  'No answer in time: the outcome is unknown (the change may still be applied). Retry with the same Idempotency-Key: it is applied at most once.';

/**
 * Temporal's failures as HTTP answers: a missing workflow is 404, a closed one 409, an update
 * the workflow rejected 404/409/422 with its reason, an unreachable cluster 503 (nothing was
 * sent), and anything that may or may not have reached the case 504 "outcome unknown", never
 * "not changed". Only a failure that is not Temporal's at all is left to the caller (undefined).
 */
export function temporalProblem(err: unknown, caseNo: string, call: TemporalCall = 'read'): HttpProblem | undefined {
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
    const code = cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
    if (!code) {
      // Not the case's own refusal (an aborted or failed update): whether it landed is not known.
      return new HttpProblem(504, UNKNOWN_OUTCOME, { slug: 'outcome-unknown' }, { 'Retry-After': '5' });
    }
    if (code === 'Forbidden') {
      // The case judged the caller's scope itself (recordHealthCheckInScope): as the API's own check says it.
      return new HttpProblem(403, `Case ${caseNo} is outside this key's jurisdiction`, { slug: 'jurisdiction' });
    }
    const reason = cause?.message || err.message;
    const status = code === 'NotFound' ? 404 : /invalid|validation/i.test(code) ? 422 : 409;
    return new HttpProblem(status, reason, { slug: 'update-rejected', code });
  }
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || grpcCode(err) === GRPC_DEADLINE) {
    return call === 'write'
      ? new HttpProblem(504, UNKNOWN_OUTCOME, { slug: 'outcome-unknown' }, { 'Retry-After': '5' })
      : new HttpProblem(
          504,
          'Temporal did not answer in time; retry',
          { slug: 'temporal-timeout' },
          { 'Retry-After': '5' },
        );
  }
  if (grpcCode(err) === GRPC_RESOURCE_EXHAUSTED) {
    return new HttpProblem(
      503,
      'Temporal refused the call (too busy, or too many commands waiting for this case): it was not applied; retry later',
      { slug: 'temporal-busy', dependency: 'temporal' },
      { 'Retry-After': '5' },
    );
  }
  const unreachable =
    grpcCode(err) === GRPC_UNAVAILABLE ||
    (err instanceof Error && /ECONNREFUSED|UNAVAILABLE|connect/i.test(err.message));
  if (call === 'write' && (unreachable || err instanceof ServiceError || isGrpcServiceError(err))) {
    // It may have reached the cluster before the connection failed: only a call the breaker
    // stopped before sending (a 503 from `require`) may say "not sent".
    return new HttpProblem(504, UNKNOWN_OUTCOME, { slug: 'outcome-unknown' }, { 'Retry-After': '5' });
  }
  if (unreachable || err instanceof ServiceError || isGrpcServiceError(err)) {
    // A read: whatever Temporal failed with (unavailable, cancelled, not permitted, internal),
    // the caller learns that Temporal could not answer, never a 500.
    return new HttpProblem(
      503,
      'Temporal could not answer; retry later',
      { slug: 'temporal-unavailable', dependency: 'temporal' },
      { 'Retry-After': '5' },
    );
  }
  return undefined;
}

/**
 * Whether an update was rejected for want of a handler: the case's type, or its worker's build,
 * does not know the update's name (the SDK rejects it so, a failure of the default type `Error`). Nothing was
 * recorded: the caller may send the same report another way.
 */
export function isUnknownUpdate(err: unknown): boolean {
  if (!(err instanceof WorkflowUpdateFailedError)) return false;
  const cause = err.cause;
  return (
    cause instanceof ApplicationFailure &&
    (!cause.type || cause.type === 'Error') &&
    /^No registered handler for update/.test(cause.message)
  );
}

/** Whether a failure says the cluster itself is away (as opposed to this one call). */
export function looksUnreachable(err: unknown): boolean {
  return (
    grpcCode(err) === GRPC_UNAVAILABLE ||
    (err instanceof Error && /ECONNREFUSED|UNAVAILABLE|Deadline exceeded|connect/i.test(err.message))
  );
}

export interface CaseOpsOptions {
  /** start, signal, describe: the longest one call may take. */
  timeoutMs: number;
  /** Updates: how long to wait for the worker's answer unless the call says otherwise. */
  updateWaitMs: number;
  /** Known-down dependencies answer at once; calls that find Temporal away say so. */
  monitor: DependencyMonitor;
  /** The workflow type new cases start (CASE_WORKFLOW_TYPE). */
  caseWorkflowType: DecisionCoreType;
}

export function createCaseOps(
  client: Client,
  connection: Connection,
  metrics: ApiMetrics,
  opts: CaseOpsOptions,
): CaseOps {
  const { monitor } = opts;
  const handle = (caseNo: string) => client.workflow.getHandle(workflowIdFor(caseNo));
  // Every call has a deadline: an unreachable cluster must answer the caller, not hang it. A
  // cluster already known to be down is not called at all.
  const bounded = async <T>(fn: () => Promise<T>, ms = opts.timeoutMs): Promise<T> => {
    monitor.require('temporal');
    try {
      return await connection.withDeadline(Date.now() + ms, fn);
    } catch (err) {
      if (looksUnreachable(err) && !(err instanceof WorkflowUpdateRPCTimeoutOrCancelledError))
        monitor.suspect('temporal', err instanceof Error ? err.message : String(err));
      throw err;
    }
  };
  const types = new Map<string, string>();

  async function describe(caseNo: string) {
    let d: WorkflowExecutionDescription;
    try {
      d = await bounded(() => handle(caseNo).describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || grpcCode(err) === GRPC_NOT_FOUND) return null;
      throw err;
    }
    remember(caseNo, d.type);
    return {
      memo: d.memo as CaseMemo | undefined,
      hotelId: d.typedSearchAttributes.get(HotelIdKey),
      status: d.status.name,
      type: d.type,
    };
  }
  function remember(caseNo: string, type: string) {
    types.set(caseNo, type);
    if (types.size > 50_000) types.delete(types.keys().next().value!);
  }

  return {
    async start(caseNo, input, memo, taskQueue) {
      try {
        await bounded(() =>
          // New cases run CASE_WORKFLOW_TYPE (v3); v2 and v1 cases already running drain on the
          // same worker.
          client.workflow.start(opts.caseWorkflowType, {
            workflowId: workflowIdFor(caseNo),
            taskQueue,
            args: [input],
            // A second start for the id fails (running or closed) and is judged by the memo
            // below; a new case is ours as sent, so it needs no read-back (one RPC saved).
            workflowIdConflictPolicy: 'FAIL',
            workflowIdReusePolicy: 'REJECT_DUPLICATE',
            // What the case's first workflow task would set (v3 does not set it again).
            typedSearchAttributes: caseStartSearchAttributes(input),
            memo: { ...memo },
          }),
        );
        remember(caseNo, opts.caseWorkflowType);
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

    async update(caseNo, def, input, o) {
      try {
        const r = await bounded(
          () =>
            handle(caseNo).executeUpdate(def, {
              args: [input],
              ...(o?.updateId ? { updateId: o.updateId } : {}),
            }),
          o?.waitMs ?? opts.updateWaitMs,
        );
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

    knownType: (caseNo) => types.get(caseNo),

    async workflowType(caseNo) {
      const known = types.get(caseNo);
      if (known) return known;
      const d = await describe(caseNo);
      return d?.type ?? null;
    },

    async query(caseNo, timeoutMs) {
      try {
        monitor.require('temporal');
        const ask = <T>(q: typeof viewQuery | typeof stateQuery) =>
          within(timeoutMs + 250, 'query', () =>
            connection.withDeadline(Date.now() + timeoutMs, () => handle(caseNo).query(q as never) as Promise<T>),
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
