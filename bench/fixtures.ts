/**
 * Bench data: hotels big enough for every open case, keys for each role, synthetic transfer
 * bodies (no real person: generated names and numbers) and synthetic read-model rows.
 */
import { sql } from 'drizzle-orm';
import type { Sql } from 'postgres';

import { createApiKey } from '../src/auth/keys';
import { SIMULATED_LAB_ID } from '../src/integrations/lab';
import type { Db } from '../src/db';
import { createHotelService } from '../src/integrations/hotel';

export const BENCH_DISTRICT = 'Bench';
export const BENCH_STREET = 'Bench-1';
const ROOMS_PER_HOTEL = 400;
/** Keys of the bench never meet the per-key rate limit: the limiter is not what is measured. */
const UNLIMITED = 100_000_000;

export async function seedBenchHotels(db: Db, rooms: number): Promise<{ hotels: string[]; rooms: number }> {
  const hotel = createHotelService(db);
  const count = Math.max(1, Math.ceil(rooms / ROOMS_PER_HOTEL));
  const ids: string[] = [];
  let total = 0;
  for (let h = 0; h < count; h++) {
    const id = `bench-${String(h + 1).padStart(2, '0')}`;
    const perFloor = 20;
    const r = await hotel.addHotel({
      id,
      name: `Bench Hotel ${h + 1}`,
      district: BENCH_DISTRICT,
      street: BENCH_STREET,
      ...(h % 3 === 0 ? { medicalStationFloor: 2 } : {}),
      rooms: Array.from({ length: ROOMS_PER_HOTEL }, (_, n) => {
        const floor = Math.floor(n / perFloor) + 1;
        const idx = (n % perFloor) + 1;
        return { roomNo: `${floor}${String(idx).padStart(2, '0')}`, floor, accessible: floor <= 2 && idx <= 2 };
      }),
    });
    ids.push(id);
    total += r.rooms;
  }
  return { hotels: ids, rooms: total };
}

export interface BenchKeys {
  community: string;
  transport: string;
  /** One nurse key per bench hotel: medical keys act for their own hotel only. */
  medical: Record<string, string>;
  lab: string;
  supervisor: string;
}

export async function createBenchKeys(db: Db, runId: string, hotels: string[]): Promise<BenchKeys> {
  const mk = async (role: 'community' | 'transport' | 'medical' | 'lab' | 'supervisor', extra: object = {}) =>
    (
      await createApiKey(db, {
        name: `bench-${role}-${runId}`,
        role,
        district: BENCH_DISTRICT,
        ratePerMinute: UNLIMITED,
        ...extra,
      })
    ).key;
  return {
    community: await mk('community', { street: BENCH_STREET }),
    transport: await mk('transport'),
    medical: Object.fromEntries(
      await Promise.all(hotels.map(async (h) => [h, await mk('medical', { orgId: h })] as const)),
    ),
    // A lab key speaks for its own samples: the bench's samples are ordered from the simulated lab.
    lab: await mk('lab', { district: undefined, orgId: SIMULATED_LAB_ID }),
    supervisor: await mk('supervisor'),
  };
}

/** A transfer for a generated person: a mix of colours (age, chronic condition), self-drive. */
export function benchTransfer(runId: string, i: number, policyName: string): Record<string, unknown> {
  const person: Record<string, unknown> = {
    name: `Bench Person ${i}`,
    idNumber: `BENCH-${runId}-${i}`.slice(0, 32),
    phone: '10000000000',
    birthDate: i % 7 === 0 ? '1950-06-01' : '1985-06-01',
  };
  if (i % 5 === 0) person.chronicConditions = ['hypertension'];
  return {
    requestId: `bench-${runId}-${i}`,
    district: BENCH_DISTRICT,
    street: BENCH_STREET,
    person,
    homeAddress: `Bench Road ${i}`,
    transport: 'self_drive',
    reason: 'close_contact',
    policyName,
  };
}

/**
 * M read-model rows straight into `cases`, as a district at peak would have them: most in
 * observation, a quarter released, a few in every other phase; colours 70/20/10; spread over
 * the bench hotels and seven streets. One statement, then ANALYZE.
 */
export async function insertSyntheticCases(db: Db, m: number, hotels: string[]): Promise<void> {
  const hotelArray = `{${hotels.join(',')}}`;
  await db.execute(sql`
    insert into cases (case_no, workflow_id, request_id, district, street, display_name, phase, colour,
      policy_name, hotel_id, room_id, requested_at, arrived_at, stay_start, release_due, next_check_due,
      pending_results, open_escalations, open_red_escalations, inspection_status, state_version)
    select 'SYN' || lpad(g::text, 9, '0'),
      'case-SYN' || lpad(g::text, 9, '0'),
      'syn-' || g,
      ${BENCH_DISTRICT},
      'Bench-' || (1 + g % 7),
      'S***' || (g % 10),
      case when g % 20 < 12 then 'OBSERVATION' when g % 20 < 17 then 'RELEASED' when g % 20 = 17 then 'RELEASE_PENDING'
           when g % 20 = 18 then 'HOSPITAL_TRANSFER' else 'IN_TRANSIT' end,
      case when g % 10 < 7 then 'green' when g % 10 < 9 then 'yellow' else 'red' end,
      'standard',
      h.hotel,
      h.hotel || ':' || (1 + (g / 20) % 20)::text || lpad((1 + g % 20)::text, 2, '0'),
      now() - interval '10 days',
      now() - interval '9 days',
      now() - interval '9 days',
      now() + ((g % 14) || ' days')::interval,
      now() + interval '3 hours',
      g % 3,
      case when g % 9 = 0 then 1 else 0 end,
      case when g % 47 = 0 then 1 else 0 end,
      'none',
      1
    from generate_series(1, ${m}) g
    cross join lateral (select (${hotelArray}::text[])[1 + g % ${hotels.length}] as hotel) h
    on conflict do nothing
  `);
  await db.execute(sql`analyze cases`);
}

/** A filter of the supervisor list, as the bare query takes it. */
export interface ListFilter {
  phase: string;
  colour?: string;
  hotelId?: string;
}

/**
 * The list's bare baseline: the same page (51 rows after `after`, case-number order) by a
 * hand-written indexed query on the bench district, every column. The bench and the list probe
 * both measure against this one.
 */
export function bareListPage(db: Sql, f: ListFilter, after: string): Promise<{ case_no: string }[]> {
  return db<{ case_no: string }[]>`
    select c.*, r.room_no from cases c left join rooms r on r.id = c.room_id
    where c.district = ${BENCH_DISTRICT} and c.phase = ${f.phase}
      ${f.colour ? db`and c.colour = ${f.colour}` : db``}
      ${f.hotelId ? db`and c.hotel_id = ${f.hotelId}` : db``}
      and c.case_no > ${after}
    order by c.case_no limit 51`;
}
