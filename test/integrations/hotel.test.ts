import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';

import { ErrorCode } from '../../src/activities/types';
import { rooms } from '../../src/db/schema';
import { createHotelService, type HotelService } from '../../src/integrations/hotel';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { roomsFor } from './helpers';

let tdb: TestDatabase;
let hotel: HotelService;

beforeAll(async () => {
  tdb = await createTestDatabase('hotel');
  hotel = createHotelService(tdb.db);
});
afterAll(async () => {
  await tdb.drop();
});

async function expectFailure(p: Promise<unknown>, type: ErrorCode): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect((err as ApplicationFailure).type).toBe(type);
  expect((err as ApplicationFailure).nonRetryable).toBe(true);
}

const roomRow = async (id: string) => (await tdb.db.select().from(rooms).where(eq(rooms.id, id)))[0]!;

describe('addHotel and vacancy', () => {
  it('adds a hotel with its rooms in one call, idempotent on the hotel id', async () => {
    const input = { id: 'add-1', name: 'Add Hotel', district: 'AddTown', street: 'S1', rooms: roomsFor(3, 10, 2) };
    const first = await hotel.addHotel(input);
    expect(first).toEqual({ hotelId: 'add-1', rooms: 30, added: 30 });
    const again = await hotel.addHotel(input);
    expect(again).toEqual({ hotelId: 'add-1', rooms: 30, added: 0 });
    // Opening another floor later adds only the new rooms.
    const more = await hotel.addHotel({ ...input, rooms: roomsFor(4, 10, 2) });
    expect(more).toEqual({ hotelId: 'add-1', rooms: 40, added: 10 });
    const [v] = await hotel.vacancy({ district: 'AddTown' });
    expect(v).toMatchObject({ hotelId: 'add-1', name: 'Add Hotel', district: 'AddTown', free: 40, total: 40 });
  });

  it('keeps room states when a hotel is added again', async () => {
    await hotel.addHotel({ id: 'add-2', name: 'Busy', district: 'AddTown2', rooms: roomsFor(1, 3) });
    const r = await hotel.reserve({ workflowId: 'w', caseNo: 'ADD2-1', colour: 'green', district: 'AddTown2' });
    await hotel.addHotel({ id: 'add-2', name: 'Busy', district: 'AddTown2', rooms: roomsFor(1, 3) });
    expect((await roomRow(r!.roomId)).state).toBe('reserved');
  });

  it('rejects duplicate room numbers and ids with a colon', async () => {
    await expect(
      hotel.addHotel({ id: 'dup', name: 'Dup', district: 'X', rooms: [...roomsFor(1, 2), ...roomsFor(1, 1)] }),
    ).rejects.toThrow(/unique/);
    await expect(hotel.addHotel({ id: 'a:b', name: 'Bad', district: 'X', rooms: roomsFor(1, 1) })).rejects.toThrow();
  });

  it('counts every state per hotel', async () => {
    await hotel.addHotel({ id: 'vac-1', name: 'Vac', district: 'VacTown', rooms: roomsFor(1, 5) });
    const a = (await hotel.reserve({ workflowId: 'w', caseNo: 'VAC-A', colour: 'green', district: 'VacTown' }))!;
    const b = (await hotel.reserve({ workflowId: 'w', caseNo: 'VAC-B', colour: 'green', district: 'VacTown' }))!;
    const c = (await hotel.reserve({ workflowId: 'w', caseNo: 'VAC-C', colour: 'green', district: 'VacTown' }))!;
    await hotel.checkIn({ roomId: b.roomId, caseNo: 'VAC-B' });
    await hotel.checkIn({ roomId: c.roomId, caseNo: 'VAC-C' });
    await hotel.checkOut({ roomId: c.roomId, caseNo: 'VAC-C' });
    const free = (await hotel.listRooms('vac-1')).find((r) => r.state === 'free')!;
    await hotel.putOutOfService(free.id, 'broken window');
    expect(a.hotelId).toBe('vac-1');
    expect(await hotel.vacancy({ district: 'VacTown' })).toEqual([
      {
        hotelId: 'vac-1',
        name: 'Vac',
        district: 'VacTown',
        street: null,
        active: true,
        free: 1,
        reserved: 1,
        occupied: 1,
        awaitingDisinfection: 1,
        outOfService: 1,
        total: 5,
      },
    ]);
  });

  it('lists rooms of a known hotel and refuses an unknown one', async () => {
    expect(await hotel.listRooms('add-1')).toHaveLength(40);
    await expectFailure(hotel.listRooms('nope'), ErrorCode.UnknownHotel);
  });
});

describe('room policy', () => {
  beforeAll(async () => {
    // Big: most vacancy, no medical station, no accessible rooms, floors 1-5.
    await hotel.addHotel({ id: 'pol-big', name: 'Big', district: 'Policy', rooms: roomsFor(5, 10) });
    // Med: a medical station on floor 4, floors 1-6, a few accessible rooms on floor 1.
    await hotel.addHotel({
      id: 'pol-med',
      name: 'Med',
      district: 'Policy',
      medicalStationFloor: 4,
      rooms: roomsFor(6, 4, 2),
    });
    // Elsewhere: another district is never used for this district's cases.
    await hotel.addHotel({ id: 'pol-other', name: 'Other', district: 'Elsewhere', rooms: roomsFor(20, 20) });
  });

  it('gives a green case a room in the hotel with most vacancy, away from accessible rooms', async () => {
    const r = await hotel.reserve({ workflowId: 'w', caseNo: 'POL-G1', colour: 'green', district: 'Policy' });
    expect(r?.hotelId).toBe('pol-big');
    const row = await roomRow(r!.roomId);
    expect(row.accessible).toBe(false);
  });

  it('gives a yellow case an accessible room first, then a low floor', async () => {
    const first = await hotel.reserve({ workflowId: 'w', caseNo: 'POL-Y1', colour: 'yellow', district: 'Policy' });
    const second = await hotel.reserve({ workflowId: 'w', caseNo: 'POL-Y2', colour: 'yellow', district: 'Policy' });
    expect((await roomRow(first!.roomId)).accessible).toBe(true);
    expect((await roomRow(second!.roomId)).accessible).toBe(true);
    // Both accessible rooms are taken: the next yellow case still gets a low floor.
    const third = await hotel.reserve({ workflowId: 'w', caseNo: 'POL-Y3', colour: 'yellow', district: 'Policy' });
    expect((await roomRow(third!.roomId)).accessible).toBe(false);
    expect(third!.floor).toBeLessThanOrEqual(2);
  });

  it('gives a red case the room nearest the medical station', async () => {
    const reds = [];
    for (let i = 0; i < 6; i++) {
      reds.push(await hotel.reserve({ workflowId: 'w', caseNo: `POL-R${i}`, colour: 'red', district: 'Policy' }));
    }
    expect(reds.every((r) => r?.hotelId === 'pol-med')).toBe(true);
    // 4 rooms on floor 4 first, then the floors one away (3 before 5).
    expect(reds.map((r) => r!.floor)).toEqual([4, 4, 4, 4, 3, 3]);
  });

  it('returns null when the district has no free room', async () => {
    expect(await hotel.reserve({ workflowId: 'w', caseNo: 'NONE-1', colour: 'green', district: 'Nowhere' })).toBeNull();
  });

  it('returns the same room to a retried reservation, whatever the colour', async () => {
    const a = await hotel.reserve({ workflowId: 'w', caseNo: 'POL-RETRY', colour: 'green', district: 'Policy' });
    const b = await hotel.reserve({ workflowId: 'w', caseNo: 'POL-RETRY', colour: 'red', district: 'Policy' });
    expect(b).toEqual(a);
  });
});

describe('room lifecycle', () => {
  beforeAll(async () => {
    await hotel.addHotel({ id: 'life', name: 'Life', district: 'Life', rooms: roomsFor(1, 6) });
  });

  it('reserved → occupied → awaiting disinfection → free, each step idempotent', async () => {
    const r = (await hotel.reserve({ workflowId: 'w', caseNo: 'LIFE-1', colour: 'green', district: 'Life' }))!;
    const ref = { roomId: r.roomId, caseNo: 'LIFE-1' };
    expect(await hotel.checkIn(ref)).toEqual({ roomId: r.roomId, state: 'occupied', changed: true });
    expect(await hotel.checkIn(ref)).toEqual({ roomId: r.roomId, state: 'occupied', changed: false });
    expect(await hotel.checkOut({ ...ref, terminalDisinfection: true })).toMatchObject({
      state: 'awaiting_disinfection',
      changed: true,
    });
    expect(await hotel.checkOut(ref)).toMatchObject({ changed: false });
    // A late retry of check-in after check-out is a no-op, not a conflict.
    expect(await hotel.checkIn(ref)).toMatchObject({ changed: false });
    let row = await roomRow(r.roomId);
    expect(row).toMatchObject({
      state: 'awaiting_disinfection',
      caseNo: null,
      lastCaseNo: 'LIFE-1',
      disinfection: 'terminal',
    });
    // The case no longer holds a room: its next reservation gets a fresh one.
    expect(await hotel.disinfectionDone(r.roomId)).toMatchObject({ state: 'free', changed: true });
    expect(await hotel.disinfectionDone(r.roomId)).toMatchObject({ state: 'free', changed: false });
    row = await roomRow(r.roomId);
    expect(row).toMatchObject({ state: 'free', disinfection: null, lastCaseNo: 'LIFE-1' });
  });

  it('release frees a reserved room; repeating it changes nothing', async () => {
    const r = (await hotel.reserve({ workflowId: 'w', caseNo: 'LIFE-2', colour: 'green', district: 'Life' }))!;
    expect(await hotel.release({ roomId: r.roomId, caseNo: 'LIFE-2' })).toMatchObject({ state: 'free', changed: true });
    expect(await hotel.release({ roomId: r.roomId, caseNo: 'LIFE-2' })).toMatchObject({ changed: false });
    expect((await roomRow(r.roomId)).caseNo).toBeNull();
  });

  it('refuses impossible transitions as non-retryable conflicts', async () => {
    const r = (await hotel.reserve({ workflowId: 'w', caseNo: 'LIFE-3', colour: 'green', district: 'Life' }))!;
    // Another case cannot check into or out of it; the holder cannot check out before checking in.
    await expectFailure(hotel.checkIn({ roomId: r.roomId, caseNo: 'LIFE-X' }), ErrorCode.RoomStateConflict);
    await expectFailure(hotel.checkOut({ roomId: r.roomId, caseNo: 'LIFE-3' }), ErrorCode.RoomStateConflict);
    await expectFailure(hotel.disinfectionDone(r.roomId), ErrorCode.RoomStateConflict);
    await expectFailure(hotel.putOutOfService(r.roomId, 'leak'), ErrorCode.RoomStateConflict);
    await hotel.checkIn({ roomId: r.roomId, caseNo: 'LIFE-3' });
    await expectFailure(hotel.release({ roomId: r.roomId, caseNo: 'LIFE-3' }), ErrorCode.RoomStateConflict);
    expect((await roomRow(r.roomId)).state).toBe('occupied');
  });

  it('unknown rooms are non-retryable', async () => {
    await expectFailure(hotel.checkIn({ roomId: 'nope:1', caseNo: 'X' }), ErrorCode.UnknownRoom);
    await expectFailure(hotel.disinfectionDone('nope:1'), ErrorCode.UnknownRoom);
  });

  it('out of service and back; a room that left before disinfection still needs it', async () => {
    const free = (await hotel.listRooms('life')).find((r) => r.state === 'free')!;
    expect(await hotel.putOutOfService(free.id, 'broken heater')).toMatchObject({ state: 'out_of_service' });
    expect(await hotel.putOutOfService(free.id, 'broken heater')).toMatchObject({ changed: false });
    expect((await roomRow(free.id)).outOfServiceReason).toBe('broken heater');
    expect(await hotel.returnToService(free.id)).toMatchObject({ state: 'free', changed: true });
    expect(await hotel.returnToService(free.id)).toMatchObject({ state: 'free', changed: false });

    const r = (await hotel.reserve({ workflowId: 'w', caseNo: 'LIFE-4', colour: 'green', district: 'Life' }))!;
    await hotel.checkIn({ roomId: r.roomId, caseNo: 'LIFE-4' });
    await hotel.checkOut({ roomId: r.roomId, caseNo: 'LIFE-4' });
    await hotel.putOutOfService(r.roomId, 'plumbing');
    expect(await hotel.returnToService(r.roomId)).toMatchObject({ state: 'awaiting_disinfection' });
  });

  it('never reserves a room out of service or awaiting disinfection', async () => {
    await hotel.addHotel({ id: 'tiny', name: 'Tiny', district: 'Tiny', rooms: roomsFor(1, 2) });
    const [a, b] = await hotel.listRooms('tiny');
    await hotel.putOutOfService(a!.id, 'repair');
    const r = (await hotel.reserve({ workflowId: 'w', caseNo: 'TINY-1', colour: 'green', district: 'Tiny' }))!;
    expect(r.roomId).toBe(b!.id);
    await hotel.checkIn({ roomId: r.roomId, caseNo: 'TINY-1' });
    await hotel.checkOut({ roomId: r.roomId, caseNo: 'TINY-1' });
    expect(await hotel.reserve({ workflowId: 'w', caseNo: 'TINY-2', colour: 'green', district: 'Tiny' })).toBeNull();
    await hotel.disinfectionDone(r.roomId);
    expect(
      (await hotel.reserve({ workflowId: 'w', caseNo: 'TINY-2', colour: 'green', district: 'Tiny' }))?.roomId,
    ).toBe(b!.id);
  });
});

describe('the waiting list under a wave', () => {
  it("a district's requests open one transaction at a time in a process, in the order they came, and hold no connection while they wait", async () => {
    // Every transaction the service opens, counted: without the in-process queue, 50 requests at
    // once open 50 transactions that each hold a pooled connection while Postgres's district lock
    // makes them wait (a wave held the whole pool so, and every other write waited behind it).
    let open = 0;
    let most = 0;
    const counted = Object.create(tdb.db) as typeof tdb.db;
    (counted as { transaction: unknown }).transaction = (async (fn: Parameters<typeof tdb.db.transaction>[0]) => {
      most = Math.max(most, ++open);
      try {
        return await tdb.db.transaction(fn);
      } finally {
        open--;
      }
    }) as typeof tdb.db.transaction;
    const waveHotel = createHotelService(counted);
    await waveHotel.addHotel({ id: 'wave-1', name: 'Wave', district: 'Wave', rooms: roomsFor(1, 10) });
    await waveHotel.addHotel({ id: 'wave-2', name: 'Wave Two', district: 'Wave2', rooms: roomsFor(1, 5) });
    const t0 = Date.UTC(2022, 3, 1, 8);
    const ask = (district: string, i: number) =>
      waveHotel.reserveInQueue({
        workflowId: `case-${district}-${i}`,
        caseNo: `${district}-${String(i).padStart(2, '0')}`,
        colour: 'green',
        district,
        requestedAt: new Date(t0 + i * 1000).toISOString(),
        colourFirst: true,
      });
    const results = await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => ask('Wave', i)),
      ...Array.from({ length: 10 }, (_, i) => ask('Wave2', i)),
    ]);
    // One transaction per district at a time: two districts, at most two open.
    expect(most).toBeLessThanOrEqual(2);
    // First come, first roomed; no room twice; the rest wait on the list in their order.
    const roomed = results.flatMap((r, i) => (r.room ? [i] : []));
    expect(roomed).toEqual([
      ...Array.from({ length: 10 }, (_, i) => i),
      ...Array.from({ length: 5 }, (_, i) => 40 + i),
    ]);
    expect(new Set(results.flatMap((r) => (r.room ? [r.room.roomId] : []))).size).toBe(15);
    expect((await waveHotel.queue('Wave')).entries.map((e) => e.caseNo)).toEqual(
      Array.from({ length: 30 }, (_, i) => `Wave-${String(i + 10).padStart(2, '0')}`),
    );
    expect((await waveHotel.queue('Wave2')).length).toBe(5);
  });
});

describe('a reservation whose activity attempt gave up while it waited', () => {
  it('fails retryably without touching the list (a retry, or the case leaving the list, may already have come)', async () => {
    await hotel.addHotel({ id: 'late-1', name: 'Late', district: 'Late', rooms: roomsFor(1, 1) });
    const err = await hotel
      .reserveInQueue({
        workflowId: 'case-LATE-1',
        caseNo: 'LATE-1',
        colour: 'green',
        district: 'Late',
        requestedAt: '2022-04-01T08:00:00Z',
        colourFirst: true,
        notAfter: Date.now() - 1,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(ErrorCode.IntegrationUnavailable);
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
    expect((await hotel.queue('Late')).length).toBe(0);
    expect((await hotel.vacancy({ district: 'Late' }))[0]).toMatchObject({ free: 1 });
  });
});

describe('the waiting list for rooms', () => {
  const ask = (caseNo: string, colour: 'green' | 'yellow' | 'red', requestedAt: string, district = 'Wait') =>
    hotel.reserveInQueue({
      workflowId: `case-${caseNo}`,
      caseNo,
      colour,
      district,
      requestedAt,
      colourFirst: true,
    });

  it('orders waiting cases red and yellow first, then by request time, and hands a freed room to the first', async () => {
    await hotel.addHotel({ id: 'wait-1', name: 'Wait', district: 'Wait', rooms: roomsFor(1, 1) });
    const first = await ask('W-A', 'green', '2022-04-01T08:00:00Z');
    expect(first.room).not.toBeNull();
    // No room left: each joins the list, none is refused or failed.
    expect(await ask('W-B', 'green', '2022-04-01T09:00:00Z')).toEqual({ room: null, handed: [] });
    expect(await ask('W-C', 'red', '2022-04-01T10:00:00Z')).toEqual({ room: null, handed: [] });
    expect(await ask('W-D', 'green', '2022-04-01T08:30:00Z')).toEqual({ room: null, handed: [] });
    // Asking again (a retry, a recheck) keeps the place: the list holds each case once.
    expect((await ask('W-B', 'green', '2022-04-01T09:00:00Z')).room).toBeNull();
    const q = await hotel.queue('Wait');
    expect(q.length).toBe(3);
    expect(q.entries.map((e) => [e.caseNo, e.place])).toEqual([
      ['W-C', 1],
      ['W-D', 2],
      ['W-B', 3],
    ]);
    expect(q.oldestSince).not.toBeNull();
    expect(await hotel.queuePlace('W-B')).toMatchObject({ place: 3, district: 'Wait' });
    expect(await hotel.queuePlace('W-A')).toBeNull();

    // The room is released (the case was cancelled before check-in): it goes to W-C, in the same stroke.
    const t = await hotel.release({ roomId: first.room!.roomId, caseNo: 'W-A' });
    expect(t).toMatchObject({ state: 'reserved', changed: true });
    expect(t.handed).toEqual([{ caseNo: 'W-C', workflowId: 'case-W-C', room: first.room }]);
    expect((await roomRow(first.room!.roomId)).caseNo).toBe('W-C');
    // W-C asks (woken): its room, and it is off the list.
    expect((await ask('W-C', 'red', '2022-04-01T10:00:00Z')).room).toEqual(first.room);
    expect((await hotel.queue('Wait')).entries.map((e) => e.caseNo)).toEqual(['W-D', 'W-B']);
    // A newcomer cannot jump the list when a room frees: the room goes to W-D, the newcomer waits.
    await hotel.checkIn({ roomId: first.room!.roomId, caseNo: 'W-C' });
    await hotel.checkOut({ roomId: first.room!.roomId, caseNo: 'W-C' });
    const done = await hotel.disinfectionDone(first.room!.roomId);
    expect(done.handed?.map((h) => h.caseNo)).toEqual(['W-D']);
    expect((await ask('W-E', 'green', '2022-04-01T07:00:00Z')).room).toBeNull();
  });

  it('a case that leaves the list gives back a room handed to it and the next case gets it', async () => {
    await hotel.addHotel({ id: 'wait-2', name: 'Wait 2', district: 'Leave', rooms: roomsFor(1, 1) });
    const a = await ask('L-A', 'green', '2022-04-01T08:00:00Z', 'Leave');
    await ask('L-B', 'green', '2022-04-01T09:00:00Z', 'Leave');
    await ask('L-C', 'green', '2022-04-01T10:00:00Z', 'Leave');
    // L-B is handed the room, but its case ended before it took it.
    const t = await hotel.release({ roomId: a.room!.roomId, caseNo: 'L-A' });
    expect(t.handed?.map((h) => h.caseNo)).toEqual(['L-B']);
    const left = await hotel.leaveQueue({ caseNo: 'L-B' });
    expect(left).toMatchObject({ left: false, freedRoomId: a.room!.roomId });
    expect(left.handed.map((h) => h.caseNo)).toEqual(['L-C']);
    expect((await roomRow(a.room!.roomId)).caseNo).toBe('L-C');
    // Leaving while still waiting: off the list, nothing freed; leaving twice changes nothing.
    await ask('L-D', 'green', '2022-04-01T11:00:00Z', 'Leave');
    expect(await hotel.leaveQueue({ caseNo: 'L-D' })).toEqual({ left: true, handed: [] });
    expect(await hotel.leaveQueue({ caseNo: 'L-D' })).toEqual({ left: false, handed: [] });
    expect((await hotel.queue('Leave')).length).toBe(0);
  });

  it('under concurrency: every room to one case, every case at most one room, in list order', async () => {
    await hotel.addHotel({ id: 'wait-3', name: 'Wait 3', district: 'Rush', rooms: roomsFor(1, 10) });
    const cases = Array.from({ length: 40 }, (_, i) => `R-${String(i).padStart(2, '0')}`);
    const base = Date.parse('2022-04-01T08:00:00Z');
    const answers = await Promise.all(
      cases.map((c, i) => ask(c, 'green', new Date(base + i * 60_000).toISOString(), 'Rush')),
    );
    const got = answers.filter((a) => a.room).length;
    expect(got).toBe(10);
    expect((await hotel.queue('Rush', 1000)).length).toBe(30);
    // Free all ten at once (check in, out, disinfect), while the waiting cases ask again.
    const holders = (await hotel.listRooms('wait-3')).map((r) => ({ roomId: r.id, caseNo: r.caseNo! }));
    for (const hdr of holders) {
      await hotel.checkIn(hdr);
      await hotel.checkOut(hdr);
    }
    const waiting = (await hotel.queue('Rush', 1000)).entries.map((e) => e.caseNo);
    const frees = await Promise.all([
      ...holders.map((hdr) => hotel.disinfectionDone(hdr.roomId)),
      ...waiting.map((c) => ask(c, 'green', new Date(base + cases.indexOf(c) * 60_000).toISOString(), 'Rush')),
    ]);
    const roomsNow = await hotel.listRooms('wait-3');
    const holdersNow = roomsNow.map((r) => r.caseNo);
    expect(new Set(holdersNow).size).toBe(10);
    expect(holdersNow.every((c) => c !== null)).toBe(true);
    // The ten who waited longest got them; the list keeps the other twenty in order.
    expect([...holdersNow].sort()).toEqual(waiting.slice(0, 10));
    expect((await hotel.queue('Rush', 1000)).entries.map((e) => e.caseNo)).toEqual(waiting.slice(10));
    expect(frees.length).toBe(10 + waiting.length);
  });
});
