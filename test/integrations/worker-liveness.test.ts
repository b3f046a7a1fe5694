import { eq, sql } from 'drizzle-orm';

import { workerLiveness } from '../../src/db/schema';
import { createLogger } from '../../src/log';
import { freshestBeatAgeMs, startWorkerLivenessBeat, type PollerStatus } from '../../src/worker-liveness';
import { createTestDatabase, type TestDatabase } from '../support/db';

/**
 * A worker's beat in the real database, as the API reads it: moved while the worker's workflow
 * poller polls and Temporal answers it, left to go stale otherwise (or when the process is
 * killed), removed when the worker stops; aged by the database's clock, per namespace and task
 * queue. Beats are made by hand here (the loop's interval is a minute), so nothing hangs on timers.
 */
let db: TestDatabase;
const log = createLogger('silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const POLLING: PollerStatus = { runState: 'RUNNING', workflowPollerState: 'POLLING' };
const answers = async () => undefined;

beforeAll(async () => {
  db = await createTestDatabase('liveness');
});
afterAll(async () => {
  await db?.drop();
});

function beatFor(taskQueue: string, status: () => PollerStatus | undefined, temporalAnswers = answers) {
  return startWorkerLivenessBeat({
    db: db.db,
    namespace: 'ns',
    taskQueue,
    status,
    temporalAnswers,
    intervalMs: 60_000,
    log,
  });
}

test('no worker ever beat: no word', async () => {
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-none')).toBeUndefined();
});

test('a polling worker that Temporal answers beats; otherwise its row ages; a stopped worker leaves no row', async () => {
  let status: PollerStatus | undefined = POLLING;
  let cutOff = false;
  const beat = beatFor(
    'q-a',
    () => status,
    async () => {
      if (cutOff) throw new Error('14 UNAVAILABLE: connect ECONNREFUSED');
    },
  );
  await beat.beat();
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-a')).toBeLessThan(500);
  // Another queue's worker, or the same queue in another namespace, says nothing about this one.
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-b')).toBeUndefined();
  expect(await freshestBeatAgeMs(db.db, 'other-ns', 'q-a')).toBeUndefined();

  // Each way a worker is not there: no beat is made, the row ages.
  for (const [what, set] of [
    ['its poller failed', () => (status = { runState: 'RUNNING', workflowPollerState: 'FAILED' })],
    ['draining', () => (status = { runState: 'STOPPING', workflowPollerState: 'POLLING' })],
    ['no worker in the process (reconnecting)', () => (status = undefined)],
    ['cut off from Temporal (its poller still "polling", retrying for ever)', () => (cutOff = true)],
  ] as const) {
    const before = (await freshestBeatAgeMs(db.db, 'ns', 'q-a'))!;
    set();
    await sleep(600);
    await beat.beat();
    const after = (await freshestBeatAgeMs(db.db, 'ns', 'q-a'))!;
    expect({ what, aged: after - before >= 500 }).toEqual({ what, aged: true });
    status = POLLING;
    cutOff = false;
    await beat.beat();
    expect({ what, fresh: (await freshestBeatAgeMs(db.db, 'ns', 'q-a'))! < 500 }).toEqual({ what, fresh: true });
  }

  await beat.stop();
  expect(await db.db.select().from(workerLiveness).where(eq(workerLiveness.workerId, beat.workerId))).toEqual([]);
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-a')).toBeUndefined();
  // Stopped is stopped: a late beat writes nothing.
  await beat.beat();
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-a')).toBeUndefined();
});

test('several workers on one queue: the freshest beat counts; a killed one leaves a stale row, forgotten after an hour', async () => {
  const killed = beatFor('q-k', () => POLLING);
  await killed.beat();
  const age = (id: string, s: number) =>
    db.db
      .update(workerLiveness)
      .set({ seenAt: sql`now() - make_interval(secs => ${s})` })
      .where(eq(workerLiveness.workerId, id));
  // Killed two hours ago: its row stays, and ages.
  await age(killed.workerId, 7200);
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-k')).toBeGreaterThan(7_000_000);
  const slow = beatFor('q-k', () => POLLING);
  await slow.beat();
  await age(slow.workerId, 10);
  // The freshest is 10 s old: not the oldest (two hours), not the newest if it were the only one.
  const tenS = (await freshestBeatAgeMs(db.db, 'ns', 'q-k'))!;
  expect(tenS).toBeGreaterThanOrEqual(10_000);
  expect(tenS).toBeLessThan(12_000);
  const other = beatFor('q-k', () => POLLING);
  await other.beat();
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-k')).toBeLessThan(1000);
  // The new worker's first beat also forgot the row not seen for an hour, and only that one.
  const rows = await db.db
    .select({ id: workerLiveness.workerId })
    .from(workerLiveness)
    .where(eq(workerLiveness.taskQueue, 'q-k'));
  expect(rows.map((r) => r.id).sort()).toEqual([other.workerId, slow.workerId].sort());
  for (const b of [other, slow, killed]) await b.stop();
});

test("a beat dated ahead of the database's clock (a clock stepped back) is no word, not a fresh beat", async () => {
  const b = beatFor('q-c', () => POLLING);
  await b.beat();
  await db.db
    .update(workerLiveness)
    .set({ seenAt: sql`now() + interval '1 minute'` })
    .where(eq(workerLiveness.workerId, b.workerId));
  expect(await freshestBeatAgeMs(db.db, 'ns', 'q-c')).toBeUndefined();
  await b.stop();
});
