import { WorkflowNotFoundError } from '@temporalio/client';
import { and, asc, eq, gt, gte, lt, min, notInArray, sql, type SQL } from 'drizzle-orm';
import type { z } from 'zod';

import { cases, escalations, hotels, rooms } from '../../db/schema';
import type { ApiKey } from '../auth';
import type { ApiContext } from '../context';
import { within } from '../dependencies';
import { HttpProblem, validationProblem } from '../problem';

/** The read model's row for one case: a database that hangs must not hold the answer the workflow already gave. */
const READ_DB_TIMEOUT_MS = 1500;
import { defineRoute, type AnyRoute } from '../router';
import {
  CaseDetail,
  CaseListQuery,
  CaseNoParam,
  CasePage,
  HotelList,
  RoomQueueQuery,
  RoomQueue as RoomQueueSchema,
  Summary,
} from '../schemas';
import { authorizeCase } from '../scope';
import { temporalProblem } from '../temporal-ops';
import { dbProblem, iso, localDays, terminalPhases, toSummary } from './read-helpers';

const readers = ['supervisor', 'community', 'admin'] as const;

/** The key's jurisdiction as SQL over cases. */
function caseJurisdiction(key: ApiKey): SQL[] {
  if (key.role === 'admin') return [];
  const w: SQL[] = [];
  if (key.district) w.push(eq(cases.district, key.district));
  if (key.street) w.push(eq(cases.street, key.street));
  return w;
}

const encodeCursor = (caseNo: string) => Buffer.from(caseNo, 'utf8').toString('base64url');
const decodeCursor = (c: string) => Buffer.from(c, 'base64url').toString('utf8');

async function selectCases(app: ApiContext, where: SQL[], limit: number, order: 'caseNo' | 'releaseDue' = 'caseNo') {
  const rows = await app.db
    .select({ c: cases, roomNo: rooms.roomNo })
    .from(cases)
    .leftJoin(rooms, eq(rooms.id, cases.roomId))
    .where(where.length ? and(...where) : undefined)
    .orderBy(...(order === 'caseNo' ? [asc(cases.caseNo)] : [asc(cases.releaseDue), asc(cases.caseNo)]))
    .limit(limit);
  return rows.map((r) => toSummary({ ...r.c, roomNo: r.roomNo }));
}

/**
 * One case summary (schemas CaseSummary, read-helpers toSummary) as JSON text: the row's own copy,
 * kept by a trigger on every write (drizzle/0012, `shaodian_case_summary_json`), with the room's
 * number (chr(1) in the copy) joined in, so a page formats nothing. Same fields, same order, same
 * bytes as JSON.stringify(toSummary(row)) (test/api/reads.test.ts compares them). A row without its
 * copy (written before the migration, until the fill reaches it) is built on the spot by the same
 * function.
 */
const SUMMARY_JSON = sql<string>`replace(coalesce(${cases.summaryJson}, shaodian_case_summary_json(${cases})),
  chr(1), coalesce(to_json(${rooms.roomNo})::text, 'null'))`;

/**
 * The supervisor list as prepared statements, one per combination of filters (a handful in
 * practice; values are placeholders, so each is planned once), each row already JSON.
 * Profiled (docs/PERFORMANCE.md), a page's time went to planning the query on every call,
 * drizzle's row mapping, date parsing, toSummary and JSON.stringify, then to Postgres building
 * each row's JSON; none of them happen here.
 */
function buildListStatement(db: ApiContext['db'], shape: string[], name: string) {
  const p = (n: string) => sql.placeholder(n);
  const where: SQL[] = [];
  for (const f of shape) {
    if (f === 'keyDistrict') where.push(eq(cases.district, p('keyDistrict')));
    else if (f === 'keyStreet') where.push(eq(cases.street, p('keyStreet')));
    else if (f === 'phase') where.push(eq(cases.phase, p('phase')));
    else if (f === 'colour') where.push(eq(cases.colour, p('colour')));
    else if (f === 'hotelId') where.push(eq(cases.hotelId, p('hotelId')));
    else if (f === 'street') where.push(eq(cases.street, p('street')));
    else if (f === 'releaseDueBefore') where.push(lt(cases.releaseDue, p('releaseDueBefore')));
    else if (f === 'open:true') where.push(gt(cases.openEscalations, 0));
    else if (f === 'open:false') where.push(eq(cases.openEscalations, 0));
    else if (f === 'cursor') where.push(gt(cases.caseNo, p('cursor')));
  }
  return db
    .select({ caseNo: cases.caseNo, json: SUMMARY_JSON })
    .from(cases)
    .leftJoin(rooms, eq(rooms.id, cases.roomId))
    .where(where.length ? and(...where) : undefined)
    .orderBy(asc(cases.caseNo))
    .limit(p('limit'))
    .prepare(name);
}

const listStatements = new WeakMap<ApiContext['db'], Map<string, ReturnType<typeof buildListStatement>>>();
function listStatement(app: ApiContext, shape: string[]) {
  let byShape = listStatements.get(app.db);
  if (!byShape) listStatements.set(app.db, (byShape = new Map()));
  const key = shape.join(',');
  let stmt = byShape.get(key);
  if (!stmt) {
    stmt = buildListStatement(app.db, shape, `list_cases_json_${byShape.size}`);
    byShape.set(key, stmt);
  }
  return stmt;
}

async function hotelVacancy(app: ApiContext, key: ApiKey) {
  const count = (state: string) =>
    sql<number>`count(${rooms.id}) filter (where ${rooms.state} = ${state})`.mapWith(Number);
  const where: SQL[] = [];
  if (key.role !== 'admin' && key.district) where.push(eq(hotels.district, key.district));
  return app.db
    .select({
      id: hotels.id,
      name: hotels.name,
      district: hotels.district,
      street: hotels.street,
      active: hotels.active,
      total: sql<number>`count(${rooms.id})`.mapWith(Number),
      free: count('free'),
      reserved: count('reserved'),
      occupied: count('occupied'),
      awaitingDisinfection: count('awaiting_disinfection'),
      outOfService: count('out_of_service'),
    })
    .from(hotels)
    .leftJoin(rooms, eq(rooms.hotelId, hotels.id))
    .where(where.length ? and(...where) : undefined)
    .groupBy(hotels.id)
    .orderBy(asc(hotels.name), asc(hotels.id));
}

export const readRoutes: AnyRoute[] = [
  defineRoute({
    method: 'get',
    path: '/api/v1/cases',
    operationId: 'listCases',
    summary: 'Cases from the read model, filtered, by case number with a cursor',
    description: 'Served from the read model (not by querying workflows). Community keys see only their street.',
    tags: ['supervisor'],
    access: { kind: 'key', roles: readers },
    query: CaseListQuery,
    responses: { 200: { description: 'A page of cases', schema: CasePage } },
    async handler({ app, key, query, res }) {
      // The filters present pick a prepared statement; their values are its parameters.
      const params: Record<string, unknown> = { limit: query.limit + 1 };
      const shape: string[] = [];
      const use = (name: string, value: unknown) => {
        shape.push(name);
        params[name] = value;
      };
      if (key!.role !== 'admin') {
        if (key!.district) use('keyDistrict', key!.district);
        if (key!.street) use('keyStreet', key!.street);
      }
      if (query.phase) use('phase', query.phase);
      if (query.colour) use('colour', query.colour);
      if (query.hotelId) use('hotelId', query.hotelId);
      if (query.street) use('street', query.street);
      if (query.releaseDueBefore) use('releaseDueBefore', new Date(query.releaseDueBefore).toISOString());
      if (query.hasOpenEscalations) shape.push(`open:${query.hasOpenEscalations}`);
      if (query.cursor) {
        const after = decodeCursor(query.cursor);
        // A case number: printable, as the API gives it; anything else is a forged cursor.
        if (!/^[\x21-\x7e]{1,64}$/.test(after))
          throw validationProblem([{ in: 'query', path: 'cursor', message: 'not a cursor' }]);
        use('cursor', after);
      }
      let rows;
      try {
        rows = await listStatement(app, shape).execute(params);
      } catch (err) {
        throw dbProblem(app, err);
      }
      const more = rows.length > query.limit;
      if (more) rows = rows.slice(0, query.limit);
      const nextCursor = more ? JSON.stringify(encodeCursor(rows[rows.length - 1]!.caseNo)) : 'null';
      // Written as is: no ETag (a page is read once, never revalidated), so no hash of the page's text.
      const body = `{"items":[${rows.map((r) => r.json).join(',')}],"nextCursor":${nextCursor}}`;
      res.status(200).setHeader('Content-Type', 'application/json; charset=utf-8');
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.end(body);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/cases/:caseNo',
    operationId: 'getCase',
    summary: 'One case: live state from its workflow, or the read model when no worker answers',
    description:
      '`source: "workflow"` carries the live state; when no worker answers within the query timeout ' +
      '(API_QUERY_TIMEOUT_MS, 2 s) the answer is the read model with `source: "read-model"` and a `warning`.',
    tags: ['supervisor'],
    access: { kind: 'key', roles: readers },
    params: CaseNoParam,
    responses: {
      200: { description: 'The case', schema: CaseDetail },
      404: { description: 'No such case', contentType: 'application/problem+json' },
    },
    async handler({ app, key, params, res }) {
      const { caseNo } = params;
      await authorizeCase(app, key!, caseNo);
      let state;
      let gone = false;
      // A worker known to be down cannot answer a query: the read model answers at once instead.
      const workerDown = app.deps.isDown('worker') || app.deps.isDown('temporal');
      if (!workerDown) {
        try {
          state = await app.ops.query(caseNo, app.config.API_QUERY_TIMEOUT_MS);
        } catch (err) {
          // Past its retention a closed case is gone from Temporal; the read model still has it.
          if (!(err instanceof WorkflowNotFoundError)) throw temporalProblem(err, caseNo) ?? err;
          gone = true;
        }
      }
      let summary = null;
      try {
        summary =
          (await within(READ_DB_TIMEOUT_MS, 'read model', () => selectCases(app, [eq(cases.caseNo, caseNo)], 1)))[0] ??
          null;
      } catch (err) {
        if (!state) throw dbProblem(app, err);
        app.deps.suspect('database', err instanceof Error ? err.message : String(err));
      }
      // Waiting for a room: its place on the district's list (one indexed lookup, only then).
      let roomWait = null;
      if ((state?.phase ?? summary?.phase) === 'REQUESTED') {
        try {
          roomWait = await within(READ_DB_TIMEOUT_MS, 'waiting list', () => app.hotels.queuePlace(caseNo));
        } catch {
          // the case is still worth showing
        }
      }
      if (state) {
        res.json({ caseNo, source: 'workflow', summary, state, roomWait });
        return;
      }
      if (!summary && gone) throw new HttpProblem(404, `No case ${caseNo}`);
      if (!summary) {
        throw new HttpProblem(
          503,
          'No worker answered and the read model has no row for this case yet',
          {},
          { 'Retry-After': '5' },
        );
      }
      let escs: Record<string, unknown>[] = [];
      try {
        const rows = await app.db
          .select()
          .from(escalations)
          .where(eq(escalations.caseNo, caseNo))
          .orderBy(asc(escalations.openedAt));
        escs = rows.map((e) => ({
          ...e,
          openedAt: iso(e.openedAt),
          ackedAt: iso(e.ackedAt),
          closedAt: iso(e.closedAt),
          notifiedAt: iso(e.notifiedAt),
        }));
      } catch {
        // the summary is still worth showing
      }
      res.json({
        caseNo,
        source: 'read-model',
        warning: gone
          ? `The workflow is no longer in Temporal (closed past retention); this is the read model as of ${summary.updatedAt}`
          : workerDown
            ? `No worker is running the cases (${app.deps.worker.state().reason ?? 'Temporal unreachable'}); this is the read model as of ${summary.updatedAt} and may lag the case`
            : `No worker answered within ${app.config.API_QUERY_TIMEOUT_MS} ms; this is the read model as of ${summary.updatedAt} and may lag the case`,
        summary,
        state: null,
        roomWait,
        escalations: escs,
      });
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/room-queue',
    operationId: 'getRoomQueue',
    summary: "The district's waiting list for rooms: its length, the oldest wait, each case's place",
    description:
      'Cases that asked for a room when none was free, in the order rooms go to them: red and yellow ' +
      'cases first when the policy says so (`roomQueue.colourFirst`), then by the time the transfer was ' +
      'requested. A freed room (released, disinfected, back in service, or a new hotel) is handed to the ' +
      'first case it suits and that case alone is woken. Supervisors see their own district (the ' +
      '`district` parameter may be left out); an admin names the district.',
    tags: ['supervisor'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    query: RoomQueueQuery,
    responses: {
      200: { description: 'The waiting list', schema: RoomQueueSchema },
      400: { description: 'No district named (admin keys)', contentType: 'application/problem+json' },
    },
    async handler({ app, key, query, res }) {
      const q = query as z.output<typeof RoomQueueQuery>;
      const district = q.district ?? key!.district ?? undefined;
      if (!district)
        throw new HttpProblem(400, 'Name the district', {
          errors: [{ in: 'query', path: 'district', message: 'required for a key without a district' }],
        });
      if (key!.role !== 'admin' && key!.district && key!.district !== district)
        throw new HttpProblem(403, `District ${district} is outside this key's jurisdiction`, { slug: 'jurisdiction' });
      try {
        res.json(await app.hotels.queue(district, q.limit));
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/hotels',
    operationId: 'listHotels',
    summary: 'Vacancy per hotel: rooms free, reserved, occupied, awaiting disinfection, out of service',
    tags: ['supervisor'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    responses: { 200: { description: 'Hotels in the key’s district', schema: HotelList } },
    async handler({ app, key, res }) {
      try {
        res.json({ items: await hotelVacancy(app, key!) });
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/summary',
    operationId: 'getSummary',
    summary: "The command centre's overview: vacancy, cases by phase and colour, escalations, releases due",
    description: 'What the dashboard shows. "Today" and "tomorrow" are local days in TIME_ZONE.',
    tags: ['supervisor'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    responses: { 200: { description: 'Summary', schema: Summary } },
    async handler({ app, key, res }) {
      try {
        res.json(await buildSummary(app, key!));
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
];

async function buildSummary(app: ApiContext, key: ApiKey) {
  const now = app.now();
  const juris = caseJurisdiction(key);
  const [hotelRows, phaseRows, escRows] = await Promise.all([
    hotelVacancy(app, key),
    app.db
      .select({ phase: cases.phase, colour: cases.colour, n: sql<number>`count(*)`.mapWith(Number) })
      .from(cases)
      .where(juris.length ? and(...juris) : undefined)
      .groupBy(cases.phase, cases.colour),
    app.db
      .select({
        total: sql<number>`count(*)`.mapWith(Number),
        red: sql<number>`count(*) filter (where ${escalations.severity} = 'red')`.mapWith(Number),
        oldest: min(escalations.openedAt),
      })
      .from(escalations)
      .leftJoin(cases, eq(cases.caseNo, escalations.caseNo))
      .where(and(eq(escalations.status, 'open'), ...juris)),
  ]);
  const days = localDays(app.config.TIME_ZONE, now.getTime());
  const due = async (from: number, to: number) =>
    (
      await selectCases(
        app,
        [
          ...juris,
          gte(cases.releaseDue, new Date(from)),
          lt(cases.releaseDue, new Date(to)),
          notInArray(cases.phase, terminalPhases),
        ],
        500,
        'releaseDue',
      )
    ).map((c) => ({
      caseNo: c.caseNo,
      displayName: c.displayName,
      hotelId: c.hotelId,
      roomNo: c.roomNo,
      phase: c.phase,
      colour: c.colour,
      releaseDue: c.releaseDue!,
      inspectionStatus: c.inspectionStatus,
      pendingResults: c.pendingResults,
      openRedEscalations: c.openRedEscalations,
    }));
  const [today, tomorrow] = await Promise.all([due(days.today, days.tomorrow), due(days.tomorrow, days.dayAfter)]);

  const hotelsTotal = { total: 0, free: 0, reserved: 0, occupied: 0, awaitingDisinfection: 0, outOfService: 0 };
  for (const h of hotelRows) {
    for (const k of Object.keys(hotelsTotal) as (keyof typeof hotelsTotal)[]) hotelsTotal[k] += h[k];
  }
  const phases: Record<string, number> = {};
  const colours: Record<string, number> = {};
  const byPhaseColour: Record<string, Record<string, number>> = {};
  let activeCases = 0;
  for (const r of phaseRows) {
    phases[r.phase] = (phases[r.phase] ?? 0) + r.n;
    const colour = r.colour ?? 'none';
    (byPhaseColour[r.phase] ??= {})[colour] = (byPhaseColour[r.phase]![colour] ?? 0) + r.n;
    if (!terminalPhases.includes(r.phase)) {
      activeCases += r.n;
      colours[colour] = (colours[colour] ?? 0) + r.n;
    }
  }
  const esc = escRows[0];
  return {
    generatedAt: now.toISOString(),
    timeZone: app.config.TIME_ZONE,
    district: key.role === 'admin' ? null : (key.district ?? null),
    hotels: hotelsTotal,
    phases,
    colours,
    byPhaseColour,
    activeCases,
    openEscalations: { total: esc?.total ?? 0, red: esc?.red ?? 0, oldestOpenedAt: iso(esc?.oldest) },
    releasesDue: { today, tomorrow },
  };
}
