import request from 'supertest';

import { caseNoFor } from '../../src/api/ids';
import { cases } from '../../src/db/schema';
import { eq } from 'drizzle-orm';
import { createHarness, seedReadModel, validTransfer, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ label: 'validation', env: { API_BODY_LIMIT: '64kb' } });
  await seedReadModel(h.db);
});
afterAll(async () => h?.close());

const post = (path: string, body: unknown, key: Parameters<Harness['auth']>[0] = 'admin') =>
  request(h.app)
    .post(path)
    .set(h.auth(key))
    .send(body as object);

function fieldsOf(res: request.Response): string[] {
  expect(res.status).toBe(400);
  expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
  expect(res.body).toMatchObject({ status: 400, title: 'Bad Request' });
  expect(typeof res.body.type).toBe('string');
  return (res.body.errors as { in: string; path: string }[]).map((e) => `${e.in}.${e.path}`);
}

describe('POST /api/v1/transfers: every invalid field is named', () => {
  const person = (validTransfer().person as Record<string, unknown>)!;
  const cases: [string, Record<string, unknown>, string][] = [
    ['requestId too short', { requestId: 'abc' }, 'body.requestId'],
    ['requestId with spaces', { requestId: 'abc def ghi' }, 'body.requestId'],
    ['district empty', { district: '' }, 'body.district'],
    ['street not a string', { street: 12 }, 'body.street'],
    ['person missing', { person: undefined }, 'body.person'],
    ['name empty', { person: { ...person, name: '  ' } }, 'body.person.name'],
    ['idNumber with symbols', { person: { ...person, idNumber: '11010119900101123$' } }, 'body.person.idNumber'],
    ['phone letters', { person: { ...person, phone: 'call me' } }, 'body.person.phone'],
    ['birthDate not a date', { person: { ...person, birthDate: '1990-13-45' } }, 'body.person.birthDate'],
    ['birthDate in the future', { person: { ...person, birthDate: '2999-01-01' } }, 'body.person.birthDate'],
    ['sex unknown', { person: { ...person, sex: 'x' } }, 'body.person.sex'],
    ['disabled not boolean', { person: { ...person, disabled: 'yes' } }, 'body.person.disabled'],
    [
      'chronicConditions not a list',
      { person: { ...person, chronicConditions: 'hypertension' } },
      'body.person.chronicConditions',
    ],
    ['unknown person field', { person: { ...person, religion: 'x' } }, 'body.person.religion'],
    ['homeAddress missing', { homeAddress: undefined }, 'body.homeAddress'],
    ['transport unknown', { transport: 'helicopter' }, 'body.transport'],
    ['vehicle without pickup', { pickupAddress: undefined }, 'body.pickupAddress'],
    ['reason unknown', { reason: 'curiosity' }, 'body.reason'],
    ['expectedArrivalAt without offset', { expectedArrivalAt: '2022-04-01 08:00' }, 'body.expectedArrivalAt'],
    ['policyName unknown', { policyName: 'lenient' }, 'body.policyName'],
    ['unknown top-level field', { priority: 'high' }, 'body.priority'],
  ];
  test.each(cases)('%s', async (_what, patch, field) => {
    const res = await post('/api/v1/transfers', validTransfer(patch));
    expect(fieldsOf(res)).toContain(field);
  });

  test('several invalid fields are all named at once', async () => {
    const res = await post(
      '/api/v1/transfers',
      validTransfer({ district: '', transport: 'x', person: { ...person, phone: '?' } }),
    );
    expect(fieldsOf(res)).toEqual(expect.arrayContaining(['body.district', 'body.transport', 'body.person.phone']));
  });

  test('no body, an array, or not JSON', async () => {
    expect((await post('/api/v1/transfers', undefined)).status).toBe(400);
    expect((await post('/api/v1/transfers', [])).status).toBe(400);
    const broken = await request(h.app)
      .post('/api/v1/transfers')
      .set(h.auth('admin'))
      .set('Content-Type', 'application/json')
      .send('{"requestId":');
    expect(broken.status).toBe(400);
    expect(broken.headers['content-type']).toMatch(/problem\+json/);
  });

  test('a body that is not JSON → 415', async () => {
    const res = await request(h.app)
      .post('/api/v1/transfers')
      .set(h.auth('admin'))
      .set('Content-Type', 'text/plain')
      .send('hello');
    expect(res.status).toBe(415);
  });
});

describe('the other bodies', () => {
  const c = '/api/v1/cases/QCSEED000001';
  const cases: [string, string, unknown, string][] = [
    ['arrival: at not a date', `${c}/arrival`, { at: 'yesterday' }, 'body.at'],
    ['arrival: antigen unknown', `${c}/arrival`, { antigen: 'maybe' }, 'body.antigen'],
    ['door alarm: sensorId with spaces', `${c}/door-alarms`, { sensorId: 'a b' }, 'body.sensorId'],
    ['health check: neither temperature nor symptoms', `${c}/health-checks`, {}, 'body.temperatureC'],
    ['health check: temperature out of range', `${c}/health-checks`, { temperatureC: 99 }, 'body.temperatureC'],
    ['health check: temperature a string', `${c}/health-checks`, { temperatureC: '37' }, 'body.temperatureC'],
    [
      'inspection: singleOccupancy missing',
      `${c}/address-inspections`,
      { inspectionId: 'I1', inspector: 'Li' },
      'body.singleOccupancy',
    ],
    ['extend: days 0', `${c}/extend`, { days: 0, reason: 'x' }, 'body.days'],
    ['extend: days fractional', `${c}/extend`, { days: 1.5, reason: 'x' }, 'body.days'],
    ['extend: reason missing', `${c}/extend`, { days: 2 }, 'body.reason'],
    ['colour: purple', `${c}/colour`, { colour: 'purple', reason: 'x' }, 'body.colour'],
    ['address: empty', `${c}/address`, { address: '', reason: 'x' }, 'body.address'],
    ['cancel: reason blank', `${c}/cancel`, { reason: '   ' }, 'body.reason'],
    ['case number with a slash-like char', '/api/v1/cases/QC%20X/cancel', { reason: 'x' }, 'params.caseNo'],
    ['lab: result unknown', '/api/v1/lab/results', { sampleId: 'S1', result: 'inconclusive' }, 'body.result'],
    [
      'lab: batch item invalid',
      '/api/v1/lab/results',
      {
        results: [
          { sampleId: 'S1', result: 'negative' },
          { sampleId: '', result: 'negative' },
        ],
      },
      'body.results.1.sampleId',
    ],
    ['lab: empty batch', '/api/v1/lab/results', { results: [] }, 'body.results'],
    [
      'lab: batch over 1,000',
      '/api/v1/lab/results',
      { results: Array.from({ length: 1001 }, (_, i) => ({ sampleId: `S${i}`, result: 'negative' })) },
      'body.results',
    ],
    ['ack: note too long', '/api/v1/escalations/QCSEED000002-E1/ack', { note: 'x'.repeat(1001) }, 'body.note'],
    [
      'keys: community without street',
      '/api/v1/admin/keys',
      { name: 'x', role: 'community', district: 'D1' },
      'body.street',
    ],
    ['keys: role system', '/api/v1/admin/keys', { name: 'x', role: 'system' }, 'body.role'],
  ];
  test.each(cases)('%s', async (_what, path, body, field) => {
    expect(fieldsOf(await post(path, body))).toContain(field);
  });

  test('query strings are validated too', async () => {
    const res = await request(h.app)
      .get('/api/v1/cases?phase=ASLEEP&limit=0&hasOpenEscalations=maybe&extra=1')
      .set(h.auth('admin'));
    expect(fieldsOf(res)).toEqual(
      expect.arrayContaining(['query.phase', 'query.limit', 'query.hasOpenEscalations', 'query.extra']),
    );
  });
});

describe('control characters are refused in every field, and change nothing', () => {
  // Postgres text cannot hold a NUL: one accepted would fail every later read-model write of the case.
  test('in a body: a transfer street, a symptom, a nested name', async () => {
    const before = await h.db.select({ n: cases.caseNo }).from(cases);
    const transfer = validTransfer();
    expect(fieldsOf(await post('/api/v1/transfers', { ...transfer, street: 'S1\u0000' }, 'community'))).toEqual([
      'body.street',
    ]);
    expect(
      fieldsOf(
        await post(
          '/api/v1/transfers',
          { ...transfer, person: { ...(transfer.person as object), name: '张\u0007三' } },
          'community',
        ),
      ),
    ).toEqual(['body.person.name']);
    expect(
      fieldsOf(
        await post(
          '/api/v1/cases/QCSEED000001/health-checks',
          { temperatureC: 36.5, symptoms: ['cough', 'x\u0000'] },
          'medical',
        ),
      ),
    ).toEqual(['body.symptoms.1']);
    expect(await h.db.select({ n: cases.caseNo }).from(cases)).toHaveLength(before.length);
  });

  test('a line break or a tab in a note is text, not a control character', async () => {
    const res = await post('/api/v1/transfers', { ...validTransfer(), note: 'first line\nsecond\tline' }, 'community');
    expect(res.status).not.toBe(400);
  });

  test('in a query: a filter, and a cursor that decodes to one (400, never 503 "database unavailable")', async () => {
    const get = (q: string) => request(h.app).get(`/api/v1/cases?${q}`).set(h.auth('admin'));
    expect(fieldsOf(await get('street=%00'))).toEqual(['query.street']);
    // "AA" is base64url for a single NUL byte.
    expect(fieldsOf(await get('cursor=AA'))).toEqual(['query.cursor']);
    expect((await get(`cursor=${Buffer.from('QCSEED000002').toString('base64url')}`)).status).toBe(200);
  });
});

describe('transfers are idempotent on requestId', () => {
  test('the same request twice → the same case, 202 with Location', async () => {
    const body = validTransfer();
    const first = await post('/api/v1/transfers', body, 'community');
    expect(first.status).toBe(202);
    expect(first.body.caseNo).toBe(caseNoFor(body.requestId as string));
    expect(first.body.workflowId).toBe(`case-${first.body.caseNo}`);
    expect(first.headers.location).toBe(`/api/v1/cases/${first.body.caseNo}`);
    expect(first.body.status).toBe('RUNNING');
    // Key order and whitespace differences are the same request.
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    const again = await post('/api/v1/transfers', reordered, 'community');
    expect(again.status).toBe(202);
    expect(again.body.caseNo).toBe(first.body.caseNo);

    const row = await h.db.select().from(cases).where(eq(cases.caseNo, first.body.caseNo));
    expect(row[0]).toMatchObject({ phase: 'REQUESTED', displayName: '张*明', district: 'D1', street: 'S1' });

    const d = await h.temporal.client.workflow.getHandle(first.body.workflowId).describe();
    expect(JSON.stringify(d.memo)).not.toMatch(/张|110101|Example Road|138/);
    expect(d.taskQueue).toBe(h.config.TEMPORAL_TASK_QUEUE);
  });

  test('the same requestId with a different body → 409, no second workflow', async () => {
    const body = validTransfer();
    expect((await post('/api/v1/transfers', body, 'community')).status).toBe(202);
    const conflict = await post('/api/v1/transfers', { ...body, homeAddress: 'somewhere else' }, 'community');
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ status: 409, caseNo: caseNoFor(body.requestId as string) });
    expect(conflict.body.type).toMatch(/request-id-conflict/);
  });

  test('a retry after the case ended still finds it (no second case)', async () => {
    const body = validTransfer();
    const first = await post('/api/v1/transfers', body, 'community');
    await h.temporal.client.workflow.getHandle(first.body.workflowId).terminate('test');
    const again = await post('/api/v1/transfers', body, 'community');
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ caseNo: first.body.caseNo, status: 'TERMINATED' });
    expect((await post('/api/v1/transfers', { ...body, note: 'changed' }, 'community')).status).toBe(409);
  });
});

test('oversize bodies → 413 problem', async () => {
  const res = await post('/api/v1/transfers', validTransfer({ note: 'x'.repeat(70 * 1024) }));
  expect(res.status).toBe(413);
  expect(res.headers['content-type']).toMatch(/problem\+json/);
});

test('unknown routes → 404 problem', async () => {
  const res = await request(h.app).get('/api/v1/nothing-here').set(h.auth('admin'));
  expect(res.status).toBe(404);
  expect(res.headers['content-type']).toMatch(/problem\+json/);
});

test('a case that does not exist → 404; a missing escalation → 404', async () => {
  expect((await post('/api/v1/cases/QCNOSUCHCASE/arrival', {}, 'admin')).status).toBe(404);
  expect((await request(h.app).get('/api/v1/cases/QCNOSUCHCASE').set(h.auth('admin'))).status).toBe(404);
  expect((await post('/api/v1/escalations/NOPE-E1/ack', {}, 'admin')).status).toBe(404);
});

describe('rate limit', () => {
  test('a key over its rate gets 429 with Retry-After; other keys do not', async () => {
    const created = await request(h.app)
      .post('/api/v1/admin/keys')
      .set('X-Admin-Token', h.adminToken)
      .send({ name: 'slow', role: 'supervisor', district: 'D1', ratePerMinute: 3 });
    const slow = { Authorization: `Bearer ${created.body.key}` };
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await request(h.app).get('/api/v1/hotels').set(slow)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const limited = await request(h.app).get('/api/v1/hotels').set(slow);
    expect(limited.headers['content-type']).toMatch(/problem\+json/);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await request(h.app).get('/api/v1/hotels').set(h.auth('supervisor'))).status).toBe(200);
  });
});
