import { asc, eq, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';

import type { Db } from '../db';
import { hotels, rooms } from '../db/schema';
import type { Colour, RoomAssignment } from '../domain/types';
import { roomConflict, unknownHotel, unknownRoom } from './errors';

/**
 * Quarantine hotels and their rooms. Inventory lives in our Postgres, so there is one
 * implementation, no simulator: the same code runs in drills, in tests and in production.
 */

export type RoomState = (typeof rooms.$inferSelect)['state'];

export interface ReserveRequest {
  workflowId: string;
  caseNo: string;
  colour: Colour;
  district: string;
}

/** The case a transition is for: a case can only move the room it holds. */
export interface CaseRoomRef {
  roomId: string;
  caseNo: string;
}

export interface RoomTransition {
  roomId: string;
  state: RoomState;
  /** false when the transition had already happened (a retry). */
  changed: boolean;
}

const idPart = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only');

/** The input of addHotel; the API parses requests with the same schema. */
export const hotelInputSchema = z
  .object({
    id: idPart,
    name: z.string().min(1).max(200),
    district: z.string().min(1).max(100),
    street: z.string().min(1).max(100).optional(),
    medicalStationFloor: z.number().int().min(-5).max(200).optional(),
    rooms: z
      .array(
        z.object({ roomNo: idPart, floor: z.number().int().min(-5).max(200), accessible: z.boolean().default(false) }),
      )
      .min(1)
      .max(5000),
  })
  .refine((h) => new Set(h.rooms.map((r) => r.roomNo)).size === h.rooms.length, {
    message: 'room numbers must be unique within a hotel',
    path: ['rooms'],
  });
export type HotelInput = z.input<typeof hotelInputSchema>;

export interface AddHotelResult {
  hotelId: string;
  /** Rooms the hotel has after the call. */
  rooms: number;
  /** Rooms this call created (0 when the hotel was added before). */
  added: number;
}

export interface HotelVacancy {
  hotelId: string;
  name: string;
  district: string;
  street: string | null;
  active: boolean;
  free: number;
  reserved: number;
  occupied: number;
  awaitingDisinfection: number;
  outOfService: number;
  total: number;
}

export type RoomView = typeof rooms.$inferSelect;

export interface HotelService {
  /** A room for the case by policy, or null when the district has none free. Retries return the same room. */
  reserve(req: ReserveRequest): Promise<RoomAssignment | null>;
  /** reserved → free (cancelled before check-in). */
  release(ref: CaseRoomRef): Promise<RoomTransition>;
  /** reserved → occupied. */
  checkIn(ref: CaseRoomRef): Promise<RoomTransition>;
  /** occupied → awaiting disinfection; terminal disinfection after a positive case. */
  checkOut(ref: CaseRoomRef & { terminalDisinfection?: boolean }): Promise<RoomTransition>;
  /** awaiting disinfection → free. */
  disinfectionDone(roomId: string): Promise<RoomTransition>;
  putOutOfService(roomId: string, reason: string): Promise<RoomTransition>;
  /** Back to free, or to awaiting disinfection when it went out of service before disinfection. */
  returnToService(roomId: string): Promise<RoomTransition>;
  /** A hotel with all its rooms in one transaction; calling again with the same id adds only new rooms. */
  addHotel(input: HotelInput): Promise<AddHotelResult>;
  vacancy(filter?: { district?: string }): Promise<HotelVacancy[]>;
  listRooms(hotelId: string): Promise<RoomView[]>;
}

export interface HotelServiceOptions {
  /** Rooms on this floor or lower count as low floors for yellow cases. */
  lowFloorMax?: number;
}

type Decision = { kind: 'noop' } | { kind: 'conflict'; why: string } | { kind: 'set'; set: Partial<RoomView> };
const noop: Decision = { kind: 'noop' };
const conflict = (why: string): Decision => ({ kind: 'conflict', why });

export function createHotelService(db: Db, options: HotelServiceOptions = {}): HotelService {
  const lowFloorMax = options.lowFloorMax ?? 2;

  // Ties after the policy keys fall to the fullest hotel, then a fixed order, so choices are reproducible.
  const policyOrder: Record<Colour, SQL> = {
    // Elderly, disabled, children: a room they can reach without stairs.
    yellow: sql`(r.accessible or r.floor <= ${lowFloorMax}) desc, r.accessible desc, r.floor asc, v.free desc`,
    // Focused attention: as close to the medical station as the hotel allows.
    red: sql`(h.medical_station_floor is null) asc, abs(r.floor - h.medical_station_floor) asc, v.free desc, r.floor asc`,
    // Spread load over hotels, and keep accessible and low rooms for those who need them.
    green: sql`v.free desc, r.accessible asc, r.floor desc`,
  };

  async function reserveOnce(req: ReserveRequest): Promise<RoomAssignment | null> {
    return db.transaction(async (tx) => {
      // Attempts for the same case queue behind each other (distinct cases never wait here):
      // otherwise an attempt racing its own retry could answer "no room" while the other
      // takes one, as neither sees the other's uncommitted room.
      await tx.execute(sql`select pg_advisory_xact_lock(${RESERVE_LOCK_CLASS}, hashtext(${req.caseNo}))`);
      return reserveStatement(tx, req);
    });
  }

  async function reserveStatement(tx: Db, req: ReserveRequest): Promise<RoomAssignment | null> {
    // One statement: find the case's room if it already has one (a retry), else lock the best
    // free room that no concurrent reservation holds (SKIP LOCKED) and take it. The unique
    // index rooms_one_per_case is the last guard, should anything else ever race it.
    const result = await tx.execute(sql`
      with existing as (
        select id, hotel_id, room_no, floor from rooms
        where case_no = ${req.caseNo} and state in ('reserved', 'occupied')
      ),
      v as (
        select r.hotel_id, count(*)::int as free
        from rooms r join hotels h on h.id = r.hotel_id
        where r.state = 'free' and h.district = ${req.district} and h.active
        group by r.hotel_id
      ),
      candidate as (
        select r.id
        from rooms r
        join hotels h on h.id = r.hotel_id
        join v on v.hotel_id = r.hotel_id
        where r.state = 'free' and h.district = ${req.district} and h.active
          and not exists (select 1 from existing)
        order by ${policyOrder[req.colour]}, h.id asc, r.room_no asc
        limit 1
        for update of r skip locked
      ),
      taken as (
        update rooms set state = 'reserved', case_no = ${req.caseNo}, disinfection = null,
          out_of_service_reason = null, updated_at = now()
        from candidate
        where rooms.id = candidate.id and rooms.state = 'free'
        returning rooms.id, rooms.hotel_id, rooms.room_no, rooms.floor
      )
      select id as "roomId", hotel_id as "hotelId", room_no as "roomNo", floor from existing
      union all
      select id, hotel_id, room_no, floor from taken
    `);
    const row = rowsOf<RoomAssignment>(result)[0];
    return row ? { hotelId: row.hotelId, roomId: row.roomId, roomNo: row.roomNo, floor: Number(row.floor) } : null;
  }

  async function transition(roomId: string, decide: (room: RoomView) => Decision): Promise<RoomTransition> {
    return db.transaction(async (tx) => {
      const [room] = await tx.select().from(rooms).where(eq(rooms.id, roomId)).for('update');
      if (!room) throw unknownRoom(roomId);
      const d = decide(room);
      if (d.kind === 'noop') return { roomId, state: room.state, changed: false };
      if (d.kind === 'conflict') throw roomConflict(roomId, `${d.why} (room is ${room.state})`);
      await tx
        .update(rooms)
        .set({ ...d.set, updatedAt: new Date() })
        .where(eq(rooms.id, roomId));
      return { roomId, state: d.set.state ?? room.state, changed: true };
    });
  }

  /** True when the case held the room and has since checked out of it. */
  const leftBy = (room: RoomView, caseNo: string) => room.caseNo !== caseNo && room.lastCaseNo === caseNo;

  return {
    async reserve(req) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await reserveOnce(req);
        } catch (err) {
          // The index refused a second room for the case: run again, and the `existing`
          // branch returns the room it already holds.
          if (attempt < 3 && isUniqueViolation(err)) continue;
          throw err;
        }
      }
    },

    release: ({ roomId, caseNo }) =>
      transition(roomId, (room) => {
        if (room.caseNo !== caseNo) return noop;
        if (room.state === 'reserved') return { kind: 'set', set: { state: 'free', caseNo: null } };
        return conflict(`case ${caseNo} has checked in; check out instead of releasing`);
      }),

    checkIn: ({ roomId, caseNo }) =>
      transition(roomId, (room) => {
        if (room.caseNo === caseNo && room.state === 'occupied') return noop;
        if (room.caseNo === caseNo && room.state === 'reserved') return { kind: 'set', set: { state: 'occupied' } };
        if (leftBy(room, caseNo)) return noop;
        return conflict(`case ${caseNo} holds no reservation for this room`);
      }),

    checkOut: ({ roomId, caseNo, terminalDisinfection }) =>
      transition(roomId, (room) => {
        if (leftBy(room, caseNo)) return noop;
        if (room.caseNo === caseNo && room.state === 'occupied') {
          return {
            kind: 'set',
            set: {
              state: 'awaiting_disinfection',
              caseNo: null,
              lastCaseNo: caseNo,
              disinfection: terminalDisinfection ? 'terminal' : 'routine',
            },
          };
        }
        if (room.caseNo === caseNo) return conflict(`case ${caseNo} never checked in; release instead`);
        return conflict(`case ${caseNo} does not occupy this room`);
      }),

    disinfectionDone: (roomId) =>
      transition(roomId, (room) => {
        if (room.state === 'free') return noop;
        if (room.state === 'awaiting_disinfection') return { kind: 'set', set: { state: 'free', disinfection: null } };
        return conflict('only a room awaiting disinfection can be declared disinfected');
      }),

    putOutOfService: (roomId, reason) =>
      transition(roomId, (room) => {
        if (room.state === 'out_of_service') return noop;
        if (room.state === 'free' || room.state === 'awaiting_disinfection') {
          return { kind: 'set', set: { state: 'out_of_service', outOfServiceReason: reason } };
        }
        return conflict('a room held by a case cannot go out of service; move the case first');
      }),

    returnToService: (roomId) =>
      transition(roomId, (room) => {
        if (room.state !== 'out_of_service') return noop;
        // A room that left service while awaiting disinfection still needs it.
        const state = room.disinfection ? 'awaiting_disinfection' : 'free';
        return { kind: 'set', set: { state, outOfServiceReason: null } };
      }),

    async addHotel(input) {
      const h = hotelInputSchema.parse(input);
      return db.transaction(async (tx) => {
        await tx
          .insert(hotels)
          .values({
            id: h.id,
            name: h.name,
            district: h.district,
            street: h.street ?? null,
            medicalStationFloor: h.medicalStationFloor ?? null,
          })
          .onConflictDoUpdate({
            target: hotels.id,
            set: {
              name: h.name,
              district: h.district,
              street: h.street ?? null,
              medicalStationFloor: h.medicalStationFloor ?? null,
            },
          });
        let added = 0;
        for (let i = 0; i < h.rooms.length; i += 1000) {
          const chunk = h.rooms.slice(i, i + 1000);
          const rows = await tx
            .insert(rooms)
            .values(
              chunk.map((r) => ({
                id: roomIdOf(h.id, r.roomNo),
                hotelId: h.id,
                roomNo: r.roomNo,
                floor: r.floor,
                accessible: r.accessible,
              })),
            )
            // Floor and accessibility may be corrected; state is never touched, so a repeat keeps occupancy.
            .onConflictDoUpdate({
              target: [rooms.hotelId, rooms.roomNo],
              set: { floor: sql`excluded.floor`, accessible: sql`excluded.accessible` },
            })
            .returning({ inserted: sql<boolean>`(xmax = 0)` });
          added += rows.filter((r) => r.inserted).length;
        }
        const [count] = await tx
          .select({ n: sql<number>`count(*)`.mapWith(Number) })
          .from(rooms)
          .where(eq(rooms.hotelId, h.id));
        return { hotelId: h.id, rooms: count?.n ?? 0, added };
      });
    },

    async vacancy(filter = {}) {
      const count = (state: RoomState) =>
        sql<number>`count(${rooms.id}) filter (where ${rooms.state} = ${state})`.mapWith(Number);
      return db
        .select({
          hotelId: hotels.id,
          name: hotels.name,
          district: hotels.district,
          street: hotels.street,
          active: hotels.active,
          free: count('free'),
          reserved: count('reserved'),
          occupied: count('occupied'),
          awaitingDisinfection: count('awaiting_disinfection'),
          outOfService: count('out_of_service'),
          total: sql<number>`count(${rooms.id})`.mapWith(Number),
        })
        .from(hotels)
        .leftJoin(rooms, eq(rooms.hotelId, hotels.id))
        .where(filter.district ? eq(hotels.district, filter.district) : undefined)
        .groupBy(hotels.id)
        .orderBy(asc(hotels.id));
    },

    async listRooms(hotelId) {
      const [hotel] = await db.select({ id: hotels.id }).from(hotels).where(eq(hotels.id, hotelId));
      if (!hotel) throw unknownHotel(hotelId);
      return db.select().from(rooms).where(eq(rooms.hotelId, hotelId)).orderBy(asc(rooms.floor), asc(rooms.roomNo));
    },
  };
}

/** Advisory-lock class (two-key form, so it never meets the migrator's one-key lock). */
const RESERVE_LOCK_CLASS = 7272;

/** Hotel ids cannot contain ':', so `<hotelId>:<roomNo>` never collides across hotels. */
export const roomIdOf = (hotelId: string, roomNo: string): string => `${hotelId}:${roomNo}`;

/** postgres.js returns the rows as an array, PGlite as `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] } | undefined)?.rows ?? []) as T[];
}

export function isUniqueViolation(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === '23505') return true;
  }
  return false;
}
