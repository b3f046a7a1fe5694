/**
 * What an unanswered update says about the worker (src/api/commands.ts): a worker that keeps
 * polling is behind (a wave), not gone, so it is not marked down and the next command is still
 * sent; a timeout while nobody is seen polling marks it down, and the next command is not sent (503).
 */
import { WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { defineSignal, defineUpdate } from '@temporalio/workflow';

import { sendCommand, sendReportWithAnswer } from '../../src/api/commands';
import type { ApiContext } from '../../src/api/context';
import { HttpProblem } from '../../src/api/problem';

const command = defineUpdate<{ ok: boolean }, [{ days: number }]>('changeStay');
const report = defineUpdate<{ ok: boolean }, [{ checkId: string }]>('healthCheck');
const queuedReport = defineSignal<[{ checkId: string }]>('healthCheckQueued');

function world(polling: boolean, behindMs = 0) {
  const suspected: string[] = [];
  const sent = { updates: 0, signals: 0 };
  const app = {
    config: { API_UPDATE_WAIT_MS: 1500, API_REPORT_WAIT_MS: 800 },
    deps: {
      isDown: () => suspected.length > 0,
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
      update: async () => {
        sent.updates++;
        throw new WorkflowUpdateRPCTimeoutOrCancelledError('Timed out waiting for update');
      },
      signal: async () => void sent.signals++,
      workflowType: async () => 'caseWorkflowV2',
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
  const r = await sendReportWithAnswer(w.app, 'QC1', report, queuedReport, { checkId: 'c1' }, 'k1');
  expect(r.status).toBe('queued');
  expect(w.sent).toEqual({ updates: 1, signals: 1 });
  expect(w.suspected).toEqual([]);
});

test('a report unanswered while nobody is seen polling is queued, and the worker is marked down', async () => {
  const w = world(false);
  const r = await sendReportWithAnswer(w.app, 'QC1', report, queuedReport, { checkId: 'c1' }, 'k1');
  expect(r.status).toBe('queued');
  expect(w.suspected).toHaveLength(1);
});
