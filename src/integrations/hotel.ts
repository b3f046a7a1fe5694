import { asc, eq, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';

import type { Db } from '../db';
import { hotels, roomWaits, rooms } from '../db/schema';
import type { Colour, RoomAssignment } from '../domain/types';
import { roomConflict, unavailable, unknownHotel, unknownRoom } from './errors';
import { keyedQueue } from '../keyed-queue';

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

/** A reservation that waits its turn on the district's waiting list when no room is free. */
export interface QueuedReserveRequest extends ReserveRequest {
  /** When the transfer was requested: the list's order after priority. */
  requestedAt: string;
  /** The policy puts red and yellow cases before green ones. */
  colourFirst: boolean;
  /**
   * Epoch ms after which this attempt must not run (its activity attempt has given up, and a
   * retry, or the case's leaving the list, may come after it): a call still waiting in the
   * district's queue then fails, retryably, without touching the list.
   */
  notAfter?: number;
}

/** A room handed to a waiting case: that case (and only it) is to be woken. */
export interface Handoff {
  caseNo: string;
  workflowId: string;
  room: RoomAssignment;
}

export interface RoomQueueEntry {
  caseNo: string;
  colour: string;
  requestedAt: string;
  since: string;
  /** 1 for the next case to get a room. */
  place: number;
}

export interface RoomQueue {
  district: string;
  length: number;
  /** When the longest-waiting case joined the list. */
  oldestSince: string | null;
  entries: RoomQueueEntry[];
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
  /** Waiting cases the room (or rooms) freed by this transition went to. */
  handed?: Handoff[];
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
  /** Waiting cases the new rooms went to. */
  handed?: Handoff[];
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
  /**
   * The case joins the district's waiting list (once) and free rooms go to the list in order: the
   * case's room if its turn came (or it already holds one), else null. `handed` names the other
   * waiting cases that got a room in the same stroke, to be woken.
   */
  reserveInQueue(req: QueuedReserveRequest): Promise<{ room: RoomAssignment | null; handed: Handoff[] }>;
  /**
   * The case no longer wants a room (it ended while waiting): off the list, and a room the list
   * had reserved for it that it never took is freed and handed on.
   */
  leaveQueue(ref: { caseNo: string }): Promise<{ left: boolean; freedRoomId?: string; handed: Handoff[] }>;
  /** The district's waiting list in order (the first `limit` entries; length counts all). */
  queue(district: string, limit?: number): Promise<RoomQueue>;
  /** The case's place on its district's list (1 = next), or null when it is not waiting. */
  queuePlace(caseNo: string): Promise<{ place: number; since: string; district: string } | null>;
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
  const oneAtATime = keyedQueue();

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
      const state = d.set.state ?? room.state;
      if (state !== 'free') return { roomId, state, changed: true };
      // A room came free: in the same transaction it goes to whoever waits for one in its district.
      const handed = await allocate(tx, await districtOfHotel(tx, room.hotelId));
      const mine = handed.find((h) => h.room.roomId === roomId);
      return { roomId, state: mine ? 'reserved' : state, changed: true, ...(handed.length ? { handed } : {}) };
    });
  }

  async function districtOfHotel(tx: Db, hotelId: string): Promise<string> {
    const [h] = await tx.select({ district: hotels.district }).from(hotels).where(eq(hotels.id, hotelId));
    return h?.district ?? '';
  }

  /**
   * Free rooms of the district go to its waiting list, first in order first, each by its own
   * colour's room policy, until either runs out. One allocation per district at a time (an
   * advisory lock), so the order holds under concurrency. A case that ended while on the list
   * (its read-model row says so) is taken off instead of given a room.
   */
  async function lockDistrict(tx: Db, district: string): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock(${ALLOCATE_LOCK_CLASS}, hashtext(${district}))`);
  }

  async function allocate(tx: Db, district: string): Promise<Handoff[]> {
    await lockDistrict(tx, district);
    await tx.execute(sql`
      delete from room_waits w using cases c
      where w.district = ${district} and c.case_no = w.case_no
        and (c.ended_at is not null or c.phase in ('RELEASED', 'HOSPITAL_TRANSFER', 'CANCELLED'))`);
    const handed: Handoff[] = [];
    for (;;) {
      const heads = rowsOf<{ case_no: string; workflow_id: string; colour: Colour }>(
        await tx.execute(sql`
          select case_no, workflow_id, colour from room_waits
          where district = ${district}
          order by priority, requested_at, seq
          limit 16`),
      );
      if (!heads.length) break;
      let full = false;
      for (const head of heads) {
        const room = await reserveStatement(tx, {
          caseNo: head.case_no,
          workflowId: head.workflow_id,
          colour: head.colour,
          district,
        });
        if (!room) {
          full = true;
          break;
        }
        await tx.delete(roomWaits).where(eq(roomWaits.caseNo, head.case_no));
        handed.push({ caseNo: head.case_no, workflowId: head.workflow_id, room });
      }
      if (full) break;
    }
    return handed;
  }

  async function reserveInQueueNow(
    req: QueuedReserveRequest,
  ): Promise<{ room: RoomAssignment | null; handed: Handoff[] }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction(async (tx) => {
          await tx.execute(sql`select pg_advisory_xact_lock(${RESERVE_LOCK_CLASS}, hashtext(${req.caseNo}))`);
          // A room already held (a retry, or handed over while the case slept) is simply returned.
          const held = rowsOf<{ id: string }>(
            await tx.execute(sql`
              select id from rooms where case_no = ${req.caseNo} and state in ('reserved', 'occupied')`),
          );
          if (held.length) {
            await tx.delete(roomWaits).where(eq(roomWaits.caseNo, req.caseNo));
            return { room: await reserveStatement(tx, req), handed: [] };
          }
          // The district's allocation lock before the list's row: allocate() deletes list rows
          // while holding it, so taking them in the other order could deadlock.
          await lockDistrict(tx, req.district);
          const priority = req.colourFirst && req.colour !== 'green' ? 0 : 1;
          await tx
            .insert(roomWaits)
            .values({
              caseNo: req.caseNo,
              workflowId: req.workflowId,
              district: req.district,
              colour: req.colour,
              priority,
              requestedAt: new Date(req.requestedAt),
            })
            .onConflictDoUpdate({
              target: roomWaits.caseNo,
              // A colour changed while waiting moves the case within the list; its time stays.
              set: { colour: req.colour, priority, workflowId: req.workflowId },
            });
          const handed = await allocate(tx, req.district);
          const mine = handed.find((h) => h.caseNo === req.caseNo);
          return { room: mine?.room ?? null, handed: handed.filter((h) => h !== mine) };
        });
      } catch (err) {
        if (attempt < 3 && isUniqueViolation(err)) continue;
        throw err;
      }
    }
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

    async reserveInQueue(req) {
      // One at a time per district in this process: they take the district's lock in Postgres
      // anyway, and waiting here holds no connection (a wave's 2,000 requests waiting on the lock
      // held every connection of the pool, and the worker's read-model writes waited behind them).
      return oneAtATime(req.district, () => {
        if (req.notAfter !== undefined && Date.now() > req.notAfter) {
          // Its activity attempt gave up while it waited: a retry may already have run, and the
          // case may be leaving the list. Running now could put it back on the list.
          throw unavailable('hotel', 'the reservation waited in the district queue past its attempt');
        }
        return reserveInQueueNow(req);
      });
    },

    async leaveQueue({ caseNo }) {
      return db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(${RESERVE_LOCK_CLASS}, hashtext(${caseNo}))`);
        const [where] = rowsOf<{ district: string }>(
          await tx.execute(sql`
            select district from room_waits where case_no = ${caseNo}
            union all
            select h.district from rooms r join hotels h on h.id = r.hotel_id
            where r.case_no = ${caseNo} and r.state = 'reserved'
            limit 1`),
        );
        // Locks in the order every path takes them: the room's row, then the district, then the list.
        // A room the list reserved for the case while it was ending: never taken, so freed and passed on.
        const freed = rowsOf<{ id: string }>(
          await tx.execute(sql`
            update rooms set state = 'free', case_no = null, updated_at = now()
            where case_no = ${caseNo} and state = 'reserved'
            returning id`),
        )[0];
        if (where) await lockDistrict(tx, where.district);
        const left = await tx
          .delete(roomWaits)
          .where(eq(roomWaits.caseNo, caseNo))
          .returning({ d: roomWaits.district });
        const handed = freed && where ? await allocate(tx, where.district) : [];
        return { left: left.length > 0, ...(freed ? { freedRoomId: freed.id } : {}), handed };
      });
    },

    async queue(district, limit = 100) {
      const [summary] = rowsOf<{ n: number; oldest: Date | string | null }>(
        await db.execute(sql`
          select count(*)::int as n, min(since) as oldest from room_waits where district = ${district}`),
      );
      const entries = rowsOf<{
        case_no: string;
        colour: string;
        requested_at: Date | string;
        since: Date | string;
      }>(
        await db.execute(sql`
          select case_no, colour, requested_at, since from room_waits where district = ${district}
          order by priority, requested_at, seq limit ${limit}`),
      );
      const iso = (x: Date | string) => new Date(x).toISOString();
      return {
        district,
        length: Number(summary?.n ?? 0),
        oldestSince: summary?.oldest ? iso(summary.oldest) : null,
        entries: entries.map((e, i) => ({
          caseNo: e.case_no,
          colour: e.colour,
          requestedAt: iso(e.requested_at),
          since: iso(e.since),
          place: i + 1,
        })),
      };
    },

    async queuePlace(caseNo) {
      const [row] = rowsOf<{ place: number; since: Date | string; district: string }>(
        await db.execute(sql`
          select (select count(*)::int from room_waits o
                  where o.district = w.district
                    and (o.priority, o.requested_at, o.seq) <= (w.priority, w.requested_at, w.seq)) as place,
                 w.since, w.district
          from room_waits w where w.case_no = ${caseNo}`),
      );
      return row
        ? { place: Number(row.place), since: new Date(row.since).toISOString(), district: row.district }
        : null;
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
        // New rooms go to whoever waits in the district.
        const handed = added > 0 ? await allocate(tx, h.district) : [];
        return { hotelId: h.id, rooms: count?.n ?? 0, added, ...(handed.length ? { handed } : {}) };
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

/** Advisory-lock classes (two-key form, so they never meet the migrator's one-key lock). */
const RESERVE_LOCK_CLASS = 7272;
const ALLOCATE_LOCK_CLASS = 7273;

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
