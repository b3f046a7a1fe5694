import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

import { tail } from './temporal';

const ROOT = path.resolve(__dirname, '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One of Shaodian's own processes (a worker or an API) in the production layout. */
export interface AppProcess {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  logFile: string;
  /** The API's base URL (APIs only). */
  url?: string;
}

export function spawnApp(
  name: string,
  script: 'src/worker.ts' | 'src/api/server.ts',
  env: Record<string, string>,
  logDir: string,
  /** cwd: another build of Shaodian (a rolling upgrade's old workers); default this checkout. */
  opts: { detached?: boolean; url?: string; cwd?: string } = {},
): AppProcess {
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: opts.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', out, out],
    detached: opts.detached ?? false,
  });
  fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { name, child, exited, logFile, url: opts.url };
}

export const isRunning = (p: AppProcess | undefined): boolean =>
  p !== undefined && p.child.exitCode === null && p.child.signalCode === null;

/** SIGTERM (graceful: a worker drains, an API answers what it holds), SIGKILL after `graceMs`. */
export async function stopApp(p: AppProcess | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000) {
  if (!p || !isRunning(p)) return;
  p.child.kill(signal);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** Until GET /readyz answers (any status below 500: the API is up, whatever its dependencies say). */
export async function waitApiUp(p: AppProcess, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!isRunning(p)) throw new Error(`${p.name} exited:\n${tail(p.logFile)}`);
    try {
      const r = await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (r.status < 500) return;
    } catch {
      // not listening yet
    }
    await sleep(300);
  }
  throw new Error(`${p.name} not up after ${timeoutMs} ms:\n${tail(p.logFile)}`);
}

/** Until GET /readyz says ready (Temporal, the database and a polling worker). */
export async function waitApiReady(p: AppProcess, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (!isRunning(p)) throw new Error(`${p.name} exited:\n${tail(p.logFile)}`);
    try {
      const r = await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(2000) });
      last = await r.text();
      if (r.status === 200) return;
    } catch (err) {
      last = String(err);
    }
    await sleep(500);
  }
  throw new Error(`${p.name} not ready after ${timeoutMs} ms: ${last}`);
}

/**
 * Until every worker process polls the case task queue (its pid is among the workflow pollers'
 * identities, `pid@host`). A cluster is only "ready" when all its workers serve: a worker still
 * bundling its workflows would otherwise leave every first case to the other one.
 */
export async function waitWorkersPolling(
  address: string,
  namespace: string,
  taskQueue: string,
  pids: () => (number | undefined)[],
  timeoutMs = 180_000,
): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const until = Date.now() + timeoutMs;
    let missing: number[] = [];
    while (Date.now() < until) {
      const r = await connection.workflowService
        .describeTaskQueue({
          namespace,
          taskQueue: { name: taskQueue },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        })
        .catch(() => undefined);
      const identities = (r?.pollers ?? []).map((p) => p.identity ?? '');
      const want = pids();
      missing = want.filter(
        (pid): pid is number => pid !== undefined && !identities.some((i) => i.startsWith(`${pid}@`)),
      );
      if (want.every((p) => p !== undefined) && missing.length === 0) return;
      await sleep(500);
    }
    throw new Error(`workers ${missing.join(', ')} not polling ${taskQueue} after ${timeoutMs} ms`);
  } finally {
    await connection.close();
  }
}
