import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { RELEASED_PHASES } from '../../domain/types';
import type { Response } from 'express';
import { z } from 'zod';

import { zoneOffsetMs } from '../../domain/schedule';
import { caseEvents, cases, escalations, hotels, rooms, samples } from '../../db/schema';
import { rowsOf } from '../../integrations/hotel';
import type { ApiKey } from '../auth';
import type { ApiContext } from '../context';
import { HttpProblem, validationProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import { requireHotelBinding } from '../scope';

/** Released from the hotel, whether or not home monitoring followed (the read model's ended_at is the hotel's end). */
const RELEASED_SQL = sql.raw(`('${RELEASED_PHASES.join("','")}')`);
import { dbProblem, localDate, localDays } from './read-helpers';

/**
 * The evening report (DOMAIN.md: "each evening each group reports its day"): per hotel and for
 * the district, one local day's use of rooms, arrivals, releases, hospital transfers, PCRs taken
 * and their results, fevers, missed checks and the other exceptions. Derived from the read
 * model, so any past day can be asked for. A day is the calendar day in TIME_ZONE.
 */
const COLUMNS = [
  'rooms',
  'occupiedAtEndOfDay',
  'vacantAtEndOfDay',
  'arrivals',
  'releases',
  'hospitalTransfers',
  'pcrTaken',
  'pcrNegative',
  'pcrPositive',
  'fevers',
  'missedChecks',
  'otherExceptions',
] as const;
type Column = (typeof COLUMNS)[number];
type Counts = Record<Column, number>;

const CountsSchema = z.object(
  Object.fromEntries(COLUMNS.map((c) => [c, z.number().int()])) as Record<Column, z.ZodNumber>,
);
const ReportRow = CountsSchema.extend({
  hotelId: z.string(),
  name: z.string(),
  exceptions: z.record(z.string(), z.number().int()).meta({ description: 'Escalations opened that day, by kind' }),
}).meta({ id: 'DailyReportHotel' });
const DailyReport = z
  .object({
    date: z.string(),
    timeZone: z.string(),
    from: z.string(),
    to: z.string(),
    district: z.string().nullable(),
    hotels: z.array(ReportRow),
    total: CountsSchema.extend({
      exceptions: z.record(z.string(), z.number().int()),
      waitingForRoom: z
        .number()
        .int()
        .meta({ description: 'no_room escalations opened that day (cases with no hotel yet)' }),
    }),
  })
  .meta({ id: 'DailyReport' });

/** Report dates: real days of this century's range (out-of-range years are a 400, not a database error). */
const inYears = (iso: string) => {
  const y = Number(iso.slice(0, 4));
  return y >= 2000 && y <= 2100;
};
const ReportDate = z.iso.date().refine(inYears, 'a day in the years 2000 to 2100');
const ReportInstant = z.iso.datetime({ offset: true }).refine(inYears, 'an instant in the years 2000 to 2100');

const zero = (): Counts => Object.fromEntries(COLUMNS.map((c) => [c, 0])) as Counts;

/** The local day `date` (YYYY-MM-DD) in `timeZone`: [from, to). */
export function dayBounds(date: string, timeZone: string): { from: Date; to: Date } {
  const noonUtc = Date.parse(`${date}T12:00:00Z`);
  const localNoon = noonUtc - zoneOffsetMs(timeZone, noonUtc);
  const d = localDays(timeZone, localNoon);
  return { from: new Date(d.today), to: new Date(d.tomorrow) };
}

async function buildReport(app: ApiContext, key: ApiKey, date: string, hotelId?: string) {
  const { from, to } = dayBounds(date, app.config.TIME_ZONE);
  const scope = [];
  requireHotelBinding(key);
  if (key.role === 'hotel') {
    if (hotelId && hotelId !== key.orgId) {
      throw new HttpProblem(403, `Hotel ${hotelId} is not this key's hotel`, { slug: 'jurisdiction' });
    }
    hotelId = key.orgId!;
  }
  if (key.role !== 'admin' && key.district) scope.push(eq(hotels.district, key.district));
  if (hotelId) scope.push(eq(hotels.id, hotelId));
  const [fromTs, toTs] = [sql`${from.toISOString()}::timestamptz`, sql`${to.toISOString()}::timestamptz`];
  const inDay = (col: unknown) => sql`(${col} >= ${fromTs} and ${col} < ${toTs})`;
  const count = (cond: ReturnType<typeof sql>) => sql<number>`count(*) filter (where ${cond})`.mapWith(Number);

  const hotelRows = await app.db
    .select({ id: hotels.id, name: hotels.name })
    .from(hotels)
    .where(scope.length ? and(...scope) : undefined)
    .orderBy(asc(hotels.name), asc(hotels.id));
  if (hotelId && !hotelRows.length) throw new HttpProblem(404, `No hotel ${hotelId} here`);
  const ids = hotelRows.map((h) => h.id);
  const byHotel = new Map<string, Counts & { exceptions: Record<string, number> }>(
    ids.map((id) => [id, { ...zero(), exceptions: {} }]),
  );
  let waitingForRoom = 0;
  const totalExceptions: Record<string, number> = {};
  if (ids.length) {
    const [roomCounts, caseCounts, sampleCounts, escalationCounts, foldedMisses] = await Promise.all([
      app.db
        .select({ hotelId: rooms.hotelId, n: sql<number>`count(*)`.mapWith(Number) })
        .from(rooms)
        .where(inArray(rooms.hotelId, ids))
        .groupBy(rooms.hotelId),
      app.db
        .select({
          hotelId: cases.hotelId,
          arrivals: count(inDay(cases.arrivedAt)),
          releases: count(sql`${cases.phase} in ${RELEASED_SQL} and ${inDay(cases.endedAt)}`),
          hospitalTransfers: count(sql`${cases.phase} = 'HOSPITAL_TRANSFER' and ${inDay(cases.endedAt)}`),
          occupied: count(
            sql`${cases.arrivedAt} < ${toTs} and (${cases.endedAt} is null or ${cases.endedAt} >= ${toTs})`,
          ),
        })
        .from(cases)
        .where(inArray(cases.hotelId, ids))
        .groupBy(cases.hotelId),
      app.db
        .select({
          hotelId: cases.hotelId,
          taken: count(sql`${samples.type} = 'pcr' and ${inDay(samples.orderedAt)}`),
          negative: count(
            sql`${samples.type} = 'pcr' and ${samples.result} = 'negative' and ${inDay(samples.resultAt)}`,
          ),
          positive: count(
            sql`${samples.type} = 'pcr' and ${samples.result} = 'positive' and ${inDay(samples.resultAt)}`,
          ),
        })
        .from(samples)
        .innerJoin(cases, eq(cases.caseNo, samples.caseNo))
        .where(inArray(cases.hotelId, ids))
        .groupBy(cases.hotelId),
      // By the case's hotel or, before it has one (no room yet), by its district.
      app.db
        .select({
          // Waiting for a room belongs to no hotel, even after the case got one (a past day stays as it was).
          hotelId: sql<string | null>`case when ${escalations.kind} = 'no_room' then null
            else coalesce(${escalations.hotelId}, ${cases.hotelId}) end`,
          kind: escalations.kind,
          n: sql<number>`count(*)`.mapWith(Number),
        })
        .from(escalations)
        .innerJoin(cases, eq(cases.caseNo, escalations.caseNo))
        .where(
          and(
            inDay(escalations.openedAt),
            key.role !== 'admin' && key.district ? eq(cases.district, key.district) : undefined,
          ),
        )
        .groupBy(sql`1`, escalations.kind),
      // Slots missed while the person's missed-check escalation was already open: counted in it,
      // recorded as check_missed events (the first of a run opened the escalation, counted above).
      app.db
        .select({ hotelId: cases.hotelId, n: sql<number>`count(*)`.mapWith(Number) })
        .from(caseEvents)
        .innerJoin(cases, eq(cases.caseNo, caseEvents.caseNo))
        .where(and(sql`${caseEvents.kind} = 'check_missed'`, inDay(caseEvents.at), inArray(cases.hotelId, ids)))
        .groupBy(cases.hotelId),
    ]);
    for (const r of roomCounts) byHotel.get(r.hotelId)!.rooms = r.n;
    for (const r of caseCounts) {
      const h = r.hotelId ? byHotel.get(r.hotelId) : undefined;
      if (!h) continue;
      h.arrivals = r.arrivals;
      h.releases = r.releases;
      h.hospitalTransfers = r.hospitalTransfers;
      h.occupiedAtEndOfDay = r.occupied;
    }
    for (const r of sampleCounts) {
      const h = r.hotelId ? byHotel.get(r.hotelId) : undefined;
      if (!h) continue;
      h.pcrTaken = r.taken;
      h.pcrNegative = r.negative;
      h.pcrPositive = r.positive;
    }
    for (const r of escalationCounts) {
      const h = r.hotelId ? byHotel.get(r.hotelId) : undefined;
      if (r.hotelId === null && r.kind === 'no_room' && !hotelId) waitingForRoom += r.n;
      if (!h) {
        if (r.hotelId === null && !hotelId) totalExceptions[r.kind] = (totalExceptions[r.kind] ?? 0) + r.n;
        continue;
      }
      h.exceptions[r.kind] = (h.exceptions[r.kind] ?? 0) + r.n;
      if (r.kind === 'fever') h.fevers += r.n;
      else if (r.kind === 'missed_check') h.missedChecks += r.n;
      else h.otherExceptions += r.n;
    }
    for (const r of foldedMisses) {
      const h = r.hotelId ? byHotel.get(r.hotelId) : undefined;
      if (h) h.missedChecks += r.n;
    }
  }
  const hotelsOut = hotelRows.map((h) => {
    const c = byHotel.get(h.id)!;
    c.vacantAtEndOfDay = Math.max(0, c.rooms - c.occupiedAtEndOfDay);
    return { hotelId: h.id, name: h.name, ...c };
  });
  const total = { ...zero(), exceptions: { ...totalExceptions }, waitingForRoom };
  for (const h of hotelsOut) {
    for (const col of COLUMNS) total[col] += h[col];
    for (const [k, n] of Object.entries(h.exceptions)) total.exceptions[k] = (total.exceptions[k] ?? 0) + n;
  }
  // Exceptions of cases with no hotel yet count in the district's total (no room is one).
  for (const [k, n] of Object.entries(totalExceptions)) {
    if (k === 'fever') total.fevers += n;
    else if (k === 'missed_check') total.missedChecks += n;
    else total.otherExceptions += n;
  }
  return {
    date,
    timeZone: app.config.TIME_ZONE,
    from: from.toISOString(),
    to: to.toISOString(),
    district: key.role === 'admin' ? null : (key.district ?? null),
    hotels: hotelsOut,
    total,
  };
}

type Report = Awaited<ReturnType<typeof buildReport>>;

const csvCell = (v: string | number) => {
  const s = String(v);
  // Quote what needs it, and keep a spreadsheet from reading a cell as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
};

export function reportCsv(r: Report): string {
  const header = ['date', 'hotelId', 'hotel', ...COLUMNS];
  const lines = [header.join(',')];
  for (const h of r.hotels) lines.push([r.date, h.hotelId, h.name, ...COLUMNS.map((c) => h[c])].map(csvCell).join(','));
  lines.push([r.date, 'TOTAL', r.district ?? 'all', ...COLUMNS.map((c) => r.total[c])].map(csvCell).join(','));
  return lines.join('\r\n') + '\r\n';
}

function sendReport(res: Response, r: Report, format: 'json' | 'csv') {
  res.setHeader('Cache-Control', 'no-store');
  if (format === 'csv') {
    res.setHeader('Content-Type', 'text/csv; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="evening-report-${r.date}.csv"`);
    // A byte-order mark so that spreadsheet programs read the Chinese hotel names as UTF-8.
    res.end('\uFEFF' + reportCsv(r));
    return;
  }
  res.json(r);
}

export const reportRoutes: AnyRoute[] = [
  defineRoute({
    method: 'get',
    path: '/api/v1/reports/daily',
    operationId: 'getDailyReport',
    summary: 'The evening report: one day, per hotel and for the district, as JSON or CSV',
    description:
      'Rooms and their use at the end of the day, arrivals, releases, hospital transfers, PCRs taken and resulted ' +
      '(negative, positive), fevers, missed checks and other exceptions (escalations opened that day, by kind). Any ' +
      'past day: it is computed from the read model. The day is the calendar day in TIME_ZONE. `format=csv` (or ' +
      '`Accept: text/csv`) answers a CSV with one row per hotel and a TOTAL row. Hotel keys get their own hotel.',
    tags: ['supervisor'],
    access: { kind: 'key', roles: ['supervisor', 'hotel', 'admin'] },
    query: z.strictObject({
      date: ReportDate.meta({ description: 'YYYY-MM-DD, the local day' }),
      hotelId: z.string().min(1).max(64).optional(),
      format: z.enum(['json', 'csv']).optional(),
    }),
    responses: {
      200: { description: 'The report (JSON; CSV with format=csv)', schema: DailyReport },
      404: { description: 'No such hotel in this jurisdiction', contentType: 'application/problem+json' },
    },
    async handler({ app, key, query, req, res }) {
      const format = query.format ?? (req.accepts(['application/json', 'text/csv']) === 'text/csv' ? 'csv' : 'json');
      let report;
      try {
        report = await buildReport(app, key!, query.date, query.hotelId);
      } catch (err) {
        throw dbProblem(app, err);
      }
      sendReport(res, report, format);
    },
  }),
];

// ---------------------------------------------------------------- the wave

const MAX_WAVE_DAYS = 120;

const WaveDay = z
  .object({
    label: z.string().meta({ description: 'YYYY-MM-DD (calendar days), or "day N" from the range start (drill days)' }),
    start: z.string(),
    end: z.string(),
    arrivals: z.number().int(),
    releases: z.number().int(),
    hospitalTransfers: z.number().int(),
    occupiedAtEnd: z.number().int(),
    pcrTaken: z.number().int(),
    pcrPositive: z.number().int(),
    escalationsOpened: z.number().int(),
    openEscalationsAtEnd: z.number().int(),
  })
  .meta({ id: 'WaveDay' });
const Wave = z
  .object({
    district: z.string().nullable(),
    dayKind: z.enum(['calendar', 'drill']),
    dayLengthS: z.number().meta({ description: "Seconds in one of these days (86400, or the drill policy's)" }),
    timeZone: z.string(),
    capacity: z.number().int().meta({ description: 'Rooms in the jurisdiction now (in service or not)' }),
    days: z.array(WaveDay),
  })
  .meta({ id: 'Wave' });

interface Buckets {
  /** Day index of an instant column, as SQL; null outside the range. */
  index(col: unknown): ReturnType<typeof sql>;
  start: Date;
  end: Date;
  days: { label: string; start: Date; end: Date }[];
}

function calendarBuckets(timeZone: string, from: string, to: string): Buckets {
  const days: Buckets['days'] = [];
  // A counted loop: the range was checked (1 to 120 days) before it gets here.
  const first = Date.parse(`${from}T00:00:00Z`);
  const count = Math.round((Date.parse(`${to}T00:00:00Z`) - first) / 86_400_000) + 1;
  for (let i = 0; i < count; i++) {
    const d = new Date(first + i * 86_400_000).toISOString().slice(0, 10);
    const b = dayBounds(d, timeZone);
    days.push({ label: d, start: b.from, end: b.to });
  }
  const start = days[0]!.start;
  return {
    start,
    end: days[days.length - 1]!.end,
    days,
    index: (col) => sql`((${col} at time zone ${timeZone})::date - ${from}::date)`,
  };
}

function drillBuckets(dayS: number, from: Date, count: number): Buckets {
  const days = Array.from({ length: count }, (_, i) => ({
    label: `day ${i + 1}`,
    start: new Date(from.getTime() + i * dayS * 1000),
    end: new Date(from.getTime() + (i + 1) * dayS * 1000),
  }));
  const fromS = from.getTime() / 1000;
  return {
    start: from,
    end: days[days.length - 1]!.end,
    days,
    index: (col) => sql`floor((extract(epoch from ${col}) - ${fromS}) / ${dayS})::int`,
  };
}

async function buildWave(app: ApiContext, key: ApiKey, b: Buckets, dayKind: 'calendar' | 'drill', dayLengthS: number) {
  const district = key.role !== 'admin' && key.district ? key.district : undefined;
  const ts = (d: Date) => sql`${d.toISOString()}::timestamptz`;
  const [start, end] = [ts(b.start), ts(b.end)];
  const caseScope = district ? sql`and c.district = ${district}` : sql``;
  const hist = async (from: ReturnType<typeof sql>, col: ReturnType<typeof sql>, extra: ReturnType<typeof sql>) =>
    rowsOf<{ i: number; n: number }>(
      await app.db.execute(sql`
        select ${b.index(col)} as i, count(*)::int as n ${from}
        where ${col} >= ${start} and ${col} < ${end} ${extra} ${caseScope}
        group by 1`),
    );
  const casesFrom = sql`from cases c`;
  const samplesFrom = sql`from samples s join cases c on c.case_no = s.case_no`;
  const escFrom = sql`from escalations e join cases c on c.case_no = e.case_no`;
  const [arrivals, releases, hospital, departures, taken, positives, opened, closed, base, capacity] =
    await Promise.all([
      hist(casesFrom, sql`c.arrived_at`, sql``),
      hist(casesFrom, sql`c.ended_at`, sql`and c.phase in ${RELEASED_SQL}`),
      hist(casesFrom, sql`c.ended_at`, sql`and c.phase = 'HOSPITAL_TRANSFER'`),
      hist(casesFrom, sql`c.ended_at`, sql`and c.arrived_at is not null`),
      hist(samplesFrom, sql`s.ordered_at`, sql`and s.type = 'pcr'`),
      hist(samplesFrom, sql`s.result_at`, sql`and s.type = 'pcr' and s.result = 'positive'`),
      hist(escFrom, sql`e.opened_at`, sql``),
      hist(escFrom, sql`e.closed_at`, sql``),
      app.db
        .execute(
          sql`select
          (select count(*)::int from cases c where c.arrived_at < ${start}
             and (c.ended_at is null or c.ended_at >= ${start}) ${caseScope}) as occupied,
          (select count(*)::int from escalations e join cases c on c.case_no = e.case_no where e.opened_at < ${start}
             and (e.closed_at is null or e.closed_at >= ${start}) ${caseScope}) as open`,
        )
        .then((r) => rowsOf<{ occupied: number; open: number }>(r)[0]!),
      app.db
        .execute(
          sql`select count(*)::int as n from rooms r join hotels h on h.id = r.hotel_id
            ${district ? sql`where h.district = ${district}` : sql``}`,
        )
        .then((r) => rowsOf<{ n: number }>(r)[0]!.n),
    ]);
  const series = (rows: { i: number; n: number }[]) => {
    const out = new Array<number>(b.days.length).fill(0);
    for (const r of rows) if (r.i >= 0 && r.i < out.length) out[r.i] = (out[r.i] ?? 0) + Number(r.n);
    return out;
  };
  const [a, rel, hos, dep, tk, pos, op, cl] = [
    arrivals,
    releases,
    hospital,
    departures,
    taken,
    positives,
    opened,
    closed,
  ].map(series) as number[][];
  let occupied = Number(base.occupied);
  let open = Number(base.open);
  const days = b.days.map((d, i) => {
    occupied += a![i]! - dep![i]!;
    open += op![i]! - cl![i]!;
    return {
      label: d.label,
      start: d.start.toISOString(),
      end: d.end.toISOString(),
      arrivals: a![i]!,
      releases: rel![i]!,
      hospitalTransfers: hos![i]!,
      occupiedAtEnd: occupied,
      pcrTaken: tk![i]!,
      pcrPositive: pos![i]!,
      escalationsOpened: op![i]!,
      openEscalationsAtEnd: open,
    };
  });
  return {
    district: district ?? null,
    dayKind,
    dayLengthS,
    timeZone: app.config.TIME_ZONE,
    capacity: Number(capacity),
    days,
  };
}

reportRoutes.push(
  defineRoute({
    method: 'get',
    path: '/api/v1/reports/wave',
    operationId: 'getWave',
    summary:
      'The wave, day by day: arrivals, releases, hospital transfers, occupancy against capacity, PCRs, escalations',
    description:
      'One row per day of the range: calendar days in TIME_ZONE (`from`, `to` as YYYY-MM-DD, at most 120; default ' +
      'the last 14 days), or the drill policy’s own days (`days=drill`: DRILL_DAY_SECONDS long, counted from `since`, ' +
      'default the last 30 drill days). Occupancy and open escalations are at the end of each day. From the read ' +
      'model, in a fixed number of grouped queries whatever the number of cases.',
    tags: ['supervisor'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    query: z.strictObject({
      from: ReportDate.optional().meta({ description: 'Calendar days: the first day' }),
      to: ReportDate.optional().meta({ description: 'Calendar days: the last day (default today)' }),
      days: z.enum(['calendar', 'drill']).default('calendar'),
      since: ReportInstant.optional().meta({ description: 'Drill days: when day 1 starts' }),
    }),
    responses: { 200: { description: 'Day by day, oldest first', schema: Wave } },
    async handler({ app, key, query, res }) {
      const tz = app.config.TIME_ZONE;
      let buckets: Buckets;
      let dayLengthS = 86_400;
      if (query.days === 'drill' && (query.from || query.to)) {
        throw validationProblem([{ in: 'query', path: 'from', message: 'drill days take since, not from/to' }]);
      }
      if (query.days === 'calendar' && query.since) {
        throw validationProblem([{ in: 'query', path: 'since', message: 'calendar days take from/to, not since' }]);
      }
      if (query.days === 'drill') {
        dayLengthS = app.config.DRILL_DAY_SECONDS;
        const now = app.now().getTime();
        const since = query.since ? new Date(query.since) : new Date(now - 30 * dayLengthS * 1000);
        const count = Math.min(MAX_WAVE_DAYS, Math.max(1, Math.ceil((now - since.getTime()) / (dayLengthS * 1000))));
        buckets = drillBuckets(dayLengthS, since, count);
      } else {
        const today = localDate(app.now(), tz);
        const to = query.to ?? today;
        const from = query.from ?? new Date(Date.parse(`${to}T00:00:00Z`) - 13 * 86_400_000).toISOString().slice(0, 10);
        const span = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
        if (span < 1 || span > MAX_WAVE_DAYS) {
          throw validationProblem([
            { in: 'query', path: 'to', message: `from..to must be 1 to ${MAX_WAVE_DAYS} days, from first` },
          ]);
        }
        buckets = calendarBuckets(tz, from, to);
      }
      try {
        res.setHeader('Cache-Control', 'no-store');
        res.json(await buildWave(app, key!, buckets, query.days, dayLengthS));
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
);
