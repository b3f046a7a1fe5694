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
 * that takes; this walks the rows without a copy by case number instead (the partial index
 * `cases_summary_missing`, empty once they have one), a batch a transaction, and the trigger makes
 * each copy. Until a row is reached the list builds its
 * summary on the spot, the same. Safe to run from many processes at once (a second one finds
 * nothing to write) and again (it then writes nothing). Returns the rows it filled.
 */
export async function fillCaseSummaries(db: Db, opts: SummaryFillOptions = {}): Promise<number> {
  const batch = opts.batch ?? 1000;
  const pauseMs = opts.pauseMs ?? 20;
  let after = '';
  let filled = 0;
  for (;;) {
    if (opts.signal?.aborted) break;
    const keys = rowsOf<{ caseNo: string }>(
      await db.execute(sql`
        select case_no as "caseNo" from cases where summary_json is null and case_no > ${after}
        order by case_no limit ${batch}`),
    );
    if (keys.length === 0) break;
    const from = after;
    after = keys[keys.length - 1]!.caseNo;
    const written = rowsOf<{ n: number }>(
      await db.execute(sql`
        with w as (
          update cases set summary_json = null
          where case_no > ${from} and case_no <= ${after} and summary_json is null
          returning 1)
        select count(*)::int as n from w`),
    );
    filled += written[0]?.n ?? 0;
    if (keys.length < batch) break;
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
  if (filled > 0) opts.log?.info('case summaries filled', { rows: filled });
  return filled;
}
