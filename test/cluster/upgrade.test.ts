import path from 'node:path';

import { isRunning, spawnApp, stopApp, type AppProcess } from '../../src/cluster/processes';
import { checkoutBuild } from '../support/old-build';
import { startCluster, waitFor, type ClusterHarness } from './harness';

/**
 * A rolling upgrade on the real cluster, the way an operator does it while people are inside:
 * workers of the previous build run the cases; workers of this build start beside them; the old
 * ones are stopped (SIGTERM: they drain); the cases go on to release on the new build.
 * The APIs start caseWorkflowV2 meanwhile (CASE_WORKFLOW_TYPE, docs/OPERATIONS.md): the old build
 * has no caseWorkflowV3, and a case of a type its workers do not know would fail its tasks there.
 *
 * The previous build is the commit before the room waiting list, a workflow change made behind
 * `patched('room-waiting-list')`: the new workers replay histories written without the marker.
 * Must hold: no workflow task fails (a non-determinism error would fail every task of the case
 * for ever), none is stuck, every case is released, the new build served the cases after the
 * old one, and a case started after the upgrade runs the new code (the marker is recorded).
 */
/** The commit before the room waiting list (ccd58c5). */
const OLD_BUILD = 'b6107d74f051800db500f74b03d3d3710d083bbb';
const DAY_S = 4;
jest.setTimeout(30 * 60_000);

// Same dependencies (package.json unchanged since): the old build runs on this node_modules.
const oldBuild = (dir: string): string => checkoutBuild(OLD_BUILD, path.join(dir, 'old-build'));

describe('a rolling upgrade while cases run', () => {
  let h: ClusterHarness;
  const workers: AppProcess[] = [];
  beforeAll(async () => {
    h = await startCluster({
      workers: 0,
      ui: false,
      dayS: DAY_S,
      restartDelayMs: 1000,
      // As docs/OPERATIONS.md says for an upgrade from a build without any of them.
      env: { CASE_WORKFLOW_TYPE: 'caseWorkflowV2', API_ANSWER_WRITES: 'false', API_SCOPED_CHECKS: 'false' },
    });
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => stopApp(w, 'SIGKILL')));
    await h?.stop();
  });

  const startWorker = (name: string, cwd?: string) => {
    const w = spawnApp(
      name,
      'src/worker.ts',
      { ...h.appEnv, DATA_DIR: path.join(h.dir, name) },
      path.join(h.dir, 'logs'),
      {
        cwd,
      },
    );
    workers.push(w);
    return w;
  };

  async function histories(caseNos: string[]) {
    return Promise.all(
      caseNos.map(async (c) => {
        const handle = h.temporal.workflow.getHandle(await h.workflowId(c));
        return { caseNo: c, handle, history: await handle.fetchHistory() };
      }),
    );
  }

  test('old workers run the cases, new workers take over, the old drain: no task fails, every case released', async () => {
    const old = oldBuild(h.dir);
    const olds = [startWorker('old-worker-1', old), startWorker('old-worker-2', old)];
    // /readyz says ready once a worker polls the task queue.
    await waitFor(
      'the old workers polling',
      async () => ((await fetch(`${h.apis[0]}/readyz`)).status === 200 ? true : undefined),
      120_000,
    );
    const caseNos = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => h.transfer(500 + i, i % 2)));
    await Promise.all(caseNos.map((c) => h.arrive(c)));
    const answered = new Map<string, string>();
    // Mid-stay: every case has had a result applied under the old build.
    await waitFor(
      'a result on every case under the old build',
      async () => {
        await h.answerSamples(caseNos, answered);
        const views = await Promise.all(caseNos.map((c) => h.view(c)));
        return views.every((v) => v?.samples.some((s) => s.result === 'negative')) ? true : undefined;
      },
      120_000,
      1000,
    );

    // The upgrade: new workers join, then the old ones are stopped and drain.
    const news = [startWorker('new-worker-1'), startWorker('new-worker-2')];
    await new Promise((r) => setTimeout(r, 3000));
    for (const w of olds) await stopApp(w, 'SIGTERM');
    expect(olds.every((w) => !isRunning(w))).toBe(true);

    // A case filed after the upgrade runs this build's code.
    const fresh = await h.transfer(599, 0);
    await h.arrive(fresh);
    const all = [...caseNos, fresh];

    await waitFor(
      'every case released on the new build',
      async () => {
        await h.answerSamples(all, answered);
        const views = await Promise.all(all.map((c) => h.view(c)));
        return views.every((v) => v?.phase === 'RELEASED') ? true : undefined;
      },
      (16 * DAY_S + 180) * 1000,
      1000,
    );

    const oldPids = olds.map((w) => `${w.child.pid}@`);
    const newPids = news.map((w) => `${w.child.pid}@`);
    for (const { caseNo, handle, history } of await histories(all)) {
      const events = history.events ?? [];
      // No workflow task failed: a non-determinism error on replay would show here.
      const failed = events.filter((e) => e.workflowTaskFailedEventAttributes);
      expect({ caseNo, failed: failed.map((e) => e.workflowTaskFailedEventAttributes?.failure?.message) }).toEqual({
        caseNo,
        failed: [],
      });
      // Nothing stuck: no workflow task waiting on a retry.
      const desc = await handle.describe();
      expect(desc.raw.pendingWorkflowTask?.attempt ?? 1).toBeLessThanOrEqual(1);
      const by = events
        .map((e) => e.workflowTaskCompletedEventAttributes?.identity)
        .filter((x): x is string => typeof x === 'string');
      // The case workflow has one patch (ROOM_QUEUE_PATCH): a patch marker is that one.
      const marker = events.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
      if (caseNo === fresh) {
        expect(by.every((id) => newPids.some((p) => id.startsWith(p)))).toBe(true);
        expect(marker).toBe(true);
      } else {
        // Served by the old build first, then by the new one.
        expect(by.some((id) => oldPids.some((p) => id.startsWith(p)))).toBe(true);
        expect(by.some((id) => newPids.some((p) => id.startsWith(p)))).toBe(true);
        expect(marker).toBe(false);
      }
    }
  });
});
