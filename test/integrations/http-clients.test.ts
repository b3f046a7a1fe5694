import { ApplicationFailure } from '@temporalio/common';

import { ErrorCode } from '../../src/activities/types';
import { CommunityHttpClient } from '../../src/integrations/community';
import type { HttpTarget } from '../../src/integrations/http';
import { createIntegrations } from '../../src/integrations';
import { LabHttpClient } from '../../src/integrations/lab';
import { TransportHttpClient } from '../../src/integrations/transport';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { silentLog, startRecordingServer, testConfig } from './helpers';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;
let server: Server;

beforeAll(async () => {
  server = await startRecordingServer();
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
});

const target = (system: string, timeoutMs = 2000): HttpTarget => ({
  system,
  baseUrl: `${server.url}/ext/`,
  key: `key-${system}`,
  timeoutMs,
});

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

const order = {
  idempotencyKey: 'case-H1:sample:S1',
  sampleId: 'S1',
  caseNo: 'H1',
  type: 'PCR',
  reason: 'scheduled',
  hotelId: 'h-1',
};

describe('lab HTTP client', () => {
  it('posts the order with the bearer key and idempotency key, and returns the lab id', async () => {
    server.setResponder(() => ({ status: 201, body: { labId: 'LAB-77', orderedAt: '2024-01-01T00:00:00.000Z' } }));
    const r = await new LabHttpClient(target('lab')).orderSample(order);
    expect(r).toEqual({ labId: 'LAB-77', orderedAt: '2024-01-01T00:00:00.000Z' });
    const [req] = server.requests;
    expect(req).toMatchObject({ method: 'POST', path: '/ext/orders' });
    expect(req!.headers.authorization).toBe('Bearer key-lab');
    expect(req!.headers['idempotency-key']).toBe('case-H1:sample:S1');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.body).toEqual({ sampleId: 'S1', caseNo: 'H1', type: 'PCR', reason: 'scheduled', hotelId: 'h-1' });
  });

  it('a timeout is retryable', async () => {
    server.setResponder(() => 'hang');
    const started = Date.now();
    const f = await failureOf(new LabHttpClient(target('lab', 300)).orderSample(order));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(f.type).toBe(ErrorCode.IntegrationUnavailable);
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toMatch(/300 ms/);
  });

  it.each([500, 502, 503, 429, 408])('HTTP %i is retryable', async (status) => {
    server.setResponder(() => ({ status, body: { error: 'x' } }));
    const f = await failureOf(new LabHttpClient(target('lab')).orderSample(order));
    expect(f.type).toBe(ErrorCode.IntegrationUnavailable);
    expect(f.nonRetryable).toBe(false);
  });

  it.each([400, 401, 403, 404, 409, 422])('HTTP %i is not retryable', async (status) => {
    server.setResponder(() => ({ status, body: { error: 'refused' } }));
    const f = await failureOf(new LabHttpClient(target('lab')).orderSample(order));
    expect(f.type).toBe(ErrorCode.IntegrationRejected);
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(String(status));
  });

  it('a refused connection is retryable', async () => {
    const dead = await startRecordingServer();
    const url = dead.url;
    await dead.close();
    const f = await failureOf(
      new LabHttpClient({ system: 'lab', baseUrl: url, key: 'k', timeoutMs: 1000 }).orderSample(order),
    );
    expect(f.type).toBe(ErrorCode.IntegrationUnavailable);
    expect(f.nonRetryable).toBe(false);
  });

  it('a success without a lab id is a contract breach, not retried', async () => {
    server.setResponder(() => ({ status: 200, body: { ok: true } }));
    const f = await failureOf(new LabHttpClient(target('lab')).orderSample(order));
    expect(f.type).toBe(ErrorCode.IntegrationRejected);
    expect(f.nonRetryable).toBe(true);
  });
});

describe('community HTTP client', () => {
  const inspection = {
    idempotencyKey: 'case-H2:inspection:I1',
    caseNo: 'H2',
    inspectionId: 'I1',
    district: 'Xigu',
    street: 'Fulilu',
    address: 'Building 3, Unit 2, Room 501',
  };

  it('requests an inspection with keys and headers', async () => {
    server.setResponder(() => ({ status: 202 }));
    await new CommunityHttpClient(target('community')).requestInspection(inspection);
    const [req] = server.requests;
    expect(req!.path).toBe('/ext/inspections');
    expect(req!.headers.authorization).toBe('Bearer key-community');
    expect(req!.headers['idempotency-key']).toBe('case-H2:inspection:I1');
    expect(req!.body).toEqual({
      caseNo: 'H2',
      inspectionId: 'I1',
      district: 'Xigu',
      street: 'Fulilu',
      address: 'Building 3, Unit 2, Room 501',
    });
  });

  it('422 on an address is InvalidAddress, not retried; 503 is retried', async () => {
    server.setResponder(() => ({ status: 422, body: { error: 'no such address' } }));
    const f = await failureOf(new CommunityHttpClient(target('community')).requestInspection(inspection));
    expect(f.type).toBe(ErrorCode.InvalidAddress);
    expect(f.nonRetryable).toBe(true);
    server.setResponder(() => ({ status: 503 }));
    const g = await failureOf(new CommunityHttpClient(target('community')).requestInspection(inspection));
    expect(g.type).toBe(ErrorCode.IntegrationUnavailable);
    expect(g.nonRetryable).toBe(false);
  });

  it('hands over a released case', async () => {
    server.setResponder(() => ({ status: 200 }));
    await new CommunityHttpClient(target('community')).handOver({
      idempotencyKey: 'case-H2:handover:C1',
      caseNo: 'H2',
      district: 'Xigu',
      street: 'Fulilu',
      releasedAt: '2024-01-15T10:00:00.000Z',
      certificateNo: 'C1',
    });
    expect(server.requests[0]).toMatchObject({ path: '/ext/handovers', body: { caseNo: 'H2', certificateNo: 'C1' } });
    expect(server.requests[0]!.headers['idempotency-key']).toBe('case-H2:handover:C1');
  });
});

describe('transport HTTP client', () => {
  it('dispatches and cancels', async () => {
    server.setResponder((req) =>
      req.path.endsWith('/cancel') ? { status: 200 } : { status: 201, body: { dispatchId: 'D-9' } },
    );
    const client = new TransportHttpClient(target('transport'));
    const r = await client.dispatch({
      idempotencyKey: 'case-H3:transport:intake',
      caseNo: 'H3',
      purpose: 'intake',
      district: 'D1',
      hotelId: 'h-1',
      roomNo: '301',
      pickupAddress: 'Gate 2',
    });
    expect(r).toEqual({ dispatchId: 'D-9' });
    await client.cancel({ idempotencyKey: 'case-H3:transport-cancel:D-9', caseNo: 'H3', dispatchId: 'D-9' });
    expect(server.requests.map((q) => q.path)).toEqual(['/ext/dispatches', '/ext/dispatches/D-9/cancel']);
    expect(server.requests[0]!.headers.authorization).toBe('Bearer key-transport');
    expect(server.requests[0]!.headers['idempotency-key']).toBe('case-H3:transport:intake');
    expect(server.requests[1]!.headers['idempotency-key']).toBe('case-H3:transport-cancel:D-9');
  });

  it('a 404 on dispatch is not retried', async () => {
    server.setResponder(() => ({ status: 404 }));
    const f = await failureOf(
      new TransportHttpClient(target('transport')).dispatch({
        idempotencyKey: 'k',
        caseNo: 'H3',
        purpose: 'hospital',
        district: 'D1',
        hotelId: 'h',
      }),
    );
    expect(f.nonRetryable).toBe(true);
  });
});

describe('createIntegrations selects by config', () => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase('selection');
  });
  afterAll(async () => {
    await tdb.drop();
  });

  it('a URL selects the HTTP client with the key and timeout from config', async () => {
    server.setResponder(() => ({ status: 200, body: { labId: 'L-1', dispatchId: 'D-1' } }));
    const config = testConfig({
      LAB_URL: `${server.url}/lab`,
      LAB_KEY: 'lab-secret',
      TRANSPORT_URL: `${server.url}/tr`,
      TRANSPORT_KEY: 'tr-secret',
      COMMUNITY_URL: `${server.url}/co`,
      NOTIFY_WEBHOOK_URL: `${server.url}/hook`,
      HTTP_TIMEOUT_MS: '250',
    });
    const integ = createIntegrations(config, { db: tdb.db, log: silentLog });
    expect(integ.modes).toEqual({ lab: 'http', community: 'http', transport: 'http', notify: 'webhook' });
    await integ.lab.orderSample(order);
    await integ.transport.dispatch({
      idempotencyKey: 'k2',
      caseNo: 'H4',
      purpose: 'intake',
      district: 'D1',
      hotelId: 'h',
    });
    expect(server.requests.map((r) => [r.path, r.headers.authorization])).toEqual([
      ['/lab/orders', 'Bearer lab-secret'],
      ['/tr/dispatches', 'Bearer tr-secret'],
    ]);
    server.setResponder(() => 'hang');
    const f = await failureOf(integ.lab.orderSample(order));
    expect(f.message).toMatch(/250 ms/);
    integ.close();
  });

  it('no URL selects the simulators', () => {
    const integ = createIntegrations(testConfig(), { db: tdb.db, log: silentLog });
    expect(integ.modes).toEqual({
      lab: 'simulator',
      community: 'simulator',
      transport: 'simulator',
      notify: 'list-only',
    });
    expect(integ.lab.constructor.name).toBe('LabSimulator');
    expect(integ.community.constructor.name).toBe('CommunitySimulator');
    expect(integ.transport.constructor.name).toBe('TransportSimulator');
    integ.close();
  });
});
