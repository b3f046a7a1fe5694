import { ApplicationFailure } from '@temporalio/common';
import { and, eq, isNotNull, isNull } from 'drizzle-orm';
import type { z } from 'zod';

import { ErrorCode } from '../../activities/types';
import { cases, hotels, rooms } from '../../db/schema';
import { roundSlots } from '../../domain/rounds';
import { wakeAll } from '../../activities';
import { hotelInputSchema, type Handoff, type RoomState, type RoomTransition } from '../../integrations/hotel';
import { roomOfferedSignal } from '../../workflows/messages';
import type { ApiKey } from '../auth';
import { recordCommand } from '../command-log';
import type { ApiContext } from '../context';
import { HttpProblem, validationProblem, zodFieldErrors, type FieldError } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import {
  AddedHotel,
  EmptyBody,
  HotelIdParam,
  HotelRooms,
  OutOfServiceBody,
  RoomIdParam,
  RoomStateEnum,
  RoomTransitionAnswer,
  RoundsQuery,
  HotelRounds,
} from '../schemas';
import { keyCovers } from '../scope';
import { dbProblem, iso } from './read-helpers';

/** Where a hotel lies, for the jurisdiction check. */
interface HotelScope {
  hotelId: string;
  district: string;
  street: string | null;
}

const covers = (key: ApiKey, h: HotelScope) =>
  keyCovers(key, { district: h.district, street: h.street ?? '', hotelId: h.hotelId });

/**
 * Rooms this request freed went to waiting cases: wake each (a signal). Not awaited: the answer
 * is about the room, and a wake-up lost while Temporal is away is found by the case's recheck.
 */
function wakeHanded(app: ApiContext, handed: Handoff[] | undefined): void {
  if (!handed?.length) return;
  void wakeAll(
    handed,
    (workflowId) => app.temporal.client.workflow.getHandle(workflowId).signal(roomOfferedSignal),
    app.log,
  );
}

const DAY_MS = 86_400_000;

const outside = (what: string) =>
  new HttpProblem(403, `${what} is outside this key's jurisdiction`, { slug: 'jurisdiction' });

// ---- the new-hotel body: the service's own schema, and no field it would silently drop ----
export const NewHotelBody = hotelInputSchema.meta({
  id: 'NewHotel',
  description: 'A hotel and its rooms; room ids become `<hotelId>:<roomNo>`. Unknown fields are refused.',
});
type NewHotel = z.output<typeof hotelInputSchema>;
const HOTEL_FIELDS = new Set(Object.keys(hotelInputSchema.shape));
const ROOM_FIELDS = new Set(Object.keys(hotelInputSchema.shape.rooms.element.shape));
const MAX_UNKNOWN_FIELD_ERRORS = 50;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** hotelInputSchema strips unknown keys; a typo such as `medicalStationFlor` must be a 400, not lost. */
export function parseNewHotel(
  raw: unknown,
): { success: true; data: NewHotel } | { success: false; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const unknown = (path: string) => {
    if (errors.length < MAX_UNKNOWN_FIELD_ERRORS) errors.push({ in: 'body', path, message: 'unknown field' });
  };
  if (isObject(raw)) {
    for (const k of Object.keys(raw)) if (!HOTEL_FIELDS.has(k)) unknown(k);
    if (Array.isArray(raw.rooms)) {
      raw.rooms.forEach((room, i) => {
        if (isObject(room)) for (const k of Object.keys(room)) if (!ROOM_FIELDS.has(k)) unknown(`rooms.${i}.${k}`);
      });
    }
  }
  const r = hotelInputSchema.safeParse(raw);
  if (!r.success) errors.unshift(...zodFieldErrors('body', r.error));
  return r.success && errors.length === 0 ? { success: true, data: r.data } : { success: false, errors };
}

async function findHotel(app: ApiContext, hotelId: string) {
  try {
    const [row] = await app.db.select().from(hotels).where(eq(hotels.id, hotelId)).limit(1);
    return row;
  } catch (err) {
    throw dbProblem(app, err);
  }
}

/** The hotel (else 404) and that it lies in the key's jurisdiction (else 403). */
async function authorizeHotel(app: ApiContext, key: ApiKey, hotelId: string) {
  const hotel = await findHotel(app, hotelId);
  if (!hotel) throw new HttpProblem(404, `No hotel ${hotelId}`);
  if (!covers(key, { hotelId: hotel.id, district: hotel.district, street: hotel.street })) {
    throw outside(`Hotel ${hotel.id}`);
  }
  return hotel;
}

/** The room (else 404) and that it lies in the key's jurisdiction (else 403). */
async function authorizeRoom(app: ApiContext, key: ApiKey, roomId: string) {
  let row;
  try {
    [row] = await app.db
      .select({
        roomId: rooms.id,
        hotelId: rooms.hotelId,
        lastCaseNo: rooms.lastCaseNo,
        district: hotels.district,
        street: hotels.street,
      })
      .from(rooms)
      .innerJoin(hotels, eq(hotels.id, rooms.hotelId))
      .where(eq(rooms.id, roomId))
      .limit(1);
  } catch (err) {
    throw dbProblem(app, err);
  }
  if (!row) throw new HttpProblem(404, `No room ${roomId}`);
  if (!covers(key, row)) throw outside(`Room ${roomId}`);
  return row;
}

/** The hotel service's failures as problems: a refused transition is a 409 with its reason. */
function roomProblem(app: ApiContext, err: unknown, roomId: string): HttpProblem {
  if (err instanceof ApplicationFailure) {
    if (err.type === ErrorCode.RoomStateConflict) return new HttpProblem(409, err.message, { slug: 'room-state' });
    if (err.type === ErrorCode.UnknownRoom) return new HttpProblem(404, `No room ${roomId}`);
  }
  return dbProblem(app, err);
}

const roomTag = ['hotels'];
const roomRoles = ['hotel', 'supervisor', 'admin'] as const;
const roomResponses = {
  200: {
    description: 'The room’s state now; `changed: false` when it was already there (a retry)',
    schema: RoomTransitionAnswer,
  },
  404: { description: 'No such room', contentType: 'application/problem+json' },
  409: {
    description: 'The room is not in a state this command applies to; `detail` says which',
    contentType: 'application/problem+json',
  },
};

function roomCommand<B extends z.ZodType>(opts: {
  path: string;
  operationId: string;
  summary: string;
  description: string;
  command: string;
  body: B;
  run(app: ApiContext, roomId: string, body: z.output<B>): Promise<RoomTransition>;
}): AnyRoute {
  return defineRoute({
    method: 'post',
    path: opts.path,
    operationId: opts.operationId,
    summary: opts.summary,
    description: opts.description,
    tags: roomTag,
    access: { kind: 'key', roles: roomRoles },
    params: RoomIdParam,
    body: opts.body,
    responses: roomResponses,
    async handler({ app, key, params, body, res }) {
      const room = await authorizeRoom(app, key!, params.roomId);
      const log = { roomId: room.roomId, hotelId: room.hotelId };
      let t: RoomTransition;
      try {
        t = await opts.run(app, room.roomId, body as z.output<B>);
      } catch (err) {
        const p = roomProblem(app, err, room.roomId);
        if (p.status === 409) recordCommand(app, key, opts.command, { ...log, outcome: 'refused' });
        throw p;
      }
      wakeHanded(app, t.handed);
      recordCommand(app, key, opts.command, {
        ...log,
        // The case whose departure left the room to be disinfected, when there was one.
        ...(opts.command === 'roomDisinfected' && room.lastCaseNo && t.changed ? { caseNo: room.lastCaseNo } : {}),
        state: t.state,
        outcome: t.changed ? 'applied' : 'unchanged',
      });
      res.json({ roomId: room.roomId, hotelId: room.hotelId, state: t.state, changed: t.changed });
    },
  });
}

export const hotelRoutes: AnyRoute[] = [
  defineRoute({
    method: 'post',
    path: '/api/v1/hotels',
    operationId: 'addHotel',
    summary: 'Open a site: add a hotel with all its rooms in one call',
    description:
      'Idempotent on the hotel id: 201 when the hotel is new, 200 when it existed. Calling again adds ' +
      'only rooms not there yet and may correct the name, street, medical station floor and each ' +
      "room's floor and accessibility; it never changes a room's state. Supervisors add hotels in " +
      'their own district (and may not take over a hotel of another district).',
    tags: roomTag,
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    body: NewHotelBody,
    parseBody: parseNewHotel,
    responses: {
      201: {
        description: 'The hotel is new',
        schema: AddedHotel,
        headers: { Location: 'Its rooms: /api/v1/hotels/{hotelId}/rooms' },
      },
      200: { description: 'The hotel existed; new rooms (if any) were added', schema: AddedHotel },
    },
    async handler({ app, key, body, res }) {
      const input = body as NewHotel;
      if (!covers(key!, { hotelId: input.id, district: input.district, street: input.street ?? null })) {
        throw outside(`District ${input.district}${input.street ? ` / ${input.street}` : ''}`);
      }
      const existing = await findHotel(app, input.id);
      if (existing && !covers(key!, { hotelId: existing.id, district: existing.district, street: existing.street })) {
        throw outside(`Hotel ${input.id}`);
      }
      let r;
      try {
        r = await app.hotels.addHotel(input);
      } catch (err) {
        throw dbProblem(app, err);
      }
      const created = !existing;
      wakeHanded(app, r.handed);
      recordCommand(app, key, 'addHotel', {
        hotelId: r.hotelId,
        district: input.district,
        created,
        rooms: r.rooms,
        added: r.added,
      });
      const location = `/api/v1/hotels/${encodeURIComponent(r.hotelId)}/rooms`;
      res
        .status(created ? 201 : 200)
        .location(location)
        .json({ hotelId: r.hotelId, created, rooms: r.rooms, added: r.added });
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/hotels/:hotelId/rooms',
    operationId: 'listRooms',
    summary: "A hotel's rooms with their state, by floor and room number",
    description: 'Hotel staff see their own hotel, supervisors the hotels of their district.',
    tags: roomTag,
    access: { kind: 'key', roles: ['supervisor', 'hotel', 'admin'] },
    params: HotelIdParam,
    responses: {
      200: { description: 'The hotel and its rooms', schema: HotelRooms },
      404: { description: 'No such hotel', contentType: 'application/problem+json' },
    },
    async handler({ app, key, params, res }) {
      const hotel = await authorizeHotel(app, key!, params.hotelId);
      let list;
      try {
        list = await app.hotels.listRooms(hotel.id);
      } catch (err) {
        throw dbProblem(app, err);
      }
      const counts = Object.fromEntries(RoomStateEnum.options.map((s) => [s, 0])) as Record<RoomState, number>;
      for (const r of list) counts[r.state] += 1;
      res.json({
        hotelId: hotel.id,
        name: hotel.name,
        district: hotel.district,
        street: hotel.street,
        active: hotel.active,
        counts,
        items: list.map((r) => ({
          id: r.id,
          roomNo: r.roomNo,
          floor: r.floor,
          accessible: r.accessible,
          state: r.state,
          caseNo: r.caseNo,
          disinfection: r.disinfection === 'routine' || r.disinfection === 'terminal' ? r.disinfection : null,
          outOfServiceReason: r.outOfServiceReason,
          updatedAt: iso(r.updatedAt)!,
        })),
      });
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/hotels/:hotelId/rounds',
    operationId: 'listRounds',
    summary: 'The health checks due in a hotel: every slot each person still owes, by time and room',
    description:
      "A nurse's rounds. Each person in observation owes the slot their case watches now and the slots after it, " +
      'by the check times of the rules their case is judged by, so the list does not wait for a busy case to take ' +
      'in the last check before it shows the next one. A slot is listed while its window is open at `from`; a check ' +
      'taken inside the window counts for it. Slots after the release due date appear once a person is held past ' +
      'it. Medical and hotel staff see their own hotel, supervisors the hotels of their district.',
    tags: roomTag,
    access: { kind: 'key', roles: ['medical', 'hotel', 'supervisor', 'admin'] },
    params: HotelIdParam,
    query: RoundsQuery,
    responses: {
      200: { description: 'The slots owed, by time and room', schema: HotelRounds },
      404: { description: 'No such hotel', contentType: 'application/problem+json' },
    },
    async handler({ app, key, params, query, res }) {
      const q = query as z.output<typeof RoundsQuery>;
      const now = Date.now();
      const from = q.from ? Date.parse(q.from) : now;
      const to = q.to ? Date.parse(q.to) : from + DAY_MS;
      if (to < from) throw validationProblem([{ in: 'query', path: 'to', message: 'must not be before from' }]);
      if (to - from > 7 * DAY_MS)
        throw validationProblem([{ in: 'query', path: 'to', message: 'at most 7 days after from' }]);
      const hotel = await authorizeHotel(app, key!, params.hotelId);
      let owing;
      try {
        owing = await app.db
          .select({
            caseNo: cases.caseNo,
            roomId: cases.roomId,
            roomNo: rooms.roomNo,
            stayStart: cases.stayStart,
            releaseDue: cases.releaseDue,
            nextCheckDue: cases.nextCheckDue,
            checkSchedule: cases.checkSchedule,
          })
          .from(cases)
          .leftJoin(rooms, eq(rooms.id, cases.roomId))
          .where(and(eq(cases.hotelId, hotel.id), isNotNull(cases.nextCheckDue), isNull(cases.endedAt)));
      } catch (err) {
        throw dbProblem(app, err);
      }
      const time = (d: Date | string | null) => (d === null ? undefined : new Date(d).getTime());
      const items = owing.flatMap((c) =>
        roundSlots(
          {
            schedule: c.checkSchedule,
            stayStart: time(c.stayStart),
            releaseDue: time(c.releaseDue),
            nextCheckDue: time(c.nextCheckDue),
          },
          from,
          to,
          now,
        ).map((x) => ({ c, x })),
      );
      items.sort(
        (a, b) =>
          a.x.slotAt - b.x.slotAt ||
          (a.c.roomNo ?? '').localeCompare(b.c.roomNo ?? '', 'en', { numeric: true }) ||
          a.c.caseNo.localeCompare(b.c.caseNo),
      );
      const at = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
      res.json({
        hotelId: hotel.id,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        cases: owing.length,
        items: items.map(({ c, x }) => ({
          caseNo: c.caseNo,
          roomId: c.roomId,
          roomNo: c.roomNo,
          slotAt: at(x.slotAt)!,
          windowOpensAt: at(x.opensAt),
          windowClosesAt: at(x.closesAt),
          watched: x.watched,
        })),
      });
    },
  }),
  roomCommand({
    path: '/api/v1/rooms/:roomId/disinfected',
    operationId: 'markRoomDisinfected',
    summary: 'The room has been disinfected: awaiting disinfection → free',
    description:
      'Hotel staff of that hotel, supervisors of its district. A room already free answers 200 with ' +
      '`changed: false`; any other state is a 409.',
    command: 'roomDisinfected',
    body: EmptyBody,
    run: (app, roomId) => app.hotels.disinfectionDone(roomId),
  }),
  roomCommand({
    path: '/api/v1/rooms/:roomId/out-of-service',
    operationId: 'putRoomOutOfService',
    summary: 'Take a free room (or one awaiting disinfection) out of service',
    description:
      'Hotel staff of that hotel, supervisors of its district. A room held by a case cannot leave ' +
      'service (409): move the case first.',
    command: 'roomOutOfService',
    body: OutOfServiceBody,
    run: (app, roomId, body) => app.hotels.putOutOfService(roomId, (body as z.output<typeof OutOfServiceBody>).reason),
  }),
  roomCommand({
    path: '/api/v1/rooms/:roomId/return-to-service',
    operationId: 'returnRoomToService',
    summary: 'Return a room to service: free, or awaiting disinfection if it left service before being disinfected',
    description: 'Hotel staff of that hotel, supervisors of its district. A room in service answers `changed: false`.',
    command: 'roomReturnToService',
    body: EmptyBody,
    run: (app, roomId) => app.hotels.returnToService(roomId),
  }),
];
