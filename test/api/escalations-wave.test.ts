import { sql } from 'drizzle-orm';
import request from 'supertest';

import { createHarness, seedReadModel, type Harness, type KeyName } from './harness';

/**
 * Escalations at wave scale: 1,000 transfers at 200 free rooms leave 800 "no room" escalations
 * open. The list pages through all of them with a cursor (no row twice, none skipped, even
 * with many opened in the same instant and rows closing between pages), filters by kind,
 * level, severity, hotel and age, and the summary says "800 waiting for a room, oldest 3 h"
 * in one row instead of 800.
 */
let h: Harness;
const WAITING = 800;
beforeAll(async () => {
  h = await createHarness({ label: 'escwave' });
  await seedReadModel(h.db);
  // 800 cases of street S1 waiting for a room: opened in batches of 40 sharing one instant
  // (microseconds included, as the database keeps them), the oldest 3 h ago.
  await h.db.execute(sql`
    insert into cases (case_no, workflow_id, request_id, district, street, phase, policy_name, requested_at)
    select 'QCWAVE' || lpad(i::text, 6, '0'), 'case-QCWAVE' || lpad(i::text, 6, '0'), 'wave-' || i,
           'D1', 'S1', 'ROOM_PENDING', 'drill', now() - interval '4 hours'
    from generate_series(1, ${WAITING}) i`);
  await h.db.execute(sql`
    insert into escalations (id, case_no, hotel_id, kind, level, severity, reason, status, opened_at)
    select 'QCWAVE' || lpad(i::text, 6, '0') || '-E1', 'QCWAVE' || lpad(i::text, 6, '0'), null,
           'no_room', 'command_centre', 'amber', 'No free room in the district', 'open',
           date_trunc('second', now()) - interval '3 hours' + ((i / 40) * interval '1 minute') + interval '123457 microseconds'
    from generate_series(1, ${WAITING}) i`);
});
afterAll(async () => h?.close());

const get = (path: string, as: KeyName = 'supervisor') => request(h.app).get(path).set(h.auth(as));

async function pageAll(path: string, limit: number, between?: (page: number) => Promise<void>) {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const res = await get(`${path}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status).toBe(200);
    ids.push(...res.body.items.map((e: { id: string }) => e.id));
    cursor = res.body.nextCursor;
    pages++;
    if (between) await between(pages);
  } while (cursor && pages < 100);
  return { ids, pages };
}

test('every one of 800 waiting cases is listed exactly once, oldest first, page by page', async () => {
  const { ids, pages } = await pageAll('/api/v1/escalations?kind=no_room', 75);
  expect(ids).toHaveLength(WAITING);
  expect(new Set(ids).size).toBe(WAITING);
  expect(pages).toBe(Math.ceil(WAITING / 75));
  // Oldest first, ties by id: the order of the query, across page boundaries.
  const rows = await get('/api/v1/escalations?kind=no_room&limit=500');
  const first = rows.body.items as { id: string; openedAt: string }[];
  for (let i = 1; i < first.length; i++) {
    const [a, b] = [first[i - 1]!, first[i]!];
    expect(a.openedAt < b.openedAt || (a.openedAt === b.openedAt && a.id < b.id)).toBe(true);
  }
  expect(ids.slice(0, 500)).toEqual(first.map((e) => e.id));
});

test('rows closing between pages neither repeat nor hide the rest', async () => {
  const closed: string[] = [];
  const { ids } = await pageAll('/api/v1/escalations?kind=no_room', 100, async (page) => {
    if (page !== 2) return;
    // A room freed: the oldest ten (already seen) and ten not yet seen are closed meanwhile.
    const r = await h.db.execute<{ id: string }>(sql`
      update escalations set status = 'closed', closed_at = now(), closed_reason = 'room_assigned'
      where id in ((select id from escalations where kind = 'no_room' and status = 'open'
                    order by opened_at, id limit 10)
                   union all
                   (select id from escalations where kind = 'no_room' and status = 'open'
                    order by opened_at desc, id desc limit 10))
      returning id`);
    closed.push(...(Array.isArray(r) ? r : (r as { rows: { id: string }[] }).rows).map((x) => x.id));
  });
  expect(closed).toHaveLength(20);
  expect(new Set(ids).size).toBe(ids.length);
  // Everything still open was listed; the ten closed before they were reached were not.
  const open = await h.db.execute<{ n: number }>(
    sql`select count(*)::int as n from escalations where kind = 'no_room' and status = 'open'`,
  );
  const stillOpen = (Array.isArray(open) ? open : (open as { rows: { n: number }[] }).rows)[0]!.n;
  expect(stillOpen).toBe(WAITING - 20);
  expect(ids.length).toBe(WAITING - 10);
  await h.db.execute(
    sql`update escalations set status = 'open', closed_at = null, closed_reason = null where kind = 'no_room'`,
  );
});

test('filters: kind, level, severity, hotel and age; the jurisdiction still applies', async () => {
  const red = await get('/api/v1/escalations?severity=red');
  expect(red.body.items.map((e: { id: string }) => e.id)).toEqual(['QCSEED000002-E1']);
  const h2 = await get('/api/v1/escalations?hotelId=H2');
  expect(h2.body.items.every((e: { hotelId: string }) => e.hotelId === 'H2')).toBe(true);
  expect(h2.body.items.length).toBeGreaterThan(0);
  const doctor = await get('/api/v1/escalations?level=doctor');
  expect(doctor.body.items.every((e: { level: string }) => e.level === 'doctor')).toBe(true);
  // Older than 2.5 h: the first batches of the wave and the seeded 3 h / 9 h ones, nothing newer.
  const before = new Date(Date.now() - 2.5 * 3600_000).toISOString();
  const old = await get(`/api/v1/escalations?openedBefore=${encodeURIComponent(before)}&limit=500`);
  expect(old.status).toBe(200);
  expect(old.body.items.length).toBeGreaterThan(0);
  expect(old.body.items.every((e: { openedAt: string }) => e.openedAt < before)).toBe(true);
  // Street S2's community has no access to the list; district D2's supervisor sees none of D1's wave.
  expect((await get('/api/v1/escalations?kind=no_room', 'supervisorOther')).body.items).toEqual([]);
  expect((await get('/api/v1/escalations?kind=no_room', 'hotelOther')).body.items).toEqual([]);
});

test('bad filters and forged cursors are 400, field by field', async () => {
  const bad = await get('/api/v1/escalations?kind=flood&level=mayor&openedBefore=yesterday&limit=0');
  expect(bad.status).toBe(400);
  expect(bad.headers['content-type']).toMatch(/problem\+json/);
  const paths = bad.body.errors.map((e: { path: string }) => e.path).sort();
  expect(paths).toEqual(['kind', 'level', 'limit', 'openedBefore']);
  const forged = [
    '["x","y"]',
    '{}',
    // Shaped like a timestamp, but no such day: must not reach the database (a 503 there).
    '["2024-13-45 00:00:00+00","x"]',
    '["2024-02-30 10:00:00.5+00","x"]',
    '["2024-02-01 10:00:00+00","x\\u0000y"]',
    '["2024-02-01 10:00:00+00","x\' or 1=1 --"]',
  ];
  for (const cursor of ['nonsense', ...forged.map((raw) => Buffer.from(raw).toString('base64url'))]) {
    const res = await get(`/api/v1/escalations?cursor=${cursor}`);
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([expect.objectContaining({ in: 'query', path: 'cursor' })]);
  }
  expect((await get('/api/v1/escalations/summary?severity=purple')).status).toBe(400);
});

test('the summary: one row for the 800 waiting for a room, with the oldest; red first', async () => {
  const res = await get('/api/v1/escalations/summary');
  expect(res.status).toBe(200);
  const noRoom = res.body.groups.find((g: { kind: string }) => g.kind === 'no_room');
  expect(noRoom).toMatchObject({ level: 'command_centre', severity: 'amber', count: WAITING, hotels: 1 });
  const listed = await get('/api/v1/escalations?kind=no_room&limit=1');
  expect(noRoom.oldestOpenedAt).toBe(listed.body.items[0].openedAt);
  expect(res.body.groups[0].severity).toBe('red');
  expect(res.body.total).toBe(res.body.groups.reduce((n: number, g: { count: number }) => n + g.count, 0));
  // The same total as paging through everything open in the jurisdiction.
  const { ids } = await pageAll('/api/v1/escalations', 500);
  expect(res.body.total).toBe(ids.length);
  // Filters and the jurisdiction apply as to the list.
  const other = await get('/api/v1/escalations/summary', 'supervisorOther');
  expect(other.body.groups.find((g: { kind: string }) => g.kind === 'no_room')).toBeUndefined();
  const nurse = await get('/api/v1/escalations/summary', 'medical');
  expect(nurse.status).toBe(200);
  expect(nurse.body.groups.every((g: { kind: string }) => g.kind !== 'no_room')).toBe(true);
  expect((await get('/api/v1/escalations/summary', 'community')).status).toBe(403);
});
