import crypto from 'node:crypto';

import { WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';

import type { ApiContext } from './context';
import { HttpProblem, problemType, validationProblem } from './problem';
import { workflowIdFor } from './ids';
import { IdempotencyHeader } from './schemas';
import { isUnknownUpdate, temporalProblem } from './temporal-ops';
import { JurisdictionProblem, SCOPE_DB_TIMEOUT_MS } from './scope';
import { makeAnsweredWrite } from './answer-writes';
import { isDecisionCoreType } from '../workflows/case-types';

/**
 * How every command and field report reaches a case, and what its answer may honestly say:
 *
 * - applied (200): the case's worker answered; the body is its answer.
 * - queued (202): the message is in the case's history (durable) and the case acts on it when a
 *   worker runs it; field reports only.
 * - refused (4xx): the case (or the API) said no; nothing changed.
 * - not sent (503): a dependency is known to be down; nothing was sent, nothing changed.
 * - unknown (504): sent, no answer in time; it may still be applied. A retry with the same
 *   Idempotency-Key is applied at most once and answers the first outcome.
 */

/** The caller's Idempotency-Key, or one made for this request (returned in the answer so the caller can retry with it). */
export function commandKey(req: { get(name: string): string | undefined }): { key: string; supplied: boolean } {
  const k = req.get('idempotency-key');
  if (k === undefined) return { key: `auto-${crypto.randomUUID()}`, supplied: false };
  // The same schema the OpenAPI document shows.
  if (!IdempotencyHeader.shape['Idempotency-Key'].safeParse(k).success)
    throw validationProblem([
      { in: 'header', path: 'Idempotency-Key', message: 'up to 128 letters, digits and . _ : -' },
    ]);
  return { key: k, supplied: true };
}

/**
 * Temporal's update id for a keyed command: a retry with the same key and the same content joins
 * the first attempt (rather than queueing a second one behind it); the same key with other
 * content gets an id of its own, and the case answers it 409.
 */
export function updateIdFor(name: string, key: string, input: object): string {
  // `readModel` is the API's note of the row's version, not content: a retry joins the first attempt.
  const { at: _a, takenAt: _t, reportedAt: _r, by: _b, readModel: _m, ...content } = input as Record<string, unknown>;
  const digest = crypto
    .createHash('sha256')
    .update(JSON.stringify(content, Object.keys(content).sort()))
    .digest('base64url')
    .slice(0, 16);
  return `${name}:${key}:${digest}`;
}

/** A write that failed, as its answer; a 503/504 names the key to retry with. */
function writeFailure(err: unknown, caseNo: string, key: string): unknown {
  const p = temporalProblem(err, caseNo, 'write');
  if (p?.status === 503 || p?.status === 504) p.headers['Idempotency-Key'] = key;
  return p ?? err;
}

function unknownOutcome(key: string): HttpProblem {
  return new HttpProblem(
    504,
    'No worker answered in time: the outcome is unknown (it may still be applied). Retry with the same Idempotency-Key: it is applied at most once.',
    { slug: 'outcome-unknown', idempotencyKey: key },
    { 'Retry-After': '5', 'Idempotency-Key': key },
  );
}

export const isTimeout = (err: unknown) =>
  err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
  (err instanceof Error && /deadline exceeded/i.test(err.message));

/**
 * An update nobody answered in time marks the worker down unless it is seen polling its task
 * queue (probes in a row that each saw a newer poll): a worker that keeps polling is behind (a
 * wave), not gone, so the next command is still sent (504 if it too goes unanswered). A fresh
 * look at the queue first (at most 250 ms; a probe this soon after another leaves the polling
 * verdict as it was). A worker whose poll is parked on an empty queue cannot be told from a dead
 * one this way: it is marked down until its next poll, as a killed worker must be at once (its
 * cases' tasks wait on its own sticky queue, out of the probe's sight, for seconds).
 */
export async function suspectWorker(app: ApiContext, reason: string, caseNo: string): Promise<void> {
  await Promise.race([app.deps.probe().catch(() => undefined), new Promise((r) => setTimeout(r, 250).unref())]);
  if (!app.deps.workerPolling()) app.deps.suspect('worker', reason, workflowIdFor(caseNo));
}

/**
 * A supervisor's or staff member's command: sent only when a worker is there to answer it,
 * answered with the case's answer, or 504 "unknown" when none came in time.
 */
export async function sendCommand<R, T extends object>(
  app: ApiContext,
  caseNo: string,
  def: UpdateDefinition<R, [T]>,
  input: T,
  key: string,
): Promise<R> {
  if (app.deps.isDown('worker')) await whileNoWorker(app, caseNo, key);
  try {
    return await app.ops.update(caseNo, def, input, { updateId: updateIdFor(def.name, key, input) });
  } catch (err) {
    if (isTimeout(err)) {
      await suspectWorker(app, `no worker answered a ${def.name} within ${app.config.API_UPDATE_WAIT_MS} ms`, caseNo);
      throw unknownOutcome(key);
    }
    throw writeFailure(err, caseNo, key);
  }
}

/**
 * No worker is known to run: a command is not sent (it could only time out). The truth about the
 * case comes first: no such case is 404 and a closed one 409, as with a worker; else 503.
 */
async function whileNoWorker(app: ApiContext, caseNo: string, key: string): Promise<void> {
  // Temporal itself away: that is the answer, at once (a probe would only wait out its deadline).
  app.deps.require('temporal');
  // Ask again before refusing: one slow answer may have tripped the breaker of a worker that is there.
  await app.deps.probe();
  try {
    app.deps.require('worker');
    return;
  } catch (down) {
    let d;
    try {
      d = await app.ops.describe(caseNo);
    } catch (err) {
      throw temporalProblem(err, caseNo) ?? err;
    }
    if (!d) throw new HttpProblem(404, `No case ${caseNo}`);
    if (d.status !== 'RUNNING')
      throw new HttpProblem(409, `Case ${caseNo} is closed and takes no more messages`, { slug: 'case-closed' });
    const p = down as HttpProblem;
    throw new HttpProblem(
      503,
      `No worker is running the cases (${app.deps.worker.state().reason ?? 'down'}): this command was not sent. Retry after Retry-After with the same Idempotency-Key.`,
      { slug: 'worker-unavailable', dependency: 'worker', idempotencyKey: key },
      { ...p.headers, 'Idempotency-Key': key },
    );
  }
}

/** A field report already sent as a signal: durable in the case's history. */
export async function sendReport<T>(
  app: ApiContext,
  caseNo: string,
  def: SignalDefinition<[T]>,
  input: T,
): Promise<void> {
  try {
    await app.ops.signal(caseNo, def, input);
  } catch (err) {
    throw temporalProblem(err, caseNo, 'write') ?? err;
  }
}

/**
 * How long a field report waits for its case's answer, or undefined: queue it at once.
 *
 * - The worker keeps up (its tasks wait less than API_REPORT_WAIT_MS): API_REPORT_WAIT_MS.
 * - The worker is behind but seen polling (a wave): about as long as its tasks wait (twice that,
 *   plus API_REPORT_WAIT_MS), up to API_REPORT_MAX_WAIT_MS. A queued report costs the server about
 *   2.5 times an answered one (a signal, a workflow task, the case's own read-model write and a
 *   second task, against one task and the API's batched write), so queueing every report as soon
 *   as tasks wait is what kept a wave's backlog from draining (docs/PERFORMANCE.md).
 * - Behind further than API_REPORT_MAX_WAIT_MS, or behind with nobody polling (likely gone):
 *   queued at once, one signal instead of an update that would time out and a signal.
 */
export function reportWaitMs(
  config: {
    API_REPORT_WAIT_MS: number;
    API_REPORT_MAX_WAIT_MS: number;
    API_REQUEST_TIMEOUT_MS?: number;
    API_TEMPORAL_TIMEOUT_MS?: number;
  },
  behindMs: number,
  polling: boolean,
  /** Time the API may still need after the wait beside the queued copy (a scoped check's own read). */
  reserveMs = 0,
): number | undefined {
  const wait = config.API_REPORT_WAIT_MS;
  if (behindMs < wait) return wait;
  // The queued copy after an unanswered wait must still go out within the request's own time: one
  // call to Temporal's deadline, and a second for what came before the wait and the probe after.
  const room =
    config.API_REQUEST_TIMEOUT_MS !== undefined
      ? config.API_REQUEST_TIMEOUT_MS - (config.API_TEMPORAL_TIMEOUT_MS ?? 0) - 1000 - reserveMs
      : Infinity;
  const max = Math.max(wait, Math.min(config.API_REPORT_MAX_WAIT_MS, room));
  if (!polling || behindMs >= max) return undefined;
  return Math.min(max, wait + 2 * behindMs);
}

/** The least wait worth an update after a scoped attempt's rejection; less, and the report is queued. */
const MIN_FALLBACK_WAIT_MS = 250;

export type ReportOutcome<R> = { status: 'applied'; result: R } | { status: 'queued'; reason: string };

/** A field report with an answer worth waiting for, and the ways it may go to its case. */
export interface AnsweredReport<R, T extends object, S extends object> {
  update: UpdateDefinition<R, [T]>;
  /** The same report queued (a signal: durable without a worker, and judged by no validator). */
  queued: SignalDefinition<[T]>;
  /**
   * The API's own jurisdiction check (404, 403; it reads the read model), then the report as
   * `update` and `queued` take it. Called at most once, before either is sent.
   */
  authorize(): Promise<T>;
  /**
   * The same report with the caller's scope, judged by the case itself in the update's validator
   * (API_SCOPED_CHECKS): sent first, with nothing read. A case or a worker without its handler
   * rejects the name, and the report goes the other way.
   */
  scoped?: { update: UpdateDefinition<R, [S]>; input: S };
}

/**
 * A field report that has an answer worth waiting for (a health check: fever, escalations, next
 * check due). With a worker it is applied and answered; without one, or when none answers within
 * API_REPORT_WAIT_MS, the same report (same key, same check id) is queued as a signal. Should the
 * unanswered update still land, the case takes whichever copy comes first and answers the other
 * as the same report: applied once.
 */
export async function sendReportWithAnswer<R, T extends object, S extends object>(
  app: ApiContext,
  caseNo: string,
  report: AnsweredReport<R, T, S>,
  key: string,
): Promise<ReportOutcome<R>> {
  let reason: string;
  let sent = false;
  // At most once, its failure too: a read that failed is not made again in the same request.
  let authorizing: Promise<T> | undefined;
  const authorize = (): Promise<T> => (authorizing ??= report.authorize());
  if (app.deps.isDown('worker')) {
    reason = `no worker is running (${app.deps.worker.state().reason ?? 'down'})`;
    try {
      app.deps.require('worker');
    } catch {
      // still down: straight to the queue below
    }
  }
  // A worker that is there but further behind than we would wait: the update would time out and
  // still be applied later, besides the queued copy, so two workflow tasks for one report exactly
  // when tasks are scarce. The report goes to the queue at once instead (one signal). Behind less
  // than that, it waits about as long as the backlog (reportWaitMs).
  const behind = app.deps.workerBehindMs();
  // A scoped check has not read the read model yet: after an unanswered wait, the API's own check
  // (one read, SCOPE_DB_TIMEOUT_MS at most) comes before the queued copy.
  const waitMs = reportWaitMs(app.config, behind, app.deps.workerPolling(), report.scoped ? SCOPE_DB_TIMEOUT_MS : 0);
  if (!app.deps.worker.isOpen && waitMs === undefined) {
    reason = `workflow tasks have waited ${Math.round(behind / 1000)} s for a worker`;
    // Nobody polled lately either: likely gone, so commands should not be sent into the void.
    if (!app.deps.workerPolling()) app.deps.suspect('worker', reason);
  } else if (!app.deps.worker.isOpen && app.deps.isDown('database')) {
    // The database is known away: the case's answer would come only after its read-model write
    // (the worker's, in the task, or ours from the answer) ran out its time. The queued copy is
    // applied the same, and the sender hears at once.
    reason = 'the database is away: queued rather than waiting for an answer that waits on it';
  } else if (!app.deps.worker.isOpen) {
    const attempt = async <I extends object>(
      def: UpdateDefinition<R, [I]>,
      input: I,
      ms: number,
    ): Promise<ReportOutcome<R>> => {
      const result = await app.ops.update(caseNo, def, input, {
        waitMs: ms,
        updateId: updateIdFor(def.name, key, input),
      });
      // The write the answer carries, if the case handed it to us (src/api/answer-writes.ts).
      return { status: 'applied', result: await makeAnsweredWrite(app, caseNo, result) };
    };
    /**
     * The API's own check, where the scoped update's failure says nothing of the key (Temporal
     * away, no answer in time, no workflow to judge): a key it refuses hears 403, as when the API
     * judged first. That must be true: when the update may still reach the case (`mayLand`), only
     * a refusal that holds whatever the case does next counts (JurisdictionProblem.final); a key
     * refused for want of a room the case may yet get hears "outcome unknown" instead. A check
     * that cannot be made leaves the answer as it was.
     */
    const refusedHere = async (mayLand: boolean): Promise<HttpProblem | undefined> => {
      try {
        await authorize();
        return undefined;
      } catch (denied) {
        if (!(denied instanceof HttpProblem) || denied.status !== 403) return undefined;
        if (mayLand && denied instanceof JurisdictionProblem && !denied.final) return unknownOutcome(key);
        return denied;
      }
    };
    /** No answer within the wait: the update may still land, and the worker is suspected. */
    const unanswered = async (): Promise<void> => {
      sent = true;
      reason = `no worker answered within ${waitMs} ms`;
      await suspectWorker(app, reason, caseNo);
    };
    let fallback = !report.scoped;
    // A scoped attempt's wait is spent from the same budget as the plain update after it; without
    // one, the plain update waits the whole wait, as it always did.
    const deadline = report.scoped ? Date.now() + waitMs! : Infinity;
    if (report.scoped) {
      try {
        return await attempt(report.scoped.update, report.scoped.input, waitMs!);
      } catch (err) {
        if (isUnknownUpdate(err)) {
          // The case's type (before v5) or its worker's build knows no scoped check: nothing was
          // recorded, and the API judges the scope itself. Learning the case's type (one describe,
          // not waited for) spares a case of an older type the scoped attempt from then on.
          fallback = true;
          if (app.ops.knownType(caseNo) === undefined) void app.ops.workflowType(caseNo).catch(() => undefined);
        } else if (isTimeout(err)) {
          await unanswered();
          const denied = await refusedHere(true);
          if (denied) throw denied;
        } else {
          const p = writeFailure(err, caseNo, key);
          // The case's own refusal (403 of the scope, 409, 422 of the check) stands; anything else
          // (no workflow, a closed one, Temporal away or busy, an unknown outcome) is checked here first.
          const caseRefused =
            p instanceof HttpProblem &&
            p.status !== 404 &&
            p.status < 500 &&
            p.problem.type !== problemType(409, 'case-closed');
          if (!caseRefused) {
            // Only an unknown outcome (504) may still reach the case: no workflow, a closed one, or
            // a call Temporal refused (503) cannot.
            const denied = await refusedHere(p instanceof HttpProblem && p.status === 504);
            if (denied) throw denied;
          }
          throw p;
        }
      }
    }
    if (fallback) {
      const input = await authorize();
      const left = Math.min(waitMs!, deadline - Date.now());
      if (report.scoped && left < MIN_FALLBACK_WAIT_MS) {
        reason = `the worker took ${waitMs} ms to refuse the scoped check: queued rather than waiting again`;
      } else {
        try {
          return await attempt(report.update, input, left);
        } catch (err) {
          if (!isTimeout(err)) {
            throw writeFailure(err, caseNo, key);
          }
          await unanswered();
        }
      }
    }
  }
  // A signal has no validator: the API's own check comes first. After an unanswered update, a
  // check that cannot be made now leaves that update's outcome unknown.
  let input: T;
  try {
    input = await authorize();
  } catch (err) {
    throw sent ? unknownOutcome(key) : err;
  }
  // Only the v2 case knows the queued form; an earlier case's report waits for its worker.
  let type: string | null;
  try {
    type = await app.ops.workflowType(caseNo);
  } catch (err) {
    throw sent ? unknownOutcome(key) : (temporalProblem(err, caseNo, 'write') ?? err);
  }
  if (type === null && !sent) throw new HttpProblem(404, `No case ${caseNo}`);
  if (!isDecisionCoreType(type)) {
    if (sent) throw unknownOutcome(key);
    throw new HttpProblem(
      503,
      'No worker is running, and this case (started before v2) cannot queue reports: it was not sent; retry later with the same Idempotency-Key',
      { slug: 'worker-unavailable', dependency: 'worker', idempotencyKey: key },
      { 'Retry-After': '10', 'Idempotency-Key': key },
    );
  }
  try {
    // The queued copy is applied by the case, which writes its read model itself.
    const { readModel: _m, ...queued } = input as T & { readModel?: unknown };
    await app.ops.signal(caseNo, report.queued, queued as T);
  } catch (err) {
    if (sent) throw unknownOutcome(key);
    throw writeFailure(err, caseNo, key);
  }
  return { status: 'queued', reason: reason! };
}
