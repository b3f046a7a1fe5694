import { recordCase, recordCases } from '../activities';
import type { RecordCaseInput } from '../activities/types';
import type { Db } from '../db';
import { readModelBehindSignal } from '../workflows/messages';
import type { ApiContext } from './context';
import { within } from './dependencies';

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
  if (!result || typeof result !== 'object' || !('readModelWrite' in result)) return result;
  const { readModelWrite, ...answer } = result as R & { readModelWrite?: RecordCaseInput };
  if (!readModelWrite) return answer as R;
  const version = readModelWrite.row.stateVersion ?? 0;
  try {
    await within(ANSWERED_WRITE_TIMEOUT_MS, 'read model', () => writerFor(app.db).write(readModelWrite));
    app.metrics.answeredWrites.inc({ outcome: 'written' });
  } catch (err) {
    app.metrics.answeredWrites.inc({ outcome: 'handed_back' });
    // recordCase's error names no value of the write (src/activities recordCaseError).
    const reason = err instanceof Error ? err.message : String(err);
    app.log.warn('read-model write from an answer failed; the case makes it by activity', { caseNo, version, reason });
    if (!(await handBack(app, caseNo, version))) void handBackLater(app, caseNo, version);
  }
  return answer as R;
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
 */
export interface Writer {
  write(input: RecordCaseInput): Promise<void>;
}
const WRITER_IN_FLIGHT = 2;
const WRITER_BATCH = 64;
const writers = new WeakMap<Db, Writer>();
function writerFor(db: Db): Writer {
  let w = writers.get(db);
  if (!w) writers.set(db, (w = createWriter(db)));
  return w;
}

export function createWriter(db: Db): Writer {
  type Pending = { input: RecordCaseInput; done: (err?: unknown) => void };
  const queue: Pending[] = [];
  let running = 0;
  const pump = (): void => {
    while (running < WRITER_IN_FLIGHT && queue.length) {
      const batch = queue.splice(0, WRITER_BATCH);
      running++;
      void run(batch).finally(() => {
        running--;
        pump();
      });
    }
  };
  const run = async (batch: Pending[]): Promise<void> => {
    try {
      await recordCases(
        db,
        batch.map((p) => p.input),
      );
      for (const p of batch) p.done();
    } catch (err) {
      if (batch.length === 1) return batch[0]!.done(err);
      // One write may have failed them all: each alone, so only that one fails.
      await Promise.all(batch.map((p) => recordCase(db, p.input).then(() => p.done(), p.done)));
    }
  };
  return {
    write: (input) =>
      new Promise<void>((resolve, reject) => {
        queue.push({ input, done: (err) => (err === undefined ? resolve() : reject(err)) });
        pump();
      }),
  };
}
