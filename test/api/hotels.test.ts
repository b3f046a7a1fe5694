import { eq } from 'drizzle-orm';
import request from 'supertest';

import { createApiKey } from '../../src/auth/keys';
import { cases, rooms } from '../../src/db/schema';
import { maskName } from '../../src/domain/types';
import type { Logger } from '../../src/log';
import { createHarness, seedReadModel, validTransfer, type Harness } from './harness';

/** Every line the API logs, to check that each command is recorded with the key that made it. */
const logged: { msg: string; fields: Record<string, unknown> }[] = [];
function captureLogger(base: Record<string, unknown> = {}): Logger {
  const emit = (msg: string, fields?: Record<string, unknown>) => logged.push({ msg, fields: { ...base, ...fields } });
  return { debug: emit, info: emit, warn: emit, error: emit, child: (f) => captureLogger({ ...base, ...f }) };
}
const commands = (command: string) => logged.filter((l) => l.msg === 'command' && l.fields.command === command);

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ label: 'hotels', deps: { log: captureLogger() } });
  await seedReadModel(h.db);
});
afterAll(async () => h?.close());

const site = (overrides: Record<string, unknown> = {}) => ({
  id: 'xigu-new-01',
  name: 'Riverside Inn',
  district: 'D1',
  street: 'S1',
  medicalStationFloor: 1,
  rooms: [
    { roomNo: '101', floor: 1, accessible: true },
    { roomNo: '102', floor: 1 },
    { roomNo: '201', floor: 2 },
  ],
  ...overrides,
});

const roomState = async (id: string) => (await h.db.select().from(rooms).where(eq(rooms.id, id)))[0];

describe('a supervisor opens a new site', () => {
  test('one call adds the hotel with its rooms (201); the same call again is a 200 that changes nothing', async () => {
    const first = await request(h.app).post('/api/v1/hotels').set(h.auth('supervisor')).send(site());
    expect(first.status).toBe(201);
    expect(first.headers.location).toBe('/api/v1/hotels/xigu-new-01/rooms');
    expect(first.body).toEqual({ hotelId: 'xigu-new-01', created: true, rooms: 3, added: 3 });

    const again = await request(h.app).post('/api/v1/hotels').set(h.auth('supervisor')).send(site());
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ hotelId: 'xigu-new-01', created: false, rooms: 3, added: 0 });

    // A room in use is left alone when the site is posted again with one more room.
    await h.db.update(rooms).set({ state: 'occupied', caseNo: 'QCSEED000004' }).where(eq(rooms.id, 'xigu-new-01:201'));
    const more = site();
    more.rooms.push({ roomNo: '202', floor: 2 });
    const grown = await request(h.app).post('/api/v1/hotels').set(h.auth('admin')).send(more);
    expect(grown.status).toBe(200);
    expect(grown.body).toMatchObject({ created: false, rooms: 4, added: 1 });
    expect(await roomState('xigu-new-01:201')).toMatchObject({ state: 'occupied', caseNo: 'QCSEED000004' });

    const list = await request(h.app).get('/api/v1/hotels/xigu-new-01/rooms').set(h.auth('supervisor'));
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({
      hotelId: 'xigu-new-01',
      name: 'Riverside Inn',
      district: 'D1',
      counts: { free: 3, occupied: 1, reserved: 0, awaiting_disinfection: 0, out_of_service: 0 },
    });
    expect(list.body.items.map((r: { id: string }) => r.id)).toEqual([
      'xigu-new-01:101',
      'xigu-new-01:102',
      'xigu-new-01:201',
      'xigu-new-01:202',
    ]);
    expect(list.body.items[0]).toMatchObject({ roomNo: '101', floor: 1, accessible: true, state: 'free' });

    // The new site is in the supervisor's vacancy at once.
    const vacancy = await request(h.app).get('/api/v1/hotels').set(h.auth('supervisor'));
    expect(vacancy.body.items.find((x: { id: string }) => x.id === 'xigu-new-01')).toMatchObject({ total: 4, free: 3 });

    const added = commands('addHotel');
    expect(added).toHaveLength(3);
    expect(added[0]!.fields).toMatchObject({
      hotelId: 'xigu-new-01',
      created: true,
      added: 3,
      by: { id: h.keyIds.supervisor, role: 'supervisor', name: 'Supervisor D1' },
    });
  });

  test('every invalid field is named, unknown ones too (the service would silently drop them)', async () => {
    const fields = async (body: unknown) => {
      const res = await request(h.app)
        .post('/api/v1/hotels')
        .set(h.auth('admin'))
        .send(body as object);
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toMatch(/problem\+json/);
      return (res.body.errors as { path: string }[]).map((e) => e.path);
    };
    expect(await fields(site({ medicalStationFlor: 2 }))).toEqual(['medicalStationFlor']);
    expect(await fields(site({ rooms: [{ roomNo: '1', floor: 1, state: 'free' }] }))).toEqual(['rooms.0.state']);
    expect(await fields(site({ id: 'has:colon' }))).toContain('id');
    expect(await fields(site({ rooms: [] }))).toContain('rooms');
    expect(
      await fields(
        site({
          rooms: [
            { roomNo: '1', floor: 1 },
            { roomNo: '1', floor: 2 },
          ],
        }),
      ),
    ).toContain('rooms');
    expect(await fields(site({ name: '', rooms: [{ roomNo: '1', floor: 'one' }] }))).toEqual(
      expect.arrayContaining(['name', 'rooms.0.floor']),
    );
    expect(await fields([])).toEqual(expect.arrayContaining(['']));
  });

  test('unknown hotels are 404', async () => {
    const res = await request(h.app).get('/api/v1/hotels/NOPE/rooms').set(h.auth('supervisor'));
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/problem\+json/);
  });
});

describe('hotel staff run their rooms', () => {
  test('a room awaiting disinfection becomes free when disinfected; a retry is harmless', async () => {
    expect(await roomState('H1-105')).toMatchObject({ state: 'awaiting_disinfection' });
    const done = await request(h.app).post('/api/v1/rooms/H1-105/disinfected').set(h.auth('hotel')).send({});
    expect(done.status).toBe(200);
    expect(done.body).toEqual({ roomId: 'H1-105', hotelId: 'H1', state: 'free', changed: true });
    expect(await roomState('H1-105')).toMatchObject({ state: 'free', disinfection: null });

    const retry = await request(h.app).post('/api/v1/rooms/H1-105/disinfected').set(h.auth('hotel')).send({});
    expect(retry.body).toMatchObject({ state: 'free', changed: false });

    const rec = commands('roomDisinfected');
    expect(rec.map((l) => l.fields.outcome)).toEqual(['applied', 'unchanged']);
    expect(rec[0]!.fields).toMatchObject({
      roomId: 'H1-105',
      hotelId: 'H1',
      state: 'free',
      by: { id: h.keyIds.hotel, role: 'hotel', name: 'Hotel H1 desk' },
    });
  });

  test('an occupied room cannot be declared disinfected or taken out of service (409 with the reason)', async () => {
    const res = await request(h.app).post('/api/v1/rooms/H1-103/disinfected').set(h.auth('hotel')).send({});
    expect(res.status).toBe(409);
    expect(res.headers['content-type']).toMatch(/problem\+json/);
    expect(res.body.detail).toMatch(/awaiting disinfection.*occupied/);
    const oos = await request(h.app)
      .post('/api/v1/rooms/H1-103/out-of-service')
      .set(h.auth('hotel'))
      .send({ reason: 'leak' });
    expect(oos.status).toBe(409);
    expect(await roomState('H1-103')).toMatchObject({ state: 'occupied' });
    expect(commands('roomOutOfService').at(-1)!.fields).toMatchObject({ roomId: 'H1-103', outcome: 'refused' });
  });

  test('out of service and back: free stays free, undisinfected goes back to awaiting disinfection', async () => {
    const out = await request(h.app)
      .post('/api/v1/rooms/H1-100/out-of-service')
      .set(h.auth('hotel'))
      .send({ reason: 'broken heater' });
    expect(out.status).toBe(200);
    expect(out.body).toMatchObject({ state: 'out_of_service', changed: true });
    expect(await roomState('H1-100')).toMatchObject({ outOfServiceReason: 'broken heater' });
    const back = await request(h.app).post('/api/v1/rooms/H1-100/return-to-service').set(h.auth('supervisor')).send({});
    expect(back.body).toMatchObject({ state: 'free', changed: true });

    await h.db
      .update(rooms)
      .set({ state: 'awaiting_disinfection', disinfection: 'terminal' })
      .where(eq(rooms.id, 'H1-101'));
    await request(h.app).post('/api/v1/rooms/H1-101/out-of-service').set(h.auth('hotel')).send({ reason: 'paint' });
    const list = await request(h.app).get('/api/v1/hotels/H1/rooms').set(h.auth('hotel'));
    expect(list.body.items.find((r: { id: string }) => r.id === 'H1-101')).toMatchObject({
      state: 'out_of_service',
      disinfection: 'terminal',
      outOfServiceReason: 'paint',
    });
    const again = await request(h.app).post('/api/v1/rooms/H1-101/return-to-service').set(h.auth('hotel')).send({});
    expect(again.body).toMatchObject({ state: 'awaiting_disinfection', changed: true });
  });

  test('the reason is required; unknown rooms are 404', async () => {
    const noReason = await request(h.app).post('/api/v1/rooms/H1-102/out-of-service').set(h.auth('hotel')).send({});
    expect(noReason.status).toBe(400);
    expect(noReason.body.errors[0]).toMatchObject({ in: 'body', path: 'reason' });
    const extra = await request(h.app).post('/api/v1/rooms/H1-102/disinfected').set(h.auth('hotel')).send({ by: 'me' });
    expect(extra.status).toBe(400);
    const unknown = await request(h.app).post('/api/v1/rooms/H1-999/disinfected').set(h.auth('hotel')).send({});
    expect(unknown.status).toBe(404);
  });

  test('room ids of added hotels (`<hotelId>:<roomNo>`) work in the path, raw or encoded', async () => {
    const desk = await createApiKey(h.db, {
      name: 'Riverside desk',
      role: 'hotel',
      district: 'D1',
      orgId: 'xigu-new-01',
    });
    const auth = { Authorization: `Bearer ${desk.key}` };
    await h.db
      .update(rooms)
      .set({ state: 'awaiting_disinfection', disinfection: 'routine', lastCaseNo: 'QCSEED000005' })
      .where(eq(rooms.id, 'xigu-new-01:102'));
    const raw = await request(h.app).post('/api/v1/rooms/xigu-new-01:102/disinfected').set(auth).send({});
    expect(raw.body).toMatchObject({ roomId: 'xigu-new-01:102', state: 'free', changed: true });
    // The case whose departure left the room is named in the record.
    expect(commands('roomDisinfected').at(-1)!.fields).toMatchObject({
      caseNo: 'QCSEED000005',
      by: { id: desk.identity.id },
    });
    const encoded = await request(h.app)
      .post('/api/v1/rooms/xigu-new-01%3A102/out-of-service')
      .set(auth)
      .send({ reason: 'x' });
    expect(encoded.body).toMatchObject({ roomId: 'xigu-new-01:102', state: 'out_of_service' });
    // The desk of this site sees its rooms and no other hotel's.
    expect((await request(h.app).get('/api/v1/hotels/xigu-new-01/rooms').set(auth)).status).toBe(200);
    expect((await request(h.app).get('/api/v1/hotels/H1/rooms').set(auth)).status).toBe(403);
  });
});

test('the demo district through the admin token: 21 hotels, 1,583 rooms, and again adds nothing', async () => {
  const first = await request(h.app).post('/api/v1/admin/seed-demo').set('X-Admin-Token', h.adminToken).send({});
  expect(first.status).toBe(200);
  expect(first.body).toEqual({ district: 'Xigu', hotels: 21, rooms: 1583, added: 1583 });
  const again = await request(h.app).post('/api/v1/admin/seed-demo').set('X-Admin-Token', h.adminToken).send({});
  expect(again.body).toMatchObject({ added: 0 });
  expect(commands('seedDemo').at(-1)!.fields).toMatchObject({ by: { id: 'admin-token', role: 'admin' }, added: 0 });
});

test('the provisional case row masks the name as the workflow does (王小明 → 王*明)', async () => {
  for (const name of ['王小明', 'Jane Doe']) {
    const t = validTransfer();
    (t.person as Record<string, unknown>).name = name;
    const res = await request(h.app).post('/api/v1/transfers').set(h.auth('community')).send(t);
    expect(res.status).toBe(202);
    const [row] = await h.db.select().from(cases).where(eq(cases.caseNo, res.body.caseNo));
    expect(row!.displayName).toBe(maskName(name));
  }
  expect(maskName('王小明')).toBe('王*明');
  // No PII in the command records.
  expect(JSON.stringify(logged)).not.toMatch(/王小明|Jane Doe|broken heater/);
});
