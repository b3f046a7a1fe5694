import crypto from 'node:crypto';

import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { sql } from 'drizzle-orm';
import request from 'supertest';

import { issueCodecSession } from '../../src/api/codec-session';
import { createApiKey } from '../../src/auth/keys';
import { rowsOf } from '../../src/integrations/hotel';
import { loadCodec } from '../../src/temporal/codec';
import { createHarness, type Harness } from './harness';

/**
 * The remote codec endpoint the Temporal UI decodes case payloads through: only supervisor and
 * admin keys (bearer or the /codec cookie), CORS for the UI's origin only, every call audited
 * before it is answered, and a decode that cannot be audited refused.
 */
let h: Harness;
const UI = 'http://127.0.0.1:8080';
beforeAll(async () => {
  h = await createHarness({ label: 'codec', env: { CODEC_CORS_ORIGINS: `${UI},http://localhost:8080` } });
});
afterAll(async () => h?.close());

const b64 = (u: Uint8Array | null | undefined) => Buffer.from(u ?? new Uint8Array()).toString('base64');
const toJson = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
  data: b64(p.data),
});
const person = { name: '张三', idNumber: '110101199003077777', address: '1 Home Road' };

async function encrypted(value: unknown) {
  const plain = defaultPayloadConverter.toPayload(value);
  const [enc] = await loadCodec(h.config).codec.encode([plain]);
  return { plain: toJson(plain), enc: toJson(enc!) };
}

const auditRows = async (keyId: string) =>
  rowsOf<{ operation: string; payloads: number; origin: string | null; namespace: string | null }>(
    await h.db.execute(
      sql`select operation, payloads, origin, namespace from codec_audit where key_id = ${keyId} order by id`,
    ),
  ).map((r) => ({ ...r }));

test('a supervisor key decodes a case payload; the call is audited with the key and the count', async () => {
  const { plain, enc } = await encrypted(person);
  expect(Buffer.from(enc.data, 'base64').toString('utf8')).not.toContain('110101199003077777');
  const res = await request(h.app)
    .post('/codec/decode')
    .set(h.auth('supervisor'))
    .set('X-Namespace', 'shaodian')
    .send({ payloads: [enc, plain] });
  expect(res.status).toBe(200);
  expect(res.headers['cache-control']).toBe('no-store');
  // The encrypted one decodes; one that is not encrypted passes through as it was.
  expect(res.body.payloads).toEqual([plain, plain]);
  expect(JSON.parse(Buffer.from(res.body.payloads[0].data, 'base64').toString('utf8'))).toEqual(person);
  expect(await auditRows(h.keyIds.supervisor)).toEqual([
    { operation: 'decode', payloads: 2, origin: null, namespace: 'shaodian' },
  ]);
});

test('encode then decode is the identity; an admin may too', async () => {
  const plain = toJson(defaultPayloadConverter.toPayload({ caseNo: 'QC1', colour: 'red' }));
  const enc = await request(h.app)
    .post('/codec/encode')
    .set(h.auth('admin'))
    .send({ payloads: [plain] });
  expect(enc.status).toBe(200);
  expect(Buffer.from(enc.body.payloads[0].metadata.encoding, 'base64').toString()).toBe('binary/encrypted');
  const dec = await request(h.app).post('/codec/decode').set(h.auth('admin')).send({ payloads: enc.body.payloads });
  expect(dec.body.payloads).toEqual([plain]);
});

test('no key → 401, other roles → 403, and nothing is decoded or audited', async () => {
  const { enc } = await encrypted(person);
  const none = await request(h.app)
    .post('/codec/decode')
    .send({ payloads: [enc] });
  expect(none.status).toBe(401);
  expect(none.headers['content-type']).toMatch(/problem\+json/);
  for (const role of ['community', 'hotel', 'medical', 'lab', 'transport'] as const) {
    const res = await request(h.app)
      .post('/codec/decode')
      .set(h.auth(role))
      .send({ payloads: [enc] });
    expect(res.status).toBe(403);
    expect(JSON.stringify(res.body)).not.toContain('110101199003077777');
    expect(await auditRows(h.keyIds[role])).toEqual([]);
  }
});

test('a payload under another key comes back unchanged (never a 500), the rest decode', async () => {
  const { plain, enc } = await encrypted(person);
  const foreign = { ...enc, data: Buffer.from(crypto.randomBytes(64)).toString('base64') };
  const res = await request(h.app)
    .post('/codec/decode')
    .set(h.auth('supervisor'))
    .send({ payloads: [foreign, enc] });
  expect(res.status).toBe(200);
  expect(res.body.payloads).toEqual([foreign, plain]);
});

test('bad bodies are 400 with the field named', async () => {
  const res = await request(h.app)
    .post('/codec/decode')
    .set(h.auth('supervisor'))
    .send({ payloads: [{ data: 'not base64 !!' }] });
  expect(res.status).toBe(400);
  expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'payloads.0.data' })]));
  const missing = await request(h.app).post('/codec/decode').set(h.auth('supervisor')).send({});
  expect(missing.status).toBe(400);
});

test('the browser session: a cookie for /codec only, HttpOnly, accepted by the codec and nowhere else', async () => {
  const refused = await request(h.app).post('/codec/session').set(h.auth('community'));
  expect(refused.status).toBe(403);
  expect(refused.headers['set-cookie']).toBeUndefined();

  const res = await request(h.app).post('/codec/session').set(h.auth('supervisor'));
  expect(res.status).toBe(200);
  const cookie = String(res.headers['set-cookie']);
  // A signed session naming the key, never the key itself.
  expect(cookie).toMatch(new RegExp(`^sd_codec=cs1\\.${h.keyIds.supervisor}\\.\\d{10}\\.[A-Za-z0-9_-]{43};`));
  expect(cookie).not.toContain(h.keys.supervisor);
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Strict/);
  expect(cookie).toMatch(/Path=\/codec/);
  const pair = cookie.split(';')[0]!;

  const { plain, enc } = await encrypted(person);
  const dec = await request(h.app)
    .post('/codec/decode')
    .set('Cookie', pair)
    .send({ payloads: [enc] });
  expect(dec.status).toBe(200);
  expect(dec.body.payloads).toEqual([plain]);
  // The cookie is no key anywhere else.
  expect((await request(h.app).get('/api/v1/summary').set('Cookie', pair)).status).toBe(401);

  const out = await request(h.app).delete('/codec/session');
  expect(out.status).toBe(204);
  expect(String(out.headers['set-cookie'])).toMatch(/sd_codec=;/);
});

test('revoking the key ends its browser session too', async () => {
  const k = await createApiKey(h.db, { name: 'Night supervisor', role: 'supervisor', district: 'D1' });
  const pair = String(
    (await request(h.app).post('/codec/session').set('Authorization', `Bearer ${k.key}`)).headers['set-cookie'],
  ).split(';')[0]!;
  const { enc } = await encrypted(person);
  expect(
    (
      await request(h.app)
        .post('/codec/decode')
        .set('Cookie', pair)
        .send({ payloads: [enc] })
    ).status,
  ).toBe(200);
  const revoked = await request(h.app).delete(`/api/v1/admin/keys/${k.identity.id}`).set('X-Admin-Token', h.adminToken);
  expect(revoked.status).toBe(200);
  expect(
    (
      await request(h.app)
        .post('/codec/decode')
        .set('Cookie', pair)
        .send({ payloads: [enc] })
    ).status,
  ).toBe(401);
});

test('a forged, expired, doubled or malformed session cookie is 401 and decodes nothing', async () => {
  const { enc } = await encrypted(person);
  const decodeWith = (cookie: string) =>
    request(h.app)
      .post('/codec/decode')
      .set('Cookie', cookie)
      .send({ payloads: [enc] });
  const hmacKey = Buffer.from(h.config.API_HMAC_KEY!, 'base64');
  const inAnHour = new Date(Date.now() + 3600_000);
  const good = issueCodecSession(hmacKey, h.keyIds.supervisor, h.keys.supervisor, inAnHour);
  expect((await decodeWith(`sd_codec=${good}`)).status).toBe(200);

  const before = (await auditRows(h.keyIds.supervisor)).length;
  const bad = {
    // Signed with another deployment's key.
    forged: issueCodecSession(crypto.randomBytes(32), h.keyIds.supervisor, h.keys.supervisor, inAnHour),
    // A community key's id in a supervisor's session: the signature covers the key id.
    otherKey: good.replace(h.keyIds.supervisor, h.keyIds.community),
    // Later expiry, same signature.
    stretched: good.replace(/\.(\d{10})\./, (_, e: string) => `.${Number(e) + 86_400}.`),
    expired: issueCodecSession(hmacKey, h.keyIds.supervisor, h.keys.supervisor, new Date(Date.now() - 1000)),
    // The raw key in the cookie (what an older build set) is no session.
    rawKey: h.keys.supervisor,
    malformed: '%E0%A4%A',
  };
  for (const [name, token] of Object.entries(bad)) {
    const res = await decodeWith(`sd_codec=${token}`);
    expect([name, res.status]).toEqual([name, 401]);
    expect(res.headers['content-type']).toMatch(/problem\+json/);
  }
  // Two session cookies (one planted for a wider path by a sibling host): refused, not guessed between.
  const doubled = await decodeWith(`sd_codec=${good}; sd_codec=${bad.forged}`);
  expect(doubled.status).toBe(401);
  expect(doubled.body.detail).toMatch(/more than one/i);
  expect((await auditRows(h.keyIds.supervisor)).length).toBe(before);
});

test('a decode is authenticated before its body is read (nobody else makes the API parse 16 MB)', async () => {
  // Not JSON at all: parsed first it would be a 400; refused first it is a 401 (or 403).
  const garbage = '{"payloads": [' + 'x'.repeat(1000);
  const send = (auth: Record<string, string>) =>
    request(h.app).post('/codec/decode').set(auth).set('Content-Type', 'application/json').send(garbage);
  expect((await send({})).status).toBe(401);
  expect((await send(h.auth('community'))).status).toBe(403);
  expect((await send({ Cookie: 'sd_codec=cs1.000000000000.9999999999.' + 'A'.repeat(43) })).status).toBe(401);
  // Express matches paths case-insensitively, and so does the check before the body.
  const upper = await request(h.app).post('/codec/DECODE').set('Content-Type', 'application/json').send(garbage);
  expect(upper.status).toBe(401);
  // Other /codec paths get the API's usual body limit (2 MB), never the codec's 16 MB.
  const big = JSON.stringify({ payloads: [{ data: 'A'.repeat(3 * 1024 * 1024) }] });
  for (const path of ['/codec/session', '/codec/elsewhere']) {
    const res = await request(h.app).post(path).set('Content-Type', 'application/json').send(big);
    expect([path, res.status]).toEqual([path, 413]);
  }
  // A codec role gets the body read, and the parse error.
  const ok = await send(h.auth('supervisor'));
  expect(ok.status).toBe(400);
  expect(ok.body.detail).toMatch(/not valid JSON/);
});

test("CORS: the UI's origin may call with its cookie; another origin gets no CORS headers", async () => {
  const pre = await request(h.app)
    .options('/codec/decode')
    .set('Origin', UI)
    .set('Access-Control-Request-Method', 'POST')
    .set('Access-Control-Request-Headers', 'content-type,x-namespace');
  expect(pre.status).toBe(204);
  expect(pre.headers['access-control-allow-origin']).toBe(UI);
  expect(pre.headers['access-control-allow-credentials']).toBe('true');
  expect(pre.headers['access-control-allow-headers']).toMatch(/X-Namespace/i);

  const evil = await request(h.app)
    .options('/codec/decode')
    .set('Origin', 'http://evil.example')
    .set('Access-Control-Request-Method', 'POST');
  expect(evil.headers['access-control-allow-origin']).toBeUndefined();

  const { enc } = await encrypted(person);
  const post = await request(h.app)
    .post('/codec/decode')
    .set('Origin', UI)
    .set(h.auth('admin'))
    .send({ payloads: [enc] });
  expect(post.headers['access-control-allow-origin']).toBe(UI);
  const rows = await auditRows(h.keyIds.admin);
  expect(rows[rows.length - 1]).toMatchObject({ operation: 'decode', origin: UI });
  // CORS never reaches other routes.
  const api = await request(h.app).options('/api/v1/summary').set('Origin', UI);
  expect(api.headers['access-control-allow-origin']).toBeUndefined();
});

test('a decode that cannot be audited is refused (503) and reveals nothing', async () => {
  const { enc } = await encrypted(person);
  await h.db.execute(sql`alter table codec_audit rename to codec_audit_away`);
  try {
    const res = await request(h.app)
      .post('/codec/decode')
      .set(h.auth('supervisor'))
      .send({ payloads: [enc] });
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toMatch(/problem\+json/);
    expect(JSON.stringify(res.body)).not.toContain(Buffer.from('110101199003077777').toString('base64'));
    expect(JSON.stringify(res.body)).not.toContain('110101199003077777');
  } finally {
    await h.db.execute(sql`alter table codec_audit_away rename to codec_audit`);
  }
});

test('admins read the audit log newest first, by key, with a cursor', async () => {
  const all = await request(h.app).get('/api/v1/admin/codec-audit').set(h.auth('admin'));
  expect(all.status).toBe(200);
  expect(all.body.items.length).toBeGreaterThan(3);
  const ids = all.body.items.map((i: { id: number }) => i.id);
  expect([...ids].sort((a, b) => b - a)).toEqual(ids);
  const one = await request(h.app)
    .get(`/api/v1/admin/codec-audit?keyId=${h.keyIds.supervisor}&limit=1`)
    .set(h.auth('admin'));
  expect(one.body.items).toHaveLength(1);
  expect(one.body.items[0].keyId).toBe(h.keyIds.supervisor);
  const next = await request(h.app)
    .get(`/api/v1/admin/codec-audit?keyId=${h.keyIds.supervisor}&limit=1&before=${one.body.nextBefore}`)
    .set(h.auth('admin'));
  expect(next.body.items[0]?.id ?? 0).toBeLessThan(one.body.items[0].id);
  expect((await request(h.app).get('/api/v1/admin/codec-audit').set(h.auth('supervisor'))).status).toBe(403);
});
