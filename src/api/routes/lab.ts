import { and, asc, eq, inArray } from 'drizzle-orm';
import type { z } from 'zod';

import { escalations, labResults, samples } from '../../db/schema';
import { labResultSignal } from '../../workflows/messages';
import { actorOf, type ApiKey } from '../auth';
import type { ApiContext } from '../context';
import { HttpProblem, zodFieldErrors, type FieldError } from '../problem';
import { temporalProblem } from '../temporal-ops';
import { defineRoute, type AnyRoute } from '../router';
import { LabAnswer, LabBatch, LabBatchAnswer, LabBody, LabResultItem } from '../schemas';

type Item = z.infer<typeof LabResultItem>;
type Answer = z.infer<typeof LabAnswer>;

/**
 * A lab posts one result or a batch; each is answered on its own. A batch is judged per item
 * rather than all-or-nothing because a lab cannot undo the results it already has: a typo in
 * one sample id must not hold back 999 good results.
 */
function parseLabBody(
  raw: unknown,
): { success: true; data: z.infer<typeof LabBody> } | { success: false; errors: FieldError[] } {
  // Judge by shape rather than by union so the errors name the fields of the form the lab meant.
  const isBatch = typeof raw === 'object' && raw !== null && !Array.isArray(raw) && 'results' in raw;
  const r = (isBatch ? LabBatch : LabResultItem).safeParse(raw);
  return r.success ? { success: true, data: r.data } : { success: false, errors: zodFieldErrors('body', r.error) };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

async function applyResults(app: ApiContext, key: ApiKey, items: Item[]): Promise<Answer[]> {
  const ids = [...new Set(items.map((i) => i.sampleId))];
  const known = new Map<string, { caseNo: string; labId: string | null; ordered: boolean }>();
  /** The last result delivered for each sample: the same again is a duplicate, another is a correction. */
  const delivered = new Map<string, string>();
  try {
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const rows = await app.db
        .select({
          sampleId: samples.sampleId,
          caseNo: samples.caseNo,
          labId: samples.labId,
          orderedAt: samples.orderedAt,
          status: samples.status,
        })
        .from(samples)
        .where(inArray(samples.sampleId, chunk));
      for (const r of rows) {
        // v2 records the sample's state; a v1 row is ordered once it has an order time.
        const ordered = r.status ? !['planned', 'cancelled'].includes(r.status) : r.orderedAt !== null;
        known.set(r.sampleId, { caseNo: r.caseNo, labId: r.labId, ordered });
      }
      const prior = await app.db
        .select({ sampleId: labResults.sampleId, result: labResults.result })
        .from(labResults)
        .where(and(inArray(labResults.sampleId, chunk), inArray(labResults.status, ['applied', 'corrected'])))
        .orderBy(asc(labResults.id));
      for (const r of prior) delivered.set(r.sampleId, r.result);
    }
  } catch (err) {
    app.log.warn('lab results: samples unavailable', { err });
    throw new HttpProblem(
      503,
      'Samples cannot be looked up right now; resend the results later',
      {},
      { 'Retry-After': '10' },
    );
  }

  // Items of one batch for the same sample go one after the other, in the lab's order.
  const answers = new Array<Answer>(items.length);
  const bySample = new Map<string, number[]>();
  items.forEach((item, i) => bySample.set(item.sampleId, [...(bySample.get(item.sampleId) ?? []), i]));
  await mapLimit([...bySample.values()], app.config.API_LAB_BATCH_CONCURRENCY, async (indexes) => {
    for (const i of indexes) answers[i] = await applyOne(app, key, items[i]!, known, delivered);
  });

  try {
    // Every result is kept, duplicates and strangers included: the lab's record of what it sent.
    await app.db.insert(labResults).values(
      answers.map((a, i) => ({
        sampleId: a.sampleId,
        caseNo: a.caseNo ?? null,
        labKeyId: key.id,
        result: items[i]!.result,
        status: a.status,
      })),
    );
  } catch (err) {
    // The signals are in Temporal already; losing the ledger row only loses duplicate detection.
    app.log.warn('lab results ledger not written', { count: answers.length, err });
  }
  for (const a of answers) app.metrics.labResults.inc({ status: a.status });
  return answers;
}

async function applyOne(
  app: ApiContext,
  key: ApiKey,
  item: Item,
  known: Map<string, { caseNo: string; labId: string | null; ordered: boolean }>,
  delivered: Map<string, string>,
): Promise<Answer> {
  const sample = known.get(item.sampleId);
  if (!sample) return { sampleId: item.sampleId, status: 'unknown_sample' };
  const { caseNo } = sample;
  if (key.role === 'lab' && !key.orgId)
    return { sampleId: item.sampleId, status: 'forbidden', caseNo, detail: 'this key speaks for no lab' };
  // Only an ordered sample takes a result: a result for one never taken is a mistyped id.
  if (!sample.ordered)
    return {
      sampleId: item.sampleId,
      status: 'not_ordered',
      caseNo,
      detail: 'this sample was never ordered; check the id',
    };
  if (key.role === 'lab' && sample.labId !== key.orgId)
    return { sampleId: item.sampleId, status: 'forbidden', caseNo, detail: 'sample was not ordered from this lab' };
  const before = delivered.get(item.sampleId);
  if (before === item.result) return { sampleId: item.sampleId, status: 'duplicate', caseNo };
  try {
    await app.ops.signal(caseNo, labResultSignal, {
      sampleId: item.sampleId,
      result: item.result,
      // The lab the sample was ordered from: an admin posts on its behalf.
      labId: key.role === 'lab' ? key.orgId! : (sample.labId ?? 'unknown'),
      reportedAt: item.reportedAt ?? app.now().toISOString(),
      by: actorOf(key),
    });
    delivered.set(item.sampleId, item.result);
    return { sampleId: item.sampleId, status: before ? 'corrected' : 'applied', caseNo };
  } catch (err) {
    const problem = temporalProblem(err, caseNo, 'write');
    if (problem?.status === 409) return lateResult(app, key, item, caseNo);
    // Only the breaker's own refusal (before sending) carries `dependency`: that one was not delivered.
    const knownDown = err instanceof HttpProblem && err.problem.dependency === 'temporal';
    if (!knownDown) app.log.warn('lab result signal failed', { sampleId: item.sampleId, caseNo, err });
    return {
      sampleId: item.sampleId,
      status: 'unavailable',
      caseNo,
      // Sent or not, a resend is safe: the same result for the same sample counts once.
      detail: knownDown
        ? 'not delivered (Temporal is down); resend later'
        : 'delivery not confirmed; resend (the same result again counts once)',
    };
  }
}

/**
 * The case's workflow has completed (its late-result window passed): the result is kept on the
 * case's record and put on the escalation list, red when positive, for the command centre.
 */
async function lateResult(app: ApiContext, key: ApiKey, item: Item, caseNo: string): Promise<Answer> {
  const positive = item.result === 'positive';
  try {
    await app.db
      .update(samples)
      .set({ result: item.result, resultAt: app.now(), status: 'resulted' })
      .where(eq(samples.sampleId, item.sampleId));
    await app.db
      .insert(escalations)
      .values({
        id: `${caseNo}-L-${item.sampleId}-${item.result}`,
        caseNo,
        kind: 'late_result',
        level: 'command_centre',
        severity: positive ? 'red' : 'info',
        reason: `A ${item.result} result arrived after the case closed`,
        status: 'open',
        openedAt: app.now(),
        sampleId: item.sampleId,
      })
      .onConflictDoNothing({ target: escalations.id });
  } catch (err) {
    app.log.warn('late lab result not recorded', { caseNo, err });
    return { sampleId: item.sampleId, status: 'unavailable', caseNo, detail: 'not recorded; resend' };
  }
  app.log.info('late lab result recorded', { caseNo, sampleId: item.sampleId, byKey: key.id });
  return {
    sampleId: item.sampleId,
    status: 'case_closed',
    caseNo,
    detail: positive
      ? 'recorded on the closed case and escalated to the command centre'
      : 'recorded on the closed case',
  };
}

export const labRoutes: AnyRoute[] = [
  defineRoute({
    method: 'post',
    path: '/api/v1/lab/results',
    operationId: 'postLabResults',
    summary: 'Post one result or a batch of up to 1,000; each result is answered on its own',
    description:
      'Statuses: `applied` (delivered to the case), `corrected` (a different result for a sample already ' +
      'resulted: delivered as a correction, escalated), `duplicate` (the same result again), `unknown_sample`, ' +
      '`not_ordered` (the sample exists but was never ordered: nothing is counted; check the id), ' +
      '`forbidden` (the sample was ordered from another lab), `case_closed` (the case has ended and closed: ' +
      'the result is kept on its record, a positive one escalated), `unavailable` (not delivered now; resend). ' +
      'A single result answers 200 with one answer, a batch with `{ results, counts }`.',
    tags: ['lab'],
    access: { kind: 'key', roles: ['lab', 'admin'] },
    body: LabBody,
    parseBody: parseLabBody,
    responses: {
      200: { description: 'Each result answered', schema: LabAnswer.or(LabBatchAnswer) },
    },
    async handler({ app, key, body, res }) {
      const batch = 'results' in body;
      const items = batch ? body.results : [body];
      const answers = await applyResults(app, key!, items);
      if (!batch) {
        res.status(200).json(answers[0]);
        return;
      }
      const counts: Record<string, number> = {};
      for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
      res.status(200).json({ results: answers, counts });
    },
  }),
];
