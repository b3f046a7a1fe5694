/**
 * What an unanswered update says about the worker (src/api/commands.ts): a worker that keeps
 * polling is behind (a wave), not gone, so it is not marked down and the next command is still
 * sent; a timeout while nobody is seen polling marks it down, and the next command is not sent (503).
 */
import {
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { defineSignal, defineUpdate } from '@temporalio/workflow';

import { reportWaitMs, sendCommand, sendReportWithAnswer } from '../../src/api/commands';
import type { ApiContext } from '../../src/api/context';
import { HttpProblem } from '../../src/api/problem';
import { JurisdictionProblem } from '../../src/api/scope';

const command = defineUpdate<{ ok: boolean }, [{ days: number }]>('changeStay');
const report = defineUpdate<{ ok: boolean }, [{ checkId: string }]>('healthCheck');
const queuedReport = defineSignal<[{ checkId: string }]>('healthCheckQueued');
const scopedReport = defineUpdate<{ ok: boolean }, [{ checkId: string; caller: { role: 'medical' } }]>(
  'healthCheckInScope',
);
/** A report without the scoped way; its jurisdiction check passes and reads nothing. */
const plain = (input: { checkId: string }) => ({ update: report, queued: queuedReport, authorize: async () => input });

/** How the mock case answers an update of this name (by default: no worker answers in time). */
type Answer = (name: string) => unknown | Promise<unknown>;
const unanswered: Answer = () => {
  throw new WorkflowUpdateRPCTimeoutOrCancelledError('Timed out waiting for update');
};

function world(
  polling: boolean,
  behindMs = 0,
  databaseDown = false,
  answer: Answer = unanswered,
  timeouts: { API_REQUEST_TIMEOUT_MS?: number; API_TEMPORAL_TIMEOUT_MS?: number } = {},
) {
  const suspected: string[] = [];
  const sent = { updates: 0, signals: 0, waits: [] as (number | undefined)[], names: [] as string[] };
  const app = {
    config: { API_UPDATE_WAIT_MS: 1500, API_REPORT_WAIT_MS: 800, API_REPORT_MAX_WAIT_MS: 20_000, ...timeouts },
    deps: {
      isDown: (name: string) => (name === 'database' ? databaseDown : suspected.length > 0),
      require: () => {
        if (suspected.length) throw new HttpProblem(503, 'No worker is running the cases');
      },
      probe: async () => undefined,
      suspect: (_name: string, reason: string) => void suspected.push(reason),
      workerPolling: () => polling,
      workerBehindMs: () => behindMs,
      worker: {
        get isOpen() {
          return suspected.length > 0;
        },
        state: () => ({ reason: suspected[0] }),
      },
    },
    ops: {
      update: async (_c: string, d: { name: string }, _i: unknown, o?: { waitMs?: number }) => {
        sent.updates++;
        sent.waits.push(o?.waitMs);
        sent.names.push(d.name);
        return answer(d.name);
      },
      signal: async () => void sent.signals++,
      workflowType: async () => 'caseWorkflowV2',
      knownType: () => undefined,
      describe: async () => ({ status: 'RUNNING' }),
    },
  } as unknown as ApiContext;
  return { app, suspected, sent };
}

const statusOf = (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (err: unknown) => (err instanceof HttpProblem ? err.status : -1),
  );

test('a command unanswered while the worker keeps polling: 504, and the next command is sent too', async () => {
  const w = world(true);
  expect(await statusOf(sendCommand(w.app, 'QC1', command, { days: 1 }, 'k1'))).toBe(504);
  expect(w.suspected).toEqual([]);
  expect(await statusOf(sendCommand(w.app, 'QC1', command, { days: 1 }, 'k2'))).toBe(504);
  expect(w.sent.updates).toBe(2);
});

test('a command unanswered while nobody is seen polling: 504, the worker is marked down, the next is not sent (503)', async () => {
  const w = world(false);
  expect(await statusOf(sendCommand(w.app, 'QC1', command, { days: 1 }, 'k1'))).toBe(504);
  expect(w.suspected).toHaveLength(1);
  expect(await statusOf(sendCommand(w.app, 'QC1', command, { days: 1 }, 'k2'))).toBe(503);
  expect(w.sent.updates).toBe(1);
});

test('a report unanswered while the worker keeps polling is queued, and the worker is not marked down', async () => {
  const w = world(true);
  const r = await sendReportWithAnswer(w.app, 'QC1', plain({ checkId: 'c1' }), 'k1');
  expect(r.status).toBe('queued');
  expect(w.sent).toMatchObject({ updates: 1, signals: 1, waits: [800] });
  expect(w.suspected).toEqual([]);
});

test('a report unanswered while nobody is seen polling is queued, and the worker is marked down', async () => {
  const w = world(false);
  const r = await sendReportWithAnswer(w.app, 'QC1', plain({ checkId: 'c1' }), 'k1');
  expect(r.status).toBe('queued');
  expect(w.suspected).toHaveLength(1);
});

const config = { API_REPORT_WAIT_MS: 1500, API_REPORT_MAX_WAIT_MS: 20_000 };
const withTimeouts = { ...config, API_REQUEST_TIMEOUT_MS: 15_000, API_TEMPORAL_TIMEOUT_MS: 5000 };

test('a report waits API_REPORT_WAIT_MS while the worker keeps up, and about as long as its backlog while it is behind but polling', () => {
  expect(reportWaitMs(config, 0, true)).toBe(1500);
  expect(reportWaitMs(config, 1499, false)).toBe(1500);
  // Behind and polling: twice the tasks' wait, plus the usual wait, up to the maximum.
  expect(reportWaitMs(config, 1500, true)).toBe(4500);
  expect(reportWaitMs(config, 5000, true)).toBe(11_500);
  expect(reportWaitMs(config, 12_000, true)).toBe(20_000);
  // Further behind than the longest wait, or behind with nobody polling: queued at once.
  expect(reportWaitMs(config, 20_000, true)).toBeUndefined();
  expect(reportWaitMs(config, 1500, false)).toBeUndefined();
  // Never longer than the request's time leaves for the queued copy after it.
  expect(reportWaitMs(withTimeouts, 6000, true)).toBe(9000);
  expect(reportWaitMs(withTimeouts, 9000, true)).toBeUndefined();
  // A maximum set below the usual wait does not shorten it.
  expect(reportWaitMs({ API_REPORT_WAIT_MS: 1500, API_REPORT_MAX_WAIT_MS: 1000 }, 0, true)).toBe(1500);
  expect(reportWaitMs({ API_REPORT_WAIT_MS: 1500, API_REPORT_MAX_WAIT_MS: 1000 }, 1500, true)).toBeUndefined();
});

test('a report to a worker behind but polling is sent as an update with the longer wait, not queued at once', async () => {
  const w = world(true, 5000);
  const r = await sendReportWithAnswer(w.app, 'QC1', plain({ checkId: 'c1' }), 'k1');
  // The mock never answers: queued after the wait, but the update was tried with the backlog's wait.
  expect(r.status).toBe('queued');
  expect(w.sent).toMatchObject({ updates: 1, signals: 1, waits: [10_800] });
  expect(w.suspected).toEqual([]);
});

test('a report to a worker further behind than the longest wait goes to the queue at once: one signal, no update', async () => {
  const w = world(true, 25_000);
  const r = await sendReportWithAnswer(w.app, 'QC1', plain({ checkId: 'c1' }), 'k1');
  expect(r).toMatchObject({ status: 'queued', reason: 'workflow tasks have waited 25 s for a worker' });
  expect(w.sent).toMatchObject({ updates: 0, signals: 1 });
  expect(w.suspected).toEqual([]);
});

test('a report to a worker behind with nobody polling goes to the queue at once, and the worker is marked down', async () => {
  const w = world(false, 3000);
  const r = await sendReportWithAnswer(w.app, 'QC1', plain({ checkId: 'c1' }), 'k1');
  expect(r.status).toBe('queued');
  expect(w.sent).toMatchObject({ updates: 0, signals: 1 });
  expect(w.suspected).toHaveLength(1);
});

test('a report while the database is known away goes to the queue at once: its answer would wait on the read-model write', async () => {
  const w = world(true, 0, true);
  const r = await sendReportWithAnswer(w.app, 'QC1', plain({ checkId: 'c1' }), 'k1');
  expect(r).toMatchObject({ status: 'queued' });
  expect((r as { reason: string }).reason).toMatch(/database is away/);
  expect(w.sent).toMatchObject({ updates: 0, signals: 1 });
  expect(w.suspected).toEqual([]);
});

// ---- the health check judged in scope by the case itself (recordHealthCheckInScope) ----

/** A report with both ways; `authorize` counts its reads and fails as the API's check would. */
function scopedReportOf(denied?: HttpProblem) {
  const reads = { count: 0 };
  return {
    reads,
    report: {
      update: report,
      queued: queuedReport,
      scoped: { update: scopedReport, input: { checkId: 'c1', caller: { role: 'medical' as const } } },
      authorize: async () => {
        reads.count++;
        if (denied) throw denied;
        return { checkId: 'c1' };
      },
    },
  };
}
const noHandler = (name: string) =>
  new WorkflowUpdateFailedError(
    'Workflow Update failed',
    ApplicationFailure.nonRetryable(`No registered handler for update: ${name}`),
  );
const jurisdiction = () => new HttpProblem(403, 'outside', { slug: 'jurisdiction' });

test('a scoped check the case answers is applied with nothing read: the case judged the scope', async () => {
  const w = world(true, 0, false, () => ({ ok: true }));
  const s = scopedReportOf();
  const r = await sendReportWithAnswer(w.app, 'QC1', s.report, 'k1');
  expect(r).toEqual({ status: 'applied', result: { ok: true } });
  expect(w.sent.names).toEqual(['healthCheckInScope']);
  expect(s.reads.count).toBe(0);
});

test('a case (or worker build) without the scoped check: the API judges the scope and sends the plain update', async () => {
  const w = world(true, 0, false, (name) => {
    if (name === 'healthCheckInScope') throw noHandler(name);
    return { ok: true };
  });
  const s = scopedReportOf();
  const r = await sendReportWithAnswer(w.app, 'QC1', s.report, 'k1');
  expect(r).toEqual({ status: 'applied', result: { ok: true } });
  expect(w.sent.names).toEqual(['healthCheckInScope', 'healthCheck']);
  expect(s.reads.count).toBe(1);
});

test('without the scoped check, a key the API does not cover gets 403 and the plain update is never sent', async () => {
  const w = world(true, 0, false, (name) => {
    throw noHandler(name);
  });
  const s = scopedReportOf(jurisdiction());
  expect(await statusOf(sendReportWithAnswer(w.app, 'QC1', s.report, 'k1'))).toBe(403);
  expect(w.sent.names).toEqual(['healthCheckInScope']);
  expect(w.sent.signals).toBe(0);
});

test("the case's own refusal of the scope is 403 and nothing else is sent", async () => {
  const w = world(true, 0, false, () => {
    throw new WorkflowUpdateFailedError(
      'Workflow Update failed',
      ApplicationFailure.create({ type: 'Forbidden', message: "outside this key's jurisdiction", nonRetryable: true }),
    );
  });
  const s = scopedReportOf();
  const err = await sendReportWithAnswer(w.app, 'QC1', s.report, 'k1').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HttpProblem);
  expect((err as HttpProblem).problem).toMatchObject({
    status: 403,
    type: 'https://shaodian.invalid/problems/jurisdiction',
    detail: "Case QC1 is outside this key's jurisdiction",
  });
  expect(w.sent).toMatchObject({ updates: 1, signals: 0 });
  expect(s.reads.count).toBe(0);
});

test('a scoped check unanswered in time is queued only after the API has judged the scope (a signal has no validator)', async () => {
  const w = world(true);
  const s = scopedReportOf();
  const r = await sendReportWithAnswer(w.app, 'QC1', s.report, 'k1');
  expect(r.status).toBe('queued');
  expect(w.sent).toMatchObject({ updates: 1, signals: 1, names: ['healthCheckInScope'] });
  expect(s.reads.count).toBe(1);
});

test('a scoped check unanswered in time whose scope the API then denies: 403 (the case refuses the update too), never queued', async () => {
  const w = world(true);
  const s = scopedReportOf(jurisdiction());
  expect(await statusOf(sendReportWithAnswer(w.app, 'QC1', s.report, 'k1'))).toBe(403);
  expect(w.sent.signals).toBe(0);
});

test('a scoped check unanswered in time whose scope cannot be checked now: 504 unknown (the case may still take it), never queued, and the read tried once', async () => {
  const w = world(true);
  const s = scopedReportOf(new HttpProblem(503, 'Neither the read model nor Temporal could find the case right now'));
  expect(await statusOf(sendReportWithAnswer(w.app, 'QC1', s.report, 'k1'))).toBe(504);
  expect(w.sent.signals).toBe(0);
  expect(s.reads.count).toBe(1);
});

test('a scoped check unanswered in time, from a nurse refused only because the case has no room yet: 504 unknown, not 403 (the room may come before the update is judged)', async () => {
  const w = world(true);
  const s = scopedReportOf(new JurisdictionProblem('QC1', false));
  const err = await sendReportWithAnswer(w.app, 'QC1', s.report, 'k1').catch((e: unknown) => e);
  expect((err as HttpProblem).problem).toMatchObject({ status: 504, idempotencyKey: 'k1' });
  expect(w.sent.signals).toBe(0);
  // The same refusal when nothing can land (Temporal refused the call): 403, as before.
  const busy = () => {
    throw new HttpProblem(503, 'Temporal is away', { slug: 'temporal-unavailable' });
  };
  const notSent = scopedReportOf(new JurisdictionProblem('QC1', false));
  expect(await statusOf(sendReportWithAnswer(world(true, 0, false, busy).app, 'QC1', notSent.report, 'k1'))).toBe(403);
  // A refusal that holds whatever the case does next (another district, another hotel's room): 403 after a timeout too.
  const final = scopedReportOf(new JurisdictionProblem('QC1', true));
  expect(await statusOf(sendReportWithAnswer(world(true).app, 'QC1', final.report, 'k1'))).toBe(403);
});

test("a scoped check's wait leaves room for the read after it: the request's time is the same budget", async () => {
  const timeouts = { API_REQUEST_TIMEOUT_MS: 15_000, API_TEMPORAL_TIMEOUT_MS: 5000 };
  const scoped = world(true, 4000, false, unanswered, timeouts);
  await sendReportWithAnswer(scoped.app, 'QC1', scopedReportOf().report, 'k1');
  const plainWorld = world(true, 4000, false, unanswered, timeouts);
  await sendReportWithAnswer(plainWorld.app, 'QC1', plain({ checkId: 'c1' }), 'k1');
  expect(scoped.sent.waits).toEqual([7500]);
  // Tasks wait 4 s: 0.8 + 2 × 4 s = 8.8 s, within the plain check's 9 s but not the scoped one's 7.5 s.
  expect(plainWorld.sent.waits).toEqual([8800]);
});

test('Temporal away or busy: a key the API refuses hears 403, as before; one it covers hears the 503', async () => {
  const busy = () => {
    throw new HttpProblem(503, 'Temporal is away', { slug: 'temporal-unavailable' });
  };
  const foreign = scopedReportOf(jurisdiction());
  expect(await statusOf(sendReportWithAnswer(world(true, 0, false, busy).app, 'QC1', foreign.report, 'k1'))).toBe(403);
  const covered = scopedReportOf();
  expect(await statusOf(sendReportWithAnswer(world(true, 0, false, busy).app, 'QC1', covered.report, 'k1'))).toBe(503);
});

test('the case refusing the check itself (409, 422) is answered as is: nothing read', async () => {
  const refused = () => {
    throw new WorkflowUpdateFailedError(
      'Workflow Update failed',
      ApplicationFailure.create({
        type: 'Conflict',
        message: 'case is RELEASED, not in observation',
        nonRetryable: true,
      }),
    );
  };
  const s = scopedReportOf();
  expect(await statusOf(sendReportWithAnswer(world(true, 0, false, refused).app, 'QC1', s.report, 'k1'))).toBe(409);
  expect(s.reads.count).toBe(0);
});

test('a slow refusal of the scoped name leaves the plain update only the wait that is left, and none left means the queue', async () => {
  // The worker is behind (tasks wait 1 s): the report may wait 2.8 s in all.
  const slowRefusal = (ms: number) => async (name: string) => {
    if (name !== 'healthCheckInScope') return unanswered(name);
    await new Promise((r) => setTimeout(r, ms));
    throw noHandler(name);
  };
  const some = world(true, 1000, false, slowRefusal(1000));
  const r1 = await sendReportWithAnswer(some.app, 'QC1', scopedReportOf().report, 'k1');
  expect(r1.status).toBe('queued');
  expect(some.sent.names).toEqual(['healthCheckInScope', 'healthCheck']);
  expect(some.sent.waits[0]).toBe(2800);
  // What is left of the 2.8 s after a refusal that took 1 s (less under load, never more).
  expect(some.sent.waits[1]).toBeLessThanOrEqual(1800);
  expect(some.sent.waits[1]).toBeGreaterThan(500);
  const none = world(true, 1000, false, slowRefusal(2700));
  const r2 = await sendReportWithAnswer(none.app, 'QC1', scopedReportOf().report, 'k1');
  expect(r2).toMatchObject({ status: 'queued', reason: expect.stringMatching(/queued rather than waiting again/) });
  expect(none.sent).toMatchObject({ names: ['healthCheckInScope'], signals: 1 });
});

test('a scoped check waits less than a plain one when the worker is behind: the read it has not made yet must fit after the wait', () => {
  expect(reportWaitMs(withTimeouts, 6000, true)).toBe(9000);
  expect(reportWaitMs(withTimeouts, 3000, true, 1500)).toBe(7500);
  expect(reportWaitMs(withTimeouts, 7500, true, 1500)).toBeUndefined();
  // Keeping up, the wait is the usual one either way.
  expect(reportWaitMs(withTimeouts, 0, true, 1500)).toBe(1500);
});

test('a report queued at once (the worker far behind) is judged by the API first: a foreign key gets 403 and nothing is sent', async () => {
  const w = world(true, 25_000);
  const s = scopedReportOf(jurisdiction());
  expect(await statusOf(sendReportWithAnswer(w.app, 'QC1', s.report, 'k1'))).toBe(403);
  expect(w.sent).toMatchObject({ updates: 0, signals: 0 });
});

test.each([
  ['a closed case', 'workflow execution already completed', 409],
  ['no workflow for the case', 'workflow not found', 404],
])(
  '%s: the key the API covers hears the case as it is (%s → %i), a key it would refuse gets 403, as when the API judged first',
  async (_what, message, status) => {
    const gone = () => {
      throw new WorkflowNotFoundError(message, 'wf', undefined);
    };
    const covered = scopedReportOf();
    expect(await statusOf(sendReportWithAnswer(world(true, 0, false, gone).app, 'QC1', covered.report, 'k1'))).toBe(
      status,
    );
    const foreign = scopedReportOf(jurisdiction());
    expect(await statusOf(sendReportWithAnswer(world(true, 0, false, gone).app, 'QC1', foreign.report, 'k1'))).toBe(
      403,
    );
  },
);
