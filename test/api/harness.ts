import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type express from 'express';
import request from 'supertest';

import { createActivities } from '../../src/activities';
import type { CaseActivities } from '../../src/activities/types';
import { createApp, type AppDeps } from '../../src/api/app';
import { createMetrics, type ApiMetrics } from '../../src/api/metrics';
import { createApiKey, type NewKey } from '../../src/auth/keys';
import { loadConfig, type Config } from '../../src/config';
import type { Db } from '../../src/db';
import type { CaseView } from '../../src/domain/case/view';
import { cases, escalations, hotels, rooms, samples } from '../../src/db/schema';
import { createIntegrations, type Integrations } from '../../src/integrations';
import { createLogger, type Logger } from '../../src/log';
import { createWorker } from '../../src/worker';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { connectTest, testNamespace, uniqueQueue } from '../support/temporal';
import { waitFor } from '../support/wait';

/** The keys every API test can use: each role, inside and outside the seeded jurisdiction. */
export const KEY_SPECS = {
  community: { name: 'Community S1', role: 'community', district: 'D1', street: 'S1' },
  communityOther: { name: 'Community S2', role: 'community', district: 'D1', street: 'S2' },
  hotel: { name: 'Hotel H1 desk', role: 'hotel', district: 'D1', orgId: 'H1' },
  hotelOther: { name: 'Hotel H2 desk', role: 'hotel', district: 'D1', orgId: 'H2' },
  transport: { name: 'Transport D1', role: 'transport', district: 'D1' },
  medical: { name: 'Nurse H1', role: 'medical', district: 'D1', orgId: 'H1' },
  medicalOther: { name: 'Nurse H2', role: 'medical', district: 'D1', orgId: 'H2' },
  lab: { name: 'Lab 1', role: 'lab', orgId: 'LAB1' },
  labOther: { name: 'Lab 2', role: 'lab', orgId: 'LAB2' },
  supervisor: { name: 'Supervisor D1', role: 'supervisor', district: 'D1' },
  supervisorOther: { name: 'Supervisor D2', role: 'supervisor', district: 'D2' },
  admin: { name: 'Admin', role: 'admin' },
} satisfies Record<string, NewKey>;
export type KeyName = keyof typeof KEY_SPECS;

export interface Harness {
  app: express.Express;
  config: Config;
  db: Db;
  database: TestDatabase;
  temporal: Awaited<ReturnType<typeof connectTest>>;
  metrics: ApiMetrics;
  keys: Record<KeyName, string>;
  keyIds: Record<KeyName, string>;
  adminToken: string;
  auth(name: KeyName): { Authorization: string };
  close(): Promise<void>;
}

export interface HarnessOptions {
  label: string;
  env?: Record<string, string>;
  deps?: Partial<AppDeps>;
}

export async function createHarness(opts: HarnessOptions): Promise<Harness> {
  const database = await createTestDatabase(`api_${opts.label}`);
  const temporal = await connectTest();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `shaodian-api-${opts.label}-`));
  const config = loadConfig({
    DATA_DIR: dataDir,
    TEMPORAL_NAMESPACE: testNamespace(),
    TEMPORAL_TASK_QUEUE: uniqueQueue(opts.label),
    LOG_LEVEL: 'silent',
    DEFAULT_POLICY: 'drill',
    DRILL_DAY_SECONDS: '20',
    API_HMAC_KEY: crypto.randomBytes(32).toString('base64'),
    ...opts.env,
  });
  const metrics = createMetrics({ defaultMetrics: false });
  const adminToken = crypto.randomBytes(24).toString('base64url');
  const app = createApp({
    config,
    db: database.db,
    temporal: { client: temporal.client, connection: temporal.connection },
    log: createLogger('silent'),
    adminToken,
    metrics,
    ...opts.deps,
  });
  const keys = {} as Record<KeyName, string>;
  const keyIds = {} as Record<KeyName, string>;
  for (const [name, spec] of Object.entries(KEY_SPECS) as [KeyName, NewKey][]) {
    const k = await createApiKey(database.db, spec);
    keys[name] = k.key;
    keyIds[name] = k.identity.id;
  }
  return {
    app,
    config,
    db: database.db,
    database,
    temporal,
    metrics,
    keys,
    keyIds,
    adminToken,
    auth: (name) => ({ Authorization: `Bearer ${keys[name]}` }),
    async close() {
      // Let in-flight client retries (an update given up on at its deadline) settle first.
      await new Promise((r) => setTimeout(r, 500));
      await temporal.close();
      await database.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A transfer body that passes validation, for street S1 of district D1. */
export function validTransfer(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: `req-${crypto.randomUUID()}`,
    district: 'D1',
    street: 'S1',
    person: {
      name: '张小明',
      idNumber: '110101199001011234',
      phone: '+86 138 0000 0000',
      birthDate: '1990-01-01',
      chronicConditions: ['hypertension'],
    },
    homeAddress: '1 Example Road, Room 101',
    pickupAddress: '1 Example Road',
    transport: 'vehicle',
    reason: 'close_contact',
    ...overrides,
  };
}

/** Read-model rows for reads, jurisdiction and the dashboard: hotels H1 (D1), H2 (D1), H9 (D2). */
export async function seedReadModel(db: Db, now = new Date()): Promise<{ caseNos: string[] }> {
  await db.insert(hotels).values([
    { id: 'H1', name: 'Hotel One', district: 'D1', street: 'S1' },
    { id: 'H2', name: 'Hotel Two', district: 'D1', street: 'S2' },
    { id: 'H9', name: 'Hotel Nine', district: 'D2', street: 'S9' },
  ]);
  const roomRows: (typeof rooms.$inferInsert)[] = [];
  const states = [
    'free',
    'free',
    'free',
    'occupied',
    'occupied',
    'awaiting_disinfection',
    'reserved',
    'out_of_service',
  ] as const;
  states.forEach((state, i) =>
    roomRows.push({ id: `H1-${100 + i}`, hotelId: 'H1', roomNo: `${100 + i}`, floor: 1, state }),
  );
  ['free', 'occupied', 'occupied', 'occupied'].forEach((state, i) =>
    roomRows.push({ id: `H2-${200 + i}`, hotelId: 'H2', roomNo: `${200 + i}`, floor: 2, state: state as 'free' }),
  );
  ['free', 'free'].forEach((state, i) =>
    roomRows.push({ id: `H9-${900 + i}`, hotelId: 'H9', roomNo: `${900 + i}`, floor: 9, state: state as 'free' }),
  );
  await db.insert(rooms).values(roomRows);

  const h = 3_600_000;
  const base = {
    policyName: 'drill',
    requestedAt: new Date(now.getTime() - 5 * 24 * h),
  };
  const rows: (typeof cases.$inferInsert)[] = [
    {
      caseNo: 'QCSEED000001',
      district: 'D1',
      street: 'S1',
      phase: 'OBSERVATION',
      colour: 'green',
      hotelId: 'H1',
      roomId: 'H1-103',
      releaseDue: new Date(now.getTime() + 2 * h),
      inspectionStatus: 'passed',
      displayName: '张*明',
    },
    {
      caseNo: 'QCSEED000002',
      district: 'D1',
      street: 'S1',
      phase: 'OBSERVATION',
      colour: 'red',
      hotelId: 'H1',
      roomId: 'H1-104',
      releaseDue: new Date(now.getTime() + 26 * h),
      inspectionStatus: 'requested',
      openEscalations: 1,
      openRedEscalations: 1,
      displayName: 'J***n',
    },
    {
      caseNo: 'QCSEED000003',
      district: 'D1',
      street: 'S2',
      phase: 'RELEASE_PENDING',
      colour: 'yellow',
      hotelId: 'H2',
      roomId: 'H2-201',
      releaseDue: new Date(now.getTime() + 30 * h),
      inspectionStatus: 'failed',
      openEscalations: 1,
    },
    { caseNo: 'QCSEED000004', district: 'D1', street: 'S1', phase: 'REQUESTED', colour: null },
    {
      caseNo: 'QCSEED000005',
      district: 'D1',
      street: 'S2',
      phase: 'RELEASED',
      colour: 'green',
      hotelId: 'H2',
      endedAt: now,
    },
    { caseNo: 'QCSEED000006', district: 'D2', street: 'S9', phase: 'OBSERVATION', colour: 'green', hotelId: 'H9' },
  ].map((r) => ({ ...base, workflowId: `case-${r.caseNo}`, requestId: `seed-${r.caseNo}`, ...r }));
  await db.insert(cases).values(rows);

  await db.insert(escalations).values([
    {
      id: 'QCSEED000002-E1',
      caseNo: 'QCSEED000002',
      hotelId: 'H1',
      kind: 'fever',
      level: 'doctor',
      severity: 'red',
      reason: 'Temperature 38.2',
      openedAt: new Date(now.getTime() - 3 * h),
    },
    {
      id: 'QCSEED000003-E1',
      caseNo: 'QCSEED000003',
      hotelId: 'H2',
      kind: 'door_alarm',
      level: 'nurse',
      severity: 'amber',
      reason: 'Door opened',
      openedAt: new Date(now.getTime() - 1 * h),
    },
    {
      id: 'QCSEED000006-E1',
      caseNo: 'QCSEED000006',
      hotelId: 'H9',
      kind: 'missed_check',
      level: 'nurse',
      severity: 'amber',
      reason: 'Missed 08:00',
      openedAt: new Date(now.getTime() - 2 * h),
    },
    {
      id: 'QCSEED000001-E1',
      caseNo: 'QCSEED000001',
      hotelId: 'H1',
      kind: 'missed_check',
      level: 'reminder',
      severity: 'amber',
      reason: 'Missed',
      status: 'acked',
      openedAt: new Date(now.getTime() - 9 * h),
    },
  ]);
  await db.insert(samples).values([
    {
      sampleId: 'QCSEED000001-S1',
      caseNo: 'QCSEED000001',
      type: 'PCR',
      reason: 'scheduled',
      labId: 'LAB1',
      dueAt: now,
      orderedAt: now,
      status: 'ordered',
    },
    {
      sampleId: 'QCSEED000001-S2',
      caseNo: 'QCSEED000001',
      type: 'PCR',
      reason: 'scheduled',
      labId: 'LAB2',
      dueAt: now,
      orderedAt: now,
      status: 'ordered',
    },
  ]);
  return { caseNos: rows.map((r) => r.caseNo) };
}

/**
 * The live case from its workflow, as a supervisor sees it. When the query misses the API's
 * deadline (a loaded CI box) the API answers from the read model with `state: null` and source
 * "read-model", its documented fallback; this asks again until the workflow answers.
 */
export async function liveState<T>(h: Harness, caseNo: string, ms = 30_000): Promise<T> {
  return waitFor(
    `the live view of ${caseNo}`,
    async () => {
      const res = await request(h.app).get(`/api/v1/cases/${caseNo}`).set(h.auth('supervisor'));
      if (res.status !== 200) throw new Error(`GET /cases/${caseNo}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.source === 'workflow' ? (res.body.state as T) : undefined;
    },
    ms,
    250,
  );
}

/** A key made through the admin API for an organisation (a hotel, a lab); `district` undefined for a lab. */
export async function orgKey(
  h: Harness,
  role: string,
  orgId: string,
  district: string | undefined = 'D1',
): Promise<{ Authorization: string }> {
  const res = await request(h.app)
    .post('/api/v1/admin/keys')
    .set('X-Admin-Token', h.adminToken)
    .send({ name: `${role} of ${orgId}`, role, district, orgId });
  if (res.status !== 201) throw new Error(`POST /admin/keys: ${res.status} ${JSON.stringify(res.body)}`);
  return { Authorization: `Bearer ${res.body.key}` };
}

/**
 * A self-drive case of street S1 (drill policy) through the API, given a room, arrived at its
 * hotel and in observation; with its hotel desk's and nurse's keys. Needs a worker and rooms.
 */
export async function caseInObservation(
  h: Harness,
): Promise<{ caseNo: string; hotel: { Authorization: string }; nurse: { Authorization: string } }> {
  const filed = await request(h.app)
    .post('/api/v1/transfers')
    .set(h.auth('community'))
    .send(validTransfer({ policyName: 'drill', transport: 'self_drive', pickupAddress: undefined }));
  if (filed.status !== 202) throw new Error(`POST /transfers: ${filed.status} ${JSON.stringify(filed.body)}`);
  const caseNo = filed.body.caseNo as string;
  const hotelId = await waitFor(
    'a room',
    async () => (await liveState<CaseView>(h, caseNo)).room?.hotelId,
    30_000,
    150,
  );
  const hotel = await orgKey(h, 'hotel', hotelId);
  const nurse = await orgKey(h, 'medical', hotelId);
  const arrival = await request(h.app).post(`/api/v1/cases/${caseNo}/arrival`).set(hotel).send({});
  if (arrival.status !== 202) throw new Error(`POST /arrival: ${arrival.status} ${JSON.stringify(arrival.body)}`);
  await waitFor(
    'observation',
    async () => ((await liveState<CaseView>(h, caseNo)).phase === 'OBSERVATION' ? true : undefined),
    30_000,
    150,
  );
  return { caseNo, hotel, nurse };
}

/**
 * A worker for the harness's task queue with the real activities (simulators behind them), as
 * `npm start` runs it; `stop()` shuts it down and waits for it.
 */
export interface TestWorker {
  stop(): Promise<void>;
}

export async function startTestWorker(
  h: Harness,
  opts: {
    /** The activities to run, given the harness's database and the simulators (to wrap either, as a test asks). */
    activities?: (db: Db, integrations: Integrations, log: Logger) => CaseActivities;
  } = {},
): Promise<TestWorker> {
  const log = createLogger('warn');
  const integrations = createIntegrations(h.config, { db: h.db, log });
  const activities = opts.activities?.(h.db, integrations, log) ?? createActivities({ db: h.db, integrations, log });
  const worker = await createWorker({
    connection: h.temporal.nativeConnection,
    config: h.config,
    codec: h.temporal.codec,
    activities,
    taskQueue: h.config.TEMPORAL_TASK_QUEUE,
  });
  const running = worker.run();
  return {
    async stop() {
      integrations.close();
      worker.shutdown();
      await running;
    },
  };
}
