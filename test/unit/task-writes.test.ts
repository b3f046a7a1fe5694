/**
 * The worker's end of the read model written in the workflow task (src/activities/task-writes.ts):
 * a write made is silent; a write not made (failed, refused, too slow) is reported to its case with
 * the task's fence before the sink returns, which is before the task can complete; a database that
 * keeps failing is not tried on every write; a report Temporal does not take is tried again for
 * longer than a task may run.
 */
import type { WorkflowInfo } from '@temporalio/workflow';

import type { RecordCaseInput } from '../../src/activities/types';
import {
  taskWriteSinks,
  TASK_WRITE_COOLDOWN_MS,
  TASK_WRITE_DEADLINE_MS,
  TASK_WRITE_FAILURES_AWAY,
} from '../../src/activities/task-writes';
import { createLogger } from '../../src/log';

const info = { workflowId: 'case-QC1', runId: 'run-1', taskTimeoutMs: 10_000 } as WorkflowInfo;
const batch = (version: number) => ({ row: { caseNo: 'QC1', stateVersion: version } }) as unknown as RecordCaseInput;

function world(opts: { write?: () => Promise<void>; reportFails?: number } = {}) {
  let t = 1_000_000;
  const reports: { workflowId: string; runId: string; input: { version: number; fence: number } }[] = [];
  const sleeps: number[] = [];
  let writes = 0;
  let reportFailures = opts.reportFails ?? 0;
  const sinks = taskWriteSinks({
    write: async () => {
      writes++;
      await (opts.write ?? (async () => undefined))();
    },
    report: async (workflowId, runId, input) => {
      if (reportFailures-- > 0) throw new Error('Temporal away');
      reports.push({ workflowId, runId, input });
    },
    log: createLogger('silent'),
    now: () => t,
    sleep: async (ms) => void sleeps.push(ms),
  });
  const write = (version: number, fence: number) => sinks.readModel.write.fn(info, batch(version), fence);
  return {
    write,
    reports,
    sleeps,
    get writes() {
      return writes;
    },
    advance: (ms: number) => void (t += ms),
    sinks,
  };
}

test("a write made in the task is marked so (the database tells it from the case's write by activity)", async () => {
  const seen: RecordCaseInput[] = [];
  const sinks = taskWriteSinks({
    write: async (b) => void seen.push(b),
    report: async () => undefined,
    log: createLogger('silent'),
  });
  await sinks.readModel.write.fn(info, batch(3), 17);
  expect(seen.map((b) => [b.row.stateVersion, b.inTask])).toEqual([[3, true]]);
});

test('a write made: nothing reported; never called while a history is replayed', async () => {
  const w = world();
  await w.write(3, 17);
  expect(w.writes).toBe(1);
  expect(w.reports).toEqual([]);
  expect(w.sinks.readModel.write.callDuringReplay).toBe(false);
});

test('a write that fails is reported to its run with the version and the fence, before the sink returns', async () => {
  const w = world({ write: () => Promise.reject(new Error('read model write failed: connection refused')) });
  await w.write(5, 42);
  expect(w.reports).toEqual([{ workflowId: 'case-QC1', runId: 'run-1', input: { version: 5, fence: 42 } }]);
});

test('a write slower than its deadline is reported as not made', async () => {
  const w = world({ write: () => new Promise((r) => setTimeout(r, TASK_WRITE_DEADLINE_MS + 500)) });
  await w.write(6, 50);
  expect(w.reports.map((r) => r.input)).toEqual([{ version: 6, fence: 50 }]);
});

test('after failures in a row, writes are refused at once (and reported) until the cool-down has passed since the last real failure', async () => {
  const w = world({ write: () => Promise.reject(new Error('down')) });
  for (let i = 0; i < TASK_WRITE_FAILURES_AWAY; i++) await w.write(i, 100 + i);
  expect(w.writes).toBe(TASK_WRITE_FAILURES_AWAY);
  // Refused without trying, however many come, and the refusals do not extend the cool-down.
  w.advance(TASK_WRITE_COOLDOWN_MS / 2);
  await w.write(10, 200);
  w.advance(TASK_WRITE_COOLDOWN_MS / 2 - 1);
  await w.write(11, 201);
  expect(w.writes).toBe(TASK_WRITE_FAILURES_AWAY);
  expect(w.reports).toHaveLength(TASK_WRITE_FAILURES_AWAY + 2);
  // The cool-down over: tried again.
  w.advance(1);
  await w.write(12, 202);
  expect(w.writes).toBe(TASK_WRITE_FAILURES_AWAY + 1);
});

test('writes that wait out their deadline behind others (a busy box) do not make the worker refuse writes', async () => {
  const w = world({ write: () => Promise.reject(new Error('read model write not made in 2000 ms')) });
  for (let i = 0; i < TASK_WRITE_FAILURES_AWAY + 2; i++) await w.write(i, i);
  // Each reported, and each tried: none refused at once.
  expect(w.writes).toBe(TASK_WRITE_FAILURES_AWAY + 2);
  expect(w.reports).toHaveLength(TASK_WRITE_FAILURES_AWAY + 2);
});

test('a success ends the run of failures', async () => {
  let fail = true;
  const w = world({ write: () => (fail ? Promise.reject(new Error('down')) : Promise.resolve()) });
  for (let i = 0; i < TASK_WRITE_FAILURES_AWAY - 1; i++) await w.write(i, i);
  fail = false;
  await w.write(9, 9);
  fail = true;
  for (let i = 0; i < TASK_WRITE_FAILURES_AWAY - 1; i++) await w.write(20 + i, 20 + i);
  // Never three in a row: every write was tried.
  expect(w.writes).toBe(2 * (TASK_WRITE_FAILURES_AWAY - 1) + 1);
});

test('a report Temporal does not take is tried again, for longer than a workflow task may run', async () => {
  const w = world({ write: () => Promise.reject(new Error('down')), reportFails: 3 });
  await w.write(7, 70);
  expect(w.reports.map((r) => r.input)).toEqual([{ version: 7, fence: 70 }]);
  expect(w.sleeps).toHaveLength(3);
  const never = world({ write: () => Promise.reject(new Error('down')), reportFails: 1000 });
  await never.write(8, 80);
  expect(never.reports).toEqual([]);
  // The task's completion cannot be taken either after 10 s (its timeout): its retry writes again.
  expect(never.sleeps.reduce((a, b) => a + b, 0)).toBeGreaterThan(10_000);
});

/** A sink whose writes finish when the test says, recording when each starts and ends. */
function heldWrites() {
  const log: string[] = [];
  const held = new Map<string, () => void>();
  const sinks = taskWriteSinks({
    write: (b) =>
      new Promise<void>((resolve) => {
        const name = `${b.row.caseNo}@${b.row.stateVersion}`;
        log.push(`start ${name}`);
        held.set(name, () => {
          log.push(`end ${name}`);
          resolve();
        });
      }),
    report: async () => undefined,
    log: createLogger('silent'),
  });
  const call = (runId: string, caseNo: string, version: number, fence: number) =>
    sinks.readModel.write.fn(
      { ...info, workflowId: `case-${caseNo}`, runId },
      { row: { caseNo, stateVersion: version } } as unknown as RecordCaseInput,
      fence,
    );
  const finish = async (name: string) => {
    // The write is started on a later turn when it waited behind another.
    for (let i = 0; i < 20 && !held.has(name); i++) await new Promise((r) => setImmediate(r));
    held.get(name)!();
    held.delete(name);
  };
  return { log, call, finish };
}

test("two writes of one task (the SDK calls them side by side) are made in the case's order, the second after the first has landed", async () => {
  // The first write of a worker that took the case up afresh is a repair, which the database lets
  // replace a write of the same task: landing second, it would put the row back a version.
  const w = heldWrites();
  const first = w.call('run-1', 'QC1', 6, 40);
  const second = w.call('run-1', 'QC1', 7, 40);
  await new Promise((r) => setImmediate(r));
  expect(w.log).toEqual(['start QC1@6']);
  await w.finish('QC1@6');
  await w.finish('QC1@7');
  await Promise.all([first, second]);
  expect(w.log).toEqual(['start QC1@6', 'end QC1@6', 'start QC1@7', 'end QC1@7']);
});

test("other cases' writes do not wait for each other", async () => {
  const w = heldWrites();
  const a = w.call('run-a', 'QA1', 3, 10);
  const b = w.call('run-b', 'QB1', 5, 12);
  await new Promise((r) => setImmediate(r));
  expect(w.log).toEqual(['start QA1@3', 'start QB1@5']);
  await w.finish('QB1@5');
  await w.finish('QA1@3');
  await Promise.all([a, b]);
});

test('a write that waited out its deadline behind the one before it is reported and never made', async () => {
  const reports: number[] = [];
  const made: number[] = [];
  let release!: () => void;
  const sinks = taskWriteSinks({
    write: (b) => {
      made.push(b.row.stateVersion!);
      return b.row.stateVersion === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
    },
    report: async (_w, _r, input) => void reports.push(input.version),
    log: createLogger('silent'),
  });
  const call = (version: number) => sinks.readModel.write.fn(info, batch(version), 9);
  const first = call(1);
  const second = call(2);
  // Both out of time: the first still running, the second never started.
  await Promise.all([first, second]);
  expect(reports.sort()).toEqual([1, 2]);
  release();
  await new Promise((r) => setTimeout(r, 10));
  expect(made).toEqual([1]);
}, 10_000);

test("a write whose time ran out while the one before it was made (that one's timer fired first) is not started, and the writer is given only the time left", async () => {
  let clock = 0;
  const given: number[] = [];
  const reports: number[] = [];
  const sinks = taskWriteSinks({
    write: async (b, timeoutMs) => {
      given.push(timeoutMs);
      if (b.row.stateVersion === 1) {
        // The writer gives up on it at its own deadline, a moment before the second's timer.
        await new Promise((r) => setImmediate(r));
        clock += TASK_WRITE_DEADLINE_MS;
        throw new Error(`read model write not made in ${TASK_WRITE_DEADLINE_MS} ms`);
      }
    },
    report: async (_w, _r, input) => void reports.push(input.version),
    log: createLogger('silent'),
    now: () => clock,
  });
  await Promise.all([sinks.readModel.write.fn(info, batch(1), 5), sinks.readModel.write.fn(info, batch(2), 5)]);
  expect(given).toEqual([TASK_WRITE_DEADLINE_MS]);
  expect(reports.sort()).toEqual([1, 2]);
  // A write behind a quicker one gets what is left of its own 2 s.
  clock = 0;
  given.length = 0;
  const slow = taskWriteSinks({
    write: async (b, timeoutMs) => {
      given.push(timeoutMs);
      if (b.row.stateVersion === 3) {
        await new Promise((r) => setImmediate(r));
        clock += 500;
      }
    },
    report: async () => undefined,
    log: createLogger('silent'),
    now: () => clock,
  });
  await Promise.all([slow.readModel.write.fn(info, batch(3), 6), slow.readModel.write.fn(info, batch(4), 6)]);
  expect(given).toEqual([TASK_WRITE_DEADLINE_MS, TASK_WRITE_DEADLINE_MS - 500]);
});
