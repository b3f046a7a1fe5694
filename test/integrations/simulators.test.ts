import { keyFor } from '../../src/integrations/simulator';
import { createIntegrations, type Integrations } from '../../src/integrations';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { silentLog, startRecordingServer, testConfig } from './helpers';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;
let tdb: TestDatabase;
let api: Server;
const open: Integrations[] = [];

const keys = { lab: 'sd_lab_key', transport: 'sd_transport_key', community: 'sd_community_key' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  tdb = await createTestDatabase('simulators');
  api = await startRecordingServer(() => ({ status: 202 }));
});
afterAll(async () => {
  for (const i of open) i.close();
  await api.close();
  await tdb.drop();
});
beforeEach(() => {
  api.requests.length = 0;
  api.setResponder(() => ({ status: 202 }));
});

function simulators(
  env: Record<string, string> = {},
  extra: Parameters<typeof createIntegrations>[1]['simulator'] = {},
) {
  const integ = createIntegrations(
    testConfig({ SIM_LAB_DELAY_MS: '20', SIM_TRANSPORT_DELAY_MS: '20', SIM_COMMUNITY_DELAY_MS: '20', ...env }),
    { db: tdb.db, log: silentLog, callback: { baseUrl: `${api.url}/`, keys }, simulator: extra },
  );
  open.push(integ);
  return integ;
}

const order = (sampleId: string) => ({
  idempotencyKey: `case-S:sample:${sampleId}`,
  sampleId,
  caseNo: 'S',
  type: 'PCR',
  reason: 'scheduled',
});

describe('lab simulator', () => {
  it('reports a result to /api/v1/lab/results with the lab key after the delay', async () => {
    const integ = simulators({ SIM_LAB_POSITIVE_RATE: '0' });
    const receipt = await integ.lab.orderSample(order('S-1'));
    expect(receipt.labId).toBe('SIM-LAB');
    expect(api.requests).toHaveLength(0); // not before the delay
    await api.waitFor(1);
    const [req] = api.requests;
    expect(req).toMatchObject({ method: 'POST', path: '/api/v1/lab/results' });
    expect(req!.headers.authorization).toBe('Bearer sd_lab_key');
    expect(req!.body).toEqual({
      results: [{ sampleId: 'S-1', result: 'negative', reportedAt: expect.any(String) }],
    });
    const reportedAt = (req!.body as { results: { reportedAt: string }[] }).results[0]!.reportedAt;
    expect(new Date(reportedAt).toISOString()).toBe(reportedAt);
  });

  it('reports positive at the configured rate', async () => {
    const integ = simulators({ SIM_LAB_POSITIVE_RATE: '1' });
    await integ.lab.orderSample(order('S-2'));
    await api.waitFor(1);
    expect((api.requests[0]!.body as { results: { result: string }[] }).results[0]!.result).toBe('positive');

    const dice = [0.1, 0.9];
    const half = simulators({ SIM_LAB_POSITIVE_RATE: '0.5' }, { random: () => dice.shift()! });
    await half.lab.orderSample(order('S-3'));
    await half.lab.orderSample(order('S-4'));
    await api.waitFor(3);
    const bySample = Object.fromEntries(
      api.requests.slice(1).map((r) => {
        const res = (r.body as { results: { sampleId: string; result: string }[] }).results[0]!;
        return [res.sampleId, res.result];
      }),
    );
    expect(bySample).toEqual({ 'S-3': 'positive', 'S-4': 'negative' });
  });

  it('a retried order gets the same lab id and one result only', async () => {
    const integ = simulators();
    const a = await integ.lab.orderSample(order('S-5'));
    const b = await integ.lab.orderSample(order('S-5'));
    expect(b).toEqual(a);
    await api.waitFor(1);
    await sleep(100);
    expect(api.requests).toHaveLength(1);
  });

  it('keeps trying while the API is unavailable', async () => {
    let calls = 0;
    api.setResponder(() => (++calls < 3 ? { status: 503 } : { status: 202 }));
    const integ = createIntegrations(testConfig({ SIM_LAB_DELAY_MS: '1' }), {
      db: tdb.db,
      log: silentLog,
      callback: { baseUrl: api.url, keys },
    });
    open.push(integ);
    await integ.lab.orderSample(order('S-6'));
    await api.waitFor(3, 10_000);
    expect(api.requests.map((r) => (r.body as { results: { sampleId: string }[] }).results[0]!.sampleId)).toEqual([
      'S-6',
      'S-6',
      'S-6',
    ]);
  });
});

describe('community simulator', () => {
  const inspection = (inspectionId: string, address: string) => ({
    idempotencyKey: `case-C:inspection:${inspectionId}`,
    caseNo: 'C-1',
    inspectionId,
    district: 'Xigu',
    street: 'Fulilu',
    address,
  });

  it('passes a single-occupancy home with the community key', async () => {
    const integ = simulators();
    await integ.community.requestInspection(inspection('I-1', 'Building 3, Room 501'));
    await api.waitFor(1);
    const [req] = api.requests;
    expect(req!.path).toBe('/api/v1/cases/C-1/address-inspections');
    expect(req!.headers.authorization).toBe('Bearer sd_community_key');
    expect(req!.body).toEqual({
      inspectionId: 'I-1',
      singleOccupancy: true,
      inspector: 'community-simulator',
      at: expect.any(String),
    });
  });

  it('fails an address containing the marker, case-insensitively, and obeys fixtures', async () => {
    const integ = simulators(
      { SIM_COMMUNITY_FAIL_MARKER: 'shared' },
      {
        communityFixtures: {
          'Fixture Lane 1': { singleOccupancy: false, note: 'three households' },
          'SHARED flat, but fixture says fine': { singleOccupancy: true },
        },
      },
    );
    await integ.community.requestInspection(inspection('I-2', 'Dorm 4, SHARED kitchen'));
    await integ.community.requestInspection(inspection('I-3', 'Fixture Lane 1'));
    await integ.community.requestInspection(inspection('I-4', 'SHARED flat, but fixture says fine'));
    await api.waitFor(3);
    const byId = Object.fromEntries(
      api.requests.map((r) => {
        const b = r.body as { inspectionId: string; singleOccupancy: boolean; note?: string };
        return [b.inspectionId, [b.singleOccupancy, b.note]];
      }),
    );
    expect(byId['I-2']).toEqual([false, expect.stringMatching(/one person per unit/)]);
    expect(byId['I-3']).toEqual([false, 'three households']);
    expect(byId['I-4']).toEqual([true, undefined]);
  });

  it('hand-over needs no callback', async () => {
    const integ = simulators();
    await integ.community.handOver({
      idempotencyKey: 'k',
      caseNo: 'C-1',
      district: 'Xigu',
      street: 'Fulilu',
      releasedAt: new Date().toISOString(),
      certificateNo: 'CERT-1',
    });
    await sleep(100);
    expect(api.requests).toHaveLength(0);
  });
});

describe('transport simulator', () => {
  it('reports the arrival of an intake with the transport key; a retry dispatches once', async () => {
    const integ = simulators();
    const req = {
      idempotencyKey: 'case-T-1:transport:intake',
      caseNo: 'T-1',
      purpose: 'intake' as const,
      district: 'D1',
      hotelId: 'h',
    };
    const a = await integ.transport.dispatch(req);
    const b = await integ.transport.dispatch(req);
    expect(b).toEqual(a);
    await api.waitFor(1);
    await sleep(100);
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]).toMatchObject({ path: '/api/v1/cases/T-1/arrival', body: { at: expect.any(String) } });
    expect(api.requests[0]!.headers.authorization).toBe('Bearer sd_transport_key');
  });

  it('a hospital transfer and a cancelled intake report nothing', async () => {
    const integ = simulators({ SIM_TRANSPORT_DELAY_MS: '100' });
    await integ.transport.dispatch({
      idempotencyKey: 'h1',
      caseNo: 'T-2',
      purpose: 'hospital',
      district: 'D1',
      hotelId: 'h',
    });
    const d = await integ.transport.dispatch({
      idempotencyKey: 'i1',
      caseNo: 'T-3',
      purpose: 'intake',
      district: 'D1',
      hotelId: 'h',
    });
    await integ.transport.cancel({ idempotencyKey: 'c1', caseNo: 'T-3', dispatchId: d.dispatchId });
    await sleep(250);
    expect(api.requests).toHaveLength(0);
  });
});

it('without a callback target the simulators never call back', async () => {
  const integ = createIntegrations(
    testConfig({ SIM_LAB_DELAY_MS: '1', SIM_TRANSPORT_DELAY_MS: '1', SIM_COMMUNITY_DELAY_MS: '1' }),
    { db: tdb.db, log: silentLog },
  );
  open.push(integ);
  await integ.lab.orderSample(order('N-1'));
  await integ.transport.dispatch({ idempotencyKey: 'n', caseNo: 'N', purpose: 'intake', district: 'D1', hotelId: 'h' });
  await integ.community.requestInspection({
    idempotencyKey: 'n',
    caseNo: 'N',
    inspectionId: 'N-I',
    district: 'd',
    street: 's',
    address: 'a',
  });
  await sleep(100);
  expect(api.requests).toHaveLength(0);
});

it('close() cancels pending callbacks', async () => {
  const integ = simulators({ SIM_LAB_DELAY_MS: '100' });
  await integ.lab.orderSample(order('X-1'));
  integ.close();
  await sleep(250);
  expect(api.requests).toHaveLength(0);
});

test('the simulated transport company and street office get a key per district, never one for everywhere', async () => {
  const { simulatorKeys } = await import('../../src/runtime');
  const { findKey } = await import('../../src/auth/keys');
  const k = await simulatorKeys({ kind: 'postgres', db: tdb.db } as never);
  const [d1, again, d2, street] = await Promise.all([
    keyFor(k.transport, 'D1'),
    keyFor(k.transport, 'D1'),
    keyFor(k.transport, 'D2'),
    keyFor(k.community, 'D1'),
  ]);
  expect(again).toBe(d1);
  expect(d2).not.toBe(d1);
  expect(await findKey(tdb.db, d1)).toMatchObject({ role: 'transport', district: 'D1' });
  expect(await findKey(tdb.db, d2)).toMatchObject({ role: 'transport', district: 'D2' });
  expect(await findKey(tdb.db, street)).toMatchObject({ role: 'community', district: 'D1' });
  expect(await findKey(tdb.db, k.lab)).toMatchObject({ role: 'lab', orgId: 'SIM-LAB' });
});
