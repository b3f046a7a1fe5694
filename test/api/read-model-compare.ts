import { asc, eq } from 'drizzle-orm';
import request from 'supertest';

import { workflowIdFor } from '../../src/api/ids';
import { caseEvents, cases, escalations, healthChecks, samples } from '../../src/db/schema';
import type { CaseView } from '../../src/domain/case/view';
import { healthCheckSignal, stateQuery, type HealthCheckInput } from '../../src/workflows/messages';
import { waitFor as waitUntil } from '../support/wait';
import { caseInObservation, type Harness } from './harness';

/**
 * The read model against the workflow, for the suites that test how the read model is written
 * (test/api/answer-writes.test.ts, v4; test/api/task-writes.test.ts, v5): what each holds of a
 * case, the wait until they are equal (the promise: once quiet, they are), and the messages those
 * suites send.
 */
export type Auth = { Authorization: string };

export const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000) =>
  waitUntil(what, probe, ms, 150);

export const handleOf = (h: Harness, caseNo: string) => h.temporal.client.workflow.getHandle(workflowIdFor(caseNo));

/** What the read model holds of a case: its row's version, checks, events, escalations and samples. */
export async function readModel(h: Harness, caseNo: string) {
  const [row] = await h.db.select({ version: cases.stateVersion }).from(cases).where(eq(cases.caseNo, caseNo));
  const checks = await h.db
    .select({ id: healthChecks.id })
    .from(healthChecks)
    .where(eq(healthChecks.caseNo, caseNo))
    .orderBy(asc(healthChecks.id));
  const events = await h.db
    .select({ seq: caseEvents.seq, kind: caseEvents.kind })
    .from(caseEvents)
    .where(eq(caseEvents.caseNo, caseNo))
    .orderBy(asc(caseEvents.seq));
  const escs = await h.db
    .select({ id: escalations.id, status: escalations.status })
    .from(escalations)
    .where(eq(escalations.caseNo, caseNo))
    .orderBy(asc(escalations.id));
  const smps = await h.db
    .select({ id: samples.sampleId, status: samples.status })
    .from(samples)
    .where(eq(samples.caseNo, caseNo))
    .orderBy(asc(samples.sampleId));
  return {
    version: row?.version,
    checks: checks.map((c) => c.id),
    events: events.map((e) => `${e.seq}:${e.kind}`),
    escalations: escs.map((e) => `${e.id}:${e.status}`),
    samples: smps.map((x) => `${x.id}:${x.status}`),
  };
}

/** The same, as the workflow has it (its state, not the API's view of it). */
export async function workflowModel(h: Harness, caseNo: string) {
  const v = (await handleOf(h, caseNo).query(stateQuery)) as unknown as CaseView;
  const byId = <T extends { id: string }>(xs: T[]) => [...xs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    version: v.version,
    checks: v.checks.map((c) => c.checkId).sort(),
    events: v.history.map((e) => `${e.seq}:${e.kind}`),
    escalations: byId(v.escalations).map((e) => `${e.id}:${e.status}`),
    samples: byId(v.samples.map((x) => ({ id: x.sampleId, status: x.status }))).map((x) => `${x.id}:${x.status}`),
  };
}

/** Until the read model equals the workflow; the error names what each held last. */
export async function quiet(h: Harness, caseNo: string, ms = 30_000) {
  let last = '';
  try {
    return await waitFor(
      'the read model to equal the workflow',
      async () => {
        const [a, b] = [await workflowModel(h, caseNo), await readModel(h, caseNo)];
        last = JSON.stringify({ workflow: a, readModel: b });
        return JSON.stringify(a) === JSON.stringify(b) ? b : undefined;
      },
      ms,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last ${last}`);
  }
}

export async function historyOf(h: Harness, caseNo: string) {
  return (await handleOf(h, caseNo).fetchHistory()).events ?? [];
}

/** How many read-model writes the case made by activity. */
export const recordCaseActivities = async (h: Harness, caseNo: string) =>
  (await historyOf(h, caseNo)).filter(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'recordCase',
  ).length;

/**
 * A case in observation and a nurse of its hotel, settled: the read model equal to the workflow
 * and nothing pending (an activity write in flight changes what a case hands out).
 */
export async function inObservation(h: Harness): Promise<{ caseNo: string; nurse: Auth }> {
  const { caseNo, nurse } = await caseInObservation(h);
  await quiet(h, caseNo);
  await waitFor('no activity or workflow task pending', async () => {
    const d = await handleOf(h, caseNo).describe();
    return (d.raw.pendingActivities ?? []).length === 0 && !d.raw.pendingWorkflowTask ? true : undefined;
  });
  return { caseNo, nurse };
}

/** A nurse's health check through the API (with the caller's Idempotency-Key, if given). */
export const check = (h: Harness, caseNo: string, nurse: Auth, checkId: string, key?: string) => {
  const req = request(h.app).post(`/api/v1/cases/${caseNo}/health-checks`).set(nurse);
  if (key) req.set('Idempotency-Key', key);
  return req.send({ checkId, temperatureC: 36.6, symptoms: [] });
};

/** A check as the API sends it to the case (the same body as `check` posts). */
export const checkInput = (checkId: string, key: string): HealthCheckInput => ({
  checkId,
  takenAt: new Date().toISOString(),
  temperatureC: 36.6,
  symptoms: [],
  by: { id: 'k-nurse', role: 'medical', name: 'Nurse' },
  key,
});

/** An API whose update went unanswered and that queued the check instead (its copy, as a signal). */
export const queuedCopy = (h: Harness, caseNo: string, checkId: string, key = `queued-${checkId}`) =>
  handleOf(h, caseNo).signal(healthCheckSignal, checkInput(checkId, key));

/** A supervisor extends the stay by a day. */
export const extend = (h: Harness, caseNo: string) =>
  request(h.app)
    .post(`/api/v1/cases/${caseNo}/extend`)
    .set(h.auth('supervisor'))
    .send({ days: 1, reason: 'contact of a new case' });

/** The helpers above, bound to a suite's harness (read when called: suites create it in beforeAll). */
export function compareWith(harness: () => Harness) {
  return {
    readModel: (caseNo: string) => readModel(harness(), caseNo),
    workflowModel: (caseNo: string) => workflowModel(harness(), caseNo),
    quiet: (caseNo: string, ms?: number) => quiet(harness(), caseNo, ms),
    historyOf: (caseNo: string) => historyOf(harness(), caseNo),
    recordCaseActivities: (caseNo: string) => recordCaseActivities(harness(), caseNo),
    inObservation: () => inObservation(harness()),
    check: (caseNo: string, nurse: Auth, checkId: string, key?: string) =>
      check(harness(), caseNo, nurse, checkId, key),
    queuedCopy: (caseNo: string, checkId: string, key?: string) => queuedCopy(harness(), caseNo, checkId, key),
    extend: (caseNo: string) => extend(harness(), caseNo),
  };
}
