import { and, asc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';

import { addressInspections, caseEvents } from '../../db/schema';
import { defineRoute, type AnyRoute } from '../router';
import { CaseNoParam } from '../schemas';
import { authorizeCase, requireStreetForCommunity } from '../scope';
import { dbProblem, decodeKeysetCursor, encodeKeysetCursor, iso } from './read-helpers';

/**
 * A case's whole story from its event log: who did what, when, and why, oldest first. Workflow
 * events carry the workflow's sequence (positive); events the API records itself (certificate
 * downloads) carry negative sequences. Paged by (time, id) like the escalation list.
 */
const CaseEvent = z
  .object({
    seq: z.number().int(),
    at: z.string(),
    kind: z
      .string()
      .meta({ description: 'e.g. intake, room_assigned, arrived, health_check, lab_result, handed_over' }),
    source: z.enum(['workflow', 'api']),
    actor: z.object({ id: z.string(), role: z.string().nullable(), name: z.string().nullable() }),
    payload: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'CaseEvent' });

export const caseEventRoutes: AnyRoute[] = [
  defineRoute({
    method: 'get',
    path: '/api/v1/cases/:caseNo/events',
    operationId: 'listCaseEvents',
    summary: "A case's event log, oldest first: who did what, when and why",
    description:
      'Every change the case made and every command it took, with the key (id, role, name) that sent it, and the ' +
      'events the API recorded about the case (certificate downloads, `source: "api"`). The log is written by the ' +
      'worker after the change: a change of the last seconds may not be here yet. Pages of up to 500 with `nextCursor`.',
    tags: ['supervisor', 'community'],
    access: { kind: 'key', roles: ['supervisor', 'community', 'admin'] },
    params: CaseNoParam,
    query: z.strictObject({
      limit: z.coerce.number().int().min(1).max(500).default(200),
      cursor: z.string().max(200).optional().meta({ description: 'nextCursor of the previous page' }),
    }),
    responses: {
      200: {
        description: 'Oldest first',
        schema: z
          .object({ caseNo: z.string(), items: z.array(CaseEvent), nextCursor: z.string().nullable() })
          .meta({ id: 'CaseEventList' }),
      },
      404: { description: 'No such case', contentType: 'application/problem+json' },
    },
    async handler({ app, key, params, query, res }) {
      const { caseNo } = params;
      requireStreetForCommunity(key!);
      await authorizeCase(app, key!, caseNo);
      const where = [eq(caseEvents.caseNo, caseNo)];
      if (query.cursor) {
        const c = decodeKeysetCursor(query.cursor, 'number');
        where.push(sql`(${caseEvents.at}, ${caseEvents.id}) > (${c.at}::timestamptz, ${c.id})`);
      }
      let rows;
      try {
        rows = await app.db
          .select({
            id: caseEvents.id,
            seq: caseEvents.seq,
            at: caseEvents.at,
            atExact: sql<string>`${caseEvents.at}::text`,
            kind: caseEvents.kind,
            actor: caseEvents.actor,
            actorRole: caseEvents.actorRole,
            actorName: caseEvents.actorName,
            payload: caseEvents.payload,
          })
          .from(caseEvents)
          .where(and(...where))
          .orderBy(asc(caseEvents.at), asc(caseEvents.id))
          .limit(query.limit + 1);
      } catch (err) {
        throw dbProblem(app, err);
      }
      const more = rows.length > query.limit;
      const page = more ? rows.slice(0, query.limit) : rows;
      const last = page[page.length - 1];
      res.json({
        caseNo,
        items: page.map((r) => ({
          seq: r.seq,
          at: iso(r.at)!,
          kind: r.kind,
          source: r.seq < 0 ? 'api' : 'workflow',
          actor: { id: r.actor, role: r.actorRole, name: r.actorName },
          payload: (r.payload ?? {}) as Record<string, unknown>,
        })),
        nextCursor: more && last ? encodeKeysetCursor(last.atExact, last.id) : null,
      });
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/cases/:caseNo/address-inspections',
    operationId: 'listAddressInspections',
    summary: "The case's home addresses and their single-occupancy inspections, oldest first",
    description:
      'Each address the case has had for release home, with its inspection: requested, passed or failed, when, by ' +
      'whom, and the note. The address is what the street office must visit: it is shown to the district’s supervisor ' +
      'and the street’s community worker only, never logged.',
    tags: ['supervisor', 'community'],
    access: { kind: 'key', roles: ['supervisor', 'community', 'admin'] },
    params: CaseNoParam,
    responses: {
      200: {
        description: 'Oldest first',
        schema: z
          .object({
            caseNo: z.string(),
            items: z.array(
              z.object({
                inspectionId: z.string(),
                address: z.string(),
                status: z.string(),
                requestedAt: z.string(),
                resultAt: z.string().nullable(),
                inspector: z.string().nullable(),
                note: z.string().nullable(),
              }),
            ),
          })
          .meta({ id: 'AddressHistory' }),
      },
      404: { description: 'No such case', contentType: 'application/problem+json' },
    },
    async handler({ app, key, params, res }) {
      const { caseNo } = params;
      requireStreetForCommunity(key!);
      await authorizeCase(app, key!, caseNo);
      let rows;
      try {
        rows = await app.db
          .select()
          .from(addressInspections)
          .where(eq(addressInspections.caseNo, caseNo))
          .orderBy(asc(addressInspections.requestedAt), asc(addressInspections.id));
      } catch (err) {
        throw dbProblem(app, err);
      }
      res.setHeader('Cache-Control', 'no-store');
      res.json({
        caseNo,
        items: rows.map((r) => ({
          inspectionId: r.id,
          address: r.address,
          status: r.status,
          requestedAt: iso(r.requestedAt)!,
          resultAt: iso(r.resultAt),
          inspector: r.inspector,
          note: r.note,
        })),
      });
    },
  }),
];
