import { and, eq } from 'drizzle-orm';

import type { Db } from '../db';
import { within } from '../deadline';
import { activityEffects } from '../db/schema';

/**
 * Runs a side effect at most once per (workflow id, step) as far as our database can tell,
 * and returns the first run's result to every retry. A crash between the effect and the
 * record makes the retry run it again; that is why every remote call also carries an
 * Idempotency-Key of the same workflow id and step, so the remote system drops the repeat.
 */
const DOWN_AFTER_MS = 2000;

export interface OnceOptions {
  /**
   * The effect carries its own idempotency key that the receiver honours (an alert webhook):
   * when our database cannot be read or written, run it anyway rather than hold an alert for
   * the length of a database outage. A repeat then reaches the receiver with the same key.
   */
  runWhileDatabaseDown?: boolean;
}

export async function once<T>(
  db: Db,
  workflowId: string,
  step: string,
  run: () => Promise<T>,
  opts: OnceOptions = {},
): Promise<T> {
  const key = and(eq(activityEffects.workflowId, workflowId), eq(activityEffects.step, step));
  let done: { result: unknown } | undefined;
  // A database that hangs (a partition) counts as down after a moment, when that is allowed.
  const bounded = <R>(what: string, q: () => Promise<R>) =>
    opts.runWhileDatabaseDown ? within(DOWN_AFTER_MS, what, q) : q();
  try {
    [done] = await bounded('effect lookup', () =>
      db.select({ result: activityEffects.result }).from(activityEffects).where(key),
    );
  } catch (err) {
    // The database is down: an effect that its receiver deduplicates goes out anyway.
    if (!opts.runWhileDatabaseDown) throw err;
  }
  if (done) return done.result as T;
  const result = await run();
  let inserted: { step: string }[];
  try {
    inserted = await bounded('effect record', () =>
      db
        .insert(activityEffects)
        .values({ workflowId, step, result: (result ?? {}) as Record<string, unknown> })
        .onConflictDoNothing()
        .returning({ step: activityEffects.step }),
    );
  } catch (err) {
    if (!opts.runWhileDatabaseDown) throw err;
    return result;
  }
  if (inserted.length > 0) return result;
  // A concurrent attempt recorded first: its result is the one the workflow must see.
  const [first] = await db.select({ result: activityEffects.result }).from(activityEffects).where(key);
  return (first?.result ?? result) as T;
}
