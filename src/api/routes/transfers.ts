import { cases } from '../../db/schema';
import { resolvePolicy, policyCatalog } from '../../domain/policy';
import { maskName, type TransferRequest } from '../../domain/types';
import { actorOf } from '../auth';
import type { ApiContext } from '../context';
import { bodyHash, caseNoFor, workflowIdFor } from '../ids';
import { HttpProblem, validationProblem } from '../problem';
import { defineRoute, type AnyRoute } from '../router';
import { TransferAccepted, TransferBody } from '../schemas';
import { temporalProblem } from '../temporal-ops';

/** The provisional row must never hold a transfer up: the workflow writes the read model anyway. */
const PROVISIONAL_ROW_TIMEOUT_MS = 1500;

export const transferRoutes: AnyRoute[] = [
  defineRoute({
    method: 'post',
    path: '/api/v1/transfers',
    operationId: 'createTransfer',
    summary: 'File a transfer request: creates the case, or returns it for a retry',
    description:
      'Idempotent on `requestId`: the case number is derived from it, so a retry returns the same case ' +
      '(also while the database is down). The same `requestId` with a different body answers 409. ' +
      'Community keys file for their own street, supervisors within their district.',
    tags: ['transfers'],
    access: { kind: 'key', roles: ['community', 'supervisor', 'admin'] },
    body: TransferBody,
    responses: {
      202: {
        description: 'The case exists and runs (newly created or found)',
        schema: TransferAccepted,
        headers: { Location: 'The case: /api/v1/cases/{caseNo}' },
      },
      409: { description: 'This requestId was used for a different request', contentType: 'application/problem+json' },
    },
    async handler({ app, key, body, res }) {
      if (key!.role !== 'admin') {
        if (key!.district && key!.district !== body.district) {
          throw new HttpProblem(403, 'This key files transfers only for its own district', { slug: 'jurisdiction' });
        }
        if (key!.role === 'community' && (!key!.street || key!.street !== body.street)) {
          throw new HttpProblem(403, 'Community keys file transfers only for their own street', {
            slug: 'jurisdiction',
          });
        }
      }

      // The district's current policy version; a built-in named explicitly (drills) is taken as is.
      const current = await app.policies.current(body.district);
      let policy = current.policy;
      if (body.policyName && body.policyName !== current.policy.name) {
        const named = resolvePolicy(app.config, body.policyName);
        if (!named) {
          const names = [current.policy.name, ...Object.keys(policyCatalog(app.config))].join(', ');
          throw validationProblem([
            { in: 'body', path: 'policyName', message: `unknown policy; configured: ${names}` },
          ]);
        }
        policy = named;
      }
      if (current.source === 'built-in')
        app.log.warn('policy table unreachable: a transfer got the built-in policy', { district: body.district });

      const caseNo = caseNoFor(body.requestId);
      const workflowId = workflowIdFor(caseNo);
      const hash = bodyHash(app.hmacKey, body);
      const now = app.now();
      const request: TransferRequest = {
        ...body,
        caseNo,
        requestedBy: actorOf(key!),
        requestedAt: now.toISOString(),
      };

      let started;
      try {
        started = await app.ops.start(
          caseNo,
          { request, policy },
          { bodyHash: hash, district: body.district, street: body.street },
          app.config.TEMPORAL_TASK_QUEUE,
        );
      } catch (err) {
        throw temporalProblem(err, caseNo, 'write') ?? err;
      }
      if (started.memo?.bodyHash !== hash) {
        app.metrics.workflowStarts.inc({ outcome: 'conflict' });
        throw new HttpProblem(409, `requestId ${body.requestId} was already used for a different transfer request`, {
          slug: 'request-id-conflict',
          caseNo,
        });
      }
      app.metrics.workflowStarts.inc({ outcome: 'started_or_existing' });

      await insertProvisionalRow(app, {
        caseNo,
        workflowId,
        requestId: body.requestId,
        district: body.district,
        street: body.street,
        displayName: maskName(body.person.name),
        policyName: policy.name,
        requestedAt: now,
      });

      res.status(202).location(`/api/v1/cases/${caseNo}`).json({ caseNo, workflowId, status: started.status });
    },
  }),
];

async function insertProvisionalRow(app: ApiContext, row: Omit<typeof cases.$inferInsert, 'phase'>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      app.db
        .insert(cases)
        .values({ ...row, phase: 'REQUESTED', stateVersion: 0 })
        // The workflow may have written first; its row is the truth.
        .onConflictDoNothing(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('provisional row timed out')), PROVISIONAL_ROW_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    app.log.warn('provisional case row not written; the workflow will write it', { caseNo: row.caseNo, err });
  } finally {
    clearTimeout(timer);
  }
}
