import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';

import { createActivities } from '../../src/activities';
import { ErrorCode, type CaseActivities } from '../../src/activities/types';
import { activityEffects, addressInspections, escalations, rooms, samples } from '../../src/db/schema';
import type { Escalation } from '../../src/domain/types';
import { createIntegrations, type Integrations } from '../../src/integrations';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { roomsFor, silentLog, startRecordingServer, testConfig } from '../integrations/helpers';

let tdb: TestDatabase;
let integ: Integrations;
let acts: CaseActivities;
const wf = (caseNo: string) => `case-${caseNo}`;

beforeAll(async () => {
  tdb = await createTestDatabase('activities');
  integ = createIntegrations(testConfig(), { db: tdb.db, log: silentLog });
  acts = createActivities({ db: tdb.db, integrations: integ, log: silentLog });
  await integ.hotel.addHotel({ id: 'act-h', name: 'Act', district: 'Act', rooms: roomsFor(2, 5, 1) });
});
afterAll(async () => {
  integ.close();
  await tdb.drop();
});
afterEach(() => {
  jest.restoreAllMocks();
});

/** A new worker process after a crash: same database, nothing remembered in memory. */
function restartedWorker(): { integ: Integrations; acts: CaseActivities } {
  const i = createIntegrations(testConfig(), { db: tdb.db, log: silentLog });
  return { integ: i, acts: createActivities({ db: tdb.db, integrations: i, log: silentLog }) };
}

/** The test database reached through a TCP proxy the test can cut. */
async function databaseBehindProxy(url: string) {
  const { startTcpProxy } = await import('../support/tcp-proxy');
  const { openDatabase } = await import('../../src/db');
  const target = new URL(url);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  const via = new URL(url);
  via.host = `127.0.0.1:${proxy.port}`;
  const cut = await openDatabase({
    databaseUrl: via.toString(),
    dataDir: '/tmp',
    migrate: false,
    connectTimeoutMs: 500,
  });
  return { proxy, cut };
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('hotel activities', () => {
  it('reserve, check in, check out: each retried, each effect once', async () => {
    const input = { workflowId: wf('A1'), caseNo: 'A1', colour: 'yellow' as const, district: 'Act' };
    const room = await acts.reserveRoom(input);
    expect(room).not.toBeNull();
    expect(await acts.reserveRoom(input)).toEqual(room);
    expect(await restartedWorker().acts.reserveRoom(input)).toEqual(room);
    const held = await tdb.db.select().from(rooms).where(eq(rooms.caseNo, 'A1'));
    expect(held).toHaveLength(1);

    const ref = { workflowId: wf('A1'), caseNo: 'A1', roomId: room!.roomId };
    await acts.checkIn(ref);
    await acts.checkIn(ref);
    await acts.checkOut({ ...ref, terminalDisinfection: false });
    await acts.checkOut({ ...ref, terminalDisinfection: false });
    const [row] = await tdb.db.select().from(rooms).where(eq(rooms.id, room!.roomId));
    expect(row).toMatchObject({ state: 'awaiting_disinfection', lastCaseNo: 'A1', disinfection: 'routine' });
  });

  it('release retried frees the room once', async () => {
    const room = (await acts.reserveRoom({ workflowId: wf('A2'), caseNo: 'A2', colour: 'green', district: 'Act' }))!;
    const ref = { workflowId: wf('A2'), caseNo: 'A2', roomId: room.roomId };
    await acts.releaseRoom(ref);
    await acts.releaseRoom(ref);
    const [row] = await tdb.db.select().from(rooms).where(eq(rooms.id, room.roomId));
    expect(row).toMatchObject({ state: 'free', caseNo: null });
  });

  it('an unknown room is a non-retryable failure', async () => {
    const f = await failureOf(acts.checkIn({ workflowId: wf('A3'), caseNo: 'A3', roomId: 'act-h:999' }));
    expect(f.type).toBe(ErrorCode.UnknownRoom);
    expect(f.nonRetryable).toBe(true);
  });
});

describe('transport activities', () => {
  const input = {
    workflowId: wf('T1'),
    caseNo: 'T1',
    step: 'intake',
    purpose: 'intake' as const,
    hotelId: 'act-h',
    roomNo: '101',
    pickupAddress: 'secret street 1',
  };

  it('a retried dispatch returns the same dispatchId and dispatches once, even after a restart', async () => {
    const spy = jest.spyOn(integ.transport, 'dispatch');
    const first = await acts.dispatchTransport(input);
    const second = await acts.dispatchTransport(input);
    expect(second).toEqual(first);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0]![0].idempotencyKey).toBe('case-T1:transport:intake');

    const after = restartedWorker();
    const spy2 = jest.spyOn(after.integ.transport, 'dispatch');
    expect(await after.acts.dispatchTransport(input)).toEqual(first);
    expect(spy2).not.toHaveBeenCalled();
    after.integ.close();

    // A different step (the hospital transfer) is a different dispatch.
    const hospital = await acts.dispatchTransport({ ...input, step: 'hospital', purpose: 'hospital' });
    expect(hospital.dispatchId).not.toBe(first.dispatchId);
  });

  it('a failed dispatch records nothing, so the retry dispatches', async () => {
    const spy = jest
      .spyOn(integ.transport, 'dispatch')
      .mockRejectedValueOnce(ApplicationFailure.retryable('down', ErrorCode.IntegrationUnavailable));
    const i2 = { ...input, workflowId: wf('T2'), caseNo: 'T2' };
    await expect(acts.dispatchTransport(i2)).rejects.toThrow('down');
    const r = await acts.dispatchTransport(i2);
    expect(r.dispatchId).toMatch(/^simtr-/);
    expect(spy).toHaveBeenCalledTimes(2);
    const effects = await tdb.db
      .select()
      .from(activityEffects)
      .where(eq(activityEffects.workflowId, wf('T2')));
    expect(effects).toHaveLength(1);
  });

  it('a retried cancel cancels once', async () => {
    const spy = jest.spyOn(integ.transport, 'cancel');
    const c = { workflowId: wf('T1'), caseNo: 'T1', dispatchId: 'simtr-x' };
    await acts.cancelTransport(c);
    await acts.cancelTransport(c);
    expect(spy).toHaveBeenCalledTimes(1);
  });
});

describe('lab activity', () => {
  it('a retried order is placed once, and the sample row knows its lab id', async () => {
    const spy = jest.spyOn(integ.lab, 'orderSample');
    const input = {
      workflowId: wf('L1'),
      caseNo: 'L1',
      sampleId: 'L1-S1',
      type: 'PCR',
      reason: 'scheduled',
      hotelId: 'act-h',
    };
    const a = await acts.orderSample(input);
    const b = await acts.orderSample(input);
    const after = restartedWorker();
    const c = await after.acts.orderSample(input);
    after.integ.close();
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    expect(spy).toHaveBeenCalledTimes(1);
    const rows = await tdb.db.select().from(samples).where(eq(samples.sampleId, 'L1-S1'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ caseNo: 'L1', labId: a.labId, result: 'pending', type: 'PCR' });
    expect(rows[0]!.orderedAt?.toISOString()).toBe(a.orderedAt);
  });
});

describe('community activities', () => {
  it('a retried inspection request asks once and keeps the address for the inspector', async () => {
    const spy = jest.spyOn(integ.community, 'requestInspection');
    const input = {
      workflowId: wf('C1'),
      caseNo: 'C1',
      inspectionId: 'C1-I1',
      district: 'Xigu',
      street: 'Fulilu',
      address: 'Building 3, Room 501',
    };
    await acts.requestInspection(input);
    await acts.requestInspection(input);
    expect(spy).toHaveBeenCalledTimes(1);
    const rows = await tdb.db.select().from(addressInspections).where(eq(addressInspections.caseNo, 'C1'));
    expect(rows).toEqual([
      expect.objectContaining({ id: 'C1-I1', address: 'Building 3, Room 501', status: 'requested', street: 'Fulilu' }),
    ]);
  });

  it("the address reaches the inspector's record even when the case's own record wrote the row first", async () => {
    // recordCase carries no PII: it writes the inspection row with an empty address...
    await acts.recordCase({
      row: {
        caseNo: 'C9',
        workflowId: wf('C9'),
        requestId: 'req-C9',
        district: 'Xigu',
        street: 'Fulilu',
        displayName: '张*明',
        phase: 'RELEASE_PENDING',
        policyName: 'standard',
        requestedAt: '2024-03-01T00:00:00.000Z',
        pendingResults: 0,
        openEscalations: 0,
        openRedEscalations: 0,
        inspectionStatus: 'requested',
        stateVersion: 5,
      },
      events: [],
      samples: [],
      checks: [],
      escalations: [],
      inspection: { inspectionId: 'C9-I1', status: 'requested', requestedAt: '2024-03-10T00:00:00.000Z' },
    });
    // ...and the request, a moment later, fills the address in; a later record keeps it.
    await acts.requestInspection({
      workflowId: wf('C9'),
      caseNo: 'C9',
      inspectionId: 'C9-I1',
      district: 'Xigu',
      street: 'Fulilu',
      address: 'Building 5, Room 102',
    });
    const [row] = await tdb.db.select().from(addressInspections).where(eq(addressInspections.id, 'C9-I1'));
    expect(row).toMatchObject({ address: 'Building 5, Room 102', status: 'requested' });
  });

  it('an address the community system refuses (422) fails without retry', async () => {
    const server = await startRecordingServer(() => ({ status: 422, body: { error: 'unknown address' } }));
    const i = createIntegrations(testConfig({ COMMUNITY_URL: server.url }), { db: tdb.db, log: silentLog });
    const a = createActivities({ db: tdb.db, integrations: i, log: silentLog });
    try {
      const f = await failureOf(
        a.requestInspection({
          workflowId: wf('C2'),
          caseNo: 'C2',
          inspectionId: 'C2-I1',
          district: 'Xigu',
          street: 'Fulilu',
          address: 'nowhere',
        }),
      );
      expect(f.type).toBe(ErrorCode.InvalidAddress);
      expect(f.nonRetryable).toBe(true);
      expect(server.requests[0]!.headers['idempotency-key']).toBe('case-C2:inspection:C2-I1');
    } finally {
      await server.close();
    }
  });

  it('a retried hand-over hands over once', async () => {
    const spy = jest.spyOn(integ.community, 'handOver');
    const input = {
      workflowId: wf('C3'),
      caseNo: 'C3',
      district: 'Xigu',
      street: 'Fulilu',
      releasedAt: new Date().toISOString(),
      certificateNo: 'CERT-C3',
    };
    await acts.handOverToCommunity(input);
    await acts.handOverToCommunity(input);
    expect(spy).toHaveBeenCalledTimes(1);
  });
});

describe('notify activity', () => {
  const escalation: Escalation = {
    id: 'N1-E1',
    kind: 'missed_check',
    level: 'reminder',
    severity: 'amber',
    reason: 'check at 08:00 missed',
    status: 'open',
    openedAt: '2024-03-01T01:00:00.000Z',
  };

  it('records the escalation, posts the webhook once per level, and marks it notified', async () => {
    const hook = await startRecordingServer(() => ({ status: 200 }));
    const i = createIntegrations(testConfig({ NOTIFY_WEBHOOK_URL: `${hook.url}/hooks/escalations` }), {
      db: tdb.db,
      log: silentLog,
    });
    const a = createActivities({ db: tdb.db, integrations: i, log: silentLog });
    try {
      const input = { workflowId: wf('N1'), caseNo: 'N1', hotelId: 'act-h', escalation };
      await a.notifyEscalation(input);
      await a.notifyEscalation(input);
      expect(hook.requests).toHaveLength(1);
      expect(hook.requests[0]).toMatchObject({
        path: '/hooks/escalations',
        body: { escalationId: 'N1-E1', caseNo: 'N1', kind: 'missed_check', level: 'reminder', severity: 'amber' },
      });
      expect(hook.requests[0]!.headers['idempotency-key']).toBe('case-N1:notify:N1-E1:reminder');
      const [row] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'N1-E1'));
      expect(row).toMatchObject({ caseNo: 'N1', hotelId: 'act-h', status: 'open', level: 'reminder' });
      expect(row!.notifiedAt).toBeInstanceOf(Date);

      // The chain's next step is a new notice to a new person.
      await a.notifyEscalation({ ...input, escalation: { ...escalation, level: 'nurse' } });
      expect(hook.requests.map((r) => (r.body as { level: string }).level)).toEqual(['reminder', 'nurse']);
    } finally {
      i.close();
      await hook.close();
    }
  });

  it('a webhook that is down fails retryably but the escalation is already on the list', async () => {
    const hook = await startRecordingServer(() => ({ status: 503 }));
    const i = createIntegrations(testConfig({ NOTIFY_WEBHOOK_URL: hook.url }), { db: tdb.db, log: silentLog });
    const a = createActivities({ db: tdb.db, integrations: i, log: silentLog });
    try {
      const e = { ...escalation, id: 'N2-E1' };
      const f = await failureOf(a.notifyEscalation({ workflowId: wf('N2'), caseNo: 'N2', escalation: e }));
      expect(f.nonRetryable).toBe(false);
      const [row] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'N2-E1'));
      expect(row).toMatchObject({ status: 'open', notifiedAt: null });
      hook.setResponder(() => ({ status: 200 }));
      await a.notifyEscalation({ workflowId: wf('N2'), caseNo: 'N2', escalation: e });
      const [after] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'N2-E1'));
      expect(after!.notifiedAt).toBeInstanceOf(Date);
    } finally {
      i.close();
      await hook.close();
    }
  });

  it('the database down: the alert goes out at once and once; the list is written when it is back', async () => {
    if (!tdb.url) return; // needs the real Postgres behind a proxy
    const { proxy, cut } = await databaseBehindProxy(tdb.url);
    const hook = await startRecordingServer(() => ({ status: 200 }));
    const i = createIntegrations(testConfig({ NOTIFY_WEBHOOK_URL: hook.url }), { db: cut.db, log: silentLog });
    const a = createActivities({ db: cut.db, integrations: i, log: silentLog });
    try {
      proxy.set('refuse');
      const e = { ...escalation, id: 'N4-E1', kind: 'fever' as const, severity: 'red' as const };
      const input = { workflowId: wf('N4'), caseNo: 'N4', escalation: e };
      // The activity fails (retryably: the list is not written) but the alert is out.
      await expect(a.notifyEscalation(input)).rejects.toThrow();
      expect(hook.requests).toHaveLength(1);
      expect(hook.requests[0]!.body).toMatchObject({ escalationId: 'N4-E1', caseNo: 'N4' });
      // Its retries while the database stays down do not post it again.
      await expect(a.notifyEscalation(input)).rejects.toThrow();
      expect(hook.requests).toHaveLength(1);
      proxy.set('up');
      await a.notifyEscalation(input);
      expect(hook.requests).toHaveLength(1);
      const [row] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'N4-E1'));
      expect(row!.notifiedAt).toBeInstanceOf(Date);
      // Recorded as done: a later retry (another worker) does nothing.
      await restartedWorker().acts.notifyEscalation(input);
      expect(hook.requests).toHaveLength(1);
    } finally {
      i.close();
      await hook.close();
      await cut.close();
      await proxy.close();
    }
  });

  it('the database down: a retry on another worker does not post the alert again (the heartbeat tells it)', async () => {
    if (!tdb.url) return; // needs the real Postgres behind a proxy
    const { MockActivityEnvironment } = await import('@temporalio/testing');
    const { proxy, cut } = await databaseBehindProxy(tdb.url);
    const hook = await startRecordingServer(() => ({ status: 200 }));
    // Two worker processes: each its own integrations (nothing shared in memory).
    const workers = [0, 1].map(() => {
      const i = createIntegrations(testConfig({ NOTIFY_WEBHOOK_URL: hook.url }), { db: cut.db, log: silentLog });
      return { i, a: createActivities({ db: cut.db, integrations: i, log: silentLog }) };
    });
    try {
      proxy.set('refuse');
      const e = { ...escalation, id: 'N5-E1', kind: 'fever' as const, severity: 'red' as const };
      const input = { workflowId: wf('N5'), caseNo: 'N5', escalation: e };
      // Attempt 1 on worker A: the alert goes out, the list cannot be written, the attempt fails.
      const first = new MockActivityEnvironment({ attempt: 1 });
      const beats: unknown[] = [];
      first.on('heartbeat', (d: unknown) => beats.push(d));
      await expect(first.run(workers[0]!.a.notifyEscalation, input)).rejects.toThrow();
      expect(hook.requests).toHaveLength(1);
      expect(beats).toEqual([{ webhookDelivered: true }]);
      // Attempt 2 on worker B, handed attempt 1's heartbeat by Temporal: the list only, no repeat.
      const second = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: beats.at(-1) });
      await expect(second.run(workers[1]!.a.notifyEscalation, input)).rejects.toThrow();
      expect(hook.requests).toHaveLength(1);
      // The database back: attempt 3 on worker B writes the list and marks it notified.
      proxy.set('up');
      const third = new MockActivityEnvironment({ attempt: 3, heartbeatDetails: beats.at(-1) });
      await third.run(workers[1]!.a.notifyEscalation, input);
      expect(hook.requests).toHaveLength(1);
      const [row] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'N5-E1'));
      expect(row).toMatchObject({ kind: 'fever', status: 'open' });
      expect(row!.notifiedAt).toBeInstanceOf(Date);
    } finally {
      for (const w of workers) w.i.close();
      await hook.close();
      await cut.close();
      await proxy.close();
    }
  });

  it('without a webhook the list is the channel', async () => {
    const e = { ...escalation, id: 'N3-E1' };
    await acts.notifyEscalation({ workflowId: wf('N3'), caseNo: 'N3', escalation: e });
    await acts.notifyEscalation({ workflowId: wf('N3'), caseNo: 'N3', escalation: e });
    const rows = await tdb.db.select().from(escalations).where(eq(escalations.caseNo, 'N3'));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.notifiedAt).toBeInstanceOf(Date);
  });
});
