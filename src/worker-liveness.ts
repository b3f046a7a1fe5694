import crypto from 'node:crypto';

import { and, eq, sql } from 'drizzle-orm';

import type { Db } from './db';
import { workerLiveness } from './db/schema';
import { within } from './deadline';
import type { Logger } from './log';

/**
 * A worker's word that it is there, for the API's worker breaker (src/api/dependencies.ts).
 *
 * The API cannot ping a worker; it used to judge one only by its task queue: work waiting longer
 * than API_WORKER_STALL_MS while no poll was seen twice in a row. A worker running flat out (a
 * wave) polls its shared queue rarely, its cases' tasks waiting on its own sticky queue, so it was
 * taken for gone, and supervisors' commands were answered 503 "No worker is running" for minutes
 * while it ran (docs/PERFORMANCE.md). Now each worker process moves its row's `seen_at` (by the
 * database's clock) every `intervalMs` while its workflow poller polls and Temporal answers it
 * (a worker cut off from the cluster polls for ever in vain: it does not beat), and deletes the
 * row when it stops. A beat younger than API_WORKER_LIVENESS_MS says "behind, not gone".
 *
 * It only ever says "there": no beat (a worker stopped or without it, an older version, a
 * database the API cannot read) leaves the breaker to the task queue's figures, as before.
 */
export interface WorkerLivenessBeat {
  readonly workerId: string;
  /** Beats once now (tests; the loop beats on its own). */
  beat(): Promise<void>;
  /** Stops beating and deletes the row: the worker no longer vouches for itself (it is draining). */
  stop(): Promise<void>;
}

/** What the beat asks of the worker: the SDK's status (undefined while it is not running). */
export interface PollerStatus {
  runState: string;
  workflowPollerState: string;
}

export function startWorkerLivenessBeat(opts: {
  db: Db;
  namespace: string;
  taskQueue: string;
  status: () => PollerStatus | undefined;
  /**
   * A cheap call to Temporal on the worker's own connection (GetSystemInfo), bounded: the SDK's
   * poller state stays "polling" while its polls fail and are retried for ever.
   */
  temporalAnswers: () => Promise<unknown>;
  intervalMs: number;
  log: Logger;
  /** Rows of workers not seen for this long are removed (killed processes leave theirs). */
  forgetAfterMs?: number;
}): WorkerLivenessBeat {
  // No host name: on a desk install it can be a person's name.
  const workerId = `${process.pid}:${crypto.randomBytes(6).toString('hex')}`;
  const forgetAfterMs = opts.forgetAfterMs ?? 3_600_000;
  let inFlight: Promise<void> | undefined;
  let stopped = false;
  let beats = 0;
  let failing = false;

  const once = async (): Promise<void> => {
    if (stopped) return;
    const s = opts.status();
    if (!s || s.runState !== 'RUNNING' || s.workflowPollerState !== 'POLLING') return;
    await opts.temporalAnswers();
    // One statement at a time: a database that does not answer leaves the row to go stale, and
    // holds one connection of the pool, not one more each interval.
    await opts.db
      .insert(workerLiveness)
      .values({ workerId, namespace: opts.namespace, taskQueue: opts.taskQueue })
      .onConflictDoUpdate({ target: workerLiveness.workerId, set: { seenAt: sql`now()` } });
    // Now and then, the rows of workers killed long ago.
    if (beats++ % 600 === 0)
      await opts.db
        .delete(workerLiveness)
        .where(
          and(
            eq(workerLiveness.namespace, opts.namespace),
            eq(workerLiveness.taskQueue, opts.taskQueue),
            sql`${workerLiveness.seenAt} < now() - make_interval(secs => ${forgetAfterMs / 1000})`,
          ),
        );
  };

  const beat = (): Promise<void> => {
    // A beat still under way (a slow database) is not doubled.
    inFlight ??= once()
      .then(() => {
        if (failing) opts.log.info('worker liveness beats again');
        failing = false;
      })
      .catch((err) => {
        if (!failing)
          opts.log.warn('worker liveness beat not made (the API judges this worker by its task queue)', { err });
        failing = true;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  const timer = setInterval(() => {
    if (!stopped) void beat();
  }, opts.intervalMs);
  timer.unref();
  void beat();

  return {
    workerId,
    beat,
    async stop() {
      stopped = true;
      clearInterval(timer);
      try {
        await within(2000, 'worker liveness', async () => {
          await inFlight;
          await opts.db.delete(workerLiveness).where(eq(workerLiveness.workerId, workerId));
        });
      } catch (err) {
        opts.log.warn('worker liveness row not removed (it goes stale)', { err });
      }
    },
  };
}

/**
 * How long ago the freshest worker of `taskQueue` beat, by the database's clock, or undefined when
 * none has a row, or when the freshest beat is dated more than a second ahead (the database's
 * clock stepped back: no word rather than a dead worker's row taken for fresh).
 */
export async function freshestBeatAgeMs(db: Db, namespace: string, taskQueue: string): Promise<number | undefined> {
  const rows = await db
    .select({
      ageMs: sql<string | null>`(extract(epoch from now() - max(${workerLiveness.seenAt})) * 1000)::bigint`,
    })
    .from(workerLiveness)
    .where(and(eq(workerLiveness.namespace, namespace), eq(workerLiveness.taskQueue, taskQueue)));
  const age = rows[0]?.ageMs;
  if (age === null || age === undefined || Number(age) < -1000) return undefined;
  return Math.max(0, Number(age));
}
