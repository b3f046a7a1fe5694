import fs from 'node:fs';

import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { and, asc, eq, inArray, isNotNull, isNull, lt, lte, min, ne, notInArray, or, sql } from 'drizzle-orm';
import { z } from 'zod';

import { caseEvents, cases, certificates, hotels, samples } from '../../db/schema';
import { RELEASED_PHASES, type Phase, type TransferRequest } from '../../domain/types';
import { actorOf } from '../auth';
import { codesEqual, DEFAULT_CERTIFICATE_FONT, renderCertificate, verificationCode } from '../certificate';
import type { ApiContext } from '../context';
import { within } from '../dependencies';
import { HttpProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import { CaseNoParam } from '../schemas';
import { authorizeCase, requireStreetForCommunity } from '../scope';
import { temporalProblem } from '../temporal-ops';
import { dbProblem, localDate } from './read-helpers';

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

type Certificate = typeof certificates.$inferSelect;

/**
 * The case's certificate, issued on the first download and the same ever after. Its basis: the
 * negatives of samples really taken (ordered) and resulted by the time of release; a result that
 * came after release is not what the release rested on.
 */
async function issuedCertificate(
  app: ApiContext,
  caseNo: string,
  c: { endedAt: Date; stayStart: Date | null; arrivedAt: Date | null; hotelName: string | null },
): Promise<Certificate> {
  try {
    const [existing] = await app.db.select().from(certificates).where(eq(certificates.caseNo, caseNo)).limit(1);
    if (existing) return existing;
    const [handedOver] = await app.db
      .select({ no: sql<string | null>`${caseEvents.payload}->>'certificateNo'` })
      .from(caseEvents)
      .where(and(eq(caseEvents.caseNo, caseNo), eq(caseEvents.kind, 'handed_over')))
      .limit(1);
    // Both workflow versions number the certificate `<caseNo>-R` (the hand-over event records it).
    const certificateNo = handedOver?.no ?? `${caseNo}-R`;
    const negatives = await app.db
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
          lte(samples.resultAt, c.endedAt),
          or(isNull(samples.status), notInArray(samples.status, ['planned', 'cancelled'])),
        ),
      )
      .orderBy(asc(samples.orderedAt), asc(samples.sampleId));
    await app.db
      .insert(certificates)
      .values({
        certificateNo,
        caseNo,
        releasedAt: c.endedAt,
        stayStart: c.stayStart ?? c.arrivedAt,
        hotelName: c.hotelName,
        negatives: negatives.length,
        basis: negatives.map((n) => ({
          sampleId: n.sampleId,
          type: n.type,
          takenAt: n.takenAt?.toISOString() ?? null,
          resultAt: n.resultAt?.toISOString() ?? null,
        })),
      })
      // Two first downloads at once: one issues, both print what was issued.
      .onConflictDoNothing({ target: certificates.certificateNo });
    const [issued] = await app.db
      .select()
      .from(certificates)
      .where(eq(certificates.certificateNo, certificateNo))
      .limit(1);
    return issued!;
  } catch (err) {
    throw dbProblem(app, err);
  }
}

/** Revoked: a result the certificate rests on is no longer negative (a lab corrected it after release). */
async function revoked(app: ApiContext, cert: Certificate): Promise<boolean> {
  const ids = cert.basis.map((b) => b.sampleId);
  if (!ids.length) return false;
  try {
    const rows = await app.db
      .select({ sampleId: samples.sampleId })
      .from(samples)
      .where(and(inArray(samples.sampleId, ids), ne(samples.result, 'negative')))
      .limit(1);
    return rows.length > 0;
  } catch (err) {
    throw dbProblem(app, err);
  }
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
      requireStreetForCommunity(key!);
      await authorizeCase(app, key!, caseNo);
      let c;
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
      } catch (err) {
        throw dbProblem(app, err);
      }
      if (!c) throw new HttpProblem(404, `No case ${caseNo}`);
      if (!RELEASED_PHASES.includes(c.phase as Phase) || !c.endedAt) {
        throw new HttpProblem(409, `Case ${caseNo} is ${c.phase}: a certificate exists only after release`, {
          slug: 'not-released',
          phase: c.phase,
        });
      }
      // Without a font for the Chinese there is no certificate to print: say so, issue nothing.
      const font = app.config.CERTIFICATE_FONT ?? DEFAULT_CERTIFICATE_FONT;
      if (!fs.existsSync(font)) {
        app.log.error('certificate font missing', { font });
        throw new HttpProblem(
          503,
          'This server cannot print certificates: its font for Chinese is not installed (fonts-wqy-microhei, or ' +
            'CERTIFICATE_FONT). Nothing was issued; an operator has been told in the log.',
          { slug: 'certificate-font-missing' },
        );
      }
      const cert = await issuedCertificate(app, caseNo, { ...c, endedAt: c.endedAt });
      if (await revoked(app, cert)) {
        throw new HttpProblem(
          409,
          `Certificate ${cert.certificateNo} is revoked: a result it rests on was corrected after release`,
          { slug: 'certificate-revoked' },
        );
      }
      const name = await personName(app, c.workflowId, caseNo);
      const code = verificationCode(app.hmacKey, cert);
      const pdf = await renderCertificate(
        {
          certificateNo: cert.certificateNo,
          caseNo,
          name,
          hotelName: cert.hotelName,
          stayStart: cert.stayStart,
          releasedAt: cert.releasedAt,
          negatives: cert.basis.map((n) => ({
            sampleId: n.sampleId,
            type: n.type,
            takenAt: n.takenAt ? new Date(n.takenAt) : null,
            resultAt: n.resultAt ? new Date(n.resultAt) : null,
          })),
          verificationCode: code,
          verifyUrl: `${req.protocol}://${req.get('host')}/api/v1/certificates/${cert.certificateNo}/verify?code=${code}`,
          timeZone: app.config.TIME_ZONE,
        },
        font,
      );
      try {
        // Recorded before the answer: a download that cannot be recorded does not happen.
        await recordApiEvent(app, caseNo, actorOf(key!), 'certificate_downloaded', {
          certificateNo: cert.certificateNo,
        });
        await app.db
          .update(certificates)
          .set({ downloads: sql`${certificates.downloads} + 1` })
          .where(eq(certificates.certificateNo, cert.certificateNo));
      } catch (err) {
        throw dbProblem(app, err);
      }
      app.log.info('certificate downloaded', { caseNo, keyId: key!.id });
      res.setHeader('Content-Type', 'application/pdf');
      res.setHeader('Content-Disposition', `attachment; filename="${cert.certificateNo}.pdf"`);
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
            valid: z.boolean().meta({ description: 'true only when status is "valid"' }),
            status: z.enum(['valid', 'revoked', 'unknown']).meta({
              description:
                'valid: genuine and standing; revoked: genuine, but a result it rests on was corrected after release; ' +
                'unknown: no such certificate, or not this code',
            }),
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
      const genuine = !!row && codesEqual(verificationCode(app.hmacKey, row), query.code);
      const status = !genuine || !row ? 'unknown' : (await revoked(app, row)) ? 'revoked' : 'valid';
      const day = (d: Date | null | undefined) => (d ? localDate(d, app.config.TIME_ZONE) : null);
      res.setHeader('Cache-Control', 'no-store');
      res.json(
        genuine && row
          ? {
              valid: status === 'valid',
              status,
              certificateNo: row.certificateNo,
              releasedOn: day(row.releasedAt),
              stayStartedOn: day(row.stayStart),
              hotelName: row.hotelName,
              negatives: row.negatives,
            }
          : {
              valid: false,
              status,
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
