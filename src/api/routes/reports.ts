import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { Response } from 'express';
import { z } from 'zod';

import { zoneOffsetMs } from '../../domain/schedule';
import { cases, escalations, hotels, rooms, samples } from '../../db/schema';
import type { ApiKey } from '../auth';
import type { ApiContext } from '../context';
import { HttpProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import { dbProblem, localDays } from './read-helpers';

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
  if (key.role === 'hotel') {
    if (!key.orgId) throw new HttpProblem(403, 'This key is bound to no hotel', { slug: 'jurisdiction' });
    if (hotelId && hotelId !== key.orgId) {
      throw new HttpProblem(403, `Hotel ${hotelId} is not this key's hotel`, { slug: 'jurisdiction' });
    }
    hotelId = key.orgId;
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
    const [roomCounts, caseCounts, sampleCounts, escalationCounts] = await Promise.all([
      app.db
        .select({ hotelId: rooms.hotelId, n: sql<number>`count(*)`.mapWith(Number) })
        .from(rooms)
        .where(inArray(rooms.hotelId, ids))
        .groupBy(rooms.hotelId),
      app.db
        .select({
          hotelId: cases.hotelId,
          arrivals: count(inDay(cases.arrivedAt)),
          releases: count(sql`${cases.phase} = 'RELEASED' and ${inDay(cases.endedAt)}`),
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
          hotelId: sql<string | null>`coalesce(${escalations.hotelId}, ${cases.hotelId})`,
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
      date: z.iso.date().meta({ description: 'YYYY-MM-DD, the local day' }),
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
