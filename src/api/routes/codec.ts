import path from 'node:path';

import type { Payload, PayloadCodec } from '@temporalio/common';
import { desc, and, eq, lt, type SQL } from 'drizzle-orm';
import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';

import { codecAudit } from '../../db/schema';
import type { ApiContext } from '../context';
import { requireRole } from '../auth';
import { issueCodecSession } from '../codec-session';
import { CODEC_COOKIE, codecCaller, defineRoute, limit, type AnyRoute } from '../router';
import { dbProblem } from './read-helpers';
import { publicDir } from './ops';

/**
 * Temporal's remote codec protocol (https://docs.temporal.io/production-deployment/data-encryption):
 * the Temporal UI (and `temporal workflow show --codec-endpoint`) posts encoded payloads and gets
 * them back decoded. Only admin and supervisor keys may; every call is recorded in codec_audit
 * before it is answered, so a decode that cannot be recorded is refused (503).
 */
const CODEC_ROLES = ['admin', 'supervisor'] as const;
const MAX_PAYLOADS = 2000;
/** The browser session: long enough for a shift, no longer. */
const SESSION_SECONDS = 8 * 3600;

const base64 = z
  .string()
  .max(8 * 1024 * 1024)
  .regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');

const JsonPayload = z
  .object({
    metadata: z.record(z.string().max(256), base64).optional(),
    data: base64.optional(),
  })
  .meta({ id: 'CodecPayload', description: 'A Temporal Payload in protobuf JSON: metadata values and data in base64' });

const CodecBody = z
  .object({ payloads: z.array(JsonPayload).max(MAX_PAYLOADS) })
  .meta({ id: 'CodecPayloads', description: 'The remote codec protocol body, request and answer alike' });

const CodecHeaders = z.object({
  'X-Namespace': z.string().optional().meta({ description: 'The namespace the UI is showing (recorded)' }),
});

type JsonPayloadT = z.infer<typeof JsonPayload>;

const fromJson = (p: JsonPayloadT): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: p.data === undefined ? undefined : Buffer.from(p.data, 'base64'),
});

const toJson = (p: Payload): JsonPayloadT => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
  ),
  ...(p.data ? { data: Buffer.from(p.data).toString('base64') } : {}),
});

/** Origins allowed to call the codec from a browser: CODEC_CORS_ORIGINS. */
export const codecOrigins = (ctx: ApiContext): Set<string> =>
  new Set(
    ctx.config.CODEC_CORS_ORIGINS.split(',')
      .map((o) => o.trim())
      .filter(Boolean),
  );

/**
 * CORS for /codec/*: the Temporal UI runs on another origin and sends its cookie
 * (`includeCredentials`), so the answer names that origin, never `*`. A preflight from an origin
 * not on the list gets no CORS headers, and the browser refuses the call.
 */
export function codecCors(ctx: ApiContext) {
  const allowed = codecOrigins(ctx);
  return (req: Request, res: Response, next: () => void) => {
    if (!req.path.startsWith('/codec/')) return next();
    const origin = req.get('origin');
    res.vary('Origin');
    if (origin && allowed.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    if (req.method === 'OPTIONS') {
      if (origin && allowed.has(origin)) {
        res.setHeader('Access-Control-Allow-Methods', 'POST, DELETE, OPTIONS');
        res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Authorization, X-Namespace');
        res.setHeader('Access-Control-Max-Age', '600');
      }
      res.status(204).end();
      return;
    }
    next();
  };
}

/**
 * Before the large-body parser: a decode or encode is authenticated (bearer or session) and its
 * role checked first, so an unknown caller is refused without the server reading its body. The
 * route reuses the identity (res.locals.codecKey).
 */
export function codecPreauth(ctx: ApiContext) {
  return (req: Request, res: Response, next: NextFunction) => {
    // Express matches paths case-insensitively: so does this (only these two get the large parser).
    if (req.method !== 'POST' || !/^\/(decode|encode)\/?$/i.test(req.path)) return next();
    codecCaller(ctx, req).then(
      (key) => {
        try {
          requireRole(key, CODEC_ROLES);
          limit(ctx, key);
        } catch (err) {
          // Refused before the body is read: do not keep the connection for the rest of it.
          res.setHeader('Connection', 'close');
          return next(err);
        }
        res.locals.codecKey = key;
        next();
      },
      (err: unknown) => {
        res.setHeader('Connection', 'close');
        next(err);
      },
    );
  };
}

async function audit(
  app: ApiContext,
  req: Request,
  operation: 'decode' | 'encode' | 'session',
  key: { id: string; role: string },
  payloads: number,
): Promise<void> {
  try {
    await app.db.insert(codecAudit).values({
      keyId: key.id,
      role: key.role,
      operation,
      namespace: req.get('x-namespace')?.slice(0, 200) ?? null,
      payloads,
      origin: req.get('origin')?.slice(0, 200) ?? null,
    });
  } catch (err) {
    throw dbProblem(app, err);
  }
  app.log.info('codec used', { operation, keyId: key.id, role: key.role, payloads });
}

/**
 * Each payload on its own: one that does not decode (another deployment's key, not ours) comes
 * back as it was, so the UI still shows the rest.
 */
async function eachPayload(
  codec: PayloadCodec,
  op: 'decode' | 'encode',
  payloads: Payload[],
): Promise<{ out: Payload[]; failed: number }> {
  let failed = 0;
  const out = await Promise.all(
    payloads.map(async (p) => {
      try {
        const [r] = await codec[op]([p]);
        return r!;
      } catch {
        failed++;
        return p;
      }
    }),
  );
  return { out, failed };
}

export function codecRoutes(getCodec: () => PayloadCodec): AnyRoute[] {
  const codecRoute = (op: 'decode' | 'encode') =>
    defineRoute({
      method: 'post',
      path: `/codec/${op}`,
      operationId: op === 'decode' ? 'codecDecode' : 'codecEncode',
      summary:
        op === 'decode'
          ? 'Decode case payloads for the Temporal UI (remote codec protocol); recorded per call'
          : 'Encode payloads for the Temporal UI (remote codec protocol); recorded per call',
      description:
        'Temporal remote codec protocol. Sign in from a browser with POST /codec/session, or send a bearer key. ' +
        'Browsers are admitted from CODEC_CORS_ORIGINS only. A payload that does not ' +
        (op === 'decode' ? 'decode' : 'encode') +
        ' is returned unchanged. Every call is written to the codec audit log before it is answered: ' +
        'when that log cannot be written the answer is 503 and nothing is ' +
        (op === 'decode' ? 'decoded' : 'encoded') +
        '.',
      tags: ['codec'],
      access: { kind: 'codec', roles: CODEC_ROLES },
      body: CodecBody,
      requestHeaders: CodecHeaders,
      responses: { 200: { description: 'The payloads, ' + op + 'd', schema: CodecBody } },
      async handler({ app, req, res, key, body }) {
        // Recorded first: a decode that cannot be recorded does not happen.
        await audit(app, req, op, key!, body.payloads.length);
        const { out, failed } = await eachPayload(getCodec(), op, body.payloads.map(fromJson));
        if (failed) app.log.warn('codec: payloads left as they were', { operation: op, failed, keyId: key!.id });
        res.setHeader('Cache-Control', 'no-store');
        res.json({ payloads: out.map(toJson) });
      },
    });

  return [
    defineRoute({
      method: 'get',
      path: '/codec',
      operationId: 'codecSignInPage',
      summary: 'Sign a browser in to the codec (for the Temporal UI) with a supervisor or admin key',
      tags: ['codec'],
      access: { kind: 'public' },
      responses: { 200: { description: 'HTML page', contentType: 'text/html' } },
      handler({ res }) {
        res.setHeader(
          'Content-Security-Policy',
          "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        );
        res.setHeader('Cache-Control', 'no-cache');
        res.sendFile(path.join(publicDir(), 'codec.html'));
      },
    }),
    defineRoute({
      method: 'post',
      path: '/codec/session',
      operationId: 'codecSignIn',
      summary: 'Open an 8-hour codec session for this browser (an HttpOnly cookie for /codec only)',
      description:
        'The key is checked (role supervisor or admin) and a signed session naming it (never the key itself) is set ' +
        'as cookie `sd_codec` (HttpOnly, SameSite=Strict, Path=/codec): the Temporal UI, served from the same host, ' +
        'sends it with each decode (`includeCredentials`). The session is accepted by /codec/decode and /codec/encode ' +
        'only, expires after 8 hours, and stops working the moment its key is revoked. A request carrying two ' +
        'session cookies is refused (401).',
      tags: ['codec'],
      access: { kind: 'key', roles: CODEC_ROLES },
      responses: {
        200: {
          description: 'Signed in',
          schema: z.object({ keyId: z.string(), role: z.string(), expiresAt: z.iso.datetime() }),
          headers: { 'Set-Cookie': 'sd_codec=…; HttpOnly; SameSite=Strict; Path=/codec; Max-Age=28800' },
        },
      },
      async handler({ app, req, res, key }) {
        const raw = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')![1]!;
        await audit(app, req, 'session', key!, 0);
        const expiresAt = new Date(app.now().getTime() + SESSION_SECONDS * 1000);
        // The cookie names the key and is signed; it never holds the key itself.
        res.cookie(CODEC_COOKIE, issueCodecSession(app.hmacKey, key!.id, raw, expiresAt), {
          httpOnly: true,
          sameSite: 'strict',
          secure: req.secure,
          path: '/codec',
          maxAge: SESSION_SECONDS * 1000,
          encode: (v) => v,
        });
        res.setHeader('Cache-Control', 'no-store');
        res.json({
          keyId: key!.id,
          role: key!.role,
          expiresAt: expiresAt.toISOString(),
        });
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/codec/session',
      operationId: 'codecSignOut',
      summary: "Forget this browser's codec cookie",
      tags: ['codec'],
      access: { kind: 'public' },
      responses: { 204: { description: 'Signed out' } },
      handler({ res }) {
        res.clearCookie(CODEC_COOKIE, { path: '/codec', httpOnly: true, sameSite: 'strict' });
        res.status(204).end();
      },
    }),
    codecRoute('decode'),
    codecRoute('encode'),
    defineRoute({
      method: 'get',
      path: '/api/v1/admin/codec-audit',
      operationId: 'listCodecAudit',
      summary: 'Who decoded case payloads, when, how many (newest first)',
      tags: ['admin', 'codec'],
      access: { kind: 'admin' },
      query: z.object({
        keyId: z.string().max(64).optional(),
        before: z.coerce.number().int().positive().optional().meta({ description: 'Cursor: entries below this id' }),
        limit: z.coerce.number().int().min(1).max(500).default(100),
      }),
      responses: {
        200: {
          description: 'Audit entries',
          schema: z.object({
            items: z.array(
              z.object({
                id: z.number(),
                at: z.string(),
                keyId: z.string(),
                role: z.string(),
                operation: z.string(),
                namespace: z.string().nullable(),
                payloads: z.number(),
                origin: z.string().nullable(),
              }),
            ),
            nextBefore: z.number().nullable(),
          }),
        },
      },
      async handler({ app, query, res }) {
        const where: SQL[] = [];
        if (query.keyId) where.push(eq(codecAudit.keyId, query.keyId));
        if (query.before) where.push(lt(codecAudit.id, query.before));
        let rows;
        try {
          rows = await app.db
            .select()
            .from(codecAudit)
            .where(where.length ? and(...where) : undefined)
            .orderBy(desc(codecAudit.id))
            .limit(query.limit);
        } catch (err) {
          throw dbProblem(app, err);
        }
        res.json({
          items: rows.map((r) => ({ ...r, at: r.at.toISOString() })),
          nextBefore: rows.length === query.limit ? rows[rows.length - 1]!.id : null,
        });
      },
    }),
  ];
}
