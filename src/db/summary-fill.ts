import { sql } from 'drizzle-orm';

import { rowsOf } from '../integrations/hotel';
import type { Logger } from '../log';
import type { Db } from './index';

export interface SummaryFillOptions {
  /** Cases looked at a transaction (each a short one: a batch's rows are locked only while they are written). */
  batch?: number;
  /** The pause between batches, so that the case writes of the moment go first. */
  pauseMs?: number;
  signal?: AbortSignal;
  log?: Logger;
}

/**
 * Makes the list's copy (drizzle/0012, `cases.summary_json`) of every case row that has none:
 * the rows written before the migration. The migration itself fills nothing, since a rewrite of
 * the whole table in its transaction would hold every read and write of `cases` for as long as
 * that takes; this takes the rows without a copy a batch a transaction, by case number (the
 * partial index `cases_summary_missing`, empty once they have one), and the trigger makes each
 * copy. Until a row is reached the list builds its summary on the spot, the same. Safe to run from
 * many processes at once (each skips the rows another holds) and again (it then writes nothing).
 * Returns the rows it filled.
 */
export async function fillCaseSummaries(db: Db, opts: SummaryFillOptions = {}): Promise<number> {
  const batch = opts.batch ?? 1000;
  const pauseMs = opts.pauseMs ?? 20;
  let filled = 0;
  for (;;) {
    if (opts.signal?.aborted) break;
    // The first rows of the partial index (only rows without a copy are in it; a written row
    // leaves it), each made again by the trigger; rows another process holds are left to it.
    const written = rowsOf<{ n: number }>(
      await db.execute(sql`
        with w as (
          update cases set summary_json = null
          where case_no in (
            select case_no from cases where summary_json is null order by case_no limit ${batch}
            for update skip locked)
          returning 1)
        select count(*)::int as n from w`),
    );
    const n = written[0]?.n ?? 0;
    filled += n;
    if (n < batch) break;
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
  if (filled > 0) opts.log?.info('case summaries filled', { rows: filled });
  return filled;
}
