import type { Connection } from '@temporalio/client';

import { createDependencyMonitor } from '../../src/api/dependencies';
import { HttpProblem } from '../../src/api/problem';
import { createLogger } from '../../src/log';

/**
 * The breakers behind /readyz and the fast 503s, driven by a fake cluster and database: what
 * makes each dependency "down", what brings it back, and what a call sees meanwhile.
 */
function world(opts: { beats?: boolean } = {}) {
  const w = {
    temporalUp: true,
    dbUp: true,
    /** The cluster's clock (seconds) of the newest poll on the case task queue. */
    lastPollS: 0,
    backlog: 0,
    backlogAgeS: 0,
    now: 1_000_000,
    probeGapMs: 1000,
    /** Whether a worker answers the unanswered case's query. */
    caseAnswers: false,
    queried: [] as string[],
    /** How long ago a worker beat (ms), undefined: none ever did; 'fails': the read fails. */
    beatAgeMs: undefined as number | undefined | 'fails' | 'hangs',
    beatReads: 0,
    /** The task queue's describe fails (a saturated server). */
    describeFails: false,
  };
  const connection = {
    withDeadline: <T>(_d: number, fn: () => Promise<T>) => fn(),
    workflowService: {
      describeNamespace: async () => {
        if (!w.temporalUp) throw new Error('14 UNAVAILABLE: connect ECONNREFUSED');
        return {};
      },
      queryWorkflow: async (r: { execution: { workflowId: string } }) => {
        w.queried.push(r.execution.workflowId);
        if (!w.caseAnswers) throw new Error('4 DEADLINE_EXCEEDED');
        return {};
      },
      describeTaskQueue: async () => {
        // Probes here are a second apart unless a test says otherwise (see the quick-probe test).
        w.now += w.probeGapMs;
        if (w.describeFails) throw new Error('4 DEADLINE_EXCEEDED: Deadline exceeded');
        return {
          pollers: w.lastPollS ? [{ lastAccessTime: { seconds: w.lastPollS, nanos: 0 } }] : [],
          stats: { approximateBacklogCount: w.backlog, approximateBacklogAge: { seconds: w.backlogAgeS, nanos: 0 } },
        };
      },
    },
  } as unknown as Connection;
  const monitor = createDependencyMonitor({
    connection,
    namespace: 'ns',
    taskQueue: 'q',
    pingDatabase: async () => {
      if (!w.dbUp) throw new Error('connect ECONNREFUSED postgres://user:secret@db/x');
    },
    intervalMs: 1000,
    workerStallMs: 5000,
    ...(opts.beats
      ? {
          workerBeatAgeMs: async () => {
            w.beatReads++;
            if (w.beatAgeMs === 'fails') throw new Error('The database is unavailable');
            if (w.beatAgeMs === 'hangs') return new Promise<undefined>(() => undefined);
            return w.beatAgeMs;
          },
          workerLivenessMs: 3000,
        }
      : {}),
    log: createLogger('silent'),
    now: () => w.now,
  });
  return { w, monitor };
}

test('Temporal and the database: a failed probe opens the breaker, a good one closes it; calls get 503 at once meanwhile', async () => {
  const { w, monitor } = world();
  expect((await monitor.probe()).temporal.up).toBe(true);
  w.temporalUp = false;
  w.dbUp = false;
  const s = await monitor.probe();
  expect(s.temporal).toMatchObject({ up: false });
  expect(s.database).toMatchObject({ up: false });
  // The reason never carries a connection string.
  expect(s.database.reason).not.toMatch(/secret|postgres:\/\//);
  let thrown: unknown;
  try {
    monitor.require('database');
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(HttpProblem);
  expect((thrown as HttpProblem).status).toBe(503);
  expect((thrown as HttpProblem).problem).toMatchObject({ dependency: 'database' });
  expect((thrown as HttpProblem).headers['Retry-After']).toBeDefined();
  w.temporalUp = true;
  w.dbUp = true;
  const back = await monitor.probe();
  expect(back.temporal.up && back.database.up).toBe(true);
  expect(() => monitor.require('temporal')).not.toThrow();
});

test('the worker: down when work waits on its queue, back when the waiting work is taken', async () => {
  const { w, monitor } = world();
  w.lastPollS = 100; // a worker polled at t=100 s (cluster clock), then died
  await monitor.probe();
  expect(monitor.worker.isOpen).toBe(false);
  w.backlog = 3;
  w.backlogAgeS = 9;
  await monitor.probe();
  expect(monitor.worker.isOpen).toBe(true);
  expect(monitor.snapshot().worker.reason).toMatch(/waited 9 s/);
  // Still waiting, and no new poll: still down.
  w.backlogAgeS = 14;
  await monitor.probe();
  expect(monitor.worker.isOpen).toBe(true);
  // The work is taken (only a worker takes it): back, even before we see its next long poll.
  w.backlog = 0;
  w.backlogAgeS = 0;
  await monitor.probe();
  expect(monitor.worker.isOpen).toBe(false);
});

test('a worker that keeps polling but is behind (a wave) is slow, not down: commands are still sent', async () => {
  const { w, monitor } = world();
  w.lastPollS = 100;
  await monitor.probe();
  // Work waits 40 s, but the worker keeps polling: it is working through it.
  w.lastPollS = 101;
  await monitor.probe();
  w.backlog = 800;
  w.backlogAgeS = 40;
  for (const poll of [102, 103, 104]) {
    w.lastPollS = poll;
    await monitor.probe();
    expect(monitor.worker.isOpen).toBe(false);
    // How far behind it is: reports that would wait longer go straight to the queue.
    expect(monitor.workerBehindMs()).toBe(40_000);
  }
  // It stops polling with the work still waiting: now it is down.
  await monitor.probe();
  expect(monitor.worker.isOpen).toBe(true);
  // It polls again, and keeps polling: back.
  w.lastPollS = 110;
  await monitor.probe();
  w.lastPollS = 111;
  await monitor.probe();
  expect(monitor.worker.isOpen).toBe(false);
});

test('a worker that stopped leaves one last poll behind: that alone does not count as a worker behind', async () => {
  const { w, monitor } = world();
  w.lastPollS = 100;
  await monitor.probe();
  w.lastPollS = 101; // its final poll, then nothing
  w.backlog = 5;
  w.backlogAgeS = 9;
  await monitor.probe();
  expect(monitor.worker.isOpen).toBe(true);
  expect(monitor.workerPolling()).toBe(false);
});

test('a slow probe alone does not open a breaker (a busy machine); two in a row, or a refused connection, do', async () => {
  const { w } = world();
  let slow = true;
  const slowMonitor = createDependencyMonitor({
    connection: {
      withDeadline: <T>(_d: number, fn: () => Promise<T>) => fn(),
      workflowService: {
        describeNamespace: async () => {
          if (slow) throw new Error('4 DEADLINE_EXCEEDED: Deadline exceeded after 1.000s');
          return {};
        },
        describeTaskQueue: async () => ({ pollers: [], stats: {} }),
      },
    } as unknown as Connection,
    namespace: 'ns',
    taskQueue: 'q',
    pingDatabase: async () => {
      if (!w.dbUp) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    },
    intervalMs: 1000,
    workerStallMs: 5000,
    log: createLogger('silent'),
  });
  // Readiness says so at once; calls are still let through.
  expect((await slowMonitor.probe()).temporal.up).toBe(false);
  expect(slowMonitor.temporal.isOpen).toBe(false);
  expect((await slowMonitor.probe()).temporal.up).toBe(false);
  expect(slowMonitor.temporal.isOpen).toBe(true);
  slow = false;
  expect((await slowMonitor.probe()).temporal.up).toBe(true);
  w.dbUp = false;
  expect((await slowMonitor.probe()).database.up).toBe(false);
});

test('an update no worker answered marks the worker down until a later poll; a slow probe is not needed on every call', async () => {
  const { w, monitor } = world();
  w.lastPollS = 500;
  await monitor.probe();
  monitor.suspect('worker', 'no worker answered within 1500 ms');
  await monitor.probe();
  expect(monitor.isDown('worker')).toBe(true);
  // A worker that is alive polls again after taking the update: back.
  w.lastPollS = 501;
  w.now += 1000;
  expect(monitor.isDown('worker')).toBe(true); // this call kicks a probe, it does not wait for it
  await monitor.probe();
  expect(monitor.isDown('worker')).toBe(false);
});

/** A worker behind (work waiting 2 s) that polled on three probes in a row: seen polling. */
async function pollingBehind() {
  const { w, monitor } = world();
  w.backlog = 3;
  w.backlogAgeS = 2;
  for (const poll of [100, 101, 102]) {
    w.lastPollS = poll;
    await monitor.probe();
  }
  expect(monitor.workerPolling()).toBe(true);
  return { w, monitor };
}

test('a probe right after another (asked for by a timed-out call) does not break the polling streak', async () => {
  const { w, monitor } = await pollingBehind();
  // A quick second look before the worker's next poll: still polling, still not down.
  w.probeGapMs = 20;
  await monitor.probe();
  expect(monitor.workerPolling()).toBe(true);
  // A probe a full interval later with no new poll: the streak is broken.
  w.probeGapMs = 1000;
  await monitor.probe();
  expect(monitor.workerPolling()).toBe(false);
});

test('a stream of quick probes (one per timed-out call) cannot keep a stopped worker looking alive', async () => {
  const { w, monitor } = await pollingBehind();
  // The worker is killed: no more polls; probes come every 200 ms, each too soon after the last.
  w.probeGapMs = 200;
  for (let i = 0; i < 2; i++) await monitor.probe();
  expect(monitor.workerPolling()).toBe(true); // 400 ms: too soon to say
  for (let i = 0; i < 3; i++) await monitor.probe();
  expect(monitor.workerPolling()).toBe(false); // half an interval without a poll: not polling
});

test('marked down because a case did not answer, back when that case answers a query (a worker whose poll is parked)', async () => {
  const { w, monitor } = world();
  w.lastPollS = 500;
  await monitor.probe();
  monitor.suspect('worker', 'no worker answered within 1500 ms', 'case-QC1');
  await monitor.probe();
  expect(monitor.isDown('worker')).toBe(true);
  expect(w.queried).toContain('case-QC1');
  // The worker's poll stays parked (no newer poll), but the case answers now: back (the query
  // runs beside the probe, not inside it).
  w.caseAnswers = true;
  await monitor.probe();
  await new Promise((r) => setImmediate(r));
  expect(monitor.isDown('worker')).toBe(false);
  // Down for work left waiting, a case's answer is not enough: the waiting work must be taken.
  w.backlog = 4;
  w.backlogAgeS = 9;
  w.probeGapMs = 1000;
  await monitor.probe();
  await monitor.probe();
  expect(monitor.isDown('worker')).toBe(true);
});

describe("the worker's own word (src/worker-liveness.ts)", () => {
  test('a worker that beats is behind, not gone, though it polls too seldom to be seen: commands are still sent', async () => {
    const { w, monitor } = world({ beats: true });
    w.lastPollS = 100; // one poll seen, then none: a worker running flat out on its sticky queue
    w.beatAgeMs = 400;
    await monitor.probe();
    w.backlog = 800;
    w.backlogAgeS = 40;
    for (let i = 0; i < 3; i++) {
      await monitor.probe();
      expect(monitor.worker.isOpen).toBe(false);
      expect(monitor.workerPolling()).toBe(true);
      expect(monitor.workerBehindMs()).toBe(40_000);
    }
    // The same figures without the beat: taken for gone, as before (this is what the beat changes).
    const { w: w2, monitor: m2 } = world();
    w2.lastPollS = 100;
    await m2.probe();
    w2.backlog = 800;
    w2.backlogAgeS = 40;
    await m2.probe();
    expect(m2.worker.isOpen).toBe(true);
  });

  test('a worker whose beats stop (killed) is marked down by its stalled queue; it beats again: back', async () => {
    const { w, monitor } = world({ beats: true });
    w.lastPollS = 100;
    w.beatAgeMs = 400;
    await monitor.probe();
    w.backlog = 5;
    w.backlogAgeS = 9;
    w.beatAgeMs = 3500; // older than the liveness time
    await monitor.probe();
    expect(monitor.worker.isOpen).toBe(true);
    expect(monitor.workerPolling()).toBe(false);
    expect(monitor.snapshot().worker.reason).toMatch(/waited 9 s/);
    // A worker starts and beats: back, before the waiting work is taken.
    w.beatAgeMs = 100;
    await monitor.probe();
    expect(monitor.worker.isOpen).toBe(false);
  });

  test('an update nobody answered does not keep a beating worker marked down', async () => {
    const { w, monitor } = world({ beats: true });
    w.lastPollS = 500;
    w.beatAgeMs = 200;
    await monitor.probe();
    // The commands' rule: suspect only a worker not known to be there.
    expect(monitor.workerPolling()).toBe(true);
    // Marked down on a call's account all the same: the next probe brings it back.
    monitor.suspect('worker', 'no worker answered within 5000 ms', 'case-QC2');
    expect(monitor.worker.isOpen).toBe(true);
    await monitor.probe();
    expect(monitor.worker.isOpen).toBe(false);
  });

  test('no word (no worker ever beat, or the database cannot be read) leaves the task queue to judge alone', async () => {
    for (const age of [undefined, 'fails'] as const) {
      const { w, monitor } = world({ beats: true });
      w.lastPollS = 100;
      w.beatAgeMs = age;
      await monitor.probe();
      w.backlog = 5;
      w.backlogAgeS = 9;
      await monitor.probe();
      expect({ age, open: monitor.worker.isOpen }).toEqual({ age, open: true });
    }
  });

  test('a read of the beat that hangs (a busy pool): one read at a time, the last age read counts, aged by the time since', async () => {
    const { w, monitor } = world({ beats: true });
    w.lastPollS = 100;
    w.beatAgeMs = 400;
    await monitor.probe();
    w.backlog = 5;
    w.backlogAgeS = 9;
    w.beatAgeMs = 'hangs';
    // Each probe waits a second for the read at most; a second passes on the cluster's clock too.
    await monitor.probe(); // 1.4 s
    await monitor.probe(); // 2.4 s
    expect(monitor.worker.isOpen).toBe(false);
    await monitor.probe(); // 3.4 s: older than the liveness time
    expect(monitor.worker.isOpen).toBe(true);
    // The hanging read was not doubled: one before it, itself.
    expect(w.beatReads).toBe(2);
  }, 15_000);

  test("a saturated cluster that cannot describe the queue: the worker's beat still says it is there", async () => {
    const { w, monitor } = world({ beats: true });
    w.lastPollS = 100;
    w.beatAgeMs = 300;
    await monitor.probe();
    monitor.suspect('worker', 'no worker answered within 5000 ms');
    w.describeFails = true;
    await monitor.probe();
    expect(monitor.worker.isOpen).toBe(false);
    expect(monitor.workerPolling()).toBe(true);
    // Without a beat, a failed describe says nothing new: a breaker opened stays open.
    w.beatAgeMs = 5000;
    monitor.suspect('worker', 'no worker answered within 5000 ms');
    await monitor.probe();
    expect(monitor.worker.isOpen).toBe(true);
  });
});
