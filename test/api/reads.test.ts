import crypto from 'node:crypto';

import { Client, Connection } from '@temporalio/client';
import { eq, sql, type SQL } from 'drizzle-orm';
import request from 'supertest';

import { createApp } from '../../src/api/app';
import { createApiKey } from '../../src/auth/keys';
import { createLogger } from '../../src/log';
import { toSummary } from '../../src/api/routes/read-helpers';
import { cases, rooms } from '../../src/db/schema';
import { fillCaseSummaries } from '../../src/db/summary-fill';
import { createTestDatabase } from '../support/db';
import { freePort } from '../support/ports';
import { createHarness, seedReadModel, validTransfer, type Harness } from './harness';

// 10:00 in Shanghai: the seeded release at +2 h is today, +26 h and +30 h tomorrow.
const NOW = new Date('2022-04-10T02:00:00Z');

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ label: 'reads', deps: { now: () => NOW } });
  await seedReadModel(h.db, NOW);
});
afterAll(async () => h?.close());

/** A write made with the copy's trigger off, as rows written before migration 0012 were. */
const withoutCopyTrigger = (q: SQL) =>
  h.db.transaction(async (tx) => {
    await tx.execute(sql`alter table cases disable trigger cases_summary_json`);
    await tx.execute(q);
    await tx.execute(sql`alter table cases enable always trigger cases_summary_json`);
  });

const get = (path: string, key: Parameters<Harness['auth']>[0] = 'supervisor') =>
  request(h.app).get(path).set(h.auth(key));

describe('GET /api/v1/cases', () => {
  test('filters', async () => {
    const nos = async (q: string) =>
      (await get(`/api/v1/cases?${q}`)).body.items.map((c: { caseNo: string }) => c.caseNo);
    expect(await nos('phase=OBSERVATION')).toEqual(['QCSEED000001', 'QCSEED000002']);
    expect(await nos('colour=red')).toEqual(['QCSEED000002']);
    expect(await nos('hotelId=H2')).toEqual(['QCSEED000003', 'QCSEED000005']);
    expect(await nos('hasOpenEscalations=true')).toEqual(['QCSEED000002', 'QCSEED000003']);
    expect(
      await nos(`releaseDueBefore=${encodeURIComponent(new Date(NOW.getTime() + 27 * 3_600_000).toISOString())}`),
    ).toEqual(['QCSEED000001', 'QCSEED000002']);
    expect(await nos('street=S2&phase=RELEASED')).toEqual(['QCSEED000005']);
  });

  test('cursor pagination walks every case once, in case-number order', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/api/v1/cases?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((c: { caseNo: string }) => c.caseNo));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(['QCSEED000001', 'QCSEED000002', 'QCSEED000003', 'QCSEED000004', 'QCSEED000005']);
    expect(pages).toBe(3);
  });

  test('page edges: a page that ends the list has no cursor, one row more has; nothing matching is an empty page', async () => {
    // Five seeded cases: pages of 5 and of 6 end the list; a page of 4 leaves one.
    for (const limit of [5, 6]) {
      const res = await get(`/api/v1/cases?limit=${limit}`);
      expect(res.body.items).toHaveLength(5);
      expect(res.body.nextCursor).toBeNull();
    }
    const four = await get('/api/v1/cases?limit=4');
    expect(four.body.items.map((c: { caseNo: string }) => c.caseNo)).toEqual([
      'QCSEED000001',
      'QCSEED000002',
      'QCSEED000003',
      'QCSEED000004',
    ]);
    expect(Buffer.from(four.body.nextCursor, 'base64url').toString()).toBe('QCSEED000004');
    const rest = await get(`/api/v1/cases?limit=4&cursor=${four.body.nextCursor}`);
    expect(rest.body).toEqual({ items: [expect.objectContaining({ caseNo: 'QCSEED000005' })], nextCursor: null });
    const none = await get('/api/v1/cases?colour=red&phase=RELEASED');
    expect(none.status).toBe(200);
    expect(none.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(none.body).toEqual({ items: [], nextCursor: null });
    const past = await get(`/api/v1/cases?cursor=${Buffer.from('QCSEED999999').toString('base64url')}`);
    expect(past.body).toEqual({ items: [], nextCursor: null });
    // The page is sent as is, its length exact, with no ETag (nobody revalidates a page).
    const one = await get('/api/v1/cases?limit=1');
    expect(Number(one.headers['content-length'])).toBe(Buffer.byteLength(one.text));
    expect(one.headers.etag).toBeUndefined();
    // HEAD answers the headers of the same page without it.
    const head = await request(h.app).head('/api/v1/cases?limit=1').set(h.auth('supervisor'));
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(one.headers['content-length']);
    expect(head.text ?? '').toBe('');
  });

  test('rows carry the masked name and room number, nothing more personal', async () => {
    const res = await get('/api/v1/cases?colour=green&phase=OBSERVATION');
    expect(res.body.items[0]).toMatchObject({
      caseNo: 'QCSEED000001',
      displayName: '张*明',
      roomNo: '103',
      hotelId: 'H1',
    });
    expect(Object.keys(res.body.items[0])).not.toEqual(expect.arrayContaining(['idNumber', 'phone', 'homeAddress']));
  });
  test('each row the database keeps as JSON equals toSummary of the same row (every field, every format, every writer)', async () => {
    // Edge values: microseconds (truncated to milliseconds, as Date does), nulls, a year before
    // 1970, quotes, backslashes, control characters and characters outside ASCII in text, a room
    // number joined in.
    const rows = [
      { caseNo: 'QCJSON000001', at: '2022-04-10 02:00:00.999999+00', name: '李"\\\u2028*明', room: 'H1-103' },
      { caseNo: 'QCJSON000002', at: '1969-12-31 23:59:59.0005+08', name: null, room: null },
      { caseNo: 'QCJSON000003', at: '2038-01-19 03:14:07.123+00', name: '𠀀*x\n\t\u0001\u001f\u007f/<>&', room: null },
    ];
    for (const r of rows)
      await h.db.insert(cases).values({
        caseNo: r.caseNo,
        workflowId: `case-${r.caseNo}`,
        requestId: `req-${r.caseNo}`,
        district: 'D1',
        street: 'S9',
        displayName: r.name,
        phase: 'OBSERVATION',
        colour: r.name ? 'yellow' : null,
        policyName: 'standard',
        hotelId: r.room ? 'H1' : null,
        roomId: r.room,
        requestedAt: new Date(),
        arrivedAt: r.name ? new Date() : null,
        stayStart: null,
        releaseDue: new Date(),
        nextCheckDue: null,
        pendingResults: 2,
        openEscalations: 1,
        openRedEscalations: 0,
        inspectionStatus: 'requested',
        endedAt: null,
        stateVersion: 3,
      });
    // The timestamps as Postgres stores them (microseconds), for the comparison.
    for (const r of rows)
      await h.db.execute(sql`
        update cases set requested_at = ${r.at}::timestamptz, release_due = ${r.at}::timestamptz + interval '1 microsecond'
        where case_no = ${r.caseNo}`);
    const storedS9 = () =>
      h.db
        .select({ c: cases, roomNo: rooms.roomNo })
        .from(cases)
        .leftJoin(rooms, eq(rooms.id, cases.roomId))
        .where(eq(cases.street, 'S9'))
        .orderBy(cases.caseNo);
    const pageText = async () => (await get('/api/v1/cases?street=S9', 'admin')).text;
    const expected = (rs: Awaited<ReturnType<typeof storedS9>>) =>
      JSON.stringify({ items: rs.map((r) => toSummary({ ...r.c, roomNo: r.roomNo })), nextCursor: null });
    const page = await get('/api/v1/cases?street=S9', 'admin');
    const listed = page.body.items;
    const stored = await storedS9();
    expect(listed).toEqual(stored.map((r) => toSummary({ ...r.c, roomNo: r.roomNo })));
    expect(listed[0].requestedAt).toBe('2022-04-10T02:00:00.999Z');
    expect(listed[0].roomNo).toBe('103');
    // The very bytes JSON.stringify gives: key order, no spaces, every string escaped alike.
    expect(page.text).toBe(expected(stored));
    // Each row's copy was made by the trigger on its insert and its update (drizzle/0012).
    expect(stored.every((r) => typeof r.c.summaryJson === 'string')).toBe(true);

    // The workflows' writer (an upsert through shaodian_record_case) keeps the copy too.
    const row = { ...stored[0]!.c, phase: 'RELEASED', endedAt: new Date('2022-04-11T03:04:05.678Z') };
    const w = {
      row: Object.fromEntries(
        Object.entries({
          case_no: row.caseNo,
          workflow_id: row.workflowId,
          request_id: row.requestId,
          district: row.district,
          street: row.street,
          display_name: row.displayName,
          phase: row.phase,
          colour: row.colour,
          policy_name: row.policyName,
          hotel_id: row.hotelId,
          room_id: row.roomId,
          requested_at: row.requestedAt,
          release_due: row.releaseDue,
          pending_results: 0,
          open_escalations: 0,
          open_red_escalations: 0,
          inspection_status: 'passed',
          ended_at: row.endedAt,
          state_version: row.stateVersion + 1,
        }).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]),
      ),
      events: [],
    };
    await h.db.execute(sql`select shaodian_record_case(${JSON.stringify(w)}::jsonb)`);
    // A session with replica triggers off (a restore, a logical replica) still keeps the copy.
    await h.db.transaction(async (tx) => {
      await tx.execute(sql`set local session_replication_role = replica`);
      await tx.execute(sql`update cases set inspection_status = 'failed' where case_no = ${rows[2]!.caseNo}`);
    });
    // A new case by the workflows' writer (its insert, not its update) has its copy too.
    await h.db.execute(
      sql`select shaodian_record_case(${JSON.stringify({ ...w, row: { ...w.row, case_no: 'QCJSON000004', request_id: 'req-QCJSON000004', workflow_id: 'case-QCJSON000004', state_version: 1 } })}::jsonb)`,
    );
    // Rows without a copy (as rows written before migration 0012: made here with the trigger
    // off) are built on the spot, the same, the room's number too.
    await withoutCopyTrigger(
      sql`update cases set summary_json = null where case_no in (${rows[0]!.caseNo}, ${rows[1]!.caseNo})`,
    );
    const now = await storedS9();
    // QCSEED000006, seeded in D2/S9, had its copy from its insert.
    expect(now.map((r) => r.c.summaryJson === null)).toEqual([true, true, false, false, false]);
    const pageAgain = await pageText();
    expect(pageAgain).toBe(expected(now));
    const again = JSON.parse(pageAgain).items;
    expect(again[0]).toMatchObject({
      phase: 'RELEASED',
      endedAt: '2022-04-11T03:04:05.678Z',
      inspectionStatus: 'passed',
      roomNo: '103',
      pendingResults: 0,
    });
    expect(again[0].updatedAt).not.toBe(listed[0].updatedAt);
    expect(again[2].inspectionStatus).toBe('failed');
    expect(again[3]).toMatchObject({ caseNo: 'QCJSON000004', phase: 'RELEASED', roomNo: '103' });
    // The fill (run at the API's start) makes the missing copies, the same, and then nothing more.
    expect(await fillCaseSummaries(h.db, { batch: 1, pauseMs: 0 })).toBe(2);
    expect(await fillCaseSummaries(h.db)).toBe(0);
    const filled = await storedS9();
    expect(filled.every((r) => typeof r.c.summaryJson === 'string')).toBe(true);
    expect(await pageText()).toBe(expected(filled));
    await h.db.delete(cases).where(eq(cases.street, 'S9'));
  });
});

describe('the list and the rooms', () => {
  test('a room added after its case, renumbered, or removed: the page says so at once', async () => {
    const listed = async () =>
      (await get('/api/v1/cases?street=S8', 'admin')).body.items.map((c: { roomNo: string | null }) => c.roomNo);
    await h.db.insert(cases).values({
      caseNo: 'QCROOM000001',
      workflowId: 'case-QCROOM000001',
      requestId: 'req-QCROOM000001',
      district: 'D1',
      street: 'S8',
      phase: 'OBSERVATION',
      policyName: 'standard',
      hotelId: 'H1',
      roomId: 'H1-990',
      requestedAt: new Date(),
    });
    expect(await listed()).toEqual([null]);
    await h.db.insert(rooms).values({ id: 'H1-990', hotelId: 'H1', roomNo: '990', floor: 9 });
    expect(await listed()).toEqual(['990']);
    await h.db.update(rooms).set({ roomNo: '990A' }).where(eq(rooms.id, 'H1-990'));
    expect(await listed()).toEqual(['990A']);
    await h.db.delete(rooms).where(eq(rooms.id, 'H1-990'));
    expect(await listed()).toEqual([null]);
    await h.db.delete(cases).where(eq(cases.street, 'S8'));
  });
});

describe('GET /api/v1/cases/{caseNo}', () => {
  test('with no worker answering, the read model is served and says so', async () => {
    const t0 = Date.now();
    const res = await get('/api/v1/cases/QCSEED000002');
    expect(res.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(res.body).toMatchObject({ caseNo: 'QCSEED000002', source: 'read-model', state: null });
    expect(res.body.warning).toMatch(/read model/);
    // This seeded case has no workflow at all: the read model stands in for it.
    expect(res.body.summary).toMatchObject({ phase: 'OBSERVATION', colour: 'red', openRedEscalations: 1 });
    expect(res.body.escalations.map((e: { id: string }) => e.id)).toEqual(['QCSEED000002-E1']);
  });
});

test('GET /api/v1/hotels: vacancy by SQL over rooms', async () => {
  const res = await get('/api/v1/hotels');
  expect(res.body.items).toEqual([
    {
      id: 'H1',
      name: 'Hotel One',
      district: 'D1',
      street: 'S1',
      active: true,
      total: 8,
      free: 3,
      reserved: 1,
      occupied: 2,
      awaitingDisinfection: 1,
      outOfService: 1,
    },
    {
      id: 'H2',
      name: 'Hotel Two',
      district: 'D1',
      street: 'S2',
      active: true,
      total: 4,
      free: 1,
      reserved: 0,
      occupied: 3,
      awaitingDisinfection: 0,
      outOfService: 0,
    },
  ]);
});

test('GET /api/v1/escalations: open ones, oldest first', async () => {
  const res = await get('/api/v1/escalations');
  expect(res.body.items.map((e: { id: string }) => e.id)).toEqual(['QCSEED000002-E1', 'QCSEED000003-E1']);
  expect(res.body.items[0]).toMatchObject({ severity: 'red', displayName: 'J***n', district: 'D1' });
  const acked = await get('/api/v1/escalations?status=acked');
  expect(acked.body.items.map((e: { id: string }) => e.id)).toEqual(['QCSEED000001-E1']);
});

test('GET /api/v1/summary: what the dashboard shows', async () => {
  const res = await get('/api/v1/summary');
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({
    timeZone: 'Asia/Shanghai',
    district: 'D1',
    hotels: { total: 12, free: 4, reserved: 1, occupied: 5, awaitingDisinfection: 1, outOfService: 1 },
    phases: { OBSERVATION: 2, RELEASE_PENDING: 1, REQUESTED: 1, RELEASED: 1 },
    colours: { green: 1, red: 1, yellow: 1, none: 1 },
    activeCases: 4,
    openEscalations: { total: 2, red: 1, oldestOpenedAt: new Date(NOW.getTime() - 3 * 3_600_000).toISOString() },
  });
  expect(res.body.byPhaseColour.OBSERVATION).toEqual({ green: 1, red: 1 });
  expect(res.body.releasesDue.today.map((r: { caseNo: string }) => r.caseNo)).toEqual(['QCSEED000001']);
  expect(res.body.releasesDue.tomorrow).toEqual([
    expect.objectContaining({ caseNo: 'QCSEED000002', inspectionStatus: 'requested', openRedEscalations: 1 }),
    expect.objectContaining({ caseNo: 'QCSEED000003', inspectionStatus: 'failed' }),
  ]);
});

describe('outages', () => {
  test('database down: a known key still files transfers; reads answer 503; /readyz names the database', async () => {
    const database = await createTestDatabase('api_dbdown');
    const { key } = await createApiKey(database.db, { name: 'c', role: 'community', district: 'D1', street: 'S1' });
    const app = createApp({
      config: h.config,
      db: database.db,
      temporal: { client: h.temporal.client, connection: h.temporal.connection },
      log: createLogger('silent'),
    });
    const auth = { Authorization: `Bearer ${key}` };
    expect((await request(app).get('/api/v1/cases').set(auth)).status).toBe(200);
    await database.drop();

    const body = validTransfer();
    const res = await request(app).post('/api/v1/transfers').set(auth).send(body);
    expect(res.status).toBe(202);
    const again = await request(app).post('/api/v1/transfers').set(auth).send(body);
    expect(again.body.caseNo).toBe(res.body.caseNo);

    const list = await request(app).get('/api/v1/cases').set(auth);
    expect(list.status).toBe(503);
    expect(list.headers['content-type']).toMatch(/problem\+json/);
    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.database.ok).toBe(false);
    expect(ready.body.checks.temporal.ok).toBe(true);
    expect(ready.body.detail).toMatch(/database/);
    // Unknown keys cannot be checked without the database.
    const unknown = await request(app)
      .get('/api/v1/cases')
      .set({ Authorization: `Bearer sd_000000000000_${'A'.repeat(32)}` });
    expect(unknown.status).toBe(503);
  });

  test('Temporal unreachable: /readyz names it; a transfer answers 503, not 500', async () => {
    const connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}`, connectTimeout: 500 });
    const client = new Client({ connection, namespace: h.config.TEMPORAL_NAMESPACE });
    const app = createApp({
      config: { ...h.config, API_HMAC_KEY: crypto.randomBytes(32).toString('base64'), API_TEMPORAL_TIMEOUT_MS: 2000 },
      db: h.db,
      temporal: { client, connection },
      log: createLogger('silent'),
    });
    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.temporal.ok).toBe(false);
    expect(ready.body.checks.database.ok).toBe(true);
    const res = await request(app).post('/api/v1/transfers').set(h.auth('community')).send(validTransfer());
    expect([503, 504]).toContain(res.status);
    expect(res.headers['content-type']).toMatch(/problem\+json/);
    await connection.close().catch(() => undefined);
  }, 30_000);
});

// Last: it adds a case, which the counts above must not see.
test('GET /api/v1/cases/{caseNo}: a running case with no worker polling falls back after the query timeout', async () => {
  const filed = await request(h.app).post('/api/v1/transfers').set(h.auth('community')).send(validTransfer());
  expect(filed.status).toBe(202);
  const t0 = Date.now();
  const res = await get(`/api/v1/cases/${filed.body.caseNo}`);
  const took = Date.now() - t0;
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({
    source: 'read-model',
    state: null,
    summary: { phase: 'REQUESTED', displayName: '张*明' },
  });
  expect(res.body.warning).toMatch(/No worker answered within 2000 ms/);
  expect(took).toBeGreaterThanOrEqual(1900);
  expect(took).toBeLessThan(4000);
});
