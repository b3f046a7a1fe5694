import crypto from 'node:crypto';

import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { and, desc, eq, gt, gte, inArray, isNull, lt, notInArray, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';

import { cases, directiveCases, directives } from '../../db/schema';
import { PolicyDocument } from '../../domain/policy-document';
import type { Policy } from '../../domain/policy';
import { COLOURS, PHASES, TERMINAL_PHASES } from '../../domain/types';
import { createVersion, getVersion, listVersions, type PolicyVersion } from '../../policies/store';
import {
  cancelDirectiveSignal,
  directiveProgressQuery,
  pauseDirectiveSignal,
  resumeDirectiveSignal,
  type DirectiveInput,
} from '../../workflows/directive';
import { previewPolicyQuery } from '../../workflows/messages';
import { actorOf, type ApiKey } from '../auth';
import type { ApiContext } from '../context';
import { bodyHash, workflowIdFor } from '../ids';
import { HttpProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import { dbProblem } from './read-helpers';

/**
 * Policies as data and directives (issue 12). Supervisors act within their own district (a
 * supervisor key bound to none may not write policies or issue directives); admin anywhere.
 */

// The same as a transfer's district: any name a district has (西固区, Xigu).
const District = z.string().trim().min(1, 'must not be empty').max(64).meta({ description: 'District, e.g. 西固区' });
const DistrictParam = z.object({ district: District });
const VersionParam = z.object({ district: District, version: z.coerce.number().int().min(1).max(1_000_000) });
const DirectiveIdParam = z.object({ id: z.string().regex(/^DIR-[A-Z0-9]{12}$/, 'not a directive id') });

const PolicyVersionSchema = z
  .object({
    district: z.string(),
    version: z.number().int(),
    name: z.string(),
    current: z.boolean(),
    note: z.string().nullable(),
    createdBy: z.string().nullable().meta({ description: 'API key id; null for the built-in seed' }),
    createdAt: z.string(),
    policy: z.record(z.string(), z.unknown()).meta({ description: 'The whole policy (see PolicyDocument)' }),
  })
  .meta({ id: 'PolicyVersion' });

const CreatePolicyBody = z
  .strictObject({
    policy: PolicyDocument,
    note: z.string().trim().min(1).max(500).meta({ description: 'Why: the directive or protocol it comes from' }),
  })
  .meta({ id: 'CreatePolicyVersion' });

const ACTIVE_PHASES = PHASES.filter((p) => !TERMINAL_PHASES.includes(p));
const DirectiveFilter = z
  .strictObject({
    phases: z
      .array(z.enum(ACTIVE_PHASES as [string, ...string[]]))
      .min(1)
      .optional(),
    colours: z.array(z.enum(COLOURS)).min(1).optional(),
    hotelId: z.string().min(1).max(64).optional(),
    arrivedBefore: z.iso.datetime({ offset: true }).optional(),
    arrivedAfter: z.iso.datetime({ offset: true }).optional(),
  })
  .meta({ id: 'DirectiveFilter', description: 'Which running cases of the district (all of them when empty)' });

const PreviewBody = z
  .strictObject({
    district: District,
    policyVersion: z.number().int().min(1),
    filter: DirectiveFilter.default({}),
  })
  .meta({ id: 'DirectivePreview' });

const DirectiveBody = PreviewBody.extend({
  requestId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/)
    .meta({ description: 'Your id for this directive: a retry with the same id finds the same directive' }),
  reason: z.string().trim().min(1).max(500),
  ratePerSecond: z.number().int().min(1).max(200).default(20).meta({ description: 'Cases a second, at most' }),
}).meta({ id: 'Directive' });

const AnyObject = z.record(z.string(), z.unknown());

/** The most cases one directive takes (split a larger set by hotel or phase). */
export const MAX_DIRECTIVE_CASES = 20_000;
const PREVIEW_CONCURRENCY = 8;

function requireDistrict(key: ApiKey, district: string, write: boolean): void {
  if (key.role === 'admin') return;
  if (key.district) {
    if (key.district !== district)
      throw new HttpProblem(403, 'This key acts only for its own district', { slug: 'jurisdiction' });
    return;
  }
  if (write)
    throw new HttpProblem(403, 'A supervisor key bound to no district cannot change policies or issue directives', {
      slug: 'jurisdiction',
    });
}

const present = (v: PolicyVersion, current: number) => ({
  district: v.district,
  version: v.version,
  name: v.name,
  current: v.version === current,
  note: v.note,
  createdBy: v.createdBy,
  createdAt: v.createdAt,
  policy: v.policy as unknown as Record<string, unknown>,
});

async function policyVersion(app: ApiContext, district: string, version: number): Promise<Policy> {
  let v;
  try {
    v = await getVersion(app.db, district, version);
  } catch (err) {
    throw dbProblem(app, err);
  }
  if (!v)
    throw new HttpProblem(404, `No policy version $:version in ${district}`, {
      slug: 'not-found',
      errors: [{ in: 'body', path: 'policyVersion', message: 'no such version in this district' }],
    });
  return v.policy;
}

/** The running cases a directive would reach, oldest first. */
async function selectCases(
  app: ApiContext,
  district: string,
  f: z.infer<typeof DirectiveFilter>,
): Promise<{ caseNo: string; workflowId: string }[]> {
  const where: SQL[] = [eq(cases.district, district), isNull(cases.endedAt)];
  where.push(notInArray(cases.phase, [...TERMINAL_PHASES]));
  if (f.phases) where.push(inArray(cases.phase, f.phases));
  if (f.colours) where.push(inArray(cases.colour, f.colours));
  if (f.hotelId) where.push(eq(cases.hotelId, f.hotelId));
  if (f.arrivedBefore) where.push(lt(cases.arrivedAt, new Date(f.arrivedBefore)));
  if (f.arrivedAfter) where.push(gte(cases.arrivedAt, new Date(f.arrivedAfter)));
  try {
    return await app.db
      .select({ caseNo: cases.caseNo, workflowId: cases.workflowId })
      .from(cases)
      .where(and(...where))
      .orderBy(cases.requestedAt, cases.caseNo)
      .limit(MAX_DIRECTIVE_CASES + 1);
  } catch (err) {
    throw dbProblem(app, err);
  }
}

interface CasePreview {
  caseNo: string;
  outcome: 'applies' | 'skipped';
  reason?: string;
  before?: Record<string, unknown>;
  after?: Record<string, unknown>;
  samplesPlanned?: number;
  samplesCancelled?: number;
  releasedAtOnce?: boolean;
}

async function previewOne(
  app: ApiContext,
  caseNo: string,
  policy: Policy,
  key: ApiKey,
  now: number,
): Promise<CasePreview> {
  try {
    const r = await app.temporal.connection.withDeadline(now + app.config.API_TEMPORAL_TIMEOUT_MS, () =>
      app.temporal.client.workflow.getHandle(workflowIdFor(caseNo)).query(previewPolicyQuery, {
        directiveId: 'preview',
        issuedAt: new Date(now).toISOString(),
        policy,
        reason: 'preview',
        by: actorOf(key),
      }),
    );
    if (!r.ok) return { caseNo, outcome: 'skipped', reason: `refused: ${r.message}` };
    const v = r.value;
    if (v.applied !== true) return { caseNo, outcome: 'skipped', reason: String(v.skipped ?? 'not applicable') };
    return {
      caseNo,
      outcome: 'applies',
      before: v.before as Record<string, unknown>,
      after: v.after as Record<string, unknown>,
      samplesPlanned: Number(v.samplesPlanned ?? 0),
      samplesCancelled: Number(v.samplesCancelled ?? 0),
      releasedAtOnce: v.released === true,
    };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { caseNo, outcome: 'skipped', reason: 'no_case' };
    const message = err instanceof Error ? err.message : String(err);
    if (/query.*(not|unknown)|not.*registered|no.*handler/i.test(message))
      return { caseNo, outcome: 'skipped', reason: 'not_supported' };
    return { caseNo, outcome: 'skipped', reason: 'unanswered' };
  }
}

function summarise(rows: CasePreview[], dayMs: number, now: number) {
  const applies = rows.filter((r) => r.outcome === 'applies');
  const due = (r: CasePreview, k: 'before' | 'after') =>
    r[k]?.releaseDue ? Date.parse(String(r[k]!.releaseDue)) : undefined;
  const skipped: Record<string, number> = {};
  for (const r of rows) if (r.outcome === 'skipped') skipped[r.reason!] = (skipped[r.reason!] ?? 0) + 1;
  const blockers: Record<string, number> = {};
  for (const r of applies)
    for (const b of (r.after?.releaseBlockers as string[] | undefined) ?? []) blockers[b] = (blockers[b] ?? 0) + 1;
  return {
    cases: rows.length,
    applies: applies.length,
    skipped,
    releasedAtOnce: applies.filter((r) => r.releasedAtOnce).length,
    releaseDueWithinADay: applies.filter((r) => {
      const t = due(r, 'after');
      return r.releasedAtOnce || (t !== undefined && t <= now + dayMs);
    }).length,
    earlier: applies.filter((r) => (due(r, 'after') ?? 0) < (due(r, 'before') ?? 0)).length,
    later: applies.filter((r) => (due(r, 'after') ?? 0) > (due(r, 'before') ?? 0)).length,
    needMoreSamples: applies.filter((r) => (r.samplesPlanned ?? 0) > 0).length,
    samplesPlanned: applies.reduce((a, r) => a + (r.samplesPlanned ?? 0), 0),
    samplesCancelled: applies.reduce((a, r) => a + (r.samplesCancelled ?? 0), 0),
    colourChanged: applies.filter((r) => r.before?.colour !== r.after?.colour).length,
    blockersAfter: blockers,
  };
}

async function pool<T, R>(items: T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

export const directiveIdFor = (requestId: string): string =>
  `DIR-${crypto.createHash('sha256').update(`shaodian/directive/v1\n${requestId}`).digest('hex').slice(0, 12).toUpperCase()}`;
const directiveWorkflowId = (id: string) => `directive-${id}`;

async function startDirective(app: ApiContext, row: typeof directives.$inferSelect, policy: Policy, key: ApiKey) {
  const input: DirectiveInput = {
    directiveId: row.id,
    issuedAt: row.createdAt.toISOString(),
    district: row.district,
    policy,
    reason: row.reason,
    by: actorOf(key),
    caseNos: row.caseNos,
    ratePerSecond: row.ratePerSecond,
    batchSize: Math.max(1, Math.min(25, row.ratePerSecond)),
  };
  try {
    await app.temporal.connection.withDeadline(Date.now() + app.config.API_TEMPORAL_TIMEOUT_MS, () =>
      app.temporal.client.workflow.start('directiveWorkflow', {
        workflowId: directiveWorkflowId(row.id),
        taskQueue: app.config.TEMPORAL_TASK_QUEUE,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      }),
    );
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return;
    throw new HttpProblem(
      503,
      'The directive is recorded but Temporal did not start it; retry with the same requestId',
      {
        slug: 'unavailable',
        dependency: 'temporal',
        directiveId: row.id,
      },
    );
  }
}

async function directiveView(app: ApiContext, row: typeof directives.$inferSelect) {
  let counts: { outcome: string; reason: string | null; n: number }[];
  try {
    counts = await app.db
      .select({ outcome: directiveCases.outcome, reason: directiveCases.reason, n: sql<number>`count(*)::int` })
      .from(directiveCases)
      .where(eq(directiveCases.directiveId, row.id))
      .groupBy(directiveCases.outcome, directiveCases.reason);
  } catch (err) {
    throw dbProblem(app, err);
  }
  let live: { paused: boolean; cancelled: boolean } | undefined;
  if (row.status === 'running' || row.status === 'paused') {
    try {
      live = await app.temporal.connection.withDeadline(Date.now() + app.config.API_TEMPORAL_TIMEOUT_MS, () =>
        app.temporal.client.workflow.getHandle(directiveWorkflowId(row.id)).query(directiveProgressQuery),
      );
    } catch {
      live = undefined;
    }
  }
  const sum = (o: string) => counts.filter((c) => c.outcome === o).reduce((a, c) => a + c.n, 0);
  const skippedBy: Record<string, number> = {};
  for (const c of counts) if (c.outcome !== 'applied') skippedBy[c.reason ?? c.outcome] = c.n;
  return {
    directiveId: row.id,
    district: row.district,
    policyVersion: row.policyVersion,
    filter: row.filter,
    reason: row.reason,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    status: live ? (live.cancelled ? 'cancelling' : live.paused ? 'paused' : 'running') : row.status,
    finishedAt: row.finishedAt?.toISOString() ?? null,
    total: row.total,
    done: sum('applied') + sum('skipped') + sum('failed'),
    applied: sum('applied'),
    skipped: sum('skipped'),
    failed: sum('failed'),
    skippedBy,
  };
}

async function loadDirective(app: ApiContext, key: ApiKey, id: string) {
  let row;
  try {
    [row] = await app.db.select().from(directives).where(eq(directives.id, id)).limit(1);
  } catch (err) {
    throw dbProblem(app, err);
  }
  if (!row) throw new HttpProblem(404, `No directive ${id}`, { slug: 'not-found' });
  requireDistrict(key, row.district, false);
  return row;
}

const DirectiveView = AnyObject.meta({ id: 'DirectiveStatus' });
const problems = {
  403: { description: 'Another district, or a supervisor key bound to none', contentType: 'application/problem+json' },
  404: { description: 'No such policy version or directive', contentType: 'application/problem+json' },
} as const;

export const policyRoutes: AnyRoute[] = [
  defineRoute({
    method: 'get',
    path: '/api/v1/districts/:district/policies',
    operationId: 'listPolicies',
    summary: "A district's policy versions, newest (current) first",
    description:
      'Version 1 is the built-in policy (DEFAULT_POLICY), seeded on first read. The newest version is what new ' +
      'transfers get. A case keeps its version until a directive gives it another.',
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    params: DistrictParam,
    responses: {
      200: { description: 'Versions', schema: z.object({ items: z.array(PolicyVersionSchema) }) },
      ...problems,
    },
    async handler({ app, key, params, res }) {
      requireDistrict(key!, params.district, false);
      let versions;
      try {
        versions = await listVersions(app.db, app.config, params.district);
      } catch (err) {
        throw dbProblem(app, err);
      }
      const current = versions[0]?.version ?? 0;
      res.json({ items: versions.map((v) => present(v, current)) });
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/districts/:district/policies/:version',
    operationId: 'getPolicy',
    summary: 'One policy version',
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    params: VersionParam,
    responses: { 200: { description: 'The version', schema: PolicyVersionSchema }, ...problems },
    async handler({ app, key, params, res }) {
      requireDistrict(key!, params.district, false);
      let versions;
      try {
        versions = await listVersions(app.db, app.config, params.district);
      } catch (err) {
        throw dbProblem(app, err);
      }
      const v = versions.find((x) => x.version === params.version);
      if (!v)
        throw new HttpProblem(404, `No policy version ${params.version} in ${params.district}`, { slug: 'not-found' });
      res.json(present(v, versions[0]!.version));
    },
  }),
  defineRoute({
    method: 'post',
    path: '/api/v1/districts/:district/policies',
    operationId: 'createPolicy',
    summary: "A new policy version: it becomes the district's current one",
    description:
      'Every field is checked, and checked against the others (a sampling day after the stay, a minimum interval ' +
      'longer than the stay, overlapping check windows…); each problem is a field error. Versions are immutable. ' +
      'New transfers get it at once; running cases only through a directive (POST /api/v1/directives).',
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    params: DistrictParam,
    body: CreatePolicyBody,
    responses: {
      201: { description: 'Created', schema: PolicyVersionSchema, headers: { Location: 'The version' } },
      ...problems,
    },
    async handler({ app, key, params, body, res }) {
      requireDistrict(key!, params.district, true);
      let v;
      try {
        v = await createVersion(
          app.db,
          app.config,
          params.district,
          body.policy as Omit<Policy, 'version'>,
          key!.id,
          body.note,
        );
      } catch (err) {
        throw dbProblem(app, err);
      }
      app.policies.invalidate(params.district);
      res
        .status(201)
        .location(`/api/v1/districts/${params.district}/policies/${v.version}`)
        .json(present(v, v.version));
    },
  }),
  defineRoute({
    method: 'post',
    path: '/api/v1/directives/preview',
    operationId: 'previewDirective',
    summary: 'Dry run: what a policy version would do to the running cases it would reach',
    description:
      'Each case computes it with its own decision core on a copy of its state (nothing changes): the new release ' +
      'date, samples planned and cancelled, colour, whether it is released at once, and what would still hold it. ' +
      `Summed up in \`summary\`. At most ${MAX_DIRECTIVE_CASES} cases.`,
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    body: PreviewBody,
    responses: {
      200: { description: 'The dry run', schema: z.object({ summary: AnyObject, cases: z.array(AnyObject) }) },
      ...problems,
    },
    async handler({ app, key, body, res }) {
      requireDistrict(key!, body.district, false);
      const policy = await policyVersion(app, body.district, body.policyVersion);
      const chosen = await selectCases(app, body.district, body.filter);
      if (chosen.length > MAX_DIRECTIVE_CASES)
        throw new HttpProblem(422, `More than ${MAX_DIRECTIVE_CASES} cases: narrow the filter`, { slug: 'rejected' });
      const now = app.now().getTime();
      const rows = await pool(chosen, PREVIEW_CONCURRENCY, (c) => previewOne(app, c.caseNo, policy, key!, now));
      const dayMs = policy.clock.kind === 'compressed' ? policy.clock.dayMs : 86_400_000;
      res.json({
        district: body.district,
        policyVersion: body.policyVersion,
        summary: summarise(rows, dayMs, now),
        cases: rows,
      });
    },
  }),
  defineRoute({
    method: 'post',
    path: '/api/v1/directives',
    operationId: 'issueDirective',
    summary: 'Issue a directive: apply a policy version to the running cases of a district',
    description:
      'The cases are chosen now (as in the dry run) and told one by one by a workflow of its own, at most ' +
      '`ratePerSecond` a second. Each case applies it at most once (keyed by the directive) and records the ' +
      'directive, who issued it and the values before and after; a case that has ended is skipped and counted. ' +
      'A retry with the same `requestId` returns the same directive (a different body: 409).',
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    body: DirectiveBody,
    responses: {
      202: {
        description: 'Issued (or found for a retry)',
        schema: DirectiveView,
        headers: { Location: 'The directive' },
      },
      409: {
        description: 'This requestId was used for a different directive',
        contentType: 'application/problem+json',
      },
      ...problems,
    },
    async handler({ app, key, body, res }) {
      requireDistrict(key!, body.district, true);
      const id = directiveIdFor(body.requestId);
      const hash = bodyHash(app.hmacKey, { ...body, ratePerSecond: body.ratePerSecond });
      const policy = await policyVersion(app, body.district, body.policyVersion);
      let [row] = await app.db
        .select()
        .from(directives)
        .where(eq(directives.id, id))
        .limit(1)
        .catch((err: unknown) => {
          throw dbProblem(app, err);
        });
      if (!row) {
        const chosen = await selectCases(app, body.district, body.filter);
        if (chosen.length > MAX_DIRECTIVE_CASES)
          throw new HttpProblem(422, `More than ${MAX_DIRECTIVE_CASES} cases: narrow the filter`, { slug: 'rejected' });
        try {
          await app.db
            .insert(directives)
            .values({
              id,
              requestId: hash,
              district: body.district,
              policyVersion: body.policyVersion,
              filter: body.filter,
              reason: body.reason,
              createdBy: key!.id,
              total: chosen.length,
              caseNos: chosen.map((c) => c.caseNo),
              ratePerSecond: body.ratePerSecond,
            })
            .onConflictDoNothing();
          [row] = await app.db.select().from(directives).where(eq(directives.id, id)).limit(1);
        } catch (err) {
          throw dbProblem(app, err);
        }
      }
      if (!row || row.requestId !== hash)
        throw new HttpProblem(409, `requestId ${body.requestId} was already used for a different directive`, {
          slug: 'request-id-conflict',
          directiveId: id,
        });
      await startDirective(app, row, policy, key!);
      res
        .status(202)
        .location(`/api/v1/directives/${id}`)
        .json(await directiveView(app, row));
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/directives',
    operationId: 'listDirectives',
    summary: "A district's directives, newest first",
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    query: z.strictObject({ district: District }),
    responses: { 200: { description: 'Directives', schema: z.object({ items: z.array(DirectiveView) }) }, ...problems },
    async handler({ app, key, query, res }) {
      requireDistrict(key!, query.district, false);
      let rows;
      try {
        rows = await app.db
          .select()
          .from(directives)
          .where(eq(directives.district, query.district))
          .orderBy(desc(directives.createdAt))
          .limit(100);
      } catch (err) {
        throw dbProblem(app, err);
      }
      res.json({ items: await Promise.all(rows.map((r) => directiveView(app, r))) });
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/directives/:id',
    operationId: 'getDirective',
    summary: "A directive's progress: applied, skipped (by reason), failed, of the total",
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    params: DirectiveIdParam,
    responses: { 200: { description: 'Progress', schema: DirectiveView }, ...problems },
    async handler({ app, key, params, res }) {
      res.json(await directiveView(app, await loadDirective(app, key!, params.id)));
    },
  }),
  defineRoute({
    method: 'get',
    path: '/api/v1/directives/:id/cases',
    operationId: 'listDirectiveCases',
    summary: 'What the directive did to each case so far (before and after), by case number',
    tags: ['policies'],
    access: { kind: 'key', roles: ['supervisor', 'admin'] },
    params: DirectiveIdParam,
    query: z.strictObject({
      after: z.string().max(64).optional().meta({ description: 'The last case number of the previous page' }),
      limit: z.coerce.number().int().min(1).max(500).default(100),
    }),
    responses: {
      200: { description: 'Cases', schema: z.object({ items: z.array(AnyObject), next: z.string().nullable() }) },
      ...problems,
    },
    async handler({ app, key, params, query, res }) {
      await loadDirective(app, key!, params.id);
      let rows;
      try {
        rows = await app.db
          .select()
          .from(directiveCases)
          .where(
            and(
              eq(directiveCases.directiveId, params.id),
              query.after ? gt(directiveCases.caseNo, query.after) : undefined,
            ),
          )
          .orderBy(directiveCases.caseNo)
          .limit(query.limit);
      } catch (err) {
        throw dbProblem(app, err);
      }
      res.json({
        items: rows.map((r) => ({ ...r, at: r.at.toISOString() })),
        next: rows.length === query.limit ? rows[rows.length - 1]!.caseNo : null,
      });
    },
  }),
  ...(['pause', 'resume', 'cancel'] as const).map((action) =>
    defineRoute({
      method: 'post',
      path: `/api/v1/directives/:id/${action}`,
      operationId: `${action}Directive`,
      summary: `${action[0]!.toUpperCase()}${action.slice(1)} a running directive`,
      description:
        action === 'cancel'
          ? 'Stops after the batch in flight; cases already told keep the new rules (a directive is not undone).'
          : action === 'pause'
            ? 'Stops after the batch in flight until resumed.'
            : 'Goes on where it paused.',
      tags: ['policies'],
      access: { kind: 'key', roles: ['supervisor', 'admin'] },
      params: DirectiveIdParam,
      responses: {
        202: { description: 'Sent', schema: DirectiveView },
        409: { description: 'The directive has finished', contentType: 'application/problem+json' },
        ...problems,
      },
      async handler({ app, key, params, res }) {
        const row = await loadDirective(app, key!, params.id);
        requireDistrict(key!, row.district, true);
        if (row.status === 'completed' || row.status === 'cancelled')
          throw new HttpProblem(
            409,
            `The directive has ${row.status === 'completed' ? 'finished' : 'been cancelled'}`,
            {
              slug: 'conflict',
            },
          );
        const signal =
          action === 'pause'
            ? pauseDirectiveSignal
            : action === 'resume'
              ? resumeDirectiveSignal
              : cancelDirectiveSignal;
        try {
          await app.temporal.connection.withDeadline(Date.now() + app.config.API_TEMPORAL_TIMEOUT_MS, () =>
            app.temporal.client.workflow.getHandle(directiveWorkflowId(row.id)).signal(signal),
          );
        } catch (err) {
          if (err instanceof WorkflowNotFoundError)
            throw new HttpProblem(409, 'The directive has finished', { slug: 'conflict' });
          throw new HttpProblem(503, 'Temporal did not take the signal; retry', {
            slug: 'unavailable',
            dependency: 'temporal',
          });
        }
        res.status(202).json(await directiveView(app, row));
      },
    }),
  ),
];
