import { and, eq, inArray } from 'drizzle-orm';
import type { z } from 'zod';

import { labResults, samples } from '../../db/schema';
import { labResultSignal } from '../../workflows/messages';
import { actorOf, type ApiKey } from '../auth';
import type { ApiContext } from '../context';
import { HttpProblem, zodFieldErrors, type FieldError } from '../problem';
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
  const known = new Map<string, { caseNo: string; labId: string | null }>();
  const applied = new Set<string>();
  try {
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const rows = await app.db
        .select({ sampleId: samples.sampleId, caseNo: samples.caseNo, labId: samples.labId })
        .from(samples)
        .where(inArray(samples.sampleId, chunk));
      for (const r of rows) known.set(r.sampleId, { caseNo: r.caseNo, labId: r.labId });
      const prior = await app.db
        .select({ sampleId: labResults.sampleId })
        .from(labResults)
        .where(and(inArray(labResults.sampleId, chunk), eq(labResults.status, 'applied')));
      for (const r of prior) applied.add(r.sampleId);
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

  const seenInBatch = new Set<string>();
  const answers = await mapLimit(items, app.config.API_LAB_BATCH_CONCURRENCY, async (item): Promise<Answer> => {
    const sample = known.get(item.sampleId);
    if (!sample) return { sampleId: item.sampleId, status: 'unknown_sample' };
    // A lab speaks only for the samples ordered from it; a key with no lab id is the city's own lab service.
    if (key.role === 'lab' && key.orgId && sample.labId && sample.labId !== key.orgId) {
      return { sampleId: item.sampleId, status: 'forbidden', detail: 'sample was not ordered from this lab' };
    }
    if (applied.has(item.sampleId) || seenInBatch.has(item.sampleId)) {
      return { sampleId: item.sampleId, status: 'duplicate', caseNo: sample.caseNo };
    }
    seenInBatch.add(item.sampleId);
    try {
      await app.ops.signal(sample.caseNo, labResultSignal, {
        sampleId: item.sampleId,
        result: item.result,
        labId: key.orgId ?? sample.labId ?? 'unknown',
        reportedAt: item.reportedAt ?? app.now().toISOString(),
        by: actorOf(key),
      });
      return { sampleId: item.sampleId, status: 'applied', caseNo: sample.caseNo };
    } catch (err) {
      app.log.warn('lab result signal failed', { sampleId: item.sampleId, caseNo: sample.caseNo, err });
      return { sampleId: item.sampleId, status: 'unavailable', caseNo: sample.caseNo, detail: 'not delivered; resend' };
    }
  });

  const byId = new Map(items.map((i) => [i.sampleId, i]));
  try {
    // Every result is kept, duplicates and strangers included: the lab's record of what it sent.
    await app.db.insert(labResults).values(
      answers.map((a) => ({
        sampleId: a.sampleId,
        caseNo: a.caseNo ?? null,
        labKeyId: key.id,
        result: byId.get(a.sampleId)!.result,
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

export const labRoutes: AnyRoute[] = [
  defineRoute({
    method: 'post',
    path: '/api/v1/lab/results',
    operationId: 'postLabResults',
    summary: 'Post one result or a batch of up to 1,000; each result is answered on its own',
    description:
      'Statuses: `applied` (delivered to the case), `duplicate` (already delivered), `unknown_sample`, ' +
      '`forbidden` (the sample was ordered from another lab), `unavailable` (not delivered now; resend). ' +
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
