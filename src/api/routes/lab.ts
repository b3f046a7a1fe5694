import crypto from 'node:crypto';

import { and, asc, eq, inArray } from 'drizzle-orm';
import type { z } from 'zod';

import { cases, escalations, labResults, samples } from '../../db/schema';
import { LAB_REFUSAL } from '../../domain/case/decide';
import { labResultSignal, labResultUpdate, type LabResultInput, type LabResultReply } from '../../workflows/messages';
import { answeredWrite } from '../answer-writes';
import { actorOf, type ApiKey } from '../auth';
import { isTimeout, reportWaitMs, suspectWorker, updateIdFor } from '../commands';
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

/** What the API knows of a sample from the read model. */
interface KnownSample {
  caseNo: string;
  labId: string | null;
  ordered: boolean;
  /** The read model shows a result for it. */
  resulted: boolean;
  /** A v2-or-later case (its row records the sample's state): it takes the answered lab result. */
  core: boolean;
}

async function applyResults(app: ApiContext, key: ApiKey, items: Item[]): Promise<Answer[]> {
  const ids = [...new Set(items.map((i) => i.sampleId))];
  const known = new Map<string, KnownSample>();
  /** The version of each case's read-model row: sent with an answered result (ANSWER_WRITES_PATCH). */
  const versions = new Map<string, number>();
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
          result: samples.result,
          version: cases.stateVersion,
        })
        .from(samples)
        .leftJoin(cases, eq(cases.caseNo, samples.caseNo))
        .where(inArray(samples.sampleId, chunk));
      for (const r of rows) {
        // v2 records the sample's state; a v1 row is ordered once it has an order time.
        const ordered = r.status ? !['planned', 'cancelled'].includes(r.status) : r.orderedAt !== null;
        const resulted = r.status ? ['resulted', 'corrected'].includes(r.status) : r.result !== 'pending';
        known.set(r.sampleId, { caseNo: r.caseNo, labId: r.labId, ordered, resulted, core: r.status !== null });
        if (r.version !== null) versions.set(r.caseNo, r.version);
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

  // Items of one batch for the same case go one after the other, in the lab's order (so those of
  // one sample do), each answered result sending the read model's version the one before left.
  const answers = new Array<Answer>(items.length);
  const byCase = new Map<string, number[]>();
  items.forEach((item, i) => {
    const group = known.get(item.sampleId)?.caseNo ?? `?${item.sampleId}`;
    byCase.set(group, [...(byCase.get(group) ?? []), i]);
  });
  await mapLimit([...byCase.values()], app.config.API_LAB_BATCH_CONCURRENCY, async (indexes) => {
    for (const i of indexes) answers[i] = await applyOne(app, key, items[i]!, known, delivered, versions);
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
  known: Map<string, KnownSample>,
  delivered: Map<string, string>,
  versions: Map<string, number>,
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
  const input: LabResultInput = {
    sampleId: item.sampleId,
    result: item.result,
    // The lab the sample was ordered from: an admin posts on its behalf.
    labId: key.role === 'lab' ? key.orgId! : (sample.labId ?? 'unknown'),
    reportedAt: item.reportedAt ?? app.now().toISOString(),
    by: actorOf(key),
  };
  try {
    // A sample's first result is answered by its case (and its read-model write made) when a
    // worker is there to answer; a correction goes as a signal, straight into the case's history
    // in the order the lab sent it.
    if (!before && !sample.resulted && sample.core && app.config.API_LAB_ANSWERED && app.config.API_ANSWER_WRITES) {
      const out = await deliverFirst(
        app,
        caseNo,
        { ...input, key: `lab-${crypto.randomUUID()}`, first: true },
        versions,
      );
      if (out.reply) {
        const answer = fromReply(item.sampleId, caseNo, out.reply);
        // The case holds this result (taken now, or already: a resend after a lost answer).
        if (answer.status === 'applied' || answer.status === 'duplicate') delivered.set(item.sampleId, item.result);
        return answer;
      }
    } else {
      await app.ops.signal(caseNo, labResultSignal, input);
    }
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
 * A sample's first result, answered by its case (recordLabResult) with its read-model write, which
 * is made here before the lab is answered. Without a worker to answer in time, or when the update
 * failed in a way that leaves its fate unknown, the same result under the same key goes as a signal
 * (queued: durable in the case's history); the case applies whichever copy comes first and answers
 * the other as a duplicate. A case that is gone or closed throws (answered by the caller), as does
 * a signal that could not be sent.
 */
async function deliverFirst(
  app: ApiContext,
  caseNo: string,
  input: LabResultInput & { key: string },
  versions: Map<string, number>,
): Promise<{ reply?: LabResultReply }> {
  const version = versions.get(caseNo);
  // As a health check: a worker known down, or further behind than we would wait, gets the signal
  // at once. Unlike a health check, never longer than API_REPORT_WAIT_MS: a batch's results wait
  // one after another per case, and the whole batch must be answered within the request's time.
  const waitMs = reportWaitMs(
    { API_REPORT_WAIT_MS: app.config.API_REPORT_WAIT_MS, API_REPORT_MAX_WAIT_MS: app.config.API_REPORT_WAIT_MS },
    app.deps.workerBehindMs(),
    app.deps.workerPolling(),
  );
  if (version !== undefined && !app.deps.worker.isOpen && waitMs !== undefined) {
    try {
      const result = await app.ops.update(
        caseNo,
        labResultUpdate,
        { ...input, readModel: { version } },
        { waitMs, updateId: updateIdFor(labResultUpdate.name, input.key, input) },
      );
      const { answer, written } = await answeredWrite(app, caseNo, result);
      if (written !== undefined) versions.set(caseNo, Math.max(written, versions.get(caseNo) ?? 0));
      return { reply: answer };
    } catch (err) {
      if (isTimeout(err)) {
        await suspectWorker(app, `no worker answered a lab result within ${waitMs} ms`, caseNo);
      } else {
        const p = temporalProblem(err, caseNo, 'write');
        // No such case, a closed one, or Temporal known down (not sent): the caller answers these.
        // Temporal too busy for the update (`temporal-busy`) may still take the signal.
        if (
          p &&
          (p.status === 404 ||
            p.problem.slug === 'case-closed' ||
            (p.status === 503 && p.problem.slug !== 'temporal-busy'))
        )
          throw p;
        // Anything else (an earlier build's worker without the update, an aborted update): the
        // queued copy below, which whatever became of the update cannot apply twice.
        app.log.warn('answered lab result failed; sent as a signal', { caseNo, err });
      }
    }
  }
  await app.ops.signal(caseNo, labResultSignal, input);
  return {};
}

/** The case's answer to a lab result, as the lab's status. */
export function fromReply(sampleId: string, caseNo: string, r: LabResultReply): Answer {
  switch (r.status) {
    case 'applied':
    case 'parked': // taken, and counted once the sample's order is confirmed
      return { sampleId, status: 'applied', caseNo };
    case 'corrected':
      return { sampleId, status: 'corrected', caseNo };
    case 'duplicate':
      return { sampleId, status: 'duplicate', caseNo };
  }
  const detail = r.reason;
  switch (r.reason) {
    case LAB_REFUSAL.unknownSample:
      return { sampleId, status: 'unknown_sample', caseNo };
    case LAB_REFUSAL.notOrdered:
      return { sampleId, status: 'not_ordered', caseNo, detail: 'this sample was never ordered; check the id' };
    case LAB_REFUSAL.otherLab:
      return { sampleId, status: 'forbidden', caseNo, detail: 'sample was not ordered from this lab' };
  }
  return { sampleId, status: 'conflicting', caseNo, ...(detail ? { detail } : {}) };
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
      'the result is kept on its record, a positive one escalated), `unavailable` (not delivered now; resend), ' +
      "`conflicting` (sent as the sample's first result, but another result reached the case first: not taken as a " +
      'correction; the command centre confirms with the lab). ' +
      "A sample's first result is applied by its case before the answer, so the case's record shows it at once; " +
      'while no worker runs it is queued in the case history (still `applied`: durable, counted once). ' +
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
