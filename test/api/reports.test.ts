import request from 'supertest';

import { caseEvents, cases, escalations, samples } from '../../src/db/schema';
import { createHarness, seedReadModel, type Harness } from './harness';

/**
 * The evening report for one past day in Asia/Shanghai (UTC+8): cases arriving, leaving and
 * staying across the day's edges, PCRs taken and resulted, escalations opened that day and the
 * day before, a case with no room yet, and a hotel of another district. JSON and CSV agree.
 */
let h: Harness;
const DAY = '2026-03-10';
/** A local time on DAY (offset in days), as an instant: Asia/Shanghai is UTC+8 all year. */
const local = (time: string, dayOffset = 0) => {
  const d = new Date(`${DAY}T${time}+08:00`);
  return new Date(d.getTime() + dayOffset * 86_400_000);
};

beforeAll(async () => {
  h = await createHarness({ label: 'report', env: { TIME_ZONE: 'Asia/Shanghai' } });
  await seedReadModel(h.db, new Date('2026-11-01T00:00:00Z'));
  const base = { district: 'D1', street: 'S1', policyName: 'standard', requestedAt: local('08:00', -5) };
  const c = (caseNo: string, r: Partial<typeof cases.$inferInsert>) => ({
    ...base,
    caseNo,
    workflowId: `case-${caseNo}`,
    requestId: `r-${caseNo}`,
    phase: 'OBSERVATION',
    ...r,
  });
  await h.db.insert(cases).values([
    c('RPA', { hotelId: 'H1', arrivedAt: local('10:00') }),
    c('RPB', { hotelId: 'H1', arrivedAt: local('10:00', -3), phase: 'RELEASED', endedAt: local('09:00') }),
    c('RPC', {
      hotelId: 'H1',
      arrivedAt: local('10:00', -2),
      phase: 'HOSPITAL_TRANSFER',
      endedAt: local('23:59:59.900'),
    }),
    c('RPE', { hotelId: 'H1', arrivedAt: local('10:00', -1) }),
    c('RPF', { hotelId: 'H1', arrivedAt: local('23:59:59.999') }),
    c('RPG', { hotelId: 'H1', arrivedAt: local('00:00:00', 1) }),
    c('RPH', {
      hotelId: 'H2',
      street: 'S2',
      arrivedAt: local('10:00', -1),
      phase: 'RELEASED',
      endedAt: local('07:00', 1),
    }),
    // Waited for a room on the day, and got one in H1 later: the day's report still says "waiting".
    c('RPW', { phase: 'ROOM_ASSIGNED', hotelId: 'H1' }),
    c('RPX', { hotelId: 'H9', district: 'D2', street: 'S9', arrivedAt: local('10:00', -1) }),
  ]);
  const s = (sampleId: string, caseNo: string, r: Partial<typeof samples.$inferInsert>) => ({
    sampleId,
    caseNo,
    type: 'pcr',
    reason: 'scheduled',
    dueAt: local('09:00'),
    status: 'resulted',
    ...r,
  });
  await h.db
    .insert(samples)
    .values([
      s('RPA-S1', 'RPA', { orderedAt: local('11:00'), result: 'negative', resultAt: local('20:00') }),
      s('RPE-S1', 'RPE', { orderedAt: local('11:00', -1), result: 'positive', resultAt: local('08:00') }),
      s('RPA-A1', 'RPA', { type: 'antigen', orderedAt: local('10:00'), result: 'negative', resultAt: local('10:10') }),
      s('RPE-S0', 'RPE', { orderedAt: local('11:00', -2), result: 'negative', resultAt: local('20:00', -1) }),
    ]);
  const e = (id: string, caseNo: string, hotelId: string | null, kind: string, openedAt: Date) => ({
    id,
    caseNo,
    hotelId,
    kind,
    level: 'nurse',
    severity: 'amber',
    reason: kind,
    openedAt,
  });
  await h.db
    .insert(escalations)
    .values([
      e('RPE-E1', 'RPE', 'H1', 'fever', local('08:30')),
      e('RPE-E0', 'RPE', 'H1', 'fever', local('23:00', -1)),
      e('RPA-E1', 'RPA', 'H1', 'missed_check', local('12:00')),
      e('RPA-E2', 'RPA', 'H1', 'missed_check', local('18:00')),
      e('RPH-E1', 'RPH', 'H2', 'door_alarm', local('03:00')),
      e('RPW-E1', 'RPW', null, 'no_room', local('09:00')),
      e('RPX-E1', 'RPX', 'H9', 'fever', local('09:00')),
    ]);
  // Two more slots missed by A while its 18:00 escalation was open (folded into it), and one
  // the evening before, which is not this day's.
  const missed = (seq: number, at: Date) => ({
    caseNo: 'RPA',
    seq,
    actor: 'workflow',
    actorRole: 'system',
    kind: 'check_missed',
    payload: { escalationId: 'RPA-E2' },
    at,
  });
  await h.db
    .insert(caseEvents)
    .values([missed(1, local('22:00', -1)), missed(2, local('21:00')), missed(3, local('23:30'))]);
});
afterAll(async () => h?.close());

const report = (as: 'supervisor' | 'admin' | 'hotel' | 'community', q = '') =>
  request(h.app).get(`/api/v1/reports/daily?date=${DAY}${q}`).set(h.auth(as));

test('per hotel and for the district: the day between its local midnights, nothing from the days around it', async () => {
  const res = await report('supervisor');
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({
    date: DAY,
    timeZone: 'Asia/Shanghai',
    from: '2026-03-09T16:00:00.000Z',
    to: '2026-03-10T16:00:00.000Z',
    district: 'D1',
  });
  const byId = Object.fromEntries(res.body.hotels.map((x: { hotelId: string }) => [x.hotelId, x]));
  expect(Object.keys(byId).sort()).toEqual(['H1', 'H2']);
  expect(byId.H1).toMatchObject({
    rooms: 8,
    occupiedAtEndOfDay: 3, // A, E and F (arrived a millisecond before midnight); G arrives the next day
    vacantAtEndOfDay: 5,
    arrivals: 2,
    releases: 1,
    hospitalTransfers: 1,
    pcrTaken: 1,
    pcrNegative: 1,
    pcrPositive: 1,
    fevers: 1,
    // Two escalations opened, two slots folded into the second: four slots missed.
    missedChecks: 4,
    otherExceptions: 0,
    exceptions: { fever: 1, missed_check: 2 },
  });
  expect(byId.H2).toMatchObject({
    rooms: 4,
    occupiedAtEndOfDay: 1, // H leaves the next morning
    vacantAtEndOfDay: 3,
    arrivals: 0,
    releases: 0,
    otherExceptions: 1,
    exceptions: { door_alarm: 1 },
  });
  expect(res.body.total).toMatchObject({
    rooms: 12,
    occupiedAtEndOfDay: 4,
    vacantAtEndOfDay: 8,
    arrivals: 2,
    releases: 1,
    hospitalTransfers: 1,
    pcrTaken: 1,
    pcrNegative: 1,
    pcrPositive: 1,
    fevers: 1,
    missedChecks: 4,
    otherExceptions: 2, // the door alarm, and the case still waiting for a room
    waitingForRoom: 1,
    exceptions: { fever: 1, missed_check: 2, door_alarm: 1, no_room: 1 },
  });
});

test('the CSV is the same report: a row per hotel and a TOTAL row', async () => {
  const json = (await report('supervisor')).body;
  const res = await report('supervisor', '&format=csv');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/csv; charset=utf-8/);
  expect(res.headers['content-disposition']).toContain(`evening-report-${DAY}.csv`);
  expect(res.text.charCodeAt(0)).toBe(0xfeff);
  const [header, ...rows] = res.text
    .slice(1)
    .trimEnd()
    .split('\r\n')
    .map((l) => l.split(','));
  const cols = header!.slice(3);
  expect(header!.slice(0, 3)).toEqual(['date', 'hotelId', 'hotel']);
  expect(rows).toHaveLength(json.hotels.length + 1);
  json.hotels.forEach((hotel: Record<string, number | string>, i: number) => {
    expect(rows[i]!.slice(0, 3)).toEqual([DAY, hotel.hotelId, hotel.name]);
    expect(rows[i]!.slice(3).map(Number)).toEqual(cols.map((c) => hotel[c]));
  });
  expect(rows.at(-1)!.slice(0, 3)).toEqual([DAY, 'TOTAL', 'D1']);
  expect(rows.at(-1)!.slice(3).map(Number)).toEqual(cols.map((c) => json.total[c]));
  // Accept: text/csv asks for the same.
  const accepted = await request(h.app)
    .get(`/api/v1/reports/daily?date=${DAY}`)
    .set(h.auth('supervisor'))
    .set('Accept', 'text/csv');
  expect(accepted.text).toBe(res.text);
});

test('jurisdiction: a hotel key gets its own hotel; admin sees every district; others none', async () => {
  const hotel = await report('hotel');
  expect(hotel.status).toBe(200);
  expect(hotel.body.hotels.map((x: { hotelId: string }) => x.hotelId)).toEqual(['H1']);
  expect(hotel.body.total.waitingForRoom).toBe(0);
  expect((await report('hotel', '&hotelId=H2')).status).toBe(403);
  const admin = await report('admin');
  expect(admin.body.district).toBeNull();
  expect(admin.body.hotels.find((x: { hotelId: string }) => x.hotelId === 'H9')).toMatchObject({ fevers: 1 });
  expect(admin.body.total.fevers).toBe(2);
  const one = await report('supervisor', '&hotelId=H2');
  expect(one.body.hotels.map((x: { hotelId: string }) => x.hotelId)).toEqual(['H2']);
  expect((await report('supervisor', '&hotelId=H9')).status).toBe(404);
  expect((await report('community')).status).toBe(403);
});

test('bad days are 400 with the field named; a day with nothing is zeros', async () => {
  for (const q of ['date=2026-02-30', 'date=yesterday', 'date=2026-03-10&format=xlsx', '']) {
    const res = await request(h.app).get(`/api/v1/reports/daily?${q}`).set(h.auth('supervisor'));
    expect([q, res.status]).toEqual([q, 400]);
    expect(res.body.errors.length).toBeGreaterThan(0);
  }
  const quiet = await request(h.app).get('/api/v1/reports/daily?date=2025-01-01').set(h.auth('supervisor'));
  expect(quiet.status).toBe(200);
  expect(quiet.body.total).toMatchObject({ rooms: 12, arrivals: 0, occupiedAtEndOfDay: 0, fevers: 0 });
});

test('the wave: day by day across the same data, occupancy and open escalations carried from day to day', async () => {
  const res = await request(h.app).get('/api/v1/reports/wave?from=2026-03-08&to=2026-03-11').set(h.auth('supervisor'));
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ district: 'D1', dayKind: 'calendar', dayLengthS: 86_400, capacity: 12 });
  const col = (k: string) => res.body.days.map((d: Record<string, number>) => d[k]);
  expect(col('label')).toEqual(['2026-03-08', '2026-03-09', '2026-03-10', '2026-03-11']);
  expect(res.body.days[2]).toMatchObject({ start: '2026-03-09T16:00:00.000Z', end: '2026-03-10T16:00:00.000Z' });
  expect(col('arrivals')).toEqual([1, 2, 2, 1]);
  expect(col('releases')).toEqual([0, 0, 1, 1]);
  expect(col('hospitalTransfers')).toEqual([0, 0, 1, 0]);
  // B was in before the range; C, B leave on the 10th, H on the 11th.
  expect(col('occupiedAtEnd')).toEqual([2, 4, 4, 4]);
  expect(col('pcrTaken')).toEqual([1, 1, 1, 0]);
  expect(col('pcrPositive')).toEqual([0, 0, 1, 0]);
  expect(col('escalationsOpened')).toEqual([0, 1, 5, 0]);
  expect(col('openEscalationsAtEnd')).toEqual([0, 1, 6, 6]);
  // The same day as the evening report says.
  const daily = (await report('supervisor')).body;
  expect(res.body.days[2]).toMatchObject({
    arrivals: daily.total.arrivals,
    releases: daily.total.releases,
    hospitalTransfers: daily.total.hospitalTransfers,
    occupiedAtEnd: daily.total.occupiedAtEndOfDay,
    pcrTaken: daily.total.pcrTaken,
    pcrPositive: daily.total.pcrPositive,
  });
  // Admin: every district (RPX arrives in D2 on the 9th).
  const admin = await request(h.app).get('/api/v1/reports/wave?from=2026-03-08&to=2026-03-11').set(h.auth('admin'));
  expect(admin.body.days.map((d: { arrivals: number }) => d.arrivals)).toEqual([1, 3, 2, 1]);
  expect(admin.body.capacity).toBe(14);
});

test("the wave in the drill's own days, and bad ranges", async () => {
  const since = new Date(`${DAY}T09:59:50+08:00`).toISOString();
  const res = await request(h.app)
    .get(`/api/v1/reports/wave?days=drill&since=${encodeURIComponent(since)}`)
    .set(h.auth('supervisor'));
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ dayKind: 'drill', dayLengthS: 20 });
  expect(res.body.days).toHaveLength(120);
  expect(res.body.days[0]).toMatchObject({ label: 'day 1', start: since, arrivals: 1 });
  expect(Date.parse(res.body.days[1].start) - Date.parse(res.body.days[0].start)).toBe(20_000);
  for (const q of [
    'from=2026-03-11&to=2026-03-08',
    'from=2025-01-01&to=2026-03-08',
    'days=weekly',
    'from=2026-02-30',
  ]) {
    const bad = await request(h.app).get(`/api/v1/reports/wave?${q}`).set(h.auth('supervisor'));
    expect([q, bad.status]).toEqual([q, 400]);
  }
  expect((await request(h.app).get('/api/v1/reports/wave').set(h.auth('hotel'))).status).toBe(403);
  const recent = await request(h.app).get('/api/v1/reports/wave').set(h.auth('supervisor'));
  expect(recent.body.days).toHaveLength(14);
  const drill = await request(h.app).get('/api/v1/reports/wave?days=drill').set(h.auth('supervisor'));
  expect(drill.body.days).toHaveLength(30);
  // Years no one reports on, and parameters of the other kind of day: 400, never a database error.
  for (const q of [
    'from=9999-12-31&to=9999-12-31',
    'from=0001-01-01&to=0001-01-02',
    'days=drill&since=0000-06-01T00:00:00Z',
    'days=drill&since=9999-12-31T23:59:59Z',
    'days=drill&from=2026-03-08',
    'since=2026-03-08T00:00:00Z',
  ]) {
    const bad = await request(h.app).get(`/api/v1/reports/wave?${q}`).set(h.auth('supervisor'));
    expect([q, bad.status]).toEqual([q, 400]);
    expect(bad.body.errors.length).toBeGreaterThan(0);
  }
  const old = await request(h.app).get('/api/v1/reports/daily?date=0001-01-01').set(h.auth('supervisor'));
  expect(old.status).toBe(400);
});
