/**
 * The drill's worker in a process of its own (`npm run drill -- --worker-process`, the default
 * with Postgres): exactly what `npm run worker` brings up, configured by the environment the
 * drill gives it, with the SDK's metrics on DRILL_WORKER_METRICS_PORT (the drill reads its
 * workflow-task latencies there). The drill's own process then carries the API and the actors
 * only, so the two Node main threads share the two cores instead of one thread carrying all.
 *
 * Over IPC it reports when it is up and stops on request (or when the drill goes away),
 * draining like Ctrl-C would.
 */
import { DefaultLogger, Runtime as SdkRuntime } from '@temporalio/worker';

import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { startRuntime, type Runtime } from '../src/runtime';

async function main(): Promise<void> {
  let runtime: Runtime | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await runtime?.stop();
    process.exit(0);
  };
  process.on('disconnect', () => void stop());
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'stop') void stop();
  });
  try {
    const port = process.env.DRILL_WORKER_METRICS_PORT;
    SdkRuntime.install({
      logger: new DefaultLogger('WARN'),
      shutdownSignals: [],
      ...(port ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } } } } : {}),
    });
    const config = loadConfig();
    runtime = await startRuntime(
      config,
      { worker: true, api: false, devServer: false },
      createLogger(config.LOG_LEVEL),
    );
  } catch (err) {
    process.send?.({ type: 'failed', error: (err as Error).stack ?? String(err) });
    process.exit(1);
  }
  process.send?.({ type: 'ready', pid: process.pid });
}

void main();
