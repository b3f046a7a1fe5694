import { sql } from 'drizzle-orm';

import { openDatabase, type Database } from '../../src/db';
import type { RoomAssignment } from '../../src/domain/types';
import { createHotelService, rowsOf } from '../../src/integrations/hotel';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { roomsFor } from './helpers';

/**
 * The promise the hotel makes: never one room to two people, under any concurrency,
 * retried or not. 1,000 cases race for 500 rooms over a pool of 20 connections.
 */
let tdb: TestDatabase;
let pool: Database;

beforeAll(async () => {
  tdb = await createTestDatabase('concurrency');
  if (tdb.url) {
    pool = await openDatabase({ databaseUrl: tdb.url, dataDir: '/tmp', max: 20, migrate: false });
  } else {
    pool = tdb; // PGlite fallback: one connection, still must hold the invariant
  }
  const hotel = createHotelService(tdb.db);
  // 500 rooms (150 + 100 + 100 + 100 + 50) in 5 hotels of differing policy features.
  await hotel.addHotel({ id: 'cc-1', name: 'CC1', district: 'Race', rooms: roomsFor(10, 15, 4) });
  await hotel.addHotel({ id: 'cc-2', name: 'CC2', district: 'Race', medicalStationFloor: 3, rooms: roomsFor(5, 20) });
  await hotel.addHotel({ id: 'cc-3', name: 'CC3', district: 'Race', rooms: roomsFor(4, 25, 2) });
  await hotel.addHotel({ id: 'cc-4', name: 'CC4', district: 'Race', rooms: roomsFor(5, 20) });
  await hotel.addHotel({ id: 'cc-5', name: 'CC5', district: 'Race', medicalStationFloor: 1, rooms: roomsFor(2, 25) });
  // A room in another district that must stay untouched.
  await hotel.addHotel({ id: 'cc-far', name: 'Far', district: 'Far', rooms: roomsFor(1, 1) });
});

afterAll(async () => {
  if (pool !== tdb) await pool.close();
  await tdb.drop();
});

it('grants exactly 500 of 1,000 concurrent reservations, no room twice, retries get the same room', async () => {
  const hotel = createHotelService(pool.db);
  const colours = ['green', 'yellow', 'red'] as const;
  const cases = Array.from({ length: 1000 }, (_, i) => ({
    workflowId: `case-RACE-${i}`,
    caseNo: `RACE-${i}`,
    colour: colours[i % 3]!,
    district: 'Race',
  }));

  const started = Date.now();
  // Every 10th case also races a retry of itself: the same case must never hold two rooms.
  const results = await Promise.all(
    cases.flatMap((c, i) => (i % 10 === 0 ? [hotel.reserve(c), hotel.reserve(c)] : [hotel.reserve(c)])),
  );
  const elapsedMs = Date.now() - started;
  console.log(`1000 concurrent reservations (+100 self-races) at 500 rooms: ${elapsedMs} ms`);

  const byCase = new Map<string, RoomAssignment | null>();
  let k = 0;
  for (let i = 0; i < cases.length; i++) {
    const first = results[k++]!;
    if (i % 10 === 0) {
      // Racing twice for the same case: both answers are the same room (or both none).
      expect(results[k++]).toEqual(first);
    }
    byCase.set(cases[i]!.caseNo, first);
  }
  const granted = [...byCase.values()].filter((r): r is RoomAssignment => r !== null);
  expect(granted).toHaveLength(500);
  expect(new Set(granted.map((r) => r.roomId)).size).toBe(500);
  expect(granted.every((r) => r.hotelId.startsWith('cc-') && r.hotelId !== 'cc-far')).toBe(true);

  // The database agrees: 500 reserved rooms, 500 distinct cases, none left free.
  const [db] = rowsOf<{ reserved: number; cases: number; free: number; far: string }>(
    await pool.db.execute(sql`
      select count(*) filter (where state = 'reserved')::int as reserved,
             count(distinct case_no)::int as cases,
             count(*) filter (where state = 'free' and hotel_id <> 'cc-far')::int as free,
             max(state::text) filter (where hotel_id = 'cc-far') as far
      from rooms`),
  );
  expect(db).toEqual({ reserved: 500, cases: 500, free: 0, far: 'free' });
  for (const [caseNo, r] of byCase) {
    if (!r) continue;
    const [row] = rowsOf<{ case_no: string }>(
      await pool.db.execute(sql`select case_no from rooms where id = ${r.roomId}`),
    );
    expect(row?.case_no).toBe(caseNo);
  }

  // A retried reservation (e.g. after a worker crash) returns the room already granted...
  const winners = cases.filter((c) => byCase.get(c.caseNo));
  const retried = await Promise.all(winners.map((c) => hotel.reserve(c)));
  expect(retried).toEqual(winners.map((c) => byCase.get(c.caseNo)));
  // ...and the losers still get nothing, without disturbing anyone.
  const losers = cases.filter((c) => !byCase.get(c.caseNo)).slice(0, 50);
  expect(await Promise.all(losers.map((c) => hotel.reserve(c)))).toEqual(losers.map(() => null));
  expect(elapsedMs).toBeLessThan(60_000);
});
