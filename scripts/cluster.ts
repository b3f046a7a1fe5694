/**
 * `npm run cluster`: Shaodian's production topology on this machine, without Docker.
 *
 *   npm run cluster -- [--workers 2] [--apis 2] [--api-port 3000] [--temporal-port 7233]
 *                      [--ui-port 8080 | --no-ui] [--shards 4] [--data-dir ./data/cluster]
 *                      [--database-url postgres://postgres@127.0.0.1:5432/shaodian] [--no-seed]
 *                      [--temporal-db temporal] [--temporal-database-url URL] [--restart-delay-ms 1000]
 *
 * Builds (first run only, cached in ~/.cache/shaodian/bin) or finds the Temporal server, its SQL
 * schema tool and the Temporal UI server; creates Temporal's databases on the Postgres of
 * --database-url (schemas postgresql/v12, default store and visibility) and the app's database;
 * starts the server's four services as separate processes from deploy/temporal (the config
 * docker-compose.yml uses too); registers the namespace and the case search attributes; starts N
 * workers and M API processes and the Temporal UI with the codec; prints where everything is.
 * A process that dies is started again (like a supervisor would). Ctrl-C stops it all: APIs and
 * workers drain first, Temporal's services last.
 *
 * Keys: the codec key and HMAC key are generated once into <data-dir>/secrets.json (0600), so a
 * restart reads its old histories; an admin API key is created once into <data-dir>/admin.key.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import postgres from 'postgres';

import { createApiKey } from '../src/auth/keys';
import {
  spawnApp,
  stopApp,
  waitApiReady,
  waitApiUp,
  waitWorkersPolling,
  isRunning,
  type AppProcess,
} from '../src/cluster/processes';
import {
  SERVICES,
  defaultPorts,
  setupTemporalDatabases,
  startTemporalCluster,
  type ClusterDatabase,
  type TemporalCluster,
} from '../src/cluster/temporal';
import { loadConfig } from '../src/config';
import { openDatabase } from '../src/db';
import { resolveGoTool } from '../src/temporal/go-tools';

const UI_DIR = path.resolve(__dirname, '..', 'deploy', 'temporal-ui');

export interface ClusterState {
  temporal: string;
  ui?: string;
  apis: { name: string; url: string; pid?: number }[];
  workers: { name: string; pid?: number }[];
  temporalPids: Record<string, number | undefined>;
  databaseUrl: string;
  adminKeyFile: string;
  logs: string;
}

/** Creates a database on the server of `url` when it is missing. */
export async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.slice(1));
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name}: use [a-z0-9_]`);
  u.pathname = '/postgres';
  const sql = postgres(u.toString(), { max: 1, onnotice: () => undefined });
  try {
    const found = await sql`select 1 from pg_database where datname = ${name}`;
    if (found.length === 0) await sql.unsafe(`create database ${name}`);
  } finally {
    await sql.end();
  }
}

function secrets(dataDir: string): { CODEC_KEY: string; API_HMAC_KEY: string } {
  const file = path.join(dataDir, 'secrets.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const s = {
    CODEC_KEY: process.env.CODEC_KEY || crypto.randomBytes(32).toString('base64'),
    API_HMAC_KEY: process.env.API_HMAC_KEY || crypto.randomBytes(32).toString('base64'),
  };
  fs.writeFileSync(file, JSON.stringify(s), { mode: 0o600 });
  return s;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      workers: { type: 'string', default: '2' },
      apis: { type: 'string', default: '2' },
      'api-port': { type: 'string', default: '3000' },
      'temporal-port': { type: 'string', default: '7233' },
      'ui-port': { type: 'string', default: '8080' },
      'no-ui': { type: 'boolean', default: false },
      shards: { type: 'string', default: '4' },
      'data-dir': { type: 'string', default: './data/cluster' },
      'database-url': {
        type: 'string',
        default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/shaodian',
      },
      'temporal-db': { type: 'string', default: 'temporal' },
      'temporal-database-url': { type: 'string' },
      'restart-delay-ms': { type: 'string', default: '1000' },
      'no-seed': { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  const workers = Number(values.workers);
  const apiCount = Number(values.apis);
  const apiPort = Number(values['api-port']);
  const temporalPort = Number(values['temporal-port']);
  if (![workers, apiCount, apiPort, temporalPort].every((n) => Number.isInteger(n) && n >= 0) || apiCount < 1)
    throw new Error('--workers, --apis (>= 1), --api-port, --temporal-port must be whole numbers');
  // Temporal keeps membership ports (300 below each service's) in a smallint column.
  if (temporalPort < 1300 || temporalPort > 32_000) throw new Error('--temporal-port must be between 1300 and 32000');
  const dataDir = path.resolve(values['data-dir']);
  const logDir = path.join(dataDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const say = (m: string) => console.log(`[cluster] ${m}`);

  const config = loadConfig({ ...process.env, DATA_DIR: dataDir });
  const tools = { cacheDir: config.cliCacheDir, env: config.processEnv, log: say };
  const serverBin = await resolveGoTool('temporal-server', tools);
  const sqlToolBin = await resolveGoTool('temporal-sql-tool', tools);
  const uiBin = values['no-ui'] ? undefined : await resolveGoTool('temporal-ui-server', tools);

  const restartDelayMs = Number(values['restart-delay-ms']);
  // Temporal's databases live on the app's Postgres server unless told otherwise.
  const dbUrl = new URL(values['temporal-database-url'] ?? values['database-url']);
  const db: ClusterDatabase = {
    host: dbUrl.hostname,
    port: Number(dbUrl.port || 5432),
    user: decodeURIComponent(dbUrl.username || 'postgres'),
    password: decodeURIComponent(dbUrl.password),
    name: values['temporal-db'],
    visibilityName: `${values['temporal-db']}_visibility`,
  };
  say(`Temporal databases ${db.name}, ${db.visibilityName} on ${db.host}:${db.port} (temporal-sql-tool)`);
  await setupTemporalDatabases(sqlToolBin, db);
  await ensureDatabase(values['database-url']);

  // From here on, a failure or Ctrl-C stops whatever was started.
  let stopping = false;
  let cluster: TemporalCluster | undefined;
  const procs = new Map<string, AppProcess>();
  let ui: AppProcess | undefined;
  let refresh: NodeJS.Timeout | undefined;
  const stateFile = path.join(dataDir, 'cluster.json');
  const stopAll = async () => {
    stopping = true;
    clearInterval(refresh);
    if (ui && isRunning(ui)) ui.child.kill('SIGTERM');
    await Promise.all([...procs.values()].map((p) => stopApp(p)));
    await cluster?.stop();
    fs.rmSync(stateFile, { force: true });
  };
  const shutdown = async (code: number) => {
    if (stopping) return;
    say('stopping: APIs and workers drain, then Temporal');
    await stopAll();
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  try {
    await run();
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    await shutdown(1);
  }

  async function run() {
    const ports = defaultPorts(temporalPort);
    cluster = await startTemporalCluster({
      serverBin,
      sqlToolBin,
      dataDir,
      db,
      ports,
      shards: Number(values.shards),
      namespace: config.TEMPORAL_NAMESPACE,
      log: say,
    });

    const keys = secrets(dataDir);
    const apiUrls = Array.from({ length: apiCount }, (_, i) => `http://127.0.0.1:${apiPort + i}`);
    const uiUrl = uiBin ? `http://127.0.0.1:${values['ui-port']}` : undefined;
    const env: Record<string, string> = {
      NODE_ENV: 'production',
      LOG_LEVEL: values['log-level'],
      DATABASE_URL: values['database-url'],
      TEMPORAL_ADDRESS: cluster.address,
      TEMPORAL_NAMESPACE: config.TEMPORAL_NAMESPACE,
      TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
      ...keys,
      API_HOST: '127.0.0.1',
      SEED_DEMO: values['no-seed'] ? 'never' : 'always',
      SIMULATOR_CALLBACK_URL: apiUrls[0]!,
      DEFAULT_POLICY: config.DEFAULT_POLICY,
      ...(uiUrl ? { CODEC_CORS_ORIGINS: `${uiUrl},http://localhost:${values['ui-port']}` } : {}),
      // Whatever the operator set for the app (LAB_URL, TIME_ZONE, CASE_WORKFLOW_TYPE during an
      // upgrade, ...) passes through.
      ...Object.fromEntries(
        Object.entries(process.env).filter(
          ([k, v]) =>
            v !== undefined &&
            /^(LAB_|COMMUNITY_|TRANSPORT_|NOTIFY_|SIM_|API_|WORKER_|DRILL_|TIME_ZONE|CASE_WORKFLOW_TYPE)/.test(k),
        ) as [string, string][],
      ),
    };

    // Each app process is supervised: one that dies is started again after a second.
    const start = (
      name: string,
      script: 'src/worker.ts' | 'src/api/server.ts',
      extra: Record<string, string>,
      url?: string,
    ) => {
      const p = spawnApp(name, script, { ...env, ...extra, DATA_DIR: path.join(dataDir, name) }, logDir, { url });
      procs.set(name, p);
      void p.exited.then((code) => {
        if (stopping) return;
        say(`${name} exited (${code ?? p.child.signalCode}); starting it again`);
        setTimeout(() => !stopping && start(name, script, extra, url), restartDelayMs);
      });
      return p;
    };
    for (let i = 0; i < apiCount; i++) {
      const p = start(`api-${i + 1}`, 'src/api/server.ts', { PORT: String(apiPort + i) }, apiUrls[i]);
      // The first API migrates and seeds; the others start on a ready database.
      await waitApiUp(p);
    }
    for (let i = 0; i < workers; i++) start(`worker-${i + 1}`, 'src/worker.ts', {});

    if (uiBin && uiUrl) {
      const { spawn } = await import('node:child_process');
      const out = fs.openSync(path.join(logDir, 'temporal-ui.log'), 'a');
      const child = spawn(uiBin, ['--root', UI_DIR, '--config', 'config', '--env', 'shaodian', 'start'], {
        env: {
          PATH: process.env.PATH ?? '',
          SHAODIAN_UI_TEMPORAL_ADDRESS: cluster.address,
          SHAODIAN_UI_PORT: values['ui-port'],
          SHAODIAN_UI_NAMESPACE: config.TEMPORAL_NAMESPACE,
          SHAODIAN_UI_CODEC_ENDPOINT: `${apiUrls[0]!}/codec`,
        },
        stdio: ['ignore', out, out],
        detached: true,
      });
      fs.closeSync(out);
      ui = {
        name: 'temporal-ui',
        child,
        exited: new Promise((r) => child.once('exit', (c) => r(c))),
        logFile: path.join(logDir, 'temporal-ui.log'),
      };
    }

    const adminKeyFile = path.join(dataDir, 'admin.key');
    if (!fs.existsSync(adminKeyFile)) {
      const database = await openDatabase({ databaseUrl: values['database-url'], dataDir, migrate: false });
      try {
        const { key } = await createApiKey(database.db, { name: 'Cluster admin', role: 'admin' });
        fs.writeFileSync(adminKeyFile, key + '\n', { mode: 0o600 });
      } finally {
        await database.close();
      }
    }
    if (workers > 0) {
      await waitApiReady(procs.get('api-1')!);
      // Ready means every worker polls, not only the first one up.
      await waitWorkersPolling(cluster.address, config.TEMPORAL_NAMESPACE, config.TEMPORAL_TASK_QUEUE, () =>
        Array.from({ length: workers }, (_, i) => procs.get(`worker-${i + 1}`)?.child.pid),
      );
    }

    const c = cluster;
    const state = (): ClusterState => ({
      temporal: c.address,
      ui: uiUrl,
      apis: apiUrls.map((url, i) => ({ name: `api-${i + 1}`, url, pid: procs.get(`api-${i + 1}`)?.child.pid })),
      workers: Array.from({ length: workers }, (_, i) => ({
        name: `worker-${i + 1}`,
        pid: procs.get(`worker-${i + 1}`)?.child.pid,
      })),
      temporalPids: Object.fromEntries(
        ['frontend', 'history', 'matching', 'worker'].map((s) => [s, c.pid(s as never)]),
      ),
      databaseUrl: values['database-url'],
      adminKeyFile,
      logs: logDir,
    });
    // Owner-only: the state names the database URL (which may carry a password) and the admin key file.
    const writeState = () => fs.writeFileSync(stateFile, JSON.stringify(state(), null, 2), { mode: 0o600 });
    writeState();
    // Temporal's services are supervised too: one that dies is started again.
    const restarting = new Set<string>();
    refresh = setInterval(() => {
      writeState();
      for (const s of SERVICES) {
        if (stopping || c.pid(s) !== undefined || restarting.has(s)) continue;
        restarting.add(s);
        say(`temporal ${s} is down; starting it again in ${restartDelayMs} ms`);
        setTimeout(() => {
          if (stopping) return;
          c.start(s)
            .catch((err: unknown) => say(`temporal ${s} did not start: ${String(err)}`))
            .finally(() => restarting.delete(s));
        }, restartDelayMs);
      }
    }, 1000);

    console.log(`
Shaodian cluster ready
  Temporal frontend   ${cluster.address}   (history ${ports.history.grpc}, matching ${ports.matching.grpc}, worker ${ports.worker.grpc}; metrics :${ports.frontend.metrics}-${ports.worker.metrics})
  Temporal UI         ${uiUrl ?? '(--no-ui)'}${uiUrl ? `   decoded after signing in at ${apiUrls[0]}/codec` : ''}
  APIs                ${apiUrls.join('  ')}   (dashboard: ${apiUrls[0]}/dashboard, docs: ${apiUrls[0]}/docs)
  Workers             ${workers}
  Admin API key       ${adminKeyFile}
  Postgres            ${values['database-url'].replace(/\/\/[^@]*@/, '//')} + ${db.name}, ${db.visibilityName}
  Logs                ${logDir}
  State               ${stateFile}
Ctrl-C stops everything.`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
