import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { Connection } from '@temporalio/client';

import { pidAlive } from '../process-alive';
import type { Logger } from '../log';
import { devServerSearchAttributeArgs, searchAttributeKeys } from './search-attributes';

export interface DevServerOptions {
  cliPath: string;
  dataDir: string;
  namespace: string;
  port: number;
  uiPort: number;
  headless: boolean;
  log: Logger;
  ip?: string;
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  dbFile: string;
  stop(): Promise<void>;
}

/**
 * Runs `temporal server start-dev` as a child process, persisted to a SQLite file under
 * DATA_DIR in WAL mode, with our namespace and search attributes registered. If an
 * earlier run was killed (SIGKILL leaves the child orphaned, holding the port and the
 * database), the pid file lets us stop that server before starting ours. The child runs in
 * its own process group so that Ctrl-C reaches us first and we stop it after the worker drains.
 */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const ip = opts.ip ?? '127.0.0.1';
  const dbFile = path.join(opts.dataDir, 'temporal.sqlite');
  const pidFile = path.join(opts.dataDir, 'temporal-dev.pid');
  const logFile = path.join(opts.dataDir, 'temporal-dev.log');
  await stopOrphan(pidFile, opts.log);

  const args = [
    'server',
    'start-dev',
    '--db-filename',
    dbFile,
    '--sqlite-pragma',
    'journal_mode=wal',
    '--sqlite-pragma',
    'synchronous=normal',
    '--namespace',
    opts.namespace,
    '--ip',
    ip,
    '--port',
    String(opts.port),
    '--ui-port',
    String(opts.uiPort),
    '--log-level',
    'warn',
    // Eager activities: an activity a workflow task schedules on this worker's own queue is handed
    // back in the task's completion instead of going through matching. Most of ours are the
    // read-model write right after a message; a 100-person drill at a 5 s day took twice the
    // health checks with it (docs/PERFORMANCE.md). The same setting is in the cluster's config.
    '--dynamic-config-value',
    'system.enableActivityEagerExecution=true',
    ...devServerSearchAttributeArgs(),
    ...(opts.headless ? ['--headless'] : []),
  ];
  const out = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn(opts.cliPath, args, { stdio: ['ignore', out, out], detached: true });
  fs.closeSync(out);
  if (child.pid) fs.writeFileSync(pidFile, String(child.pid));
  let exited: number | null = null;
  const exitedPromise = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exited = code ?? -1;
      resolve();
    }),
  );

  const address = `${ip}:${opts.port}`;
  try {
    await waitReady(address, opts.namespace, () => exited, 120_000);
  } catch (err) {
    child.kill('SIGKILL');
    const tail = readTail(logFile);
    throw new Error(`Temporal dev server did not start: ${(err as Error).message}\n--- ${logFile} ---\n${tail}`);
  }
  opts.log.info('temporal dev server ready', { address, db: dbFile, pid: child.pid });

  return {
    address,
    uiUrl: opts.headless ? undefined : `http://${ip === '0.0.0.0' ? '127.0.0.1' : ip}:${opts.uiPort}`,
    dbFile,
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exitedPromise;
        clearTimeout(timer);
      }
      fs.rmSync(pidFile, { force: true });
    },
  };
}

/**
 * The fallback for a machine with internet and no CLI: the SDK downloads (and caches) its own
 * CLI and runs the dev server itself, with the same database file, namespace, ports and
 * search attributes. `executable` is the SDK's option; tests pass an existing path.
 */
export async function startSdkDevServer(
  opts: Omit<DevServerOptions, 'cliPath'> & {
    executable?: { type: 'cached-download' } | { type: 'existing-path'; path: string };
  },
): Promise<DevServer> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const ip = opts.ip ?? '127.0.0.1';
  const dbFile = path.join(opts.dataDir, 'temporal.sqlite');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: opts.executable ?? { type: 'cached-download' },
      dbFilename: dbFile,
      namespace: opts.namespace,
      ip,
      port: opts.port,
      ui: !opts.headless,
      ...(opts.headless ? {} : { uiPort: opts.uiPort }),
      searchAttributes: searchAttributeKeys,
      extraArgs: ['--sqlite-pragma', 'journal_mode=wal'],
    },
  });
  const address = `${ip}:${opts.port}`;
  opts.log.info('temporal dev server ready (run by the SDK)', { address, db: dbFile });
  return {
    address,
    uiUrl: opts.headless ? undefined : `http://${ip === '0.0.0.0' ? '127.0.0.1' : ip}:${opts.uiPort}`,
    dbFile,
    stop: () => env.teardown(),
  };
}

async function waitReady(address: string, namespace: string, exited: () => number | null, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const code = exited();
    if (code !== null) throw new Error(`process exited with code ${code}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await conn.workflowService.describeNamespace({ namespace });
        const sa = await conn.operatorService.listSearchAttributes({ namespace });
        const missing = searchAttributeKeys.filter((k) => !(k.name in (sa.customAttributes ?? {})));
        if (missing.length === 0) return;
        lastError = new Error(`search attributes not yet registered: ${missing.map((k) => k.name).join(', ')}`);
      } finally {
        await conn.close();
      }
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`not ready after ${timeoutMs} ms: ${(lastError as Error | undefined)?.message ?? 'unknown'}`);
}

async function stopOrphan(pidFile: string, log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid) || !isTemporal(pid)) {
    fs.rmSync(pidFile, { force: true });
    return;
  }
  log.warn('stopping a Temporal dev server left by an earlier run', { pid });
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  fs.rmSync(pidFile, { force: true });
}

function isTemporal(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('start-dev');
  } catch {
    return true; // no /proc: trust the pid file
  }
}

function readTail(file: string): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-4000);
  } catch {
    return '(no log)';
  }
}
