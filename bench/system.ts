/**
 * The system under test, as a process of its own, started through startRuntime and configured
 * by the environment the bench gives it. BENCH_SYSTEM_PARTS says which parts it runs:
 *
 * - `all`: everything in one process, exactly what `npm start` brings up (the bench's default);
 * - `api` (with the Temporal dev server) and `worker`: the production topology (docker-compose:
 *   an API process and a worker process), two children of the bench with `--apart`.
 *
 * Over IPC it reports when it is up, its memory (after a full GC), and stops on request,
 * draining the worker like Ctrl-C would.
 */
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { startRuntime, type Runtime } from '../src/runtime';
import { memoryNow, profileHandlers, serveIpc } from './lib';

const PARTS = {
  all: { worker: true, api: true, devServer: true },
  api: { worker: false, api: true, devServer: true },
  worker: { worker: true, api: false, devServer: false },
} as const;

async function main(): Promise<void> {
  let runtime: Runtime | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await runtime?.stop();
    process.exit(0);
  };
  // The bench went away (crash, Ctrl-C): do not leave a dev server and a worker behind.
  process.on('disconnect', () => void stop());
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  const parts = (process.env.BENCH_SYSTEM_PARTS ?? 'all') as keyof typeof PARTS;
  try {
    if (!(parts in PARTS)) throw new Error(`BENCH_SYSTEM_PARTS: unknown parts ${parts} (all, api or worker)`);
    const config = loadConfig();
    runtime = await startRuntime(config, PARTS[parts], createLogger(config.LOG_LEVEL));
  } catch (err) {
    process.send?.({ type: 'failed', error: (err as Error).message });
    process.exit(1);
  }
  serveIpc({ memory: async () => memoryNow(), ...profileHandlers() });
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'stop') void stop();
  });
  process.send?.({
    type: 'ready',
    apiUrl: runtime.apiUrl,
    temporalAddress: runtime.temporalAddress,
    pid: process.pid,
  });
}

void main();
