import { and, eq } from 'drizzle-orm';

import type { Db } from '../db';
import { activityEffects } from '../db/schema';

/**
 * Runs a side effect at most once per (workflow id, step) as far as our database can tell,
 * and returns the first run's result to every retry. A crash between the effect and the
 * record makes the retry run it again; that is why every remote call also carries an
 * Idempotency-Key of the same workflow id and step, so the remote system drops the repeat.
 */
export async function once<T>(db: Db, workflowId: string, step: string, run: () => Promise<T>): Promise<T> {
  const key = and(eq(activityEffects.workflowId, workflowId), eq(activityEffects.step, step));
  const [done] = await db.select({ result: activityEffects.result }).from(activityEffects).where(key);
  if (done) return done.result as T;
  const result = await run();
  const inserted = await db
    .insert(activityEffects)
    .values({ workflowId, step, result: (result ?? {}) as Record<string, unknown> })
    .onConflictDoNothing()
    .returning({ step: activityEffects.step });
  if (inserted.length > 0) return result;
  // A concurrent attempt recorded first: its result is the one the workflow must see.
  const [first] = await db.select({ result: activityEffects.result }).from(activityEffects).where(key);
  return (first?.result ?? result) as T;
}
