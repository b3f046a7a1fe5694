import { and, asc, eq, ne, type SQL } from 'drizzle-orm';

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
  IdempotencyHeader,
  ResolveBody,
  UpdateAnswer,
} from '../schemas';
import { commandKey, sendCommand } from '../commands';
import { commandOutcomeResponses } from './case-commands';
import { keyCovers } from '../scope';
import { temporalProblem } from '../temporal-ops';
import { dbProblem, iso } from './read-helpers';

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
    path: '/api/v1/escalations',
    operationId: 'listEscalations',
    summary: 'Escalations, oldest first (open by default), within the key’s jurisdiction',
    tags: ['escalations'],
    access: { kind: 'key', roles: ['supervisor', 'medical', 'hotel', 'admin'] },
    query: EscalationQuery,
    responses: { 200: { description: 'Oldest first', schema: EscalationList } },
    async handler({ app, key, query, res }) {
      const where: SQL[] = [eq(escalations.status, query.status)];
      if (key!.role !== 'admin') {
        if (key!.district) where.push(eq(cases.district, key!.district));
        if (key!.street) where.push(eq(cases.street, key!.street));
        if ((key!.role === 'medical' || key!.role === 'hotel') && key!.orgId)
          where.push(eq(escalations.hotelId, key!.orgId));
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
            ackedAt: escalations.ackedAt,
            ackedBy: escalations.ackedBy,
          })
          .from(escalations)
          .leftJoin(cases, eq(cases.caseNo, escalations.caseNo))
          .where(and(...where))
          .orderBy(asc(escalations.openedAt), asc(escalations.id))
          .limit(query.limit);
        res.json({
          items: rows.map((r) => ({ ...r, openedAt: iso(r.openedAt)!, ackedAt: iso(r.ackedAt) })),
        });
      } catch (err) {
        throw dbProblem(app, err);
      }
    },
  }),
];
