import path from 'node:path';
import fs from 'node:fs';

import { z } from 'zod';

import { defineRoute, type AnyRoute } from '../router';
import { ProblemSchema, Readiness } from '../schemas';

/** The static pages live in src/api/public (also when running from dist/, where tsc copies nothing). */
export function publicDir(): string {
  const candidates = [
    path.join(__dirname, '..', 'public'),
    path.resolve(__dirname, '..', '..', '..', '..', 'src', 'api', 'public'),
  ];
  return candidates.find((d) => fs.existsSync(path.join(d, 'dashboard.html'))) ?? candidates[0]!;
}

/**
 * The pages' Content-Security-Policy (helmet sets it on every answer; see app.ts): everything
 * from this origin only, no inline script or style, no framing, no form posts elsewhere.
 */
export const PAGE_CSP_DIRECTIVES = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  connectSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  // Plain HTTP on a local network must keep working: TLS belongs to the proxy in front.
  upgradeInsecureRequests: null,
};
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

export function opsRoutes(document: () => unknown): AnyRoute[] {
  const page = (file: string) => (res: import('express').Response) => {
    res.setHeader('Content-Security-Policy', PAGE_CSP);
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(path.join(publicDir(), file));
  };
  return [
    defineRoute({
      method: 'get',
      path: '/healthz',
      operationId: 'healthz',
      summary: 'Liveness: 200 while the process runs',
      tags: ['operations'],
      access: { kind: 'public' },
      responses: { 200: { description: 'Alive', schema: z.object({ status: z.literal('ok') }) } },
      handler({ res }) {
        res.json({ status: 'ok' });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/readyz',
      operationId: 'readyz',
      summary: 'Readiness: Temporal, the database and the worker, each named when down',
      tags: ['operations'],
      access: { kind: 'public' },
      responses: {
        200: { description: 'Ready', schema: Readiness },
        503: {
          description: 'Not ready: `checks` names what is down and why',
          schema: ProblemSchema,
          contentType: 'application/problem+json',
        },
      },
      async handler({ app, res }) {
        // A fresh probe (also what feeds the breakers that answer 503 at once while something is down).
        const states = await app.deps.probe();
        const checks = Object.fromEntries(
          Object.entries(states).map(([name, st]) => [
            name,
            {
              ok: st.up,
              ...(st.reason ? { error: st.reason } : {}),
              ...(st.ms !== undefined ? { ms: st.ms } : {}),
              since: st.since,
              breakerOpen: st.breakerOpen,
            },
          ]),
        );
        if (states.temporal.up && states.database.up) {
          res.json({ status: states.worker.up ? 'ready' : 'degraded', checks });
          return;
        }
        const down = Object.entries(checks)
          .filter(([, c]) => !c.ok)
          .map(([name, c]) => `${name}: ${c.error ?? 'down'}`);
        res
          .status(503)
          .setHeader('Retry-After', '5')
          .type('application/problem+json')
          .send(
            JSON.stringify({
              type: 'https://shaodian.invalid/problems/not-ready',
              title: 'Service Unavailable',
              status: 503,
              detail: `Not ready: ${down.join('; ')}`,
              down: Object.entries(checks)
                .filter(([, c]) => !c.ok)
                .map(([name]) => name),
              checks,
            }),
          );
      },
    }),
    defineRoute({
      method: 'get',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics (route patterns and outcomes only: no case numbers or PII in labels)',
      tags: ['operations'],
      access: { kind: 'public' },
      responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain' } },
      async handler({ app, res }) {
        res.setHeader('Content-Type', app.metrics.registry.contentType);
        res.send(await app.metrics.registry.metrics());
      },
    }),
    defineRoute({
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      summary: 'This document (OpenAPI 3.1, generated from the zod schemas the routes parse with)',
      tags: ['operations'],
      access: { kind: 'public' },
      responses: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } },
      handler({ res }) {
        res.json(document());
      },
    }),
    defineRoute({
      method: 'get',
      path: '/docs',
      operationId: 'docs',
      summary: 'Interactive API documentation (self-contained: renders /openapi.json, tries calls)',
      tags: ['operations'],
      access: { kind: 'public' },
      responses: { 200: { description: 'HTML page', contentType: 'text/html' } },
      handler({ res }) {
        page('docs.html')(res);
      },
    }),
    defineRoute({
      method: 'get',
      path: '/dashboard',
      operationId: 'dashboard',
      summary: "The command centre's dashboard (asks for a supervisor key; 中文 / English)",
      tags: ['operations'],
      access: { kind: 'public' },
      responses: { 200: { description: 'HTML page', contentType: 'text/html' } },
      handler({ res }) {
        page('dashboard.html')(res);
      },
    }),
  ];
}
