import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';

import { pidAlive } from '../process-alive';
import { searchAttributeKeys } from '../temporal/search-attributes';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The Temporal server's services, each its own process, in the order they start. */
export const SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
export type Service = (typeof SERVICES)[number];

/** deploy/temporal: the server's config (config/shaodian.yaml) and dynamic config, shared with docker-compose.yml. */
export const DEPLOY_DIR = path.resolve(__dirname, '..', '..', 'deploy', 'temporal');

export interface ClusterDatabase {
  host: string;
  port: number;
  user: string;
  password?: string;
  /** The default store (histories, shards, task queues). */
  name: string;
  /** The visibility store (list and count queries, search attributes). */
  visibilityName: string;
}

export interface ServicePorts {
  grpc: number;
  membership: number;
  /** Prometheus metrics of that process. */
  metrics: number;
}

export interface ClusterOptions {
  serverBin: string;
  sqlToolBin: string;
  /** Logs and the pid file of this cluster's processes. */
  dataDir: string;
  db: ClusterDatabase;
  ports: Record<Service, ServicePorts> & { frontendHttp: number };
  /** History shards: fixed when the database is first set up. */
  shards: number;
  namespace: string;
  /** Days a closed workflow's history is kept. */
  retentionDays?: number;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  log?: (msg: string) => void;
}

export interface TemporalCluster {
  address: string;
  /** Each service's process id, or undefined while it is down. */
  pid(service: Service): number | undefined;
  logFile(service: Service): string;
  metricsUrl(service: Service): string;
  /** Signals one service (SIGKILL for a crash); resolves when it has exited. */
  kill(service: Service, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a service that is down (after kill). */
  start(service: Service): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The default ports: Temporal's own layout (7233 frontend, 7234 history, 7235 matching, 7239
 * worker, membership 300 below each, HTTP 7243), metrics from 8000; all shifted with the frontend.
 */
export function defaultPorts(frontend = 7233): ClusterOptions['ports'] {
  const svc = (grpc: number, i: number): ServicePorts => ({
    grpc,
    membership: grpc - 300,
    metrics: frontend + 767 + i,
  });
  return {
    frontend: svc(frontend, 0),
    history: svc(frontend + 1, 1),
    matching: svc(frontend + 2, 2),
    worker: svc(frontend + 6, 3),
    frontendHttp: frontend + 10,
  };
}

function sqlArgs(db: ClusterDatabase, name: string): string[] {
  return [
    '--plugin',
    'postgres12',
    '--endpoint',
    db.host,
    '--port',
    String(db.port),
    '--user',
    db.user,
    ...(db.password ? ['--password', db.password] : []),
    '--database',
    name,
  ];
}

/**
 * Creates Temporal's two databases and brings their schemas to this release's version with
 * temporal-sql-tool and the schemas embedded in it (postgresql/v12). Idempotent: an existing
 * database is kept and only upgraded, so the same call starts a new cluster and upgrades an old one.
 */
export async function setupTemporalDatabases(sqlToolBin: string, db: ClusterDatabase): Promise<void> {
  for (const [name, schema] of [
    [db.name, 'postgresql/v12/temporal'],
    [db.visibilityName, 'postgresql/v12/visibility'],
  ] as const) {
    try {
      await run(sqlToolBin, [...sqlArgs(db, name), 'create-database'], { timeout: 60_000 });
    } catch (err) {
      const text = `${(err as { stderr?: string }).stderr ?? ''}${(err as Error).message}`;
      if (!/already exists/i.test(text)) throw new Error(`temporal-sql-tool create-database ${name}: ${text}`);
    }
    await run(sqlToolBin, [...sqlArgs(db, name), 'setup-schema', '-v', '0.0'], { timeout: 60_000 });
    await run(sqlToolBin, [...sqlArgs(db, name), 'update-schema', '--schema-name', schema], { timeout: 300_000 });
  }
}

/** Drops both databases (tests). */
export async function dropTemporalDatabases(sqlToolBin: string, db: ClusterDatabase): Promise<void> {
  for (const name of [db.name, db.visibilityName]) {
    await run(sqlToolBin, [...sqlArgs(db, name), 'drop-database', '--force'], { timeout: 60_000 }).catch(
      () => undefined,
    );
  }
}

/** The environment the server's templated config (deploy/temporal/config/shaodian.yaml) reads. */
function serviceEnv(opts: ClusterOptions, service: Service): Record<string, string> {
  const p = opts.ports;
  return {
    SHAODIAN_TEMPORAL_DB_HOST: opts.db.host,
    SHAODIAN_TEMPORAL_DB_PORT: String(opts.db.port),
    SHAODIAN_TEMPORAL_DB_USER: opts.db.user,
    SHAODIAN_TEMPORAL_DB_PASSWORD: opts.db.password ?? '',
    SHAODIAN_TEMPORAL_DB: opts.db.name,
    SHAODIAN_TEMPORAL_VISIBILITY_DB: opts.db.visibilityName,
    SHAODIAN_TEMPORAL_SHARDS: String(opts.shards),
    SHAODIAN_TEMPORAL_FRONTEND_PORT: String(p.frontend.grpc),
    SHAODIAN_TEMPORAL_FRONTEND_HTTP_PORT: String(p.frontendHttp),
    SHAODIAN_TEMPORAL_HISTORY_PORT: String(p.history.grpc),
    SHAODIAN_TEMPORAL_MATCHING_PORT: String(p.matching.grpc),
    SHAODIAN_TEMPORAL_WORKER_PORT: String(p.worker.grpc),
    SHAODIAN_TEMPORAL_FRONTEND_MEMBERSHIP_PORT: String(p.frontend.membership),
    SHAODIAN_TEMPORAL_HISTORY_MEMBERSHIP_PORT: String(p.history.membership),
    SHAODIAN_TEMPORAL_MATCHING_MEMBERSHIP_PORT: String(p.matching.membership),
    SHAODIAN_TEMPORAL_WORKER_MEMBERSHIP_PORT: String(p.worker.membership),
    SHAODIAN_TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${p[service].metrics}`,
    SHAODIAN_TEMPORAL_LOG_LEVEL: opts.logLevel ?? 'warn',
    SHAODIAN_TEMPORAL_DYNAMIC_CONFIG: path.join(DEPLOY_DIR, 'dynamicconfig', 'shaodian.yaml'),
  };
}

/** The command line of one service: the same in every layout (docker-compose.yml too). */
export const serviceArgs = (service: Service): string[] => [
  '--root',
  DEPLOY_DIR,
  '--config',
  'config',
  '--env',
  'shaodian',
  '--allow-no-auth',
  'start',
  '--service',
  service,
];

/**
 * Starts a Temporal cluster on Postgres as four processes (history, matching, frontend,
 * internal worker), waits until the frontend serves, registers the namespace and the case
 * search attributes. Processes run in their own process groups, so Ctrl-C reaches the caller
 * first and it stops them after its own workers have drained. A cluster left by a killed run
 * (pid file in dataDir) is stopped first.
 */
export async function startTemporalCluster(opts: ClusterOptions): Promise<TemporalCluster> {
  const log = opts.log ?? (() => undefined);
  const logDir = path.join(opts.dataDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const pidFile = path.join(opts.dataDir, 'temporal-cluster.pids');
  await stopOrphans(pidFile, log);

  const procs = new Map<Service, { child: ChildProcess; exited: Promise<void> }>();
  const writePids = () =>
    fs.writeFileSync(pidFile, [...procs.values()].map((p) => p.child.pid ?? '').join('\n'), { mode: 0o600 });
  const logFile = (s: Service) => path.join(logDir, `temporal-${s}.log`);

  const startService = async (service: Service) => {
    const out = fs.openSync(logFile(service), 'a');
    const child = spawn(opts.serverBin, serviceArgs(service), {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...serviceEnv(opts, service) },
      stdio: ['ignore', out, out],
      detached: true,
    });
    fs.closeSync(out);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    procs.set(service, { child, exited });
    writePids();
    // A service that cannot start (a port taken, a bad config) exits within a second or two.
    await Promise.race([exited.then(() => 'exited' as const), sleep(1500)]).then((r) => {
      if (r === 'exited') throw new Error(`temporal ${service} exited at start:\n${tail(logFile(service))}`);
    });
  };

  const isUp = (s: Service) => {
    const p = procs.get(s);
    return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
  };
  const kill = async (service: Service, signal: NodeJS.Signals = 'SIGTERM') => {
    const p = procs.get(service);
    if (!p || !isUp(service)) return;
    p.child.kill(signal);
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
    await p.exited;
    clearTimeout(timer);
  };

  const address = `127.0.0.1:${opts.ports.frontend.grpc}`;
  const cluster: TemporalCluster = {
    address,
    pid: (s) => (isUp(s) ? procs.get(s)?.child.pid : undefined),
    logFile,
    metricsUrl: (s) => `http://127.0.0.1:${opts.ports[s].metrics}/metrics`,
    kill,
    start: async (s) => {
      if (isUp(s)) return;
      await startService(s);
    },
    async stop() {
      // Frontend first (no new calls), then the internal worker, matching, history last.
      for (const s of ['frontend', 'worker', 'matching', 'history'] as const) await kill(s);
      fs.rmSync(pidFile, { force: true });
    },
  };

  try {
    for (const s of SERVICES) await startService(s);
    await waitServing(address, 120_000, () => {
      for (const s of SERVICES) if (!isUp(s)) throw new Error(`temporal ${s} exited:\n${tail(logFile(s))}`);
    });
    await registerNamespace(address, opts.namespace, opts.retentionDays ?? 7);
    log(`temporal cluster serving at ${address} (namespace ${opts.namespace})`);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

async function waitServing(address: string, timeoutMs: number, check: () => void): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    check();
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        const res = await conn.healthService.check({ service: 'temporal.api.workflowservice.v1.WorkflowService' });
        // The system namespace answering means history and matching have joined the ring.
        if (res.status === 1) {
          await conn.workflowService.describeNamespace({ namespace: 'temporal-system' });
          return;
        }
      } finally {
        await conn.close();
      }
    } catch (err) {
      last = err;
    }
    await sleep(1000);
  }
  throw new Error(`temporal frontend at ${address} not serving after ${timeoutMs} ms: ${String(last)}`);
}

/**
 * Registers the namespace (kept if it exists) and every case search attribute that is missing,
 * then waits until the namespace answers with all of them.
 */
export async function registerNamespace(address: string, namespace: string, retentionDays: number): Promise<void> {
  const conn = await Connection.connect({ address });
  try {
    try {
      await conn.workflowService.registerNamespace({
        namespace,
        workflowExecutionRetentionPeriod: msToTs(retentionDays * 86_400_000),
      });
    } catch (err) {
      if (!/already exists|AlreadyExists/i.test(String((err as Error).message))) throw err;
    }
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        await conn.workflowService.describeNamespace({ namespace });
        const have = await conn.operatorService.listSearchAttributes({ namespace });
        const missing = searchAttributeKeys.filter((k) => !(k.name in (have.customAttributes ?? {})));
        if (missing.length === 0) return;
        await conn.operatorService.addSearchAttributes({
          namespace,
          searchAttributes: Object.fromEntries(missing.map((k) => [k.name, indexedValueType(k.type)])),
        });
      } catch (err) {
        if (Date.now() > until) throw err;
      }
      await sleep(1000);
    }
  } finally {
    await conn.close();
  }
}

function indexedValueType(t: string): temporal.api.enums.v1.IndexedValueType {
  const V = temporal.api.enums.v1.IndexedValueType;
  switch (t) {
    case 'KEYWORD':
      return V.INDEXED_VALUE_TYPE_KEYWORD;
    case 'DATETIME':
      return V.INDEXED_VALUE_TYPE_DATETIME;
    case 'INT':
      return V.INDEXED_VALUE_TYPE_INT;
    case 'TEXT':
      return V.INDEXED_VALUE_TYPE_TEXT;
    case 'BOOL':
      return V.INDEXED_VALUE_TYPE_BOOL;
    case 'DOUBLE':
      return V.INDEXED_VALUE_TYPE_DOUBLE;
    default:
      throw new Error(`unknown search attribute type ${t}`);
  }
}

async function stopOrphans(pidFile: string, log: (m: string) => void): Promise<void> {
  let pids: number[] = [];
  try {
    pids = fs.readFileSync(pidFile, 'utf8').split('\n').map(Number).filter(Boolean);
  } catch {
    return;
  }
  for (const pid of pids.filter(pidAlive)) {
    log(`stopping a Temporal service left by an earlier run (pid ${pid})`);
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  const until = Date.now() + 20_000;
  while (pids.some(pidAlive) && Date.now() < until) await sleep(200);
  for (const pid of pids.filter(pidAlive)) process.kill(pid, 'SIGKILL');
  fs.rmSync(pidFile, { force: true });
}

export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
