import fs from 'node:fs';
import path from 'node:path';

import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';

import { REPLAY_SINKS, WORKFLOW_BUNDLE } from '../src/worker';
import { testCodec } from '../test/support/temporal';

/**
 * The workflow code's own CPU, with no server in the way: replays recorded histories
 * (test/histories/<prefix>*) `reps` times each, three rounds, and prints wall and CPU time (every
 * thread of this process: the workflow sandbox, the SDK's core, the codec). The bench's
 * throughput swings with the box; this does not, so it compares two versions of a workflow, or of
 * the SDK's sandbox, on the same story.
 *
 *   node --import tsx bench/replay-probe.ts [reps=20] [prefix=v3-]
 */
async function main(): Promise<void> {
  process.env.SHAODIAN_WORKFLOW_STACK_TRACES = 'off';
  Runtime.install({ logger: new DefaultLogger('WARN') });
  // Bundled once, outside the rounds: only the replay is timed.
  const { workflowsPath, bundlerOptions } = WORKFLOW_BUNDLE;
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath,
    ...bundlerOptions,
    logger: new DefaultLogger('WARN'),
  });
  const reps = Number(process.argv[2] ?? 20);
  const prefix = process.argv[3] ?? 'v3-';
  const dir = path.resolve(__dirname, '..', 'test', 'histories');
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.history.pb'));
  if (!files.length) throw new Error(`no history in ${dir} starts with ${prefix}`);
  const decoded = files.map((f) => ({
    name: path.basename(f, '.history.pb'),
    history: temporal.api.history.v1.History.decode(fs.readFileSync(path.join(dir, f))),
  }));
  const histories = Array.from({ length: reps }, (_, r) =>
    decoded.map(({ name, history }) => ({ workflowId: `${name}-${r}`, history })),
  ).flat();
  const events = histories.reduce((a, h) => a + (h.history.events?.length ?? 0), 0);
  for (let round = 0; round < 3; round++) {
    const cpu0 = process.cpuUsage();
    const t0 = Date.now();
    let n = 0;
    let errors = 0;
    for await (const r of Worker.runReplayHistories(
      {
        workflowBundle,
        sinks: REPLAY_SINKS,
        dataConverter: { payloadCodecs: [testCodec()] },
        replayName: 'replay-probe',
      },
      histories,
    )) {
      n++;
      if (r.error) errors++;
    }
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(
      `round ${round}: ${n} histories, ${events} events, ${errors} errors; wall ${Date.now() - t0} ms, CPU ${cpuMs.toFixed(0)} ms (${((cpuMs * 1000) / events).toFixed(0)} µs an event)`,
    );
    if (errors) process.exitCode = 1;
  }
}

void main();
