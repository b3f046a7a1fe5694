import type { OpenAPIRegistry, RouteConfig } from '@asteasolutions/zod-to-openapi';
import type express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { z } from 'zod';

import type { Role } from '../domain/types';
import { adminTokenMatches, type ApiKey, requireRole } from './auth';
import type { ApiContext } from './context';
import { verifyCodecSession } from './codec-session';
import { HttpProblem, validationProblem, zodFieldErrors, type FieldError } from './problem';
import { ProblemSchema } from './schemas';

/**
 * One definition per route, used twice: to mount it on Express (auth, rate limit, role,
 * zod parsing, then the handler) and to describe it in the OpenAPI document, so the two
 * cannot drift apart.
 */
export type Access =
  | { kind: 'public' }
  /** A bearer key with one of these roles. */
  | { kind: 'key'; roles: readonly Role[] }
  /** The runtime's X-Admin-Token, or a bearer key with role admin. */
  | { kind: 'admin' }
  /**
   * A bearer key with one of these roles, or the same key held in the `sd_codec` cookie (set by
   * POST /codec/session, sent only to /codec): how a browser on the Temporal UI reaches the codec.
   */
  | { kind: 'codec'; roles: readonly Role[] };

/** The cookie that carries a codec session for the Temporal UI (HttpOnly, Path=/codec, SameSite=Strict). */
export const CODEC_COOKIE = 'sd_codec';

/**
 * Every value of a cookie in a Cookie header, in order. A value that is not valid percent-encoding
 * is kept as sent (a malformed cookie is a bad credential, not a server error).
 */
export function cookieValues(header: string | undefined, name: string): string[] {
  const out: string[] = [];
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0 || part.slice(0, i).trim() !== name) continue;
    const raw = part.slice(i + 1).trim();
    try {
      out.push(decodeURIComponent(raw));
    } catch {
      out.push(raw);
    }
  }
  return out;
}

type AnyObject = z.ZodType<Record<string, unknown>>;

export interface ResponseDoc {
  description: string;
  schema?: z.ZodType;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface HandlerCtx<P, Q, B> {
  req: Request;
  res: Response;
  app: ApiContext;
  /** The caller's key; absent only on public routes and admin-token calls. */
  key?: ApiKey;
  params: P;
  query: Q;
  body: B;
}

export interface RouteDef<
  P extends AnyObject | undefined,
  Q extends AnyObject | undefined,
  B extends z.ZodType | undefined,
> {
  method: 'get' | 'post' | 'delete';
  /** Express syntax: /api/v1/cases/:caseNo/arrival */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  access: Access;
  params?: P;
  query?: Q;
  body?: B;
  /** Request headers, for the document only (the handler reads them). */
  requestHeaders?: z.ZodObject;
  /** Parses the body instead of `body` (which then only documents it). */
  parseBody?: (raw: unknown) => { success: true; data: Infer<B> } | { success: false; errors: FieldError[] };
  responses: Record<number, ResponseDoc>;
  handler(ctx: HandlerCtx<Infer<P>, Infer<Q>, Infer<B>>): Promise<void> | void;
}

type Infer<T> = T extends z.ZodType ? z.output<T> : undefined;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = RouteDef<any, any, any>;

export const defineRoute = <
  P extends AnyObject | undefined,
  Q extends AnyObject | undefined,
  B extends z.ZodType | undefined,
>(
  def: RouteDef<P, Q, B>,
): AnyRoute => def as AnyRoute;

export const openApiPath = (expressPath: string): string => expressPath.replace(/:(\w+)/g, '{$1}');

/**
 * Control characters other than tab and line breaks are refused in every field of every request
 * (the codec's payloads aside): Postgres text cannot hold a NUL, so one accepted would make every
 * later read-model write of that case fail, and a NUL in a filter made a read answer 503
 * "database unavailable" for a request that was simply wrong.
 */
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;
function controlCharacters(where: FieldError['in'], value: unknown, errors: FieldError[], at: string[] = []): void {
  if (typeof value === 'string') {
    if (CONTROL.test(value))
      errors.push({ in: where, path: at.join('.'), message: 'must not contain control characters' });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => controlCharacters(where, v, errors, [...at, String(i)]));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (CONTROL.test(k))
        errors.push({ in: where, path: [...at, k].join('.'), message: 'must not contain control characters' });
      controlCharacters(where, v, errors, [...at, k]);
    }
  }
}

function parsePart(
  where: FieldError['in'],
  schema: z.ZodType | undefined,
  value: unknown,
  errors: FieldError[],
): unknown {
  if (!schema) return undefined;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  errors.push(...zodFieldErrors(where, r.error));
  return undefined;
}

/**
 * The codec's caller: a bearer key, else the session in the `sd_codec` cookie. Two session cookies
 * (one planted by a sibling host for a wider path) are refused rather than guessed between.
 */
export async function codecCaller(ctx: ApiContext, req: Request): Promise<ApiKey> {
  const authorization = req.get('authorization');
  if (authorization) return ctx.keys.authenticate(authorization);
  const sessions = cookieValues(req.get('cookie'), CODEC_COOKIE);
  if (sessions.length > 1) {
    throw new HttpProblem(
      401,
      'More than one codec session cookie was sent: sign out at /codec and sign in again',
      {},
      { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
    );
  }
  if (sessions.length === 0) return ctx.keys.authenticate(undefined);
  return verifyCodecSession(ctx, sessions[0]!);
}

export function mountRoute(app: express.Express, ctx: ApiContext, def: AnyRoute): void {
  const handler = async (req: Request, res: Response, next: NextFunction) => {
    try {
      let key: ApiKey | undefined;
      if (def.access.kind === 'key') {
        key = await ctx.keys.authenticate(req.get('authorization'));
        limit(ctx, key);
        requireRole(key, def.access.roles);
      } else if (def.access.kind === 'codec') {
        const admitted = res.locals.codecKey as ApiKey | undefined;
        key = admitted ?? (await codecCaller(ctx, req));
        // Admitted before the body was read (codecPreauth): its rate was taken there.
        if (!admitted) limit(ctx, key);
        requireRole(key, def.access.roles);
      } else if (def.access.kind === 'admin') {
        if (!adminTokenMatches(ctx.adminToken, req.get('x-admin-token'))) {
          key = await ctx.keys.authenticate(req.get('authorization'));
          limit(ctx, key);
          requireRole(key, ['admin']);
        }
      }
      res.locals.key = key;
      const errors: FieldError[] = [];
      if (def.access.kind !== 'codec') {
        controlCharacters('params', req.params, errors);
        controlCharacters('query', req.query, errors);
        if (def.method !== 'get') controlCharacters('body', req.body, errors);
        if (errors.length) throw validationProblem(errors);
      }
      const params = parsePart('params', def.params, req.params, errors);
      const query = parsePart('query', def.query, { ...req.query }, errors);
      let body: unknown;
      if (def.method !== 'get') {
        if (def.parseBody) {
          const r = def.parseBody(req.body);
          if (r.success) body = r.data;
          else errors.push(...r.errors);
        } else if (def.body) {
          body = parsePart('body', def.body, req.body, errors);
        }
      }
      if (errors.length) throw validationProblem(errors);
      await def.handler({ req, res, app: ctx, key, params, query, body });
    } catch (err) {
      next(err);
    }
  };
  app[def.method](def.path, handler);
}

/** Take one call from the key's rate (429 when it is spent). */
export function limit(ctx: ApiContext, key: ApiKey): void {
  const r = ctx.limiter.take(key.id, key.ratePerMinute ?? ctx.config.API_RATE_LIMIT_PER_MINUTE);
  if (!r.ok) {
    throw new HttpProblem(
      429,
      `Rate limit exceeded for this key; retry in ${r.retryAfterS} s`,
      {},
      {
        'Retry-After': String(r.retryAfterS),
      },
    );
  }
}

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemSchema } },
});

export function documentRoute(registry: OpenAPIRegistry, def: AnyRoute): void {
  const responses: RouteConfig['responses'] = {};
  for (const [status, r] of Object.entries(def.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.headers
        ? {
            headers: Object.fromEntries(
              Object.entries(r.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }]),
            ),
          }
        : {}),
      ...(r.schema || r.contentType
        ? { content: { [r.contentType ?? 'application/json']: { schema: r.schema ?? z.string() } } }
        : {}),
    };
  }
  const hasInput = def.params || def.query || def.body;
  if (hasInput) responses['400'] ??= problem('Invalid input: every invalid field is named in `errors`');
  if (def.access.kind !== 'public') {
    responses['401'] ??= problem('Missing, unknown or revoked key');
    responses['403'] ??= problem('The key may not make this call (role or jurisdiction)');
    responses['429'] ??= problem('The key exceeded its rate; see Retry-After');
  }
  if (def.body) {
    responses['413'] ??= problem('Body larger than the configured limit');
    responses['415'] ??= problem('Body is not application/json');
  }
  if (def.access.kind !== 'public')
    responses['503'] ??= problem('A dependency (Temporal or the database) is unavailable');

  const security: Record<string, string[]>[] =
    def.access.kind === 'public'
      ? []
      : def.access.kind === 'admin'
        ? [{ adminToken: [] }, { bearer: [] }]
        : def.access.kind === 'codec'
          ? [{ bearer: [] }, { codecCookie: [] }]
          : [{ bearer: [] }];
  const roles =
    def.access.kind === 'key' || def.access.kind === 'codec'
      ? `\n\nRoles: ${def.access.roles.join(', ')}.`
      : def.access.kind === 'admin'
        ? '\n\nAdmin only.'
        : '';
  registry.registerPath({
    method: def.method,
    path: openApiPath(def.path),
    operationId: def.operationId,
    summary: def.summary,
    description: (def.description ?? '') + roles,
    tags: def.tags,
    security,
    request: {
      ...(def.params ? { params: def.params as z.ZodObject } : {}),
      ...(def.query ? { query: def.query as z.ZodObject } : {}),
      ...(def.requestHeaders ? { headers: def.requestHeaders } : {}),
      ...(def.body ? { body: { required: true, content: { 'application/json': { schema: def.body } } } } : {}),
    },
    responses,
  });
}
