import crypto from 'node:crypto';

import fc from 'fast-check';

import { createActivities } from '../../src/activities';
import { hotels, rooms } from '../../src/db/schema';
import { createIntegrations, type Integrations } from '../../src/integrations';
import { createLogger } from '../../src/log';
import { createHarness, startTestWorker, type Harness } from './harness';
import * as cmp from './read-model-compare';

/**
 * The read model written in the workflow task (caseWorkflowV5, src/activities/task-writes.ts),
 * through the public API with a real worker: a 200 means the change is in the read model, with no
 * activity written for it; a queued report reaches it with no activity either; a write the worker
 * cannot make is reported to the case, which makes it by activity; and whatever order these come
 * in, once quiet the read model equals the workflow.
 */
let h: Harness;
let worker: { stop(): Promise<void> };
let integrations: Integrations;
/** The worker's next n read-model writes fail (in the task or by activity alike). */
const faults = { workerWrites: 0 };

beforeAll(async () => {
  h = await createHarness({ label: 'task_writes', env: { DRILL_DAY_SECONDS: '60' } });
  expect(h.config.CASE_WORKFLOW_TYPE).toBe('caseWorkflowV6');
  await h.db.insert(hotels).values({ id: 'HT', name: 'Task Hotel', district: 'D1', street: 'S1' });
  await h.db
    .insert(rooms)
    .values(
      Array.from({ length: 40 }, (_, i) => ({ id: `HT-${101 + i}`, hotelId: 'HT', roomNo: String(101 + i), floor: 1 })),
    );
  const log = createLogger('warn');
  integrations = createIntegrations(h.config, { db: h.db, log });
  // The worker's own database object: its read-model writes fail while asked to; the API's do not.
  const workerDb = Object.create(h.db) as typeof h.db;
  const execute = h.db.execute.bind(h.db);
  (workerDb as { execute: unknown }).execute = ((q: Parameters<typeof execute>[0]) => {
    if (faults.workerWrites > 0 && JSON.stringify(q).includes('shaodian_record_case')) {
      faults.workerWrites--;
      return Promise.reject(new Error('read model refused the write (test)'));
    }
    return execute(q);
  }) as typeof h.db.execute;
  worker = await startTestWorker(h, { activities: () => createActivities({ db: workerDb, integrations, log }) });
});
afterAll(async () => {
  await worker?.stop();
  integrations?.close();
  await h?.close();
});

/** This suite's harness, bound into the shared comparison (test/api/read-model-compare.ts). */
const { readModel, workflowModel, quiet, recordCaseActivities, inObservation, check, queuedCopy, extend, historyOf } =
  cmp.compareWith(() => h);
const behindReports = async (caseNo: string) =>
  (await historyOf(caseNo)).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'readModelBehind')
    .length;

test('a 200 means the check is in the read model: written in the task that answered, no activity, no write handed to the API', async () => {
  const { caseNo, nurse } = await inObservation();
  const before = await recordCaseActivities(caseNo);
  const res = await check(caseNo, nurse, 'hc-1');
  expect(res.status).toBe(200);
  expect(JSON.stringify(res.body)).not.toContain('readModelWrite');
  // Read at once, no waiting.
  const rm = await readModel(caseNo);
  expect(rm.checks).toContain('hc-1');
  expect(rm).toEqual(await workflowModel(caseNo));
  // The API made no write of its own for it.
  const metrics = await h.metrics.registry.getSingleMetricAsString('shaodian_answered_writes_total');
  expect(metrics).not.toMatch(/outcome="written"\} [1-9]/);
  // A supervisor's command and a queued check: in the read model when answered, or as soon as
  // the case ran, still with no activity.
  expect((await extend(caseNo)).status).toBe(200);
  expect((await readModel(caseNo)).version).toBe((await workflowModel(caseNo)).version);
  await queuedCopy(caseNo, 'hc-queued');
  expect((await quiet(caseNo)).checks).toEqual(['hc-1', 'hc-queued']);
  expect(await recordCaseActivities(caseNo)).toBe(before);
});

test('a write the worker cannot make: the 200 stands, the case is told, writes by activity, and the read model catches up', async () => {
  const { caseNo, nurse } = await inObservation();
  const before = await recordCaseActivities(caseNo);
  faults.workerWrites = 1;
  const res = await check(caseNo, nurse, 'hc-refused');
  expect(res.status).toBe(200);
  expect(faults.workerWrites).toBe(0);
  const rm = await quiet(caseNo);
  expect(rm.checks).toContain('hc-refused');
  expect(await behindReports(caseNo)).toBe(1);
  expect(await recordCaseActivities(caseNo)).toBe(before + 1);
  // Then in the task again.
  const next = await check(caseNo, nurse, 'hc-next');
  expect(next.status).toBe(200);
  expect((await readModel(caseNo)).checks).toContain('hc-next');
});

/**
 * Generated orders of checks (answered, retried, queued, both copies), commands, and worker writes
 * that fail: once quiet, the read model equals the workflow, every check in it once.
 */
test('whatever order checks, retries, queued copies, commands and failed writes come in, the read model ends equal to the workflow (generated)', async () => {
  type Step = 'api' | 'retry' | 'queued' | 'queuedThenApi' | 'command' | 'writeFails';
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom<Step>('api', 'retry', 'queued', 'queuedThenApi', 'command', 'writeFails'), {
        minLength: 1,
        maxLength: 6,
      }),
      async (steps) => {
        const { caseNo, nurse } = await inObservation();
        const keys: { key: string; checkId: string }[] = [];
        const expected: string[] = [];
        // After a failed write the case writes by activity for a while: a 200 then precedes the write.
        let failed = false;
        for (const [i, step] of steps.entries()) {
          const checkId = `hc-${i}-${step}`;
          if (step === 'api') {
            const key = `k-${crypto.randomUUID()}`;
            failed ||= faults.workerWrites > 0;
            expect((await check(caseNo, nurse, checkId, key)).status).toBe(200);
            keys.push({ key, checkId });
            expected.push(checkId);
            // Answered with no write failing: in the read model at the answer.
            if (!failed) expect((await readModel(caseNo)).checks).toContain(checkId);
          } else if (step === 'queued') {
            await queuedCopy(caseNo, checkId);
            expected.push(checkId);
          } else if (step === 'queuedThenApi') {
            // The queued copy first, then the same check through the API (same key): one check.
            const key = `k-${crypto.randomUUID()}`;
            await queuedCopy(caseNo, checkId, key);
            expect((await check(caseNo, nurse, checkId, key)).status).toBe(200);
            expected.push(checkId);
          } else if (step === 'command') expect((await extend(caseNo)).status).toBe(200);
          else if (step === 'writeFails') {
            faults.workerWrites = 1;
            failed = true;
          } else if (keys.length) {
            const { key, checkId: previous } = keys[keys.length - 1]!;
            const res = await check(caseNo, nurse, previous, key);
            expect(res.status).toBe(200);
            expect(res.body.result).toMatchObject({ checkId: previous });
          }
        }
        const rm = await quiet(caseNo, 30_000);
        faults.workerWrites = 0;
        expect(rm.checks).toEqual([...expected].sort());
      },
    ),
    { numRuns: 15 },
  );
});
