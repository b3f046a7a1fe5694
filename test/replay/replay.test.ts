import fs from 'node:fs';
import path from 'node:path';

import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';

import { REPLAY_SINKS, WORKFLOW_BUNDLE } from '../../src/worker';
import { testCodec } from '../support/temporal';

/**
 * Replays every recorded history (test/histories/*.history.pb) against today's workflow code. A
 * change that would break running cases (a non-deterministic change without `patched`) makes
 * this fail. Histories are recorded by `npm run histories:record`: v1 (caseWorkflow), v2-*
 * (caseWorkflowV2, which drains: kept as they were recorded) and v3-* (caseWorkflowV3, which new
 * cases start).
 * v2-missed-checks-unfolded was recorded on the code before the `missed-check-fold` patch (a case
 * missing checks, an escalation per slot): replayed with the fold applied regardless of the
 * patch, it fails with a nondeterminism error, which is what this test is for.
 */
const dir = path.resolve(__dirname, '..', 'histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.history.pb'));

test('recorded histories exist', () => {
  expect(files.length).toBeGreaterThanOrEqual(5);
});

test('every recorded history replays without non-determinism', async () => {
  const histories = files.map((f) => ({
    workflowId: path.basename(f, '.history.pb'),
    history: temporal.api.history.v1.History.decode(fs.readFileSync(path.join(dir, f))),
  }));
  const results: { workflowId: string; error?: unknown }[] = [];
  // Replayed as production runs them: the SDK's promise hook off (WORKER_WORKFLOW_STACK_TRACES).
  process.env.SHAODIAN_WORKFLOW_STACK_TRACES = 'off';
  for await (const r of Worker.runReplayHistories(
    {
      ...WORKFLOW_BUNDLE,
      sinks: REPLAY_SINKS,
      dataConverter: { payloadCodecs: [testCodec()] },
      replayName: 'ci-replay',
    },
    histories,
  )) {
    results.push({ workflowId: r.workflowId, error: r.error });
  }
  expect(results.map((r) => r.workflowId).sort()).toEqual(histories.map((h) => h.workflowId).sort());
  expect(results.filter((r) => r.error).map((r) => `${r.workflowId}: ${String(r.error)}`)).toEqual([]);
});
