import request from 'supertest';

import { apiRoutes } from '../../src/api/app';
import { createHarness, KEY_SPECS, seedReadModel, validTransfer, type Harness, type KeyName } from './harness';

/**
 * Every role against every route: no key or a wrong key → 401, the wrong role → 403, the
 * right role → neither. Then jurisdiction: the right role outside its street, hotel or
 * district → 403.
 */
type Call = { method: 'get' | 'post' | 'delete'; path: string; body?: () => unknown };

const newHotel = (id: string, district: string, street = 'S1') => ({
  id,
  name: `Hotel ${id}`,
  district,
  street,
  rooms: [{ roomNo: '101', floor: 1 }],
});

const ROUTES: { pattern: string; call: Call; roles: string[] }[] = [
  {
    pattern: 'POST /api/v1/transfers',
    call: { method: 'post', path: '/api/v1/transfers', body: () => validTransfer() },
    roles: ['community', 'supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/arrival',
    call: { method: 'post', path: '/api/v1/cases/QCSEED000001/arrival', body: () => ({}) },
    roles: ['hotel', 'transport', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/departure',
    call: { method: 'post', path: '/api/v1/cases/QCSEED000001/departure', body: () => ({}) },
    roles: ['hotel', 'transport', 'medical', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/door-alarms',
    call: { method: 'post', path: '/api/v1/cases/QCSEED000001/door-alarms', body: () => ({ sensorId: 'S-1' }) },
    roles: ['hotel', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/address-inspections',
    call: {
      method: 'post',
      path: '/api/v1/cases/QCSEED000001/address-inspections',
      body: () => ({ inspectionId: 'QCSEED000001-I1', singleOccupancy: true, inspector: 'Li' }),
    },
    roles: ['community', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/health-checks',
    call: { method: 'post', path: '/api/v1/cases/QCSEED000001/health-checks', body: () => ({ temperatureC: 36.6 }) },
    roles: ['medical', 'hotel', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/extend',
    call: {
      method: 'post',
      path: '/api/v1/cases/QCSEED000001/extend',
      body: () => ({ days: 2, reason: 'contact of positive' }),
    },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/colour',
    call: {
      method: 'post',
      path: '/api/v1/cases/QCSEED000001/colour',
      body: () => ({ colour: 'red', reason: 'key attention' }),
    },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/address',
    call: {
      method: 'post',
      path: '/api/v1/cases/QCSEED000001/address',
      body: () => ({ address: '2 Other Road', reason: 'family home shared' }),
    },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/cancel',
    call: { method: 'post', path: '/api/v1/cases/QCSEED000001/cancel', body: () => ({ reason: 'filed twice' }) },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/lab/results',
    call: { method: 'post', path: '/api/v1/lab/results', body: () => ({ sampleId: 'NOPE-1', result: 'negative' }) },
    roles: ['lab', 'admin'],
  },
  {
    pattern: 'POST /api/v1/escalations/:id/ack',
    call: { method: 'post', path: '/api/v1/escalations/QCSEED000002-E1/ack', body: () => ({}) },
    roles: ['medical', 'supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/escalations/:id/resolve',
    call: {
      method: 'post',
      path: '/api/v1/escalations/QCSEED000002-E1/resolve',
      body: () => ({ note: 'doctor saw the person' }),
    },
    roles: ['medical', 'supervisor', 'admin'],
  },
  {
    pattern: 'GET /api/v1/escalations',
    call: { method: 'get', path: '/api/v1/escalations' },
    roles: ['supervisor', 'medical', 'hotel', 'admin'],
  },
  {
    pattern: 'GET /api/v1/escalations/summary',
    call: { method: 'get', path: '/api/v1/escalations/summary' },
    roles: ['supervisor', 'medical', 'hotel', 'admin'],
  },
  {
    // The seeded case is not released: an allowed role gets 409, not a certificate.
    pattern: 'GET /api/v1/cases/:caseNo/certificate',
    call: { method: 'get', path: '/api/v1/cases/QCSEED000001/certificate' },
    roles: ['supervisor', 'community', 'admin'],
  },
  {
    pattern: 'GET /api/v1/cases/:caseNo/events',
    call: { method: 'get', path: '/api/v1/cases/QCSEED000001/events' },
    roles: ['supervisor', 'community', 'admin'],
  },
  {
    pattern: 'GET /api/v1/reports/daily',
    call: { method: 'get', path: '/api/v1/reports/daily?date=2026-03-10' },
    roles: ['supervisor', 'hotel', 'admin'],
  },
  {
    pattern: 'GET /api/v1/reports/wave',
    call: { method: 'get', path: '/api/v1/reports/wave' },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'GET /api/v1/cases/:caseNo/address-inspections',
    call: { method: 'get', path: '/api/v1/cases/QCSEED000001/address-inspections' },
    roles: ['supervisor', 'community', 'admin'],
  },
  {
    pattern: 'GET /api/v1/cases',
    call: { method: 'get', path: '/api/v1/cases' },
    roles: ['supervisor', 'community', 'admin'],
  },
  {
    pattern: 'GET /api/v1/cases/:caseNo',
    call: { method: 'get', path: '/api/v1/cases/QCSEED000001' },
    roles: ['supervisor', 'community', 'admin'],
  },
  { pattern: 'GET /api/v1/hotels', call: { method: 'get', path: '/api/v1/hotels' }, roles: ['supervisor', 'admin'] },
  { pattern: 'GET /api/v1/summary', call: { method: 'get', path: '/api/v1/summary' }, roles: ['supervisor', 'admin'] },
  {
    pattern: 'POST /codec/session',
    call: { method: 'post', path: '/codec/session' },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /codec/decode',
    call: { method: 'post', path: '/codec/decode', body: () => ({ payloads: [] }) },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /codec/encode',
    call: { method: 'post', path: '/codec/encode', body: () => ({ payloads: [] }) },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'GET /api/v1/admin/codec-audit',
    call: { method: 'get', path: '/api/v1/admin/codec-audit' },
    roles: ['admin'],
  },
  {
    pattern: 'GET /api/v1/room-queue',
    call: { method: 'get', path: '/api/v1/room-queue' },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/hotels',
    call: { method: 'post', path: '/api/v1/hotels', body: () => newHotel('H-AUTH', 'D1') },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'GET /api/v1/hotels/:hotelId/rooms',
    call: { method: 'get', path: '/api/v1/hotels/H1/rooms' },
    roles: ['supervisor', 'hotel', 'admin'],
  },
  {
    pattern: 'GET /api/v1/hotels/:hotelId/rounds',
    call: { method: 'get', path: '/api/v1/hotels/H1/rounds' },
    roles: ['medical', 'hotel', 'supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/rooms/:roomId/disinfected',
    call: { method: 'post', path: '/api/v1/rooms/H1-105/disinfected', body: () => ({}) },
    roles: ['hotel', 'supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/rooms/:roomId/out-of-service',
    call: { method: 'post', path: '/api/v1/rooms/H1-100/out-of-service', body: () => ({ reason: 'broken heater' }) },
    roles: ['hotel', 'supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/rooms/:roomId/return-to-service',
    call: { method: 'post', path: '/api/v1/rooms/H1-107/return-to-service', body: () => ({}) },
    roles: ['hotel', 'supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/cases/:caseNo/home-check-ins',
    call: { method: 'post', path: '/api/v1/cases/QCSEED000001/home-check-ins', body: () => ({ temperatureC: 36.5 }) },
    roles: ['community', 'admin'],
  },
  {
    pattern: 'GET /api/v1/districts/:district/policies',
    call: { method: 'get', path: '/api/v1/districts/D1/policies' },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'GET /api/v1/districts/:district/policies/:version',
    call: { method: 'get', path: '/api/v1/districts/D1/policies/1' },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/districts/:district/policies',
    // Invalid on purpose (an allowed role gets 400): the auth check comes first.
    call: { method: 'post', path: '/api/v1/districts/D1/policies', body: () => ({ note: 'x', policy: {} }) },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/directives/preview',
    call: {
      method: 'post',
      path: '/api/v1/directives/preview',
      body: () => ({ district: 'D1', policyVersion: 99 }),
    },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'POST /api/v1/directives',
    call: {
      method: 'post',
      path: '/api/v1/directives',
      body: () => ({ requestId: 'auth-test', district: 'D1', policyVersion: 99, reason: 'auth test' }),
    },
    roles: ['supervisor', 'admin'],
  },
  {
    pattern: 'GET /api/v1/directives',
    call: { method: 'get', path: '/api/v1/directives?district=D1' },
    roles: ['supervisor', 'admin'],
  },
  ...['', '/cases'].map((tail) => ({
    pattern: `GET /api/v1/directives/:id${tail}`,
    call: { method: 'get' as const, path: `/api/v1/directives/DIR-000000000000${tail}` },
    roles: ['supervisor', 'admin'],
  })),
  ...['pause', 'resume', 'cancel'].map((action) => ({
    pattern: `POST /api/v1/directives/:id/${action}`,
    call: { method: 'post' as const, path: `/api/v1/directives/DIR-000000000000/${action}`, body: () => ({}) },
    roles: ['supervisor', 'admin'],
  })),
  {
    pattern: 'POST /api/v1/admin/seed-demo',
    call: { method: 'post', path: '/api/v1/admin/seed-demo', body: () => ({}) },
    roles: ['admin'],
  },
  { pattern: 'GET /api/v1/admin/keys', call: { method: 'get', path: '/api/v1/admin/keys' }, roles: ['admin'] },
  {
    pattern: 'POST /api/v1/admin/keys',
    call: { method: 'post', path: '/api/v1/admin/keys', body: () => ({ name: 'x', role: 'lab' }) },
    roles: ['admin'],
  },
  {
    pattern: 'DELETE /api/v1/admin/keys/:id',
    call: { method: 'delete', path: '/api/v1/admin/keys/000000000000' },
    roles: ['admin'],
  },
];
const PUBLIC = [
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'GET /openapi.json',
  'GET /docs',
  'GET /dashboard',
  'GET /codec',
  'DELETE /codec/session',
  'GET /api/v1/certificates/:certificateNo/verify',
];
/** A concrete call for each public route with parameters. */
const PUBLIC_CALLS: Record<string, string> = {
  '/api/v1/certificates/:certificateNo/verify': '/api/v1/certificates/QCSEED000001-R/verify?code=AAAAA-AAAAA',
};

// The "in jurisdiction" key of each role (the *Other keys are for the jurisdiction tests).
const ROLE_KEYS: KeyName[] = ['community', 'hotel', 'transport', 'medical', 'lab', 'supervisor', 'admin'];

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ label: 'auth' });
  await seedReadModel(h.db);
});
afterAll(async () => h?.close());

function send(call: Call, headers: Record<string, string>) {
  let r = request(h.app)[call.method](call.path).set(headers);
  if (call.body) r = r.send(call.body() as object);
  return r;
}

test('the role table here is the one the routes enforce', () => {
  const served = apiRoutes(() => ({}))
    .filter((r) => r.access.kind !== 'public')
    .map((r) => `${r.method.toUpperCase()} ${r.path}`)
    .sort();
  expect(served).toEqual(ROUTES.map((r) => r.pattern).sort());
  for (const r of apiRoutes(() => ({}))) {
    const row = ROUTES.find((x) => x.pattern === `${r.method.toUpperCase()} ${r.path}`);
    if (r.access.kind === 'key' || r.access.kind === 'codec')
      expect([...r.access.roles].sort()).toEqual([...row!.roles].sort());
    if (r.access.kind === 'admin') expect(row!.roles).toEqual(['admin']);
    if (r.access.kind === 'public') expect(PUBLIC).toContain(`${r.method.toUpperCase()} ${r.path}`);
  }
});

describe.each(ROUTES)('$pattern', ({ call, roles }) => {
  test('no key → 401 problem', async () => {
    const res = await send(call, {});
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 401, title: 'Unauthorized' });
  });

  test('wrong, malformed or revoked key → 401', async () => {
    for (const bad of [
      'Bearer sd_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      'Bearer nonsense',
      'Basic abc',
      `Bearer ${h.keys.admin}x`,
    ]) {
      const res = await send(call, { Authorization: bad });
      expect(res.status).toBe(401);
    }
  });

  test.each(ROLE_KEYS)('role %s', async (name) => {
    const res = await send(call, h.auth(name));
    const role = KEY_SPECS[name].role;
    if (roles.includes(role)) {
      expect([401, 403]).not.toContain(res.status);
      expect(res.status).toBeLessThan(500);
    } else {
      expect(res.status).toBe(403);
      expect(res.body.detail).toMatch(/roles/);
    }
  });
});

test('public routes need no key', async () => {
  for (const p of PUBLIC) {
    const [method, route] = p.split(' ') as [string, string];
    const path = PUBLIC_CALLS[route] ?? route;
    const res = await (method === 'DELETE' ? request(h.app).delete(path) : request(h.app).get(path));
    expect(res.status).toBe(method === 'DELETE' ? 204 : 200);
  }
});

test('the admin token stands for an admin key on admin routes only', async () => {
  const ok = await request(h.app).get('/api/v1/admin/keys').set('X-Admin-Token', h.adminToken);
  expect(ok.status).toBe(200);
  expect(ok.body.items.length).toBeGreaterThanOrEqual(ROLE_KEYS.length);
  expect(JSON.stringify(ok.body)).not.toMatch(/keyHash|sd_[0-9a-f]{12}_/);
  const wrong = await request(h.app).get('/api/v1/admin/keys').set('X-Admin-Token', 'nope');
  expect(wrong.status).toBe(401);
  const elsewhere = await request(h.app).get('/api/v1/summary').set('X-Admin-Token', h.adminToken);
  expect(elsewhere.status).toBe(401);
});

test('a revoked key stops working at once', async () => {
  const created = await request(h.app)
    .post('/api/v1/admin/keys')
    .set('X-Admin-Token', h.adminToken)
    .send({ name: 'Temp supervisor', role: 'supervisor', district: 'D1' });
  expect(created.status).toBe(201);
  const key = created.body.key as string;
  expect((await request(h.app).get('/api/v1/hotels').set('Authorization', `Bearer ${key}`)).status).toBe(200);
  const revoked = await request(h.app)
    .delete(`/api/v1/admin/keys/${created.body.identity.id}`)
    .set('X-Admin-Token', h.adminToken);
  expect(revoked.status).toBe(200);
  expect((await request(h.app).get('/api/v1/hotels').set('Authorization', `Bearer ${key}`)).status).toBe(401);
});

describe('jurisdiction: right role, wrong place → 403', () => {
  const cases: [string, KeyName, Call][] = [
    [
      'community files for another street',
      'communityOther',
      { method: 'post', path: '/api/v1/transfers', body: () => validTransfer() },
    ],
    [
      'supervisor files for another district',
      'supervisorOther',
      { method: 'post', path: '/api/v1/transfers', body: () => validTransfer() },
    ],
    ['community reads another street’s case', 'communityOther', { method: 'get', path: '/api/v1/cases/QCSEED000001' }],
    [
      'community inspects another street’s case',
      'communityOther',
      {
        method: 'post',
        path: '/api/v1/cases/QCSEED000001/address-inspections',
        body: () => ({ inspectionId: 'I1', singleOccupancy: true, inspector: 'Li' }),
      },
    ],
    [
      'hotel reports an arrival at another hotel',
      'hotelOther',
      { method: 'post', path: '/api/v1/cases/QCSEED000001/arrival', body: () => ({}) },
    ],
    [
      'hotel reports a door alarm at another hotel',
      'hotelOther',
      { method: 'post', path: '/api/v1/cases/QCSEED000001/door-alarms', body: () => ({}) },
    ],
    [
      'nurse records a check at another hotel',
      'medicalOther',
      { method: 'post', path: '/api/v1/cases/QCSEED000001/health-checks', body: () => ({ temperatureC: 36.5 }) },
    ],
    [
      'nurse acks an escalation at another hotel',
      'medicalOther',
      { method: 'post', path: '/api/v1/escalations/QCSEED000002-E1/ack', body: () => ({}) },
    ],
    ['supervisor reads another district’s case', 'supervisor', { method: 'get', path: '/api/v1/cases/QCSEED000006' }],
    [
      'supervisor extends another district’s case',
      'supervisorOther',
      { method: 'post', path: '/api/v1/cases/QCSEED000001/extend', body: () => ({ days: 1, reason: 'x' }) },
    ],
    [
      'supervisor acks another district’s escalation',
      'supervisorOther',
      { method: 'post', path: '/api/v1/escalations/QCSEED000002-E1/ack', body: () => ({}) },
    ],
    ['hotel staff read another hotel’s rooms', 'hotelOther', { method: 'get', path: '/api/v1/hotels/H1/rooms' }],
    [
      'hotel staff mark a room at another hotel disinfected',
      'hotelOther',
      { method: 'post', path: '/api/v1/rooms/H1-105/disinfected', body: () => ({}) },
    ],
    [
      'hotel staff take a room at another hotel out of service',
      'hotelOther',
      { method: 'post', path: '/api/v1/rooms/H1-101/out-of-service', body: () => ({ reason: 'x' }) },
    ],
    [
      'hotel staff return a room at another hotel to service',
      'hotelOther',
      { method: 'post', path: '/api/v1/rooms/H1-107/return-to-service', body: () => ({}) },
    ],
    ['supervisor reads another district’s rooms', 'supervisor', { method: 'get', path: '/api/v1/hotels/H9/rooms' }],
    [
      'supervisor marks another district’s room disinfected',
      'supervisorOther',
      { method: 'post', path: '/api/v1/rooms/H1-105/disinfected', body: () => ({}) },
    ],
    [
      'supervisor adds a hotel in another district',
      'supervisorOther',
      { method: 'post', path: '/api/v1/hotels', body: () => newHotel('H-D1-BY-D2', 'D1') },
    ],
    [
      'supervisor takes over another district’s hotel by its id',
      'supervisor',
      { method: 'post', path: '/api/v1/hotels', body: () => newHotel('H9', 'D1') },
    ],
  ];
  test.each(cases)('%s', async (_what, key, call) => {
    const res = await send(call, h.auth(key));
    expect(res.status).toBe(403);
    expect(res.body.type).toMatch(/jurisdiction/);
  });

  test('a lab answers forbidden for samples ordered from another lab', async () => {
    const res = await request(h.app)
      .post('/api/v1/lab/results')
      .set(h.auth('labOther'))
      .send({ results: [{ sampleId: 'QCSEED000001-S1', result: 'negative' }] });
    expect(res.status).toBe(200);
    expect(res.body.results[0]).toMatchObject({ sampleId: 'QCSEED000001-S1', status: 'forbidden' });
  });

  test('lists keep to the key’s jurisdiction', async () => {
    const s2 = await request(h.app).get('/api/v1/cases').set(h.auth('communityOther'));
    expect(s2.status).toBe(200);
    expect(s2.body.items.map((c: { street: string }) => c.street)).toEqual(['S2', 'S2']);
    const d2 = await request(h.app).get('/api/v1/cases').set(h.auth('supervisorOther'));
    expect(d2.body.items.map((c: { caseNo: string }) => c.caseNo)).toEqual(['QCSEED000006']);
    const escD2 = await request(h.app).get('/api/v1/escalations').set(h.auth('supervisorOther'));
    expect(escD2.body.items.map((e: { id: string }) => e.id)).toEqual(['QCSEED000006-E1']);
    const nurse = await request(h.app).get('/api/v1/escalations').set(h.auth('medical'));
    expect(nurse.body.items.map((e: { id: string }) => e.id)).toEqual(['QCSEED000002-E1']);
    const hotelsD2 = await request(h.app).get('/api/v1/hotels').set(h.auth('supervisorOther'));
    expect(hotelsD2.body.items.map((x: { id: string }) => x.id)).toEqual(['H9']);
  });
});
