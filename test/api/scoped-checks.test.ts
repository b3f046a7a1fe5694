import request from 'supertest';

import { createApp } from '../../src/api/app';
import { createMetrics, type ApiMetrics } from '../../src/api/metrics';
import { workflowIdFor } from '../../src/api/ids';
import type { CaseView } from '../../src/domain/case/view';
import { createLogger } from '../../src/log';
import {
  createHarness,
  type Harness,
  liveState,
  seedReadModel,
  validTransfer,
  startTestWorker,
  type TestWorker,
} from './harness';

/**
 * A health check's jurisdiction judged by the case itself (`recordHealthCheckInScope`,
 * API_SCOPED_CHECKS): through the API, as nurses send checks. Must hold: a key the case does not
 * cover gets 403 and nothing is recorded; the case's own nurse gets the answer with nothing read
 * first; a case that knows no scoped check (an older type) gets the API's own check and the plain
 * update, answered the same; a retry through either way is one check; with the setting off, the
 * API judges every check itself.
 */
let h: Harness;
let worker: TestWorker | undefined;

beforeAll(async () => {
  h = await createHarness({ label: 'scoped', env: { DRILL_DAY_SECONDS: '20' } });
  await seedReadModel(h.db);
  worker = await startTestWorker(h);
});
afterAll(async () => {
  await worker?.stop();
  await h?.close();
});

/** Another API process on the same cluster and database, with its own settings and metrics. */
function otherApi(env: Partial<Harness['config']>): { app: ReturnType<typeof createApp>; metrics: ApiMetrics } {
  const metrics = createMetrics({ defaultMetrics: false });
  const app = createApp({
    config: { ...h.config, ...env },
    db: h.db,
    temporal: { client: h.temporal.client, connection: h.temporal.connection },
    log: createLogger('silent'),
    adminToken: h.adminToken,
    metrics,
  });
  return { app, metrics };
}

async function newKey(body: Record<string, unknown>): Promise<{ Authorization: string }> {
  const res = await request(h.app).post('/api/v1/admin/keys').set('X-Admin-Token', h.adminToken).send(body);
  expect(res.status).toBe(201);
  return { Authorization: `Bearer ${res.body.key}` };
}

async function waitFor(caseNo: string, pred: (s: CaseView) => boolean, what: string): Promise<CaseView> {
  const deadline = Date.now() + 30_000;
  let s: CaseView | undefined;
  while (Date.now() < deadline) {
    s = await liveState<CaseView>(h, caseNo);
    if (pred(s)) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; phase ${s?.phase}`);
}

/** A case filed through `app`, arrived, in observation: its number and its hotel's nurse. */
async function caseInObservation(app: ReturnType<typeof createApp> = h.app) {
  const filed = await request(app).post('/api/v1/transfers').set(h.auth('community')).send(validTransfer());
  expect(filed.status).toBe(202);
  const caseNo = filed.body.caseNo as string;
  const transit = await waitFor(caseNo, (s) => s.phase === 'IN_TRANSIT', 'transport dispatched');
  const hotelId = transit.room!.hotelId;
  const hotel = await newKey({ name: 'Front desk', role: 'hotel', district: 'D1', orgId: hotelId });
  const arrived = await request(h.app).post(`/api/v1/cases/${caseNo}/arrival`).set(hotel).send({});
  expect(arrived.status).toBe(202);
  await waitFor(caseNo, (s) => s.phase === 'OBSERVATION', 'observation');
  const nurse = await newKey({ name: 'Nurse', role: 'medical', district: 'D1', orgId: hotelId });
  // A nurse of the district's other hotel (whichever of H1 and H2 the room is not in).
  const foreignNurse = await newKey({
    name: 'Nurse next door',
    role: 'medical',
    district: 'D1',
    orgId: `${hotelId}-next`,
  });
  return { caseNo, hotelId, nurse, foreignNurse };
}

/** A health check on the case through `app`, by `key` (headers). */
const postCheck = (
  app: ReturnType<typeof createApp>,
  caseNo: string,
  key: Record<string, string>,
  body: Record<string, unknown>,
) => request(app).post(`/api/v1/cases/${caseNo}/health-checks`).set(key).send(body);

const updates = async (metrics: ApiMetrics) =>
  Object.fromEntries(
    (await metrics.updates.get()).values.map((v) => [`${v.labels.update}:${v.labels.outcome}`, v.value]),
  );
const checkIds = async (caseNo: string) => (await liveState<CaseView>(h, caseNo)).checks.map((c) => c.checkId).sort();

test('a v6 case judges the check itself: another hotel’s nurse 403 with nothing recorded, its own nurse answered, nothing read first', async () => {
  const { caseNo, nurse, foreignNurse } = await caseInObservation();
  const before = await updates(h.metrics);
  const foreign = await postCheck(h.app, caseNo, foreignNurse, { checkId: 'foreign', temperatureC: 39.5 });
  expect(foreign.status).toBe(403);
  expect(foreign.headers['content-type']).toMatch(/application\/problem\+json/);
  expect(foreign.body).toMatchObject({ status: 403, type: expect.stringMatching(/jurisdiction/) });
  // A nurse bound to no hotel is refused by the API itself, before anything is sent.
  const unbound = await newKey({ name: 'Nurse, no hotel', role: 'medical', district: 'D1' });
  expect((await postCheck(h.app, caseNo, unbound, { temperatureC: 36.6 })).status).toBe(403);
  const own = await postCheck(
    h.app,
    caseNo,
    { ...nurse, 'Idempotency-Key': 'scoped-own-1' },
    { checkId: 'own', temperatureC: 36.6, symptoms: [] },
  );
  expect(own.status).toBe(200);
  expect(own.body.result).toMatchObject({ checkId: 'own', fever: false, duplicate: false });
  expect(own.body.result.readModelWrite).toBeUndefined();
  // A retry (the tablet did not hear the answer): the same answer, one check.
  const retry = await postCheck(
    h.app,
    caseNo,
    { ...nurse, 'Idempotency-Key': 'scoped-own-1' },
    { checkId: 'own', temperatureC: 36.6, symptoms: [] },
  );
  expect(retry.status).toBe(200);
  expect(retry.body.result).toEqual(own.body.result);
  expect(await checkIds(caseNo)).toEqual(['own']);
  // The refused check never reached the history: no fever escalation, no trace of it.
  const history = await h.temporal.client.workflow.getHandle(workflowIdFor(caseNo)).fetchHistory();
  const accepted = (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
  expect(accepted.map((e) => e.workflowExecutionUpdateAcceptedEventAttributes!.acceptedRequest!.input!.name)).toEqual([
    'recordHealthCheckInScope',
  ]);
  // The same foreign tablet again: 403, judged by the API this time (it was refused this case
  // lately), so the case's worker is not asked again.
  const foreignAgain = await postCheck(h.app, caseNo, foreignNurse, { checkId: 'foreign-2', temperatureC: 39.5 });
  expect(foreignAgain.status).toBe(403);
  expect(foreignAgain.body.type).toMatch(/jurisdiction/);
  const after = await updates(h.metrics);
  expect((after['recordHealthCheckInScope:ok'] ?? 0) - (before['recordHealthCheckInScope:ok'] ?? 0)).toBe(2);
  expect((after['recordHealthCheckInScope:rejected'] ?? 0) - (before['recordHealthCheckInScope:rejected'] ?? 0)).toBe(
    1,
  );
  expect(after['recordHealthCheck:ok'] ?? 0).toBe(before['recordHealthCheck:ok'] ?? 0);
});

test('a case of an older type knows no scoped check: the API checks the scope and sends the plain update, answered the same', async () => {
  // Filed by an API that starts v4 cases (a build before v5); checked through one that has not seen the case start.
  const v4api = otherApi({ CASE_WORKFLOW_TYPE: 'caseWorkflowV4' });
  const { caseNo, nurse, foreignNurse } = await caseInObservation(v4api.app);
  const fresh = otherApi({});
  const foreign = await postCheck(fresh.app, caseNo, foreignNurse, { checkId: 'v4-foreign', temperatureC: 36.6 });
  expect(foreign.status).toBe(403);
  const own = await postCheck(fresh.app, caseNo, nurse, { checkId: 'v4-own', temperatureC: 36.6 });
  expect(own.status).toBe(200);
  expect(own.body.result).toMatchObject({ checkId: 'v4-own', duplicate: false });
  expect(await checkIds(caseNo)).toEqual(['v4-own']);
  const m = await updates(fresh.metrics);
  // The first scoped attempt was rejected by name, and the API then learnt the case's type: the
  // next check goes straight to the plain update.
  expect(m['recordHealthCheck:ok']).toBe(1);
  await new Promise((r) => setTimeout(r, 500));
  const second = await postCheck(fresh.app, caseNo, nurse, { checkId: 'v4-own-2', temperatureC: 36.6 });
  expect(second.status).toBe(200);
  const m2 = await updates(fresh.metrics);
  expect(m2['recordHealthCheck:ok']).toBe(2);
  expect(m2['recordHealthCheckInScope:rejected']).toBe(m['recordHealthCheckInScope:rejected']);
});

test('with API_SCOPED_CHECKS=false the API judges every check itself (a rolling upgrade from a build without it)', async () => {
  const off = otherApi({ API_SCOPED_CHECKS: false });
  const { caseNo, nurse, foreignNurse } = await caseInObservation();
  expect((await postCheck(off.app, caseNo, foreignNurse, { temperatureC: 36.6 })).status).toBe(403);
  const own = await postCheck(off.app, caseNo, nurse, { checkId: 'off-own', temperatureC: 36.6 });
  expect(own.status).toBe(200);
  const m = await updates(off.metrics);
  expect(m['recordHealthCheck:ok']).toBe(1);
  expect(m['recordHealthCheckInScope:ok']).toBeUndefined();
  expect(m['recordHealthCheckInScope:rejected']).toBeUndefined();
  // The same check again through the scoped way: one check, the first answer.
  const again = await postCheck(h.app, caseNo, nurse, { checkId: 'off-own', temperatureC: 36.6 });
  expect(again.status).toBe(200);
  expect(again.body.result.duplicate).toBe(true);
  expect(await checkIds(caseNo)).toEqual(['off-own']);
});

test('no such case: 404 to a key of the district; a seeded case with no workflow: 403 to another hotel’s nurse, as before', async () => {
  const missing = await request(h.app)
    .post('/api/v1/cases/QCNOSUCHCASE1/health-checks')
    .set(h.auth('medical'))
    .send({ temperatureC: 36.6 });
  expect(missing.status).toBe(404);
  // A nurse bound to no hotel: the case is looked up first, as before (404), then the key refused (403).
  const unbound = await newKey({ name: 'Nurse, no hotel', role: 'medical', district: 'D1' });
  expect(
    (await request(h.app).post('/api/v1/cases/QCNOSUCHCASE1/health-checks').set(unbound).send({ temperatureC: 36.6 }))
      .status,
  ).toBe(404);
  expect(
    (await request(h.app).post('/api/v1/cases/QCSEED000001/health-checks').set(unbound).send({ temperatureC: 36.6 }))
      .status,
  ).toBe(403);
  const seeded = await request(h.app)
    .post('/api/v1/cases/QCSEED000001/health-checks')
    .set(h.auth('medicalOther'))
    .send({ temperatureC: 36.6 });
  expect(seeded.status).toBe(403);
});
