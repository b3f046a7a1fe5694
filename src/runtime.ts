import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Server } from 'node:http';
import net from 'node:net';
import path from 'node:path';

import type { Worker, WorkerStatus } from '@temporalio/worker';
import { DefaultLogger, NativeConnection, Runtime as SdkRuntime } from '@temporalio/worker';

import { and, inArray, isNull } from 'drizzle-orm';

import { createApiKey } from './auth/keys';
import { seedDemoHotels } from './db/demo-hotels';
import { apiKeys, hotels } from './db/schema';
import { SIMULATED_LAB_ID } from './integrations/lab';
import type { CallbackTarget } from './integrations/simulator';
import { loadConfigOrExit, type Config } from './config';
import { openDatabase, type Database } from './db';
import { fillCaseSummaries } from './db/summary-fill';
import { createLogger, type Logger } from './log';
import type { RecordCaseInput } from './activities/types';
import { resolveTemporalCli } from './temporal/cli';
import { createTemporalClient } from './temporal/client';
import { loadCodec } from './temporal/codec';
import { startDevServer, startSdkDevServer, type DevServer } from './temporal/dev-server';

export interface RuntimeParts {
  worker: boolean;
  api: boolean;
  /** Start a dev server when TEMPORAL_ADDRESS is unset (the all-in-one only). */
  devServer?: boolean;
}

export interface Runtime {
  config: Config;
  apiUrl?: string;
  temporalAddress: string;
  uiUrl?: string;
  database: Database;
  stop(): Promise<void>;
}

/**
 * Brings up the parts of the system in dependency order: Temporal (an address, or a dev
 * server we start), the database (migrated), the worker, the API. Stops in reverse order:
 * stop accepting HTTP, drain the worker, close connections, stop the dev server.
 */
export async function startRuntime(config: Config, parts: RuntimeParts, log: Logger): Promise<Runtime> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) {
      try {
        await s();
      } catch (err) {
        log.warn('error while stopping', { err });
      }
    }
  };
  try {
    installSdkRuntime(config.LOG_LEVEL);
    fs.mkdirSync(config.dataDir, { recursive: true });
    const { codec, source: keySource, file: keyFile } = loadCodec(config);
    if (keySource === 'dev-file')
      log.warn('using a generated dev codec key; set CODEC_KEY in production', { file: keyFile });

    let temporalAddress = config.TEMPORAL_ADDRESS;
    let devServer: DevServer | undefined;
    if (!temporalAddress && parts.devServer) {
      const cli = await resolveTemporalCli({
        explicitPath: config.TEMPORAL_CLI_PATH,
        projectCacheDir: path.resolve(__dirname, '..', '.cache', 'bin'),
        userCacheDir: config.cliCacheDir,
        env: config.processEnv,
        log: (m) => log.info(m),
      });
      log.info('temporal cli', { path: cli.path || '(SDK download)', source: cli.source });
      const serverOptions = {
        dataDir: config.dataDir,
        namespace: config.TEMPORAL_NAMESPACE,
        port: config.TEMPORAL_DEV_PORT,
        uiPort: config.TEMPORAL_UI_PORT,
        headless: config.TEMPORAL_DEV_HEADLESS,
        log,
      };
      devServer =
        cli.source === 'sdk-download'
          ? await startSdkDevServer(serverOptions)
          : await startDevServer({ ...serverOptions, cliPath: cli.path });
      stops.push(() => devServer!.stop());
      temporalAddress = devServer.address;
    }
    temporalAddress ??= `127.0.0.1:${config.TEMPORAL_DEV_PORT}`;

    const database = await openDatabase({
      databaseUrl: config.DATABASE_URL,
      dataDir: config.dataDir,
      statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
      connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    });
    stops.push(() => database.close());
    log.info('database ready', { where: database.where });
    await seedDemoIfEmpty(config, database, log);
    if (parts.api) {
      // The list's copies of rows written before migration 0012, in the background, a batch at a time.
      const fill = new AbortController();
      const filling = fillCaseSummaries(database.db, { signal: fill.signal, log }).catch((err: unknown) =>
        log.warn('case summaries not filled; the list builds them on the spot', { err: String(err) }),
      );
      stops.push(async () => {
        fill.abort();
        await filling;
      });
    }

    const apiUrl = `http://${config.API_HOST === '0.0.0.0' ? '127.0.0.1' : config.API_HOST}:${config.PORT}`;

    if (parts.worker) {
      const { createWorker, stackTraceSwitchInstalled } = await import('./worker');
      const { createActivities } = await import('./activities');
      const { createIntegrations } = await import('./integrations');
      // Simulators call back through the public API, each with a key of its own role.
      const callback =
        parts.api || config.SIMULATOR_CALLBACK_URL
          ? { baseUrl: config.SIMULATOR_CALLBACK_URL ?? apiUrl, keys: await simulatorKeys(database) }
          : undefined;
      const simulated = [config.LAB_URL, config.COMMUNITY_URL, config.TRANSPORT_URL].some((u) => !u);
      if (!callback && simulated)
        log.warn(
          'a worker without an API in its process and without SIMULATOR_CALLBACK_URL: simulated systems cannot post their results back (set SIMULATOR_CALLBACK_URL to an API process)',
        );
      const integrations = createIntegrations(config, { db: database.db, log, callback });
      stops.push(async () => integrations.close());
      const activities = createActivities({
        db: database.db,
        integrations,
        log,
        caseWorkflowType: config.CASE_WORKFLOW_TYPE,
      });
      // v5 cases' read-model writes, made in their workflow tasks, batched across the worker's tasks.
      const { createWriter } = await import('./activities/writer');
      const writer = createWriter(database.db);
      // The time left of the sink's deadline (its wait behind the run's earlier write counted).
      const taskWrite = (batch: RecordCaseInput, timeoutMs: number) => writer.write(batch, timeoutMs);
      if (!config.WORKER_WORKFLOW_STACK_TRACES && !stackTraceSwitchInstalled())
        log.warn(
          'the SDK was installed without scripts/patch-deps.mjs (npm ci --ignore-scripts?): its workflow stack traces stay on whatever WORKER_WORKFLOW_STACK_TRACES says, and each cached case costs about twice the memory',
        );
      const worker = await startWorkerWhenReachable(
        () => NativeConnection.connect({ address: temporalAddress! }),
        (connection) => createWorker({ connection, config, codec, activities, taskWrite, log }),
        log,
      );
      stops.push(() => worker.stop());
      // Its word to the API that it is there, however far behind (src/worker-liveness.ts). Pushed
      // after the worker's stop, so run before it: the row goes first, then the worker drains.
      const { startWorkerLivenessBeat } = await import('./worker-liveness');
      const beat = startWorkerLivenessBeat({
        db: database.db,
        namespace: config.TEMPORAL_NAMESPACE,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        status: () => worker.status(),
        temporalAnswers: () => worker.temporalAnswers(config.WORKER_LIVENESS_BEAT_MS),
        intervalMs: config.WORKER_LIVENESS_BEAT_MS,
        log,
      });
      stops.push(() => beat.stop());
    }

    if (parts.api) {
      const { createApp } = await import('./api/app');
      const temporal = createTemporalClient({ address: temporalAddress, namespace: config.TEMPORAL_NAMESPACE, codec });
      stops.push(() => temporal.connection.close());
      const { createDependencyMonitor } = await import('./api/dependencies');
      const { freshestBeatAgeMs } = await import('./worker-liveness');
      // One breaker per dependency, probed every API_PROBE_INTERVAL_MS: while one is known down,
      // calls that need it answer 503 at once (the database's gate stands in front of every query).
      const monitor = createDependencyMonitor({
        connection: temporal.connection,
        namespace: config.TEMPORAL_NAMESPACE,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        pingDatabase: () => database.ping(),
        intervalMs: config.API_PROBE_INTERVAL_MS,
        workerStallMs: config.API_WORKER_STALL_MS,
        // The workers' own word (src/worker-liveness.ts), through the database's gate.
        workerBeatAgeMs: () => freshestBeatAgeMs(database.db, config.TEMPORAL_NAMESPACE, config.TEMPORAL_TASK_QUEUE),
        workerLivenessMs: config.API_WORKER_LIVENESS_MS,
        log,
      });
      database.setGate(() => monitor.require('database'));
      monitor.start();
      stops.push(async () => {
        await monitor.stop();
        database.setGate(undefined);
      });
      const adminToken = crypto.randomBytes(24).toString('base64url');
      const app = createApp({ config, db: database.db, temporal, log, adminToken, monitor });
      const server: Server = await new Promise((resolve, reject) => {
        const s = app.listen(config.PORT, config.API_HOST, (err?: Error) => (err ? reject(err) : resolve(s)));
        s.once('error', reject);
      });
      stops.push(() => drainHttp(server, app, config.API_SHUTDOWN_GRACE_MS, log));
      const runtimeFile = path.join(config.dataDir, 'runtime.json');
      fs.writeFileSync(runtimeFile, JSON.stringify({ pid: process.pid, apiUrl, adminToken }), { mode: 0o600 });
      stops.push(async () => fs.rmSync(runtimeFile, { force: true }));
    }

    return {
      config,
      apiUrl: parts.api ? apiUrl : undefined,
      temporalAddress,
      uiUrl: devServer?.uiUrl,
      database,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Graceful stop of the API: stop accepting connections and answer every request in flight. Each
 * answer from now on says `Connection: close`, so a client's next request opens a connection to
 * a process that stays; idle kept-alive connections are left to the keep-alive timeout the
 * client was told (closing them at once races a client sending on them, and its request is lost
 * with the connection). Only after `graceMs` is whatever is still open cut.
 */
export function drainHttp(
  server: Server,
  app: { locals: Record<string, unknown> },
  graceMs: number,
  log: Logger,
): Promise<void> {
  return new Promise<void>((resolve) => {
    app.locals.draining = true;
    const cut = setTimeout(() => {
      log.warn('shutdown grace over: closing connections still open', { graceMs });
      server.closeAllConnections();
    }, graceMs);
    // net.Server's close, not http.Server's: the latter also drops idle kept-alive connections at once.
    net.Server.prototype.close.call(server, () => {
      clearTimeout(cut);
      resolve();
    });
  });
}

/** A newcomer's first start has somewhere to put people: the demo district's 21 hotels. */
async function seedDemoIfEmpty(config: Config, database: Database, log: Logger): Promise<void> {
  if (config.SEED_DEMO === 'never' || (config.SEED_DEMO === 'auto' && database.kind !== 'pglite')) return;
  const existing = await database.db.select({ id: hotels.id }).from(hotels).limit(1);
  if (existing.length > 0) return;
  const r = await seedDemoHotels(database.db);
  log.info('seeded demo hotels into an empty database', { hotels: r.hotels, rooms: r.rooms });
}

/**
 * Fresh keys for the simulators at each start; the previous start's are revoked so that
 * keys do not pile up and a leaked one dies with its process. The simulated lab speaks for its
 * own samples only (org SIM-LAB); the simulated transport company and street office get a key
 * per district, made when a case there first needs one, so that neither acts everywhere.
 */
export async function simulatorKeys(database: Database): Promise<CallbackTarget['keys']> {
  const names = ['lab-simulator', 'transport-simulator', 'community-simulator'] as const;
  await database.db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(inArray(apiKeys.name, [...names]), isNull(apiKeys.revokedAt)));
  const lab = await createApiKey(database.db, { name: names[0], role: 'lab', orgId: SIMULATED_LAB_ID });
  const perDistrict = (name: string, role: 'transport' | 'community') => {
    const made = new Map<string, Promise<string>>();
    return (district: string) => {
      let key = made.get(district);
      if (!key) {
        key = createApiKey(database.db, { name, role, district }).then((k) => k.key);
        // A failed creation (database away) is tried again next time.
        key.catch(() => made.delete(district));
        made.set(district, key);
      }
      return key;
    };
  };
  return {
    lab: lab.key,
    transport: perDistrict(names[1], 'transport'),
    community: perDistrict(names[2], 'community'),
  };
}

interface RunningWorker {
  stop(): Promise<void>;
  /** The SDK's status of the worker running now, if one is. */
  status(): WorkerStatus | undefined;
  /** Resolves when Temporal answers a cheap call on the worker's own connection within `ms`. */
  temporalAnswers(ms: number): Promise<void>;
}

/**
 * The worker connects in the background and keeps retrying while the cluster is away, so a
 * process started before Temporal (or with a wrong address) stays up and says why on /readyz.
 */
async function startWorkerWhenReachable(
  connect: () => Promise<NativeConnection>,
  create: (c: NativeConnection) => Promise<Worker>,
  log: Logger,
): Promise<RunningWorker> {
  let stopped = false;
  let current: { worker: Worker; connection: NativeConnection; done: Promise<void> } | undefined;
  const loop = (async () => {
    let delay = 1000;
    while (!stopped) {
      try {
        const connection = await connect();
        const worker = await create(connection);
        if (stopped) {
          await connection.close();
          return;
        }
        log.info('worker running', { taskQueue: worker.options.taskQueue });
        const done = worker.run();
        current = { worker, connection, done };
        await done;
        await connection.close();
        current = undefined;
        if (stopped) return;
        log.warn('worker stopped unexpectedly; restarting');
      } catch (err) {
        if (stopped) return;
        log.warn('worker cannot start yet; retrying', { err, retryInMs: delay });
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    }
  })();
  return {
    status: () => current?.worker.getStatus(),
    async temporalAnswers(ms) {
      const c = current?.connection;
      if (!c) throw new Error('no worker running');
      await c.withDeadline(Date.now() + ms, () => c.workflowService.getSystemInfo({}));
    },
    async stop() {
      stopped = true;
      if (current && current.worker.getState() === 'RUNNING') current.worker.shutdown();
      await loop;
    },
  };
}

/** Entrypoint shared by `npm start`, `npm run worker` and `npm run api`. */
export async function runMain(parts: RuntimeParts): Promise<void> {
  const config = loadConfigOrExit();
  const log = createLogger(config.LOG_LEVEL);
  let runtime: Runtime;
  try {
    runtime = await startRuntime(config, parts, log);
  } catch (err) {
    log.error('failed to start', { err });
    console.error(`\nShaodian failed to start: ${(err as Error).message}`);
    process.exit(1);
  }
  printBanner(runtime, parts);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(130);
    }
    stopping = true;
    log.info('shutting down', { signal });
    void runtime.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/**
 * The Temporal SDK logs at our level, and does not shut workers down on signals by itself:
 * our shutdown does it in order (HTTP first, then drain the worker), and a worker stopped
 * behind our back would look like a crash to the restart loop.
 */
function installSdkRuntime(level: Config['LOG_LEVEL']): void {
  const sdkLevel = ({ debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR', silent: 'ERROR' } as const)[level];
  try {
    SdkRuntime.install({ logger: new DefaultLogger(sdkLevel), shutdownSignals: [] });
  } catch {
    // already installed in this process (tests, or a second runtime)
  }
}

function printBanner(rt: Runtime, parts: RuntimeParts): void {
  const lines = ['', 'Shaodian 哨点 is running'];
  if (rt.apiUrl) {
    lines.push(`  API            ${rt.apiUrl}/api/v1`);
    lines.push(`  API docs       ${rt.apiUrl}/docs`);
    lines.push(`  Dashboard      ${rt.apiUrl}/dashboard`);
    lines.push(`  Health         ${rt.apiUrl}/readyz`);
  }
  lines.push(`  Temporal       ${rt.temporalAddress} (namespace ${rt.config.TEMPORAL_NAMESPACE})`);
  if (rt.uiUrl) lines.push(`  Temporal UI    ${rt.uiUrl}`);
  lines.push(`  Database       ${rt.database.where}`);
  lines.push(`  Data dir       ${rt.config.dataDir}`);
  lines.push(
    `  Worker         ${parts.worker ? `task queue ${rt.config.TEMPORAL_TASK_QUEUE}` : 'not in this process'}`,
  );
  lines.push('  Ctrl-C stops it; starting again resumes every case.', '');
  console.log(lines.join('\n'));
}
