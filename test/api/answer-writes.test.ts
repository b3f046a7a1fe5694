import crypto from 'node:crypto';

import { eq } from 'drizzle-orm';
import fc from 'fast-check';

import { createActivities } from '../../src/activities';
import { updateIdFor } from '../../src/api/commands';
import { workflowIdFor } from '../../src/api/ids';
import { cases, hotels, rooms } from '../../src/db/schema';
import { healthCheckUpdate, type HealthCheckInput } from '../../src/workflows/messages';
import * as cmp from './read-model-compare';
import { createHarness, type Harness, startTestWorker, type TestWorker } from './harness';

/**
 * The read model written by the answer (ANSWER_WRITES_PATCH, src/api/answer-writes.ts): a health
 * check's read-model write rides in the case's answer and the API makes it before it answers.
 * The promise kept: whatever happens to a write handed out (made, failed, lost with the API, the
 * answer never waited for), the case's content reaches the read model, and once quiet the read
 * model equals the workflow. Driven through the public API, with the Temporal client standing in
 * for an API that died between the case's answer and its write.
 */
let h: Harness;
let worker: TestWorker | undefined;
/** The API's next n read-model writes fail (the database refuses them); the worker's do not. */
const faults = { apiWrites: 0 };

beforeAll(async () => {
  // caseWorkflowV4, which drains: a v5 case writes in its task and hands no write out
  // (test/api/task-writes.test.ts).
  h = await createHarness({
    label: 'answer_writes',
    env: { DRILL_DAY_SECONDS: '60', CASE_WORKFLOW_TYPE: 'caseWorkflowV4' },
  });
  await h.db.insert(hotels).values({ id: 'HA', name: 'Answer Hotel', district: 'D1', street: 'S1' });
  await h.db
    .insert(rooms)
    .values(
      Array.from({ length: 40 }, (_, i) => ({ id: `HA-${101 + i}`, hotelId: 'HA', roomNo: String(101 + i), floor: 1 })),
    );
  worker = await startTestWorker(h, {
    activities: (db, integrations, log) => {
      // The worker writes through a database object of its own, so a fault of the API's writes
      // (below) cannot touch it.
      const workerDb = Object.create(db) as typeof db;
      // The API's database: its read-model write (`shaodian_record_case`) fails while asked to.
      const execute = db.execute.bind(db);
      db.execute = ((q: Parameters<typeof execute>[0]) => {
        if (faults.apiWrites > 0 && JSON.stringify(q).includes('shaodian_record_case')) {
          faults.apiWrites--;
          return Promise.reject(new Error('read model refused the write (test)'));
        }
        return execute(q);
      }) as typeof db.execute;
      (workerDb as { execute: unknown }).execute = execute;
      return createActivities({ db: workerDb, integrations, log });
    },
  });
});
afterAll(async () => {
  await worker?.stop();
  await h?.close();
});

/** This suite's harness, bound into the shared comparison (test/api/read-model-compare.ts). */
const { readModel, workflowModel, quiet, recordCaseActivities, inObservation, check, queuedCopy, extend } =
  cmp.compareWith(() => h);
const checkInput = cmp.checkInput;

/**
 * An API that sent the check with the read model's version and died before it made the write
 * the answer carried: the update lands, its write does not.
 */
async function answerDropped(caseNo: string, checkId: string, key = `lost-${checkId}`): Promise<boolean> {
  const [row] = await h.db.select({ version: cases.stateVersion }).from(cases).where(eq(cases.caseNo, caseNo));
  const input: HealthCheckInput = { ...checkInput(checkId, key), readModel: { version: row!.version } };
  const answer = await h.temporal.client.workflow
    .getHandle(workflowIdFor(caseNo))
    .executeUpdate(healthCheckUpdate, { args: [input], updateId: updateIdFor(healthCheckUpdate.name, key, input) });
  return answer.readModelWrite !== undefined;
}

test('a health check is written by the API before it answers: the read model has it at once, no activity wrote it', async () => {
  const { caseNo, nurse } = await inObservation();
  const before = await recordCaseActivities(caseNo);
  const res = await check(caseNo, nurse, 'hc-1');
  expect(res.status).toBe(200);
  expect(res.body.result).toMatchObject({ checkId: 'hc-1', duplicate: false });
  // The write is for the API alone.
  expect(JSON.stringify(res.body)).not.toContain('readModelWrite');
  // Read at once, no waiting: the answer came after the write.
  const rm = await readModel(caseNo);
  expect(rm.checks).toContain('hc-1');
  expect(rm).toEqual(await workflowModel(caseNo));
  // No recordCase activity for it, then or later.
  await new Promise((r) => setTimeout(r, 1000));
  expect(await recordCaseActivities(caseNo)).toBe(before);
  const metrics = await h.metrics.registry.getSingleMetricAsString('shaodian_answered_writes_total');
  expect(metrics).toMatch(/outcome="written"\} [1-9]/);
  // A retry with the same key is the same check, answered the same; nothing changes.
  const key = res.headers['idempotency-key'] as string;
  const again = await check(caseNo, nurse, 'hc-1', key);
  expect(again.status).toBe(200);
  expect(await readModel(caseNo)).toEqual(rm);
});

test('a write the database refused is handed back: the case makes it by activity', async () => {
  const { caseNo, nurse } = await inObservation();
  const before = await recordCaseActivities(caseNo);
  faults.apiWrites = 1;
  const res = await check(caseNo, nurse, 'hc-refused');
  expect(res.status).toBe(200);
  expect(faults.apiWrites).toBe(0);
  const rm = await quiet(caseNo);
  expect(rm.checks).toContain('hc-refused');
  expect(await recordCaseActivities(caseNo)).toBe(before + 1);
  const history = await h.temporal.client.workflow.getHandle(workflowIdFor(caseNo)).fetchHistory();
  expect(
    (history.events ?? []).some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'readModelBehind'),
  ).toBe(true);
});

test('a write lost with the API is carried by the next check, and a retry with the same key makes it', async () => {
  const { caseNo, nurse } = await inObservation();
  expect(await answerDropped(caseNo, 'hc-lost-1')).toBe(true);
  // Nobody made the write: the read model does not have the check yet.
  expect((await readModel(caseNo)).checks).not.toContain('hc-lost-1');
  const res = await check(caseNo, nurse, 'hc-next');
  expect(res.status).toBe(200);
  const rm = await readModel(caseNo);
  expect(rm.checks).toEqual(expect.arrayContaining(['hc-lost-1', 'hc-next']));
  expect(rm).toEqual(await workflowModel(caseNo));

  // The API died after the update; the nurse's tablet retries with the same key and body.
  const key = `tablet-${crypto.randomUUID()}`;
  expect(await answerDropped(caseNo, 'hc-retried', key)).toBe(true);
  const retry = await check(caseNo, nurse, 'hc-retried', key);
  expect(retry.status).toBe(200);
  expect(retry.body.result).toMatchObject({ checkId: 'hc-retried' });
  expect((await readModel(caseNo)).checks).toContain('hc-retried');
  expect(await readModel(caseNo)).toEqual(await workflowModel(caseNo));
});

test("a write owed when another message comes is carried by that message's activity write", async () => {
  const { caseNo } = await inObservation();
  expect(await answerDropped(caseNo, 'hc-owed')).toBe(true);
  // A supervisor's command, which the case writes by activity: that write carries the check too.
  const res = await extend(caseNo);
  expect(res.status).toBe(200);
  const rm = await quiet(caseNo);
  expect(rm.checks).toContain('hc-owed');

  // The update went unanswered, so the API queued the next check: the case writes both itself.
  expect(await answerDropped(caseNo, 'hc-owed-2')).toBe(true);
  await queuedCopy(caseNo, 'hc-queued');
  expect((await quiet(caseNo)).checks).toEqual(expect.arrayContaining(['hc-owed-2', 'hc-queued']));
});

test('an answer nobody waited for, then its queued copy: the case makes the write itself', async () => {
  // The API gave up waiting for the update and queued the same check (same key, same check id);
  // the update landed anyway and handed its write to nobody. The copy changes nothing, so only
  // the hand-back can bring the check to the read model.
  const { caseNo } = await inObservation();
  expect(await answerDropped(caseNo, 'hc-late', 'key-late')).toBe(true);
  await queuedCopy(caseNo, 'hc-late', 'key-late');
  // At once, not at the case's next wake-up (its next check slot, tens of seconds away here).
  expect((await quiet(caseNo, 8000)).checks).toContain('hc-late');
});

/**
 * Generated orders of what can happen to handed writes. After any of them, one more check
 * through the API (whose answer carries whatever is still owed) leaves the read model equal to
 * the workflow: every check, every event, the row at the workflow's version.
 */
test('whatever happens to the writes handed out, the read model ends equal to the workflow (generated)', async () => {
  type Step = 'api' | 'apiRefused' | 'dropped' | 'queued' | 'retry' | 'queuedThenUpdate' | 'command';
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.constantFrom<Step>('api', 'apiRefused', 'dropped', 'queued', 'retry', 'queuedThenUpdate', 'command'),
        {
          minLength: 1,
          maxLength: 6,
        },
      ),
      async (steps) => {
        const { caseNo, nurse } = await inObservation();
        const keys: { key: string; checkId: string }[] = [];
        for (const [i, step] of steps.entries()) {
          const checkId = `hc-${i}-${step}`;
          if (step === 'api' || step === 'apiRefused') {
            faults.apiWrites = step === 'apiRefused' ? 1 : 0;
            const key = `k-${crypto.randomUUID()}`;
            const res = await check(caseNo, nurse, checkId, key);
            expect(res.status).toBe(200);
            keys.push({ key, checkId });
          } else if (step === 'command') expect((await extend(caseNo)).status).toBe(200);
          else if (step === 'dropped') await answerDropped(caseNo, checkId);
          else if (step === 'queued') await queuedCopy(caseNo, checkId);
          else if (step === 'queuedThenUpdate') {
            // The queued copy lands first; the update that went unanswered lands after it.
            await queuedCopy(caseNo, checkId);
            await answerDropped(caseNo, checkId, `queued-${checkId}`);
          } else if (keys.length) {
            const { key, checkId: previous } = keys[keys.length - 1]!;
            const res = await check(caseNo, nurse, previous, key);
            expect(res.status).toBe(200);
            expect(res.body.result).toMatchObject({ checkId: previous });
          }
        }
        faults.apiWrites = 0;
        const last = await check(caseNo, nurse, 'hc-last');
        expect(last.status).toBe(200);
        const rm = await quiet(caseNo, 20_000);
        const expected = steps
          .map((s, i) => (s === 'retry' || s === 'command' ? undefined : `hc-${i}-${s}`))
          .filter((x): x is string => x !== undefined);
        expect(rm.checks).toEqual([...expected, 'hc-last'].sort());
      },
    ),
    { numRuns: 20 },
  );
});
