import type { Worker } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';
import request from 'supertest';

import { createActivities } from '../../src/activities';
import { caseEvents, hotels, rooms } from '../../src/db/schema';
import type { CaseView } from '../../src/domain/case/view';
import { createIntegrations, type Integrations } from '../../src/integrations';
import { createLogger } from '../../src/log';
import { createWorker } from '../../src/worker';
import { startWorkerLivenessBeat } from '../../src/worker-liveness';
import { createHarness, validTransfer, type Harness } from './harness';

/**
 * Issue 10 through the API, with a real worker that is stopped and started again: while no
 * worker runs, a health check is queued (202) and applied once when one returns, fever
 * escalation included; a command is not sent (503) and says so; reads say where they come from;
 * /readyz names the worker. The fault suite (test/faults) does the same with whole processes.
 */
let h: Harness;
let integrations: Integrations;
let worker: { w: Worker; running: Promise<void> } | undefined;
const log = createLogger('warn');

async function startWorker() {
  const activities = createActivities({ db: h.db, integrations, log });
  const w = await createWorker({
    connection: h.temporal.nativeConnection,
    config: h.config,
    codec: h.temporal.codec,
    activities,
    taskQueue: h.config.TEMPORAL_TASK_QUEUE,
  });
  worker = { w, running: w.run() };
}
async function stopWorker() {
  worker?.w.shutdown();
  await worker?.running;
  worker = undefined;
}

beforeAll(async () => {
  h = await createHarness({
    label: 'degraded',
    env: {
      DRILL_DAY_SECONDS: '3600',
      API_REPORT_WAIT_MS: '800',
      API_UPDATE_WAIT_MS: '1500',
      API_WORKER_STALL_MS: '3000',
      API_WORKER_LIVENESS_MS: '2000',
      API_PROBE_INTERVAL_MS: '300',
    },
  });
  await h.db.insert(hotels).values({ id: 'HD', name: 'Degraded Hotel', district: 'D1', street: 'S1' });
  await h.db
    .insert(rooms)
    .values(
      Array.from({ length: 5 }, (_, i) => ({ id: `HD-${101 + i}`, hotelId: 'HD', roomNo: String(101 + i), floor: 1 })),
    );
  integrations = createIntegrations(h.config, { db: h.db, log });
  await startWorker();
});
afterAll(async () => {
  await stopWorker();
  integrations?.close();
  await h?.close();
});

type Auth = { Authorization: string };
async function newKey(body: Record<string, unknown>): Promise<Auth> {
  const res = await request(h.app).post('/api/v1/admin/keys').set('X-Admin-Token', h.adminToken).send(body);
  expect(res.status).toBe(201);
  return { Authorization: `Bearer ${res.body.key}` };
}
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}
const getCase = (caseNo: string) => request(h.app).get(`/api/v1/cases/${caseNo}`).set(h.auth('supervisor'));
const live = (caseNo: string) =>
  until('the live case', async () => {
    const r = await getCase(caseNo);
    return r.status === 200 && r.body.source === 'workflow' ? (r.body.state as CaseView) : undefined;
  });

/** A case in observation (a worker running), with its hotel's nurse's key. */
async function caseInObservation(): Promise<{ caseNo: string; nurse: Auth }> {
  const filed = await request(h.app)
    .post('/api/v1/transfers')
    .set(h.auth('community'))
    .send(validTransfer({ transport: 'self_drive', pickupAddress: undefined }));
  expect(filed.status).toBe(202);
  const caseNo = filed.body.caseNo as string;
  await until('a room', async () => ((await live(caseNo)).room ? true : undefined));
  const desk = await newKey({ name: 'Desk', role: 'hotel', district: 'D1', orgId: 'HD' });
  const nurse = await newKey({ name: 'Nurse', role: 'medical', district: 'D1', orgId: 'HD' });
  expect((await request(h.app).post(`/api/v1/cases/${caseNo}/arrival`).set(desk).send({})).status).toBe(202);
  await until('observation', async () => ((await live(caseNo)).phase === 'OBSERVATION' ? true : undefined));
  return { caseNo, nurse };
}

test('no worker: reports queue and land once, commands are not sent and say so, reads and /readyz say why', async () => {
  const { caseNo, nurse } = await caseInObservation();

  // With a worker: applied, and the answer says so.
  const applied = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurse)
    .set('Idempotency-Key', 'hc-0')
    .send({ temperatureC: 36.5 });
  expect(applied.status).toBe(200);
  expect(applied.body).toMatchObject({ status: 'applied', idempotencyKey: 'hc-0', result: { checkId: 'chk-hc-0' } });

  await stopWorker();

  // A fever with no worker: queued after the short wait, and the answer says so.
  const fever = { temperatureC: 38.9 };
  const first = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurse)
    .set('Idempotency-Key', 'hc-1')
    .send(fever);
  expect(first.status).toBe(202);
  expect(first.body).toMatchObject({ status: 'queued', accepted: true, checkId: 'chk-hc-1', idempotencyKey: 'hc-1' });
  expect(first.body.detail).toMatch(/no worker answered/);

  // The tablet retries (same key), and sends another check: both queued at once now that the
  // worker is known to be away.
  const t0 = Date.now();
  const retried = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurse)
    .set('Idempotency-Key', 'hc-1')
    .send(fever);
  const second = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurse)
    .set('Idempotency-Key', 'hc-2')
    .send({ temperatureC: 36.8, checkId: 'slot-am' });
  expect(Date.now() - t0).toBeLessThan(1500);
  expect(retried.status).toBe(202);
  expect(second.status).toBe(202);
  expect(second.body.detail).toMatch(/no worker is running|have waited \d+ s for a worker/);
  // A check the case will refuse (taken before the person arrived): queued now, refused on the record later.
  const early = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurse)
    .set('Idempotency-Key', 'hc-early')
    .send({ temperatureC: 36.6, takenAt: new Date(Date.now() - 20 * 3_600_000).toISOString() });
  expect(early.status).toBe(202);

  // A supervisor's command is not sent, and the answer says exactly that.
  const extend = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/extend`)
    .set(h.auth('supervisor'))
    .set('Idempotency-Key', 'ext-1')
    .send({ days: 1, reason: 'directive' });
  expect(extend.status).toBe(503);
  expect(extend.headers['content-type']).toMatch(/problem\+json/);
  expect(extend.headers['retry-after']).toBeDefined();
  expect(extend.headers['idempotency-key']).toBe('ext-1');
  expect(extend.body).toMatchObject({ dependency: 'worker', idempotencyKey: 'ext-1' });
  expect(extend.body.detail).toMatch(/not sent/);
  // The truth about a case still comes first: no such case is 404, not 503.
  const nowhere = await request(h.app)
    .post('/api/v1/cases/QC000000000000/extend')
    .set(h.auth('supervisor'))
    .send({ days: 1, reason: 'directive' });
  expect([403, 404]).toContain(nowhere.status);

  // Reads: the read model, saying why; /readyz names the worker and stays 200 (degraded).
  const read = await getCase(caseNo);
  expect(read.status).toBe(200);
  expect(read.body).toMatchObject({ source: 'read-model', state: null });
  expect(read.body.warning).toMatch(/No worker is running/);
  const ready = await request(h.app).get('/readyz');
  expect(ready.status).toBe(200);
  expect(ready.body).toMatchObject({ status: 'degraded', checks: { worker: { ok: false }, temporal: { ok: true } } });

  // The worker returns: every queued check is applied once, the fever escalated once.
  await startWorker();
  const after = await until('the queued checks applied', async () => {
    const s = await live(caseNo);
    return s.checks.some((c) => c.checkId === 'slot-am') && s.checks.some((c) => c.checkId === 'chk-hc-1')
      ? s
      : undefined;
  });
  const ids = after.checks.map((c) => c.checkId).sort();
  expect(ids).toEqual(['chk-hc-0', 'chk-hc-1', 'slot-am']);
  expect(after.escalations.filter((e) => e.kind === 'fever')).toHaveLength(1);
  const refused = await until('the refused check on the record', async () => {
    const rows = await h.db
      .select()
      .from(caseEvents)
      .where(and(eq(caseEvents.caseNo, caseNo), eq(caseEvents.kind, 'health_check_refused')));
    return rows.length ? rows : undefined;
  });
  expect(refused).toHaveLength(1);

  // The command, retried with its key once the worker is back: applied once, however often retried.
  const done = await until('the extension applied', async () => {
    const r = await request(h.app)
      .post(`/api/v1/cases/${caseNo}/extend`)
      .set(h.auth('supervisor'))
      .set('Idempotency-Key', 'ext-1')
      .send({ days: 1, reason: 'directive' });
    return r.status === 200 ? r : undefined;
  });
  expect(done.body).toMatchObject({ status: 'applied', idempotencyKey: 'ext-1' });
  const again = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/extend`)
    .set(h.auth('supervisor'))
    .set('Idempotency-Key', 'ext-1')
    .send({ days: 1, reason: 'directive' });
  expect(again.status).toBe(200);
  expect(again.body.result).toEqual(done.body.result);
  expect((await live(caseNo)).stayAdjustDays).toBe(1);
  expect((await request(h.app).get('/readyz')).body.status).toBe('ready');
});

test("a worker that says it is there is behind, not gone: a supervisor's command is sent (504 unknown, never 503), and applied once", async () => {
  const { caseNo } = await caseInObservation();
  await stopWorker();
  // A worker whose polls the probe cannot see (one running flat out in a wave takes its cases'
  // tasks from its sticky queue and seldom polls the shared one) but whose process beats.
  const beat = startWorkerLivenessBeat({
    db: h.db,
    namespace: h.config.TEMPORAL_NAMESPACE,
    taskQueue: h.config.TEMPORAL_TASK_QUEUE,
    status: () => ({ runState: 'RUNNING', workflowPollerState: 'POLLING' }),
    temporalAnswers: async () => undefined,
    intervalMs: 200,
    log,
  });
  const extend = () =>
    request(h.app)
      .post(`/api/v1/cases/${caseNo}/extend`)
      .set(h.auth('supervisor'))
      .set('Idempotency-Key', 'ext-b1')
      .send({ days: 1, reason: 'directive' });
  try {
    await beat.beat();
    await request(h.app).get('/readyz');
    // Sent; nobody answers in time: unknown.
    const first = await extend();
    expect(first.status).toBe(504);
    expect(first.body).toMatchObject({ type: expect.stringMatching(/outcome-unknown$/), idempotencyKey: 'ext-b1' });
    // The unanswered command does not mark a worker that beats down (without the beat it does, and
    // the retry below would be refused 503 "not sent": the first test). The retry is sent too, and
    // joins the first (the same update id).
    const retry = await extend();
    expect(retry.status).toBe(504);
    const ready = await request(h.app).get('/readyz');
    expect(ready.body.checks.worker).toMatchObject({ ok: true });
    // The beat stops (the worker stopped: its row is removed): the next unanswered command marks it
    // down, and the one after is not sent.
    await beat.stop();
    const refused = await until('the worker known down', async () => {
      const r = await extend();
      return r.status === 503 ? r : undefined;
    });
    expect(refused.body).toMatchObject({ dependency: 'worker', idempotencyKey: 'ext-b1' });
    expect((await request(h.app).get('/readyz')).body.checks.worker).toMatchObject({ ok: false });
  } finally {
    await beat.stop();
  }
  // A worker returns: the command, sent three times under one key, is applied once.
  await startWorker();
  const done = await until('the extension applied', async () => {
    const r = await extend();
    return r.status === 200 ? r : undefined;
  });
  expect(done.body).toMatchObject({ status: 'applied', idempotencyKey: 'ext-b1' });
  expect((await live(caseNo)).stayAdjustDays).toBe(1);
});
