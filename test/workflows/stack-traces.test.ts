import { createHarness, type Harness } from '../support/case-harness';
import { viewQuery } from '../../src/workflows/messages';

/**
 * The SDK's per-promise stack traces are off by default (WORKER_WORKFLOW_STACK_TRACES, the patch
 * in scripts/patch-deps.mjs): they held about half of a cached case's memory. With them off, the
 * stack-trace query says so; the metadata query, which the API asks a case that left an update
 * unanswered to learn whether a worker runs it (src/api/dependencies.ts), still answers for v1
 * and v2 cases alike. Turned on, the stack trace shows where the case waits.
 */
let off: Harness;
let on: Harness;
beforeAll(async () => {
  off = await createHarness('stack-off');
  on = await createHarness('stack-on', { WORKER_WORKFLOW_STACK_TRACES: 'true' });
});
afterAll(async () => {
  await off?.close();
  await on?.close();
});

/** The raw query, as the API's probe asks it: it answers, or it throws. */
async function ask(h: Harness, workflowId: string, queryType: string): Promise<void> {
  await h.connection.workflowService.queryWorkflow({
    namespace: h.config.TEMPORAL_NAMESPACE,
    execution: { workflowId },
    query: { queryType },
  });
}

test('off by default: the stack-trace query is refused, the metadata query answers for v1, v2 and v3 cases', async () => {
  expect(off.config.WORKER_WORKFLOW_STACK_TRACES).toBe(false);
  const v3 = await off.startV2();
  const v2 = await off.startV2({ workflowType: 'caseWorkflowV2' });
  const v1 = await off.start();
  await v3.query(viewQuery);
  await v2.query(viewQuery);
  await off.state(v1);

  await expect(v2.query('__stack_trace')).rejects.toThrow(/stack traces are not enabled/);
  await expect(v1.query('__stack_trace')).rejects.toThrow(/stack traces are not enabled/);
  // The probe's query: answered by the worker for either version.
  for (const [h, type] of [
    [v3, 'caseWorkflowV3'],
    [v2, 'caseWorkflowV2'],
    [v1, 'caseWorkflow'],
  ] as const) {
    await ask(off, h.workflowId, '__temporal_workflow_metadata');
    const answer = await h.query<{ definition: { type: string } }>('__temporal_workflow_metadata');
    expect(answer.definition.type).toBe(type);
  }
  // And a workflow nobody runs does not answer it (the probe's other side).
  await expect(ask(off, 'case-NOSUCHCASE', '__temporal_workflow_metadata')).rejects.toThrow();
  await v1.terminate('test over');
  await v2.terminate('test over');
  await v3.terminate('test over');
});

test('turned on, the stack trace shows where the case waits', async () => {
  expect(on.config.WORKER_WORKFLOW_STACK_TRACES).toBe(true);
  const v2 = await on.startV2();
  await v2.query(viewQuery);
  const trace = await v2.query<string>('__stack_trace');
  expect(trace).toMatch(/caseWorkflowV3|runCase/);
  expect(trace).toMatch(/case-v2\.ts/);
  await v2.terminate('test over');
});
