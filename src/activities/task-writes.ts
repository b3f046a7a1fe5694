import type { InjectedSinks } from '@temporalio/worker';

import { within } from '../deadline';
import { keyedQueue } from '../keyed-queue';
import type { Logger } from '../log';
import type { ReadModelSinks } from '../workflows/sinks';
import type { RecordCaseInput } from './types';

/**
 * How long a write made in a workflow task may take before the worker reports it failed. The
 * task's completion (with the case's answer and its alerts) waits for it, so it is short: a
 * database that is slow or away costs the case one report and a write by activity, not its alerts.
 */
export const TASK_WRITE_DEADLINE_MS = 2000;
/** After this many failed writes in a row, the next ones are refused at once for a while... */
export const TASK_WRITE_FAILURES_AWAY = 3;
/** ...this long after the last real failure: each case then writes by activity, which retries. */
export const TASK_WRITE_COOLDOWN_MS = 10_000;
/**
 * Reporting a failed write is tried, with these pauses (the last repeated), for a little longer
 * than the workflow task's timeout (the task's own `taskTimeoutMs`, 10 s by default): if Temporal
 * does not take the report by then, it did not take the task's completion either, and the task's
 * retry writes again.
 */
const REPORT_PAUSES_MS = [100, 250, 500, 1000, 2000];
/** Our own deadlines, not the database's word: a busy worker or queue, not a database away. */
const OWN_DEADLINE = /no answer within|not made in|did not finish in|queued beyond/;

export interface TaskWriteOptions {
  /**
   * Makes one write (batched with others by the caller if it likes); rejects if not made. The time
   * left of the write's deadline, which a writer that queues should not wait past.
   */
  write(batch: RecordCaseInput, timeoutMs: number): Promise<void>;
  /** Tells the case that the write of the task at `fence` was not made (readModelBehindSignal to that run). */
  report(workflowId: string, runId: string, input: { version: number; fence: number }): Promise<void>;
  log: Logger;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * The worker's end of the read model written in the workflow task (caseWorkflowV5,
 * src/workflows/sinks.ts). The SDK calls a sink after the workflow's activation and awaits it
 * before it hands the activation's completion to core (@temporalio/worker, processSinkCalls), so
 * the write is made, or its failure reported to the case, before Temporal hears the task complete:
 *
 * - made: the case's next task comes with no report, and the case counts the write as made;
 * - not made (refused, failed, or not within TASK_WRITE_DEADLINE_MS): the case is sent
 *   `readModelBehind` with the task's fence before the task completes. Temporal holds a signal that
 *   arrives during a task for the next one, so the case hears of it in the very next task, and
 *   writes by activity (which retries) from then until one succeeds.
 *
 * Not called while a case's history is replayed (`callDuringReplay: false`): those writes were
 * made when the tasks ran. A task that fails after its write (the worker dies before completing
 * it) is retried, from the history, by a worker that takes the case up afresh: its first write is
 * a repair (every sample, check and escalation id the case has), and writes go in the order of
 * their tasks, not of their versions (drizzle/0008_task_write_fence.sql), so what the failed task
 * wrote of its own is replaced or removed. That is why the SDK's warning that such a sink may run
 * twice for one point of history is harmless here. test/workflows/case-v2.test.ts ("v5: the worker makes the
 * write before Temporal hears the task complete") holds the order (the write
 * before the task's completion) against the SDK: an upgrade that changed it fails there.
 */
export function taskWriteSinks(opts: TaskWriteOptions): InjectedSinks<ReadModelSinks> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const log = opts.log.child({ component: 'task-writes' });
  const away = { failures: 0, lastFailureAt: -Infinity };
  /**
   * Each run's writes, one at a time. The SDK calls an activation's sinks all at once
   * (processSinkCalls, Promise.all), and a case writes twice in one task when its loop goes round
   * again: the first write of a worker that took the case up afresh is a repair, and the database
   * lets a repair replace a write of the same task (the retry of a task that failed). Made side by
   * side, the repair could land second and put the row back to its version, without what the
   * second write added. So a run's writes are made one after the other, in the order the case
   * made them (keyed by run); each one's deadline counts its wait.
   */
  const inLane = keyedQueue();
  return {
    readModel: {
      write: {
        callDuringReplay: false,
        async fn(info, batch, fence) {
          const version = batch.row.stateVersion ?? 0;
          let reason: string;
          if (away.failures >= TASK_WRITE_FAILURES_AWAY && now() - away.lastFailureAt < TASK_WRITE_COOLDOWN_MS) {
            reason = 'the read model failed moments ago';
          } else {
            let gaveUp = false;
            const deadline = now() + TASK_WRITE_DEADLINE_MS;
            try {
              await within(TASK_WRITE_DEADLINE_MS, 'read model', () =>
                inLane(info.runId, async () => {
                  // Out of time (reported, or about to be: the timer of the write before may have
                  // fired first): never made; the case writes it by activity.
                  const left = deadline - now();
                  if (gaveUp || left <= 0) throw new Error('read model write queued beyond its deadline');
                  await opts.write({ ...batch, inTask: true }, left);
                }),
              );
              away.failures = 0;
              return;
            } catch (err) {
              gaveUp = true;
              // recordCase's error names no value of the write (src/activities recordCaseError).
              reason = err instanceof Error ? err.message : String(err);
              // Only the database's own failures count towards refusing writes at once: a write
              // that waited out its deadline behind others (a busy box) says nothing of the
              // database, and refusing every write then would send every case to the costlier
              // activity path exactly when the box is busiest.
              if (!OWN_DEADLINE.test(reason)) {
                away.failures++;
                away.lastFailureAt = now();
              }
            }
          }
          log.warn('read model write in the workflow task not made; the case writes it by activity', {
            workflowId: info.workflowId,
            version,
            reason,
          });
          const budget = (info.taskTimeoutMs || 10_000) + 1000;
          let paused = 0;
          for (let attempt = 0; ; attempt++) {
            try {
              await opts.report(info.workflowId, info.runId, { version, fence });
              return;
            } catch (err) {
              if (paused > budget) {
                // Temporal has not taken this for longer than a task may run: nor the task's
                // completion, whose retry writes again.
                log.error('could not tell the case its read-model write was not made', {
                  workflowId: info.workflowId,
                  version,
                  error: err instanceof Error ? err.name : 'unknown',
                });
                return;
              }
              const pause = REPORT_PAUSES_MS[Math.min(attempt, REPORT_PAUSES_MS.length - 1)]!;
              paused += pause;
              await sleep(pause);
            }
          }
        },
      },
    },
  };
}
