import { recordCase, recordCases } from './index';
import type { RecordCaseInput } from './types';
import type { Db } from '../db';

/**
 * Read-model writes, batched (the API's writes from answers, src/api/answer-writes.ts, and the
 * worker's writes made inside a workflow task, src/activities/task-writes.ts): a write waits while WRITER_IN_FLIGHT statements are running, and goes
 * with the others that came meanwhile (up to WRITER_BATCH) in the next statement. A nurses'
 * morning at 32 requests in flight becomes a statement per several checks instead of one per check
 * (docs/PERFORMANCE.md). A statement that fails is tried again one write at a time, so one write
 * the database refuses fails alone.
 *
 * A write gives up at its deadline (its caller then hands it back to the case) and is dropped from
 * the queue if still there, so a database that was slow leaves no backlog of dead writes behind
 * it; a full queue refuses at once. A statement that does not settle in WRITER_STATEMENT_MS frees
 * its slot (a hung connection must not stall every later write). A batch is in case order, so two
 * batches never wait on each other's row locks in opposite orders.
 */
export interface Writer {
  /** Resolves once written; rejects if not written by `timeoutMs` (it may still land later: harmless). */
  write(input: RecordCaseInput, timeoutMs: number): Promise<void>;
}
const WRITER_IN_FLIGHT = 2;
const WRITER_BATCH = 64;
const WRITER_QUEUE_MAX = 2000;
const WRITER_STATEMENT_MS = 5000;

export function createWriter(
  db: Db,
  opts: { inFlight?: number; batch?: number; queueMax?: number; statementMs?: number } = {},
): Writer {
  const inFlight = opts.inFlight ?? WRITER_IN_FLIGHT;
  const batchMax = opts.batch ?? WRITER_BATCH;
  const queueMax = opts.queueMax ?? WRITER_QUEUE_MAX;
  const statementMs = opts.statementMs ?? WRITER_STATEMENT_MS;
  type Pending = { input: RecordCaseInput; settled: boolean; ok(): void; fail(err: Error): void };
  let queue: Pending[] = [];
  let running = 0;
  const pump = (): void => {
    queue = queue.filter((p) => !p.settled);
    while (running < inFlight && queue.length) {
      const batch = queue
        .splice(0, batchMax)
        .sort((a, b) =>
          a.input.row.caseNo < b.input.row.caseNo ? -1 : a.input.row.caseNo > b.input.row.caseNo ? 1 : 0,
        );
      running++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        running--;
        pump();
      };
      const stuck = setTimeout(() => {
        for (const p of batch) p.fail(new Error(`read model write did not finish in ${statementMs} ms`));
        release();
      }, statementMs);
      stuck.unref();
      void run(batch).finally(() => {
        clearTimeout(stuck);
        release();
      });
    }
  };
  const run = async (batch: Pending[]): Promise<void> => {
    try {
      await recordCases(
        db,
        batch.map((p) => p.input),
      );
      for (const p of batch) p.ok();
    } catch (err) {
      if (batch.length === 1) return batch[0]!.fail(err as Error);
      // One write may have failed them all: each alone, one at a time, so only that one fails;
      // writes whose callers gave up meanwhile are not made.
      for (const p of batch) {
        if (p.settled) continue;
        try {
          await recordCase(db, p.input);
          p.ok();
        } catch (e) {
          p.fail(e as Error);
        }
      }
    }
  };
  return {
    write: (input, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        if (queue.length >= queueMax) {
          reject(new Error('read model writes are queued beyond the limit'));
          return;
        }
        const p: Pending = {
          input,
          settled: false,
          ok() {
            if (p.settled) return;
            p.settled = true;
            clearTimeout(timer);
            resolve();
          },
          fail(err) {
            if (p.settled) return;
            p.settled = true;
            clearTimeout(timer);
            reject(err);
          },
        };
        const timer = setTimeout(() => p.fail(new Error(`read model write not made in ${timeoutMs} ms`)), timeoutMs);
        timer.unref();
        queue.push(p);
        pump();
      }),
  };
}
