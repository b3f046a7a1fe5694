import path from 'node:path';

import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import type { Client, Connection } from '@temporalio/client';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';

import type { Config } from '../config';
import type { Db } from '../db';
import { createHotelService } from '../integrations/hotel';
import type { Logger } from '../log';
import { pingDb } from '../db';
import { createKeyResolver, createRateLimiter } from './auth';
import { createDependencyMonitor, type DependencyMonitor } from './dependencies';
import type { ApiContext } from './context';
import { loadHmacKey } from './ids';
import { createMetrics, type ApiMetrics } from './metrics';
import { HttpProblem, sendProblem } from './problem';
import { documentRoute, mountRoute, type AnyRoute } from './router';
import { adminRoutes } from './routes/admin';
import { caseCommandRoutes } from './routes/case-commands';
import { escalationRoutes } from './routes/escalations';
import { hotelRoutes } from './routes/hotels';
import { labRoutes } from './routes/lab';
import { opsRoutes, PAGE_CSP_DIRECTIVES, publicDir } from './routes/ops';
import { readRoutes } from './routes/reads';
import { transferRoutes } from './routes/transfers';
import { caseEventRoutes } from './routes/case-events';
import { reportRoutes } from './routes/reports';
import { policyRoutes } from './routes/policies';
import { PolicyCache } from '../policies/store';
import { certificateRoutes } from './routes/certificates';
import { codecCors, codecPreauth, codecRoutes } from './routes/codec';
import { loadCodec } from '../temporal/codec';
import type { PayloadCodec } from '@temporalio/common';
import { createCaseOps } from './temporal-ops';
import { freshestBeatAgeMs } from '../worker-liveness';

export interface AppDeps {
  config: Config;
  db: Db;
  temporal: { client: Client; connection: Connection };
  log: Logger;
  now?: () => Date;
  /** The runtime's secret (runtime.json): `X-Admin-Token` on /api/v1/admin/* stands for an admin key. */
  adminToken?: string;
  /** Keys the transfer-body hash in the memo; default loadHmacKey(config). */
  hmacKey?: Buffer;
  /** Share a metrics registry (e.g. with the worker's); default a registry of the app's own. */
  metrics?: ApiMetrics;
  /** The payload codec served at /codec/* (the Temporal UI's); default the configured key (loadCodec). */
  codec?: PayloadCodec;
  /** The breakers; default a monitor of the app's own that probes on use (the runtime starts its loop). */
  monitor?: DependencyMonitor;
}

export const API_VERSION = '1.0.0';

/** The routes in the order Express tries them (also what the OpenAPI document lists). */
export function apiRoutes(document: () => unknown, getCodec: () => PayloadCodec = unavailableCodec): AnyRoute[] {
  return [
    ...opsRoutes(document),
    ...transferRoutes,
    ...caseCommandRoutes,
    ...labRoutes,
    ...escalationRoutes,
    ...readRoutes,
    ...hotelRoutes,
    ...adminRoutes,
    ...certificateRoutes,
    ...caseEventRoutes,
    ...reportRoutes,
    ...policyRoutes,
    ...codecRoutes(getCodec),
  ];
}

function unavailableCodec(): PayloadCodec {
  throw new Error('no codec in this document-only route list');
}

export function buildOpenApiDocument(routes: AnyRoute[]): object {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key from `npm run keys -- create`: `Authorization: Bearer sd_…`',
  });
  registry.registerComponent('securitySchemes', 'adminToken', {
    type: 'apiKey',
    in: 'header',
    name: 'X-Admin-Token',
    description: "The running system's admin token (DATA_DIR/runtime.json), used by `npm run keys`",
  });
  registry.registerComponent('securitySchemes', 'codecCookie', {
    type: 'apiKey',
    in: 'cookie',
    name: 'sd_codec',
    description: 'A supervisor or admin key held by the browser after POST /codec/session (for the Temporal UI)',
  });
  for (const r of routes) documentRoute(registry, r);
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Shaodian API',
      version: API_VERSION,
      description:
        'Quarantine cases on Temporal: transfers, arrivals, health checks, lab results, address inspections, ' +
        'escalations and the supervisor views. Errors are application/problem+json. See docs/API.md.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
  });
}

/**
 * The API as an Express app, built from its dependencies: the runtime listens on it, tests
 * drive it through supertest. Nothing here reads the environment or opens connections.
 */
export function createApp(deps: AppDeps): express.Express {
  const metrics = deps.metrics ?? createMetrics();
  const now = deps.now ?? (() => new Date());
  const log = deps.log.child({ component: 'api' });
  const monitor =
    deps.monitor ??
    createDependencyMonitor({
      connection: deps.temporal.connection,
      namespace: deps.config.TEMPORAL_NAMESPACE,
      taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
      pingDatabase: () => pingDb(deps.db),
      intervalMs: deps.config.API_PROBE_INTERVAL_MS,
      workerStallMs: deps.config.API_WORKER_STALL_MS,
      workerBeatAgeMs: () =>
        freshestBeatAgeMs(deps.db, deps.config.TEMPORAL_NAMESPACE, deps.config.TEMPORAL_TASK_QUEUE),
      workerLivenessMs: deps.config.API_WORKER_LIVENESS_MS,
      log,
    });
  const ctx: ApiContext = {
    config: deps.config,
    db: deps.db,
    log,
    now,
    temporal: deps.temporal,
    ops: createCaseOps(deps.temporal.client, deps.temporal.connection, metrics, {
      timeoutMs: deps.config.API_TEMPORAL_TIMEOUT_MS,
      updateWaitMs: deps.config.API_UPDATE_WAIT_MS,
      monitor,
      caseWorkflowType: deps.config.CASE_WORKFLOW_TYPE,
    }),
    deps: monitor,
    hotels: createHotelService(deps.db),
    policies: new PolicyCache(deps.db, deps.config),
    metrics,
    keys: createKeyResolver(
      deps.db,
      deps.config.API_KEY_CACHE_SECONDS * 1000,
      () => now().getTime(),
      1500,
      () => monitor.isDown('database'),
    ),
    limiter: createRateLimiter(() => now().getTime()),
    hmacKey: deps.hmacKey ?? loadHmacKey(deps.config),
    adminToken: deps.adminToken,
  };

  let doc: object | undefined;
  let codec = deps.codec;
  const routes = apiRoutes(
    () => (doc ??= buildOpenApiDocument(routes)),
    () => (codec ??= loadCodec(deps.config).codec),
  );

  const app = express();
  app.disable('x-powered-by');
  // Security headers on every answer (helmet): the pages' CSP, nosniff, no referrer, no framing.
  // HSTS is left to the TLS proxy in front (these processes speak plain HTTP).
  app.use(
    helmet({
      contentSecurityPolicy: { useDefaults: false, directives: PAGE_CSP_DIRECTIVES },
      strictTransportSecurity: false,
      referrerPolicy: { policy: 'no-referrer' },
      // The Temporal UI on another origin fetches /codec with CORS: resources stay same-site otherwise.
      crossOriginResourcePolicy: { policy: 'same-site' },
    }),
  );
  app.set('trust proxy', false);

  app.use((req, res, next) => {
    const end = metrics.latency.startTimer();
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.on('finish', () => {
      // The route pattern, never the raw path: case numbers must not become label values.
      const route = req.route?.path
        ? String(req.route.path)
        : req.path.startsWith('/assets/') && res.statusCode < 400
          ? '/assets'
          : 'unmatched';
      const labels = { method: req.method, route, status: String(res.statusCode) };
      metrics.requests.inc(labels);
      end(labels);
    });
    next();
  });

  // While the process drains (SIGTERM), every answer closes its connection: the client's next
  // request goes to a process that stays.
  app.locals.draining = false;
  app.use((req, res, next) => {
    if (req.app.locals.draining) res.setHeader('Connection', 'close');
    next();
  });

  // The Temporal UI calls the codec from its own origin (CODEC_CORS_ORIGINS).
  app.use(codecCors(ctx));

  // The last resort for a request stuck on something that hangs rather than fails (a partitioned
  // database before the probe has seen it): the caller gets an answer that does not lie. A read
  // is 503; a write may have been sent, so its outcome is unknown (504), never "not changed".
  app.use((req, res, next) => {
    const timer = setTimeout(() => {
      if (res.headersSent) return;
      const write = !['GET', 'HEAD', 'OPTIONS'].includes(req.method);
      metrics.errors.inc({ kind: 'unavailable' });
      log.warn('request timed out', { method: req.method, route: req.route?.path });
      const key = res.getHeader('Idempotency-Key');
      sendProblem(
        res,
        write
          ? new HttpProblem(
              504,
              'No answer in time: the outcome is unknown. Retry with the same Idempotency-Key: it is applied at most once.',
              { slug: 'outcome-unknown', ...(typeof key === 'string' ? { idempotencyKey: key } : {}) },
            ).problem
          : new HttpProblem(503, 'A dependency did not answer in time; retry', { slug: 'timeout' }).problem,
        { 'Retry-After': '5' },
      );
    }, deps.config.API_REQUEST_TIMEOUT_MS);
    const done = () => clearTimeout(timer);
    res.on('finish', done);
    res.on('close', done);
    next();
  });

  app.use((req, _res, next) => {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !['GET', 'HEAD'].includes(req.method) && !req.is(['application/json', 'application/*+json'])) {
      next(new HttpProblem(415, 'Send the body as application/json'));
      return;
    }
    next();
  });
  // A case's whole history can be decoded in one call: the codec takes larger bodies, but only
  // from a caller already known to hold a codec role (nobody else makes us read 16 MB).
  const codecBody = express.json({ limit: '16mb', type: ['application/json'] });
  app.use('/codec', codecPreauth(ctx), (req, res, next) => (res.locals.codecKey ? codecBody(req, res, next) : next()));
  app.use(express.json({ limit: deps.config.API_BODY_LIMIT, type: ['application/json', 'application/*+json'] }));
  app.use('/assets', express.static(publicDir(), { index: false, fallthrough: true, maxAge: '5m' }));
  // Swagger UI for /docs, served from node_modules (no CDN).
  app.use(
    '/assets/vendor/swagger-ui',
    express.static(path.dirname(require.resolve('swagger-ui-dist/package.json')), { index: false, maxAge: '1h' }),
  );
  // Charting library for the wave, served from node_modules (no CDN).
  app.use(
    '/assets/vendor/uplot',
    express.static(path.join(path.dirname(require.resolve('uplot/package.json')), 'dist'), {
      index: false,
      maxAge: '1h',
    }),
  );

  for (const r of routes) mountRoute(app, ctx, r);

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new HttpProblem(404, `No route ${req.method} ${req.path}`));
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      // Already answered (the request deadline spoke first): what the handler did later is not an error of the answer.
      res.end();
      return;
    }
    const p = toProblem(err);
    if (p.status >= 500) {
      metrics.errors.inc({ kind: p.status === 500 ? 'internal' : 'unavailable' });
      if (p.status === 500) log.error('unhandled error', { method: req.method, route: req.route?.path, err });
    } else if (p.status === 400 || p.status === 413 || p.status === 415) {
      metrics.errors.inc({ kind: 'invalid_request' });
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    sendProblem(res, p.problem, p.headers);
  });

  return app;
}

/** Body-parser and unknown errors as problems: bad input is never a 500. */
function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err;
  const e = err as { type?: string; status?: number; statusCode?: number; message?: string; limit?: number };
  switch (e?.type) {
    case 'entity.too.large':
      return new HttpProblem(413, `Body larger than ${e.limit ?? 'the limit'} bytes`);
    case 'entity.parse.failed':
      return new HttpProblem(400, 'Body is not valid JSON', {
        errors: [{ in: 'body', path: '', message: 'not valid JSON' }],
      });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new HttpProblem(415, e.message ?? 'Unsupported encoding');
    case 'request.aborted':
      return new HttpProblem(400, 'Request aborted');
  }
  const status = e?.status ?? e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return new HttpProblem(status, e.message);
  return new HttpProblem(500, 'Internal error; it has been logged');
}
