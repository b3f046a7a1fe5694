import { and, asc, eq, lt, ne, sql, type SQL } from 'drizzle-orm';
import type { z } from 'zod';

import type { ApiContext } from '../context';
import type { ApiKey } from '../auth';

import { cases, escalations } from '../../db/schema';
import { ackEscalationUpdate, resolveEscalationUpdate } from '../../workflows/messages';
import { actorOf } from '../auth';
import { HttpProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import {
  AckBody,
  EscalationIdParam,
  EscalationList,
  EscalationQuery,
  EscalationSummary,
  EscalationSummaryQuery,
  IdempotencyHeader,
  ResolveBody,
  UpdateAnswer,
} from '../schemas';
import { commandKey, sendCommand } from '../commands';
import { commandOutcomeResponses } from './case-commands';
import { keyCovers, requireHotelBinding } from '../scope';
import { temporalProblem } from '../temporal-ops';
import { dbProblem, decodeKeysetCursor, encodeKeysetCursor, iso } from './read-helpers';

/** The escalation's case, after checking it exists (404) and lies in the key's jurisdiction (403). */
async function authorizedEscalation(app: ApiContext, key: ApiKey, id: string) {
  let row;
  try {
    [row] = await app.db
      .select({
        caseNo: escalations.caseNo,
        hotelId: escalations.hotelId,
        district: cases.district,
        street: cases.street,
      })
      .from(escalations)
      .leftJoin(cases, eq(cases.caseNo, escalations.caseNo))
      .where(eq(escalations.id, id))
      .limit(1);
  } catch (err) {
    throw dbProblem(app, err);
  }
  if (!row) throw new HttpProblem(404, `No escalation ${id}`);
  const scope = { district: row.district ?? '', street: row.street ?? '', hotelId: row.hotelId ?? undefined };
  if (!keyCovers(key, scope)) {
    throw new HttpProblem(403, `Escalation ${id} is outside this key's jurisdiction`, { slug: 'jurisdiction' });
  }
  return row;
}

export const escalationRoutes: AnyRoute[] = [
  defineRoute({
    method: 'post',
    path: '/api/v1/escalations/:id/resolve',
    operationId: 'resolveEscalation',
    summary: 'Resolve (close) an escalation, saying how: the only way a person closes one',
    description:
      'Closes the escalation with reason `resolved`, your key as the actor and your note. Resolving the ' +
      'escalation of a failed step (integration_failure) waives that step: the case no longer waits for it. ' +
      'A failed room reservation cannot be waived (409). On a case that has closed, the record is closed directly.',
    tags: ['escalations'],
    access: { kind: 'key', roles: ['medical', 'supervisor', 'admin'] },
    params: EscalationIdParam,
    body: ResolveBody,
    requestHeaders: IdempotencyHeader,
    responses: {
      200: { description: 'Resolved; the escalation as now held', schema: UpdateAnswer },
      404: { description: 'No such escalation', contentType: 'application/problem+json' },
      409: { description: 'Already closed, or a step that cannot be waived', contentType: 'application/problem+json' },
      ...commandOutcomeResponses,
    },
    async handler({ app, key, params, body, req, res }) {
      const { key: idem } = commandKey(req);
      res.setHeader('Idempotency-Key', idem);
      const row = await authorizedEscalation(app, key!, params.id);
      try {
        const result = await sendCommand(
          app,
          row.caseNo,
          resolveEscalationUpdate,
          { escalationId: params.id, note: body.note, by: actorOf(key!), key: idem },
          idem,
        );
        res.status(200).json({ caseNo: row.caseNo, status: 'applied', result, idempotencyKey: idem });
        return;
      } catch (err) {
        const problem = temporalProblem(err, row.caseNo, 'write');
        if (!problem?.problem.type.endsWith('/case-closed')) throw problem ?? err;
      }
      // The case's workflow has closed (e.g. a result that came after it): the record is all there is.
      let closed;
      try {
        closed = await app.db
          .update(escalations)
          .set({ status: 'closed', closedAt: app.now(), closedReason: 'resolved', closedBy: key!.id, note: body.note })
          .where(and(eq(escalations.id, params.id), ne(escalations.status, 'closed')))
          .returning({ id: escalations.id, status: escalations.status, closedReason: escalations.closedReason });
      } catch (err) {
        throw dbProblem(app, err);
      }
      if (!closed.length) throw new HttpProblem(409, 'escalation is already closed', { slug: 'update-rejected' });
      res.status(200).json({ caseNo: row.caseNo, result: { escalation: closed[0] } });
    },
  }),
  defineRoute({
    method: 'post',
    path: '/api/v1/escalations/:id/ack',
    operationId: 'ackEscalation',
    summary: 'Acknowledge an escalation (medical staff at its hotel, supervisors in its district)',
    tags: ['escalations'],
    access: { kind: 'key', roles: ['medical', 'supervisor', 'admin'] },
    params: EscalationIdParam,
    body: AckBody,
    requestHeaders: IdempotencyHeader,
    responses: {
      200: { description: 'Acknowledged; the escalation as the workflow now holds it', schema: UpdateAnswer },
      404: { description: 'No such escalation', contentType: 'application/problem+json' },
      409: { description: 'Already acknowledged or closed', contentType: 'application/problem+json' },
      ...commandOutcomeResponses,
    },
    async handler({ app, key, params, body, req, res }) {
      const { key: idem } = commandKey(req);
      res.setHeader('Idempotency-Key', idem);
      const row = await authorizedEscalation(app, key!, params.id);
      const result = await sendCommand(
        app,
        row.caseNo,
        ackEscalationUpdate,
        { escalationId: params.id, ...(body.note ? { note: body.note } : {}), by: actorOf(key!), key: idem },
        idem,
      );
      res.setHeader('Idempotency-Key', idem);
      res.status(200).json({ caseNo: row.caseNo, status: 'applied', result, idempotencyKey: idem });
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/escalations/summary',
    operationId: 'summarizeEscalations',
    summary: 'Escalations grouped by kind, level and severity: how many, the oldest, how many hotels',
    description:
      'What a command centre reads in a wave instead of 800 rows ("800 waiting for a room, oldest 3 h"). ' +
      'The same filters and jurisdiction as GET /api/v1/escalations.',
    tags: ['escalations'],
    access: { kind: 'key', roles: ['supervisor', 'medical', 'hotel', 'admin'] },
    query: EscalationSummaryQuery,
    responses: { 200: { description: 'Groups, red first, then the largest', schema: EscalationSummary } },
    async handler({ app, key, query, res }) {
      const where = escalationWhere(key!, query);
      const count = sql<number>`count(*)`.mapWith(Number);
      try {
        const rows = await app.db
          .select({
            kind: escalations.kind,
            level: escalations.level,
            severity: escalations.severity,
            count,
            oldest: sql<Date>`min(${escalations.openedAt})`.mapWith(escalations.openedAt),
            hotels: sql<number>`count(distinct coalesce(${escalations.hotelId}, ''))`.mapWith(Number),
          })
          .from(escalations)
          .leftJoin(cases, eq(cases.caseNo, escalations.caseNo))
          .where(and(...where))
          .groupBy(escalations.kind, escalations.level, escalations.severity);
        const sev = { red: 0, amber: 1, info: 2 } as Record<string, number>;
        rows.sort(
          (a, b) =>
            (sev[a.severity] ?? 3) - (sev[b.severity] ?? 3) ||
            b.count - a.count ||
            a.oldest.getTime() - b.oldest.getTime(),
        );
        const oldest = rows.reduce<Date | null>((m, r) => (m && m <= r.oldest ? m : r.oldest), null);
        res.json({
          total: rows.reduce((n, r) => n + r.count, 0),
          oldestOpenedAt: iso(oldest),
          groups: rows.map((r) => ({
            kind: r.kind,
            level: r.level,
            severity: r.severity,
            count: r.count,
            oldestOpenedAt: iso(r.oldest)!,
            hotels: r.hotels,
          })),
        });
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/escalations',
    operationId: 'listEscalations',
    summary: 'Escalations, oldest first (open by default), within the key’s jurisdiction, a page at a time',
    description:
      'Filtered by kind, level, severity, hotel and age (openedBefore); pages of up to 500 with `nextCursor`. ' +
      'A cursor stays valid while escalations open and close: the next page starts after the last row seen.',
    tags: ['escalations'],
    access: { kind: 'key', roles: ['supervisor', 'medical', 'hotel', 'admin'] },
    query: EscalationQuery,
    responses: { 200: { description: 'Oldest first', schema: EscalationList } },
    async handler({ app, key, query, res }) {
      const where = escalationWhere(key!, query);
      if (query.cursor) {
        const c = decodeKeysetCursor(query.cursor, 'string');
        // (opened_at, id) after the last row of the previous page, at the database's own precision.
        where.push(sql`(${escalations.openedAt}, ${escalations.id}) > (${c.at}::timestamptz, ${c.id})`);
      }
      try {
        const rows = await app.db
          .select({
            id: escalations.id,
            caseNo: escalations.caseNo,
            hotelId: escalations.hotelId,
            district: cases.district,
            street: cases.street,
            displayName: cases.displayName,
            kind: escalations.kind,
            level: escalations.level,
            severity: escalations.severity,
            reason: escalations.reason,
            status: escalations.status,
            openedAt: escalations.openedAt,
            openedAtExact: sql<string>`${escalations.openedAt}::text`,
            ackedAt: escalations.ackedAt,
            ackedBy: escalations.ackedBy,
          })
          .from(escalations)
          .leftJoin(cases, eq(cases.caseNo, escalations.caseNo))
          .where(and(...where))
          .orderBy(asc(escalations.openedAt), asc(escalations.id))
          .limit(query.limit + 1);
        const more = rows.length > query.limit;
        const page = more ? rows.slice(0, query.limit) : rows;
        const lastRow = page[page.length - 1];
        res.json({
          items: page.map(({ openedAtExact: _exact, ...r }) => ({
            ...r,
            openedAt: iso(r.openedAt)!,
            ackedAt: iso(r.ackedAt),
          })),
          nextCursor: more && lastRow ? encodeKeysetCursor(lastRow.openedAtExact, lastRow.id) : null,
        });
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
];

type EscalationFilters = z.infer<typeof EscalationSummaryQuery>;

/** The key's jurisdiction and the caller's filters, shared by the list and its summary. */
function escalationWhere(key: ApiKey, query: EscalationFilters): SQL[] {
  const where: SQL[] = [eq(escalations.status, query.status)];
  if (key.role !== 'admin') {
    // Hotel staff see their own hotel's escalations: a key bound to no hotel sees none.
    requireHotelBinding(key);
    if ((key.role === 'medical' || key.role === 'hotel') && key.orgId) where.push(eq(escalations.hotelId, key.orgId));
    if (key.district) where.push(eq(cases.district, key.district));
    if (key.street) where.push(eq(cases.street, key.street));
  }
  if (query.kind) where.push(eq(escalations.kind, query.kind));
  if (query.level) where.push(eq(escalations.level, query.level));
  if (query.severity) where.push(eq(escalations.severity, query.severity));
  if (query.hotelId) where.push(eq(escalations.hotelId, query.hotelId));
  if (query.openedBefore) where.push(lt(escalations.openedAt, new Date(query.openedBefore)));
  return where;
}
