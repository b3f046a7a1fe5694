/**
 * The system under test, as its own process: exactly what `npm start` brings up (dev server,
 * database, worker, API) through startRuntime, configured by the environment the bench
 * gives it. Over IPC it reports when it is up, its memory (after a full GC), and stops on
 * request, draining the worker like Ctrl-C would.
 */
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { startRuntime, type Runtime } from '../src/runtime';
import { memoryNow, serveIpc } from './lib';

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
  try {
    const config = loadConfig();
    runtime = await startRuntime(config, { worker: true, api: true, devServer: true }, createLogger(config.LOG_LEVEL));
  } catch (err) {
    process.send?.({ type: 'failed', error: (err as Error).message });
    process.exit(1);
  }
  serveIpc({ memory: async () => memoryNow() });
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
