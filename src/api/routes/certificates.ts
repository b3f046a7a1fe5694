import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { and, asc, eq, isNotNull, lt, min, notInArray, or, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';

import { caseEvents, cases, certificates, hotels, samples } from '../../db/schema';
import type { TransferRequest } from '../../domain/types';
import { actorOf } from '../auth';
import { codesEqual, DEFAULT_CERTIFICATE_FONT, renderCertificate, verificationCode } from '../certificate';
import type { ApiContext } from '../context';
import { within } from '../dependencies';
import { HttpProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import { CaseNoParam } from '../schemas';
import { authorizeCase } from '../scope';
import { temporalProblem } from '../temporal-ops';
import { dbProblem } from './read-helpers';

/**
 * The release certificate: a PDF for the supervisor and the community worker of the person's
 * street, each download written to the case's event log; and a public check of its
 * verification code that shows no PII.
 */
const CERT_ROLES = ['supervisor', 'community', 'admin'] as const;
const CertificateNoParam = z.object({
  certificateNo: z
    .string()
    .regex(/^[A-Z0-9-]{6,40}$/, 'a certificate number, e.g. QCK3M7Q2ZB4D-R')
    .meta({ description: 'As printed on the certificate' }),
});

/** The name on the transfer request, from the first event of the case's history (decoded here, never stored). */
async function personName(app: ApiContext, workflowId: string, caseNo: string): Promise<string> {
  let res;
  try {
    res = await app.temporal.connection.withDeadline(Date.now() + app.config.API_QUERY_TIMEOUT_MS * 2, () =>
      app.temporal.connection.workflowService.getWorkflowExecutionHistory({
        namespace: app.config.TEMPORAL_NAMESPACE,
        execution: { workflowId },
        maximumPageSize: 1,
      }),
    );
  } catch (err) {
    const p = temporalProblem(err, caseNo);
    if (p?.status === 404) {
      throw new HttpProblem(
        410,
        `Case ${caseNo}'s history is past its retention: the name it needs is gone, so no certificate can be made`,
        { slug: 'history-gone' },
      );
    }
    throw p ?? err;
  }
  const started = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes;
  const input = await decodeFromPayloadsAtIndex<{ request?: TransferRequest }>(
    app.temporal.client.options.loadedDataConverter,
    0,
    started?.input?.payloads,
  );
  const name = input?.request?.person?.name;
  if (!name) throw new Error(`case ${caseNo}: no person in the first event of its history`);
  return name;
}

/** An event the API records beside the workflow's: negative sequence numbers, never the workflow's. */
async function recordApiEvent(
  app: ApiContext,
  caseNo: string,
  actor: ReturnType<typeof actorOf>,
  kind: string,
  payload: Record<string, unknown>,
) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const [row] = await app.db
      .select({ lowest: min(caseEvents.seq) })
      .from(caseEvents)
      .where(and(eq(caseEvents.caseNo, caseNo), lt(caseEvents.seq, 0)));
    const seq = Math.min(row?.lowest ?? 0, 0) - 1;
    const inserted = await app.db
      .insert(caseEvents)
      .values({
        caseNo,
        seq,
        actor: actor.id,
        actorRole: actor.role,
        actorName: actor.name,
        kind,
        payload,
        at: app.now(),
      })
      .onConflictDoNothing()
      .returning({ id: caseEvents.id });
    if (inserted.length) return;
  }
  throw new Error(`case ${caseNo}: could not record ${kind} (sequence contention)`);
}

export const certificateRoutes: AnyRoute[] = [
  defineRoute({
    method: 'get',
    path: '/api/v1/cases/:caseNo/certificate',
    operationId: 'getReleaseCertificate',
    summary: 'The release certificate (PDF) of a released case; each download is recorded in its event log',
    description:
      'For the supervisor of the district and the community worker of the person’s street. The PDF carries ' +
      'the full name (read from the case’s encrypted history, never stored), the dates of stay, the hotel, the ' +
      'negatives the release rests on and a verification code (GET /api/v1/certificates/{certificateNo}/verify). ' +
      '409 before release; 410 when the history is past its retention.',
    tags: ['community', 'supervisor'],
    access: { kind: 'key', roles: CERT_ROLES },
    params: CaseNoParam,
    responses: {
      200: { description: 'The certificate', contentType: 'application/pdf' },
      409: { description: 'Not released', contentType: 'application/problem+json' },
      410: { description: 'History past retention', contentType: 'application/problem+json' },
    },
    async handler({ app, key, params, req, res }) {
      const { caseNo } = params;
      await authorizeCase(app, key!, caseNo);
      let c;
      let negatives;
      try {
        [c] = await app.db
          .select({
            workflowId: cases.workflowId,
            phase: cases.phase,
            stayStart: cases.stayStart,
            arrivedAt: cases.arrivedAt,
            endedAt: cases.endedAt,
            hotelName: hotels.name,
          })
          .from(cases)
          .leftJoin(hotels, eq(hotels.id, cases.hotelId))
          .where(eq(cases.caseNo, caseNo))
          .limit(1);
        // Negatives of samples really taken: ordered, resulted negative, not planned or cancelled.
        negatives = await app.db
          .select({
            sampleId: samples.sampleId,
            type: samples.type,
            takenAt: samples.orderedAt,
            resultAt: samples.resultAt,
          })
          .from(samples)
          .where(
            and(
              eq(samples.caseNo, caseNo),
              eq(samples.result, 'negative'),
              isNotNull(samples.orderedAt),
              or(isNull(samples.status), notInArray(samples.status, ['planned', 'cancelled'])),
            ),
          )
          .orderBy(asc(samples.orderedAt), asc(samples.sampleId));
      } catch (err) {
        throw dbProblem(app, err);
      }
      if (!c) throw new HttpProblem(404, `No case ${caseNo}`);
      if (c.phase !== 'RELEASED' || !c.endedAt) {
        throw new HttpProblem(409, `Case ${caseNo} is ${c.phase}: a certificate exists only after release`, {
          slug: 'not-released',
          phase: c.phase,
        });
      }
      const releasedAt = c.endedAt;
      const [handedOver] = await app.db
        .select({ no: sql<string | null>`${caseEvents.payload}->>'certificateNo'` })
        .from(caseEvents)
        .where(and(eq(caseEvents.caseNo, caseNo), eq(caseEvents.kind, 'handed_over')))
        .limit(1)
        .catch((err: unknown) => {
          throw dbProblem(app, err);
        });
      // Both workflow versions number the certificate `<caseNo>-R` (the hand-over event records it).
      const certificateNo = handedOver?.no ?? `${caseNo}-R`;
      const name = await personName(app, c.workflowId, caseNo);
      const stayStart = c.stayStart ?? c.arrivedAt;
      const code = verificationCode(app.hmacKey, { certificateNo, caseNo, releasedAt, negatives: negatives.length });
      const pdf = await renderCertificate(
        {
          certificateNo,
          caseNo,
          name,
          hotelName: c.hotelName ?? null,
          stayStart,
          releasedAt,
          negatives,
          verificationCode: code,
          verifyUrl: `${req.protocol}://${req.get('host')}/api/v1/certificates/${certificateNo}/verify?code=${code}`,
          timeZone: app.config.TIME_ZONE,
        },
        app.config.CERTIFICATE_FONT ?? DEFAULT_CERTIFICATE_FONT,
      );
      try {
        await app.db
          .insert(certificates)
          .values({
            certificateNo,
            caseNo,
            releasedAt,
            stayStart,
            hotelName: c.hotelName ?? null,
            negatives: negatives.length,
            downloads: 1,
          })
          .onConflictDoUpdate({
            target: certificates.certificateNo,
            set: { downloads: sql`${certificates.downloads} + 1` },
          });
        // Recorded before the answer: a download that cannot be recorded does not happen.
        await recordApiEvent(app, caseNo, actorOf(key!), 'certificate_downloaded', { certificateNo });
      } catch (err) {
        throw dbProblem(app, err);
      }
      app.log.info('certificate downloaded', { caseNo, keyId: key!.id });
      res.setHeader('Content-Type', 'application/pdf');
      res.setHeader('Content-Disposition', `attachment; filename="${certificateNo}.pdf"`);
      res.setHeader('Cache-Control', 'no-store');
      res.end(pdf);
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/certificates/:certificateNo/verify',
    operationId: 'verifyCertificate',
    summary: 'Check a release certificate’s verification code (public; shows no personal data)',
    tags: ['public'],
    access: { kind: 'public' },
    params: CertificateNoParam,
    query: z.strictObject({
      code: z
        .string()
        .regex(/^[A-Za-z0-9]{5}-?[A-Za-z0-9]{5}$/, 'the code as printed, e.g. K7P2M-QX4ZA')
        .meta({ description: 'As printed on the certificate' }),
    }),
    responses: {
      200: {
        description: 'Whether the certificate is genuine; when it is, what it certifies (no name)',
        schema: z
          .object({
            valid: z.boolean(),
            certificateNo: z.string(),
            releasedOn: z.string().nullable(),
            stayStartedOn: z.string().nullable(),
            hotelName: z.string().nullable(),
            negatives: z.number().int().nullable(),
          })
          .meta({ id: 'CertificateCheck' }),
      },
    },
    async handler({ app, params, query, res }) {
      let row;
      try {
        [row] = await within(3000, 'certificates', () =>
          app.db.select().from(certificates).where(eq(certificates.certificateNo, params.certificateNo)).limit(1),
        );
      } catch (err) {
        throw dbProblem(app, err);
      }
      const valid =
        !!row &&
        codesEqual(
          verificationCode(app.hmacKey, {
            certificateNo: row.certificateNo,
            caseNo: row.caseNo,
            releasedAt: row.releasedAt,
            negatives: row.negatives,
          }),
          query.code,
        );
      const day = (d: Date | null | undefined) =>
        d
          ? new Intl.DateTimeFormat('en-CA', {
              timeZone: app.config.TIME_ZONE,
              year: 'numeric',
              month: '2-digit',
              day: '2-digit',
            }).format(d)
          : null;
      res.setHeader('Cache-Control', 'no-store');
      res.json(
        valid && row
          ? {
              valid: true,
              certificateNo: row.certificateNo,
              releasedOn: day(row.releasedAt),
              stayStartedOn: day(row.stayStart),
              hotelName: row.hotelName,
              negatives: row.negatives,
            }
          : {
              valid: false,
              certificateNo: params.certificateNo,
              releasedOn: null,
              stayStartedOn: null,
              hotelName: null,
              negatives: null,
            },
      );
    },
  }),
];
