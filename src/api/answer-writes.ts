import { recordCase, recordCases } from '../activities';
import type { RecordCaseInput } from '../activities/types';
import type { Db } from '../db';
import { readModelBehindSignal } from '../workflows/messages';
import type { ApiContext } from './context';

/** How long the API gives a read-model write before it hands the write back to the case. */
const ANSWERED_WRITE_TIMEOUT_MS = 1500;

/**
 * The read model written by the answer (ANSWER_WRITES_PATCH, docs/ARCHITECTURE.md): a case that
 * was sent the read model's version answers with its read-model write. The API makes it here,
 * before it answers, so the caller's next read sees the change, and takes it out of the answer.
 *
 * Nothing is lost whatever happens here: until the case knows the write is in the read model (a
 * later message's version reaches it, or an activity write carried it), every write the case
 * makes carries its content again. A write that fails or does not finish in time is handed back
 * (readModelBehindSignal): the case writes it by activity, retrying until the database is back.
 * If the API dies between the update and the write, a retry with the same Idempotency-Key gets
 * the same answer and makes it; the case's next write carries it in any case.
 */
export async function makeAnsweredWrite<R>(app: ApiContext, caseNo: string, result: R): Promise<R> {
  return (await answeredWrite(app, caseNo, result)).answer;
}

/**
 * makeAnsweredWrite, also saying which version of the case's row is now in the read model when
 * the answer's write was made (`written`): the version to send with the case's next message.
 */
export async function answeredWrite<R>(
  app: ApiContext,
  caseNo: string,
  result: R,
): Promise<{ answer: R; written?: number }> {
  if (!result || typeof result !== 'object' || !('readModelWrite' in result)) return { answer: result };
  const { readModelWrite, ...answer } = result as R & { readModelWrite?: RecordCaseInput };
  if (!readModelWrite) return { answer: answer as R };
  const version = readModelWrite.row.stateVersion ?? 0;
  try {
    await writerFor(app.db).write(readModelWrite, ANSWERED_WRITE_TIMEOUT_MS);
    app.metrics.answeredWrites.inc({ outcome: 'written' });
    return { answer: answer as R, written: version };
  } catch (err) {
    app.metrics.answeredWrites.inc({ outcome: 'handed_back' });
    // recordCase's error names no value of the write (src/activities recordCaseError).
    const reason = err instanceof Error ? err.message : String(err);
    app.log.warn('read-model write from an answer failed; the case makes it by activity', { caseNo, version, reason });
    if (!(await handBack(app, caseNo, version))) void handBackLater(app, caseNo, version);
  }
  return { answer: answer as R };
}

/** Tells the case to make the write itself; whether Temporal took the signal. */
async function handBack(app: ApiContext, caseNo: string, version: number): Promise<boolean> {
  try {
    await app.ops.signal(caseNo, readModelBehindSignal, { version });
    return true;
  } catch {
    return false;
  }
}

/** Temporal did not take the signal: tried again, apart from the request, for about a minute. */
async function handBackLater(app: ApiContext, caseNo: string, version: number): Promise<void> {
  for (const ms of HAND_BACK_RETRY_MS) {
    await new Promise((r) => setTimeout(r, ms).unref());
    if (await handBack(app, caseNo, version)) return;
  }
  // The case still owes it: its next write (the next message of any kind) carries it.
  app.metrics.answeredWrites.inc({ outcome: 'owed' });
  app.log.warn('could not hand a read-model write back to the case; its next write carries it', { caseNo, version });
}
const HAND_BACK_RETRY_MS = [1000, 3000, 10_000, 45_000];

/**
 * The API's writes, batched: a write waits while WRITER_IN_FLIGHT statements are running, and goes
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
const writers = new WeakMap<Db, Writer>();
function writerFor(db: Db): Writer {
  let w = writers.get(db);
  if (!w) writers.set(db, (w = createWriter(db)));
  return w;
}

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
