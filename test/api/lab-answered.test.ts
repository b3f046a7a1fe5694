import crypto from 'node:crypto';

import { and, eq } from 'drizzle-orm';
import request from 'supertest';

import { updateIdFor } from '../../src/api/commands';
import { workflowIdFor } from '../../src/api/ids';
import { cases, escalations, hotels, rooms, samples } from '../../src/db/schema';
import type { CaseView } from '../../src/domain/case/view';
import { SIMULATED_LAB_ID } from '../../src/integrations/lab';
import { labResultSignal, labResultUpdate, stateQuery, type LabResultInput } from '../../src/workflows/messages';
import { waitFor as waitUntil } from '../support/wait';
import { caseInObservation, createHarness, liveState, orgKey, startTestWorker, type Harness } from './harness';

/**
 * A sample's first result, answered by its case (recordLabResult, src/api/routes/lab.ts): the API
 * waits for the case's answer and makes its read-model write, so the lab's 200 means the result is
 * in the case's record. A correction goes as a signal, in the lab's order. A first result that a
 * later delivery overtook (an update waits for a worker, a signal does not) never undoes it.
 */
let h: Harness;
let worker: { stop(): Promise<void> };
let lab: { Authorization: string };

beforeAll(async () => {
  // The simulated lab never answers by itself here: the test is the lab.
  // On caseWorkflowV4, which drains and hands its write to the API (a v5 case writes in its task:
  // test/api/task-writes.test.ts).
  h = await createHarness({
    label: 'lab_answered',
    env: { DRILL_DAY_SECONDS: '60', SIM_LAB_DELAY_MS: '86400000', CASE_WORKFLOW_TYPE: 'caseWorkflowV4' },
  });
  await h.db.insert(hotels).values({ id: 'HL', name: 'Lab Hotel', district: 'D1', street: 'S1' });
  await h.db
    .insert(rooms)
    .values(
      Array.from({ length: 20 }, (_, i) => ({ id: `HL-${101 + i}`, hotelId: 'HL', roomNo: String(101 + i), floor: 1 })),
    );
  worker = await startTestWorker(h);
  lab = await orgKey(h, 'lab', SIMULATED_LAB_ID, undefined);
});
afterAll(async () => {
  await worker?.stop();
  await h?.close();
});

const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000) => waitUntil(what, probe, ms, 150);
const live = (caseNo: string) => liveState<CaseView>(h, caseNo);

/** A case in observation with a fever sample ordered from the simulated lab (and nothing pending). */
async function withOrderedSample(): Promise<{ caseNo: string; sampleId: string }> {
  const { caseNo, nurse } = await caseInObservation(h);
  // A fever orders a sample at once.
  const fever = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurse)
    .send({ checkId: `fever-${caseNo}`, temperatureC: 38.7, symptoms: [] });
  expect(fever.status).toBe(200);
  const sampleId = await waitFor('a sample ordered', async () => {
    const [row] = await h.db
      .select({ id: samples.sampleId })
      .from(samples)
      .where(and(eq(samples.caseNo, caseNo), eq(samples.reason, 'fever'), eq(samples.status, 'ordered')));
    return row?.id;
  });
  await settled(caseNo);
  return { caseNo, sampleId };
}

/** No activity or workflow task pending, and the read model at the workflow's version. */
async function settled(caseNo: string): Promise<void> {
  await waitFor('the case settled', async () => {
    const handle = h.temporal.client.workflow.getHandle(workflowIdFor(caseNo));
    const d = await handle.describe();
    if ((d.raw.pendingActivities ?? []).length || d.raw.pendingWorkflowTask) return undefined;
    const v = (await handle.query(stateQuery)) as unknown as CaseView;
    return (await live(caseNo)).version === v.version ? true : undefined;
  });
}

async function historyOf(caseNo: string) {
  return (await h.temporal.client.workflow.getHandle(workflowIdFor(caseNo)).fetchHistory()).events ?? [];
}
const count = (events: Awaited<ReturnType<typeof historyOf>>, what: (e: (typeof events)[number]) => boolean) =>
  events.filter(what).length;
const recordCases = (e: Awaited<ReturnType<typeof historyOf>>[number]) =>
  e.activityTaskScheduledEventAttributes?.activityType?.name === 'recordCase';
const labUpdates = (e: Awaited<ReturnType<typeof historyOf>>[number]) =>
  e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === 'recordLabResult';
const labSignals = (e: Awaited<ReturnType<typeof historyOf>>[number]) =>
  e.workflowExecutionSignaledEventAttributes?.signalName === 'labResult';

async function sampleRow(sampleId: string) {
  const [row] = await h.db.select().from(samples).where(eq(samples.sampleId, sampleId));
  return row!;
}

const post = (body: object) => request(h.app).post('/api/v1/lab/results').set(lab).send(body);

test("a sample's first result is applied by its case before the 200: the read model has it at once, no activity wrote it", async () => {
  const { caseNo, sampleId } = await withOrderedSample();
  const before = await historyOf(caseNo);
  const res = await post({ sampleId, result: 'negative' });
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ sampleId, status: 'applied', caseNo });
  // Read at once: the answer came after the write.
  expect(await sampleRow(sampleId)).toMatchObject({ status: 'resulted', result: 'negative' });
  const after = await historyOf(caseNo);
  // Delivered as the answered update, not as a signal; no recordCase activity for it, then or later.
  expect(count(after, labSignals)).toBe(0);
  expect(count(after, labUpdates)).toBe(1);
  await new Promise((r) => setTimeout(r, 1000));
  expect(count(await historyOf(caseNo), recordCases)).toBe(count(before, recordCases));

  // The same result again is a duplicate (the API knows it); nothing changes.
  const again = await post({ sampleId, result: 'negative' });
  expect(again.body).toEqual({ sampleId, status: 'duplicate', caseNo });
  expect(count(await historyOf(caseNo), labSignals)).toBe(0);
});

test("the lab's correction goes as a signal in the lab's order, and reaches the read model with its escalation", async () => {
  const { caseNo, sampleId } = await withOrderedSample();
  expect((await post({ sampleId, result: 'negative' })).body.status).toBe('applied');
  const res = await post({ sampleId, result: 'positive' });
  expect(res.body).toEqual({ sampleId, status: 'corrected', caseNo });
  expect(count(await historyOf(caseNo), labSignals)).toBe(1);
  await waitFor('the correction in the read model', async () =>
    (await sampleRow(sampleId)).status === 'corrected' ? true : undefined,
  );
  expect(await sampleRow(sampleId)).toMatchObject({ result: 'positive' });
  const open = await h.db.select().from(escalations).where(eq(escalations.caseNo, caseNo));
  expect(open.map((e) => e.kind)).toContain('result_corrected');
});

/** The first result as the API sends it to the case (key and `first`, as src/api/routes/lab.ts does). */
const firstResult = (sampleId: string, result: 'negative' | 'positive', key: string): LabResultInput => ({
  sampleId,
  result,
  labId: SIMULATED_LAB_ID,
  reportedAt: new Date().toISOString(),
  by: { id: 'k-lab', role: 'lab', name: 'lab' },
  key,
  first: true,
});

test("a first result overtaken by the lab's later correction does not undo it: the command centre confirms", async () => {
  const { caseNo, sampleId } = await withOrderedSample();
  const handle = h.temporal.client.workflow.getHandle(workflowIdFor(caseNo));
  // The lab's negative went as an update that waited for a worker; meanwhile its correction to
  // positive, sent later, went straight into history as a signal and was applied first.
  await handle.signal(labResultSignal, { ...firstResult(sampleId, 'positive', 'k-later'), first: undefined });
  const key = `lab-${crypto.randomUUID()}`;
  const stale = firstResult(sampleId, 'negative', key);
  const answer = await handle.executeUpdate(labResultUpdate, {
    args: [stale],
    updateId: updateIdFor(labResultUpdate.name, key, stale),
  });
  expect(answer).toMatchObject({ applied: false, status: 'conflicting' });
  const v = (await handle.query(stateQuery)) as unknown as CaseView;
  expect(v.samples.find((x) => x.sampleId === sampleId)).toMatchObject({ result: 'positive' });
  // Put to a person (not red: the result sent is a negative; the positive has its own escalation).
  const esc = v.escalations.find((e) => e.kind === 'unexpected_result' && e.sampleId === sampleId);
  expect(esc).toMatchObject({ status: 'open', level: 'command_centre' });
  await waitFor('the escalation in the read model', async () => {
    const rows = await h.db.select().from(escalations).where(eq(escalations.caseNo, caseNo));
    return rows.some((e) => e.kind === 'unexpected_result') ? true : undefined;
  });
  expect(await sampleRow(sampleId)).toMatchObject({ result: 'positive' });
});

test('the answered result and its queued copy (same key) count once, whichever lands first', async () => {
  const { caseNo, sampleId } = await withOrderedSample();
  const handle = h.temporal.client.workflow.getHandle(workflowIdFor(caseNo));
  const key = `lab-${crypto.randomUUID()}`;
  const input = firstResult(sampleId, 'negative', key);
  // No worker answered in time, so the API queued the copy; then the update landed after all.
  await handle.signal(labResultSignal, input);
  const answer = await handle.executeUpdate(labResultUpdate, {
    args: [input],
    updateId: updateIdFor(labResultUpdate.name, key, input),
  });
  // The copy's own answer, kept under the key.
  expect(answer).toMatchObject({ applied: true, status: 'applied' });
  const v = (await handle.query(stateQuery)) as unknown as CaseView;
  const sample = v.samples.find((x) => x.sampleId === sampleId);
  expect(sample).toMatchObject({ status: 'resulted', result: 'negative' });
  expect(sample!.results).toHaveLength(1);
  expect(v.escalations.filter((e) => e.sampleId === sampleId)).toHaveLength(0);
  await settled(caseNo);
  expect(await sampleRow(sampleId)).toMatchObject({ status: 'resulted', result: 'negative' });
});

test("an answer the API missed, then the result's queued copy: the case makes the read-model write itself", async () => {
  const { caseNo, sampleId } = await withOrderedSample();
  const handle = h.temporal.client.workflow.getHandle(workflowIdFor(caseNo));
  const key = `lab-${crypto.randomUUID()}`;
  const input = firstResult(sampleId, 'negative', key);
  // The update landed and answered with its write, but the API had stopped waiting: nobody makes it.
  const [row] = await h.db.select({ version: cases.stateVersion }).from(cases).where(eq(cases.caseNo, caseNo));
  const answer = await handle.executeUpdate(labResultUpdate, {
    args: [{ ...input, readModel: { version: row!.version } }],
    updateId: updateIdFor(labResultUpdate.name, key, input),
  });
  expect(answer.readModelWrite).toBeDefined();
  expect(await sampleRow(sampleId)).toMatchObject({ status: 'ordered' });
  // The API's queued copy, sent when it stopped waiting. The case's next wake-up is far off.
  await handle.signal(labResultSignal, input);
  await waitFor(
    'the result in the read model',
    async () => ((await sampleRow(sampleId)).status === 'resulted' ? true : undefined),
    8000,
  );
  await settled(caseNo);
});

test('with API_LAB_ANSWERED=false (a rolling upgrade from a build without the update) a first result goes as a signal', async () => {
  const { caseNo, sampleId } = await withOrderedSample();
  const config = h.config as { API_LAB_ANSWERED: boolean };
  config.API_LAB_ANSWERED = false;
  try {
    expect((await post({ sampleId, result: 'negative' })).body).toEqual({ sampleId, status: 'applied', caseNo });
  } finally {
    config.API_LAB_ANSWERED = true;
  }
  const events = await historyOf(caseNo);
  expect(count(events, labSignals)).toBe(1);
  expect(count(events, labUpdates)).toBe(0);
  await waitFor('the result in the read model', async () =>
    (await sampleRow(sampleId)).status === 'resulted' ? true : undefined,
  );
});

test('a batch of 1,000 with the first results of 4 cases among typos: each answered, those 4 in the read model at the 200', async () => {
  const made = await Promise.all(Array.from({ length: 4 }, () => withOrderedSample()));
  const ids = made.map((m) => m.sampleId);
  const typos = Array.from({ length: 996 }, (_, i) => `NOSUCH-${i}`);
  const res = await post({
    results: [
      ...ids.map((sampleId) => ({ sampleId, result: 'negative' })),
      ...typos.map((sampleId) => ({ sampleId, result: 'negative' })),
    ],
  });
  expect(res.status).toBe(200);
  expect(res.body.counts).toEqual({ applied: 4, unknown_sample: 996 });
  for (const id of ids) expect(await sampleRow(id)).toMatchObject({ status: 'resulted', result: 'negative' });
});
