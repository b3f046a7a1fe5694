import { eq, sql } from 'drizzle-orm';

import { hotels, rooms } from '../../src/db/schema';
import { createHotelService } from '../../src/integrations/hotel';
import { DEMO_DISTRICT, demoHotels, seedDemoHotels } from '../../scripts/seed';
import { createTestDatabase, type TestDatabase } from '../support/db';

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase('seed');
});
afterAll(async () => {
  await tdb.drop();
});

const count = async (table: typeof hotels | typeof rooms) =>
  (await tdb.db.select({ n: sql<number>`count(*)`.mapWith(Number) }).from(table))[0]!.n;

it('seeds 21 hotels with 1,583 rooms, and a second run changes nothing', async () => {
  const first = await seedDemoHotels(tdb.db);
  expect(first).toEqual({ hotels: 21, rooms: 1583, added: 1583 });
  expect(await count(hotels)).toBe(21);
  expect(await count(rooms)).toBe(1583);

  // A room in use survives a second run.
  const hotel = createHotelService(tdb.db);
  const r = await hotel.reserve({ workflowId: 'w', caseNo: 'SEED-1', colour: 'red', district: DEMO_DISTRICT });
  expect(r).not.toBeNull();

  const second = await seedDemoHotels(tdb.db);
  expect(second).toEqual({ hotels: 21, rooms: 1583, added: 0 });
  expect(await count(hotels)).toBe(21);
  expect(await count(rooms)).toBe(1583);
  const [held] = await tdb.db.select().from(rooms).where(eq(rooms.id, r!.roomId));
  expect(held).toMatchObject({ state: 'reserved', caseNo: 'SEED-1' });

  const vacancy = await hotel.vacancy({ district: DEMO_DISTRICT });
  expect(vacancy).toHaveLength(21);
  expect(vacancy.reduce((n, v) => n + v.total, 0)).toBe(1583);
  expect(vacancy.reduce((n, v) => n + v.free, 0)).toBe(1582);
});

it('the demo set has what the policies need: accessible rooms, low floors, medical stations, streets', () => {
  const set = demoHotels();
  expect(set.filter((h) => h.medicalStationFloor !== undefined).length).toBeGreaterThan(0);
  expect(set.flatMap((h) => h.rooms).filter((r) => r.accessible).length).toBeGreaterThan(20);
  expect(new Set(set.map((h) => h.street)).size).toBeGreaterThan(3);
  expect(new Set(set.map((h) => h.id)).size).toBe(21);
});
