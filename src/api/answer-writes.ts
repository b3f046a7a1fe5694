import { createWriter, type Writer } from '../activities/writer';
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

const writers = new WeakMap<Db, Writer>();
function writerFor(db: Db): Writer {
  let w = writers.get(db);
  if (!w) writers.set(db, (w = createWriter(db)));
  return w;
}

export { createWriter, type Writer };
