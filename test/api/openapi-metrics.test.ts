import request from 'supertest';

import { createHarness, seedReadModel, validTransfer, type Harness } from './harness';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ label: 'docs' });
  await seedReadModel(h.db);
});
afterAll(async () => h?.close());

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  name?: string;
}

/** What Express really serves, read from its router rather than from our route table. */
function servedRoutes(): string[] {
  const stack = (h.app as unknown as { router: { stack: Layer[] } }).router.stack;
  const out: string[] = [];
  for (const layer of stack) {
    if (!layer.route) continue;
    for (const m of Object.keys(layer.route.methods)) {
      if (m === '_all') continue;
      out.push(`${m.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return out.sort();
}

describe('/openapi.json', () => {
  let doc: {
    openapi: string;
    paths: Record<
      string,
      Record<
        string,
        { security?: unknown[]; responses: Record<string, unknown>; parameters?: { name: string; in: string }[] }
      >
    >;
    components: {
      securitySchemes: Record<string, { type: string; scheme?: string }>;
      schemas: Record<string, unknown>;
    };
  };
  beforeAll(async () => {
    const res = await request(h.app).get('/openapi.json');
    expect(res.status).toBe(200);
    doc = res.body;
  });

  test('is OpenAPI 3.1 with a bearer scheme', () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.schemas).toHaveProperty('TransferRequest');
    expect(doc.components.schemas).toHaveProperty('Problem');
  });

  test('documents exactly the routes Express serves', () => {
    const documented = Object.entries(doc.paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    expect(documented).toEqual(servedRoutes());
    expect(documented.length).toBeGreaterThanOrEqual(25);
  });

  test('path parameters are declared, and protected routes name their errors', () => {
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const name of [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1])) {
          expect(op.parameters?.some((x) => x.in === 'path' && x.name === name)).toBe(true);
        }
        // Under /api/ only the certificate check is public (anyone holding a printed certificate).
        if (p.startsWith('/api/') && p !== '/api/v1/certificates/{certificateNo}/verify') {
          expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['401', '403', '429']));
          expect(op.security?.length).toBeGreaterThan(0);
        }
      }
    }
  });

  test('/docs and /dashboard serve self-contained pages', async () => {
    for (const p of ['/docs', '/dashboard']) {
      const res = await request(h.app).get(p);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.headers['content-security-policy']).toMatch(/default-src 'self'/);
      expect(res.text).not.toMatch(/https?:\/\/(?!shaodian\.invalid)/);
    }
    for (const a of ['/assets/docs.js', '/assets/dashboard.js', '/assets/dashboard.css']) {
      expect((await request(h.app).get(a)).status).toBe(200);
    }
  });

  test('security headers (helmet) on every answer, and a CSP that works over plain HTTP', async () => {
    for (const p of ['/healthz', '/openapi.json', '/dashboard', '/api/v1/summary', '/no/such/route']) {
      const res = await request(h.app).get(p);
      expect([p, res.headers['x-content-type-options']]).toEqual([p, 'nosniff']);
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
      expect(res.headers['content-security-policy']).not.toMatch(/upgrade-insecure-requests|unsafe-inline|unsafe-eval/);
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });
});

describe('health', () => {
  test('/healthz is 200 and /readyz names each dependency', async () => {
    expect((await request(h.app).get('/healthz')).body).toEqual({ status: 'ok' });
    const ready = await request(h.app).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks.temporal.ok).toBe(true);
    expect(ready.body.checks.database.ok).toBe(true);
  });
});

describe('/metrics', () => {
  test('counts requests by route pattern and holds no PII or case numbers', async () => {
    const t = validTransfer();
    const started = await request(h.app).post('/api/v1/transfers').set(h.auth('community')).send(t);
    expect(started.status).toBe(202);
    await request(h.app).get(`/api/v1/cases/${started.body.caseNo}`).set(h.auth('supervisor'));
    await request(h.app)
      .post('/api/v1/cases/QCSEED000001/door-alarms')
      .set(h.auth('hotel'))
      .send({ sensorId: 'DOOR-7' });
    await request(h.app).get('/api/v1/cases/QC-WHO-KNOWS/unknown').set(h.auth('supervisor'));
    await request(h.app)
      .post('/api/v1/transfers')
      .set(h.auth('community'))
      .send({ ...t, person: { name: '李四' } });

    const res = await request(h.app).get('/metrics');
    expect(res.status).toBe(200);
    const text = res.text;
    expect(text).toMatch(/shaodian_http_requests_total\{method="POST",route="\/api\/v1\/transfers",status="202"\} 1/);
    expect(text).toMatch(/route="\/api\/v1\/cases\/:caseNo"/);
    expect(text).toMatch(/shaodian_http_request_duration_seconds_bucket\{/);
    expect(text).toMatch(/shaodian_workflow_starts_total\{outcome="started_or_existing"\} 1/);
    expect(text).toMatch(/shaodian_workflow_signals_total/);
    expect(text).toMatch(/shaodian_api_errors_total\{kind="invalid_request"\} 1/);
    expect(text).toMatch(/route="unmatched"/);

    const person = t.person as Record<string, string>;
    for (const secret of [
      started.body.caseNo,
      'QCSEED000001',
      'QC-WHO-KNOWS',
      t.requestId as string,
      person.name!,
      '李四',
      person.idNumber!,
      person.phone!,
      t.homeAddress as string,
      'DOOR-7',
      h.keyIds.community,
      'Community S1',
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});
