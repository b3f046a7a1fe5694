/**
 * `npm run bench`: Shaodian against bare Temporal on the same server, in the same run.
 *
 * Starts its own system (bench/system.ts: dev server, Postgres database shaodian_bench, worker,
 * API, i.e. what `npm start` runs; `--apart`: the API and the worker in processes of their own,
 * as docker-compose runs them) and a bare baseline worker (bench/baseline-worker.ts,
 * own task queue, no codec, no activities), then runs each scenario twice, ours and bare:
 *   1. intake burst        N × POST /api/v1/transfers          vs N × client.workflow.start (empty workflow)
 *   2. lab-result burst    N results in POST /api/v1/lab/results batches vs N bare signals
 *   3. health-check morning N × POST /cases/{caseNo}/health-checks vs N bare updates
 *   4. supervisor list     GET /api/v1/cases pages over M rows vs bare indexed SQL (and Temporal's list)
 *   5. worker memory       RSS and heap per open case with K open cases (and per bare open workflow)
 * and, only when named (`--only health,ladder`), the health check's ladder: N checks through the
 * least HTTP front there can be (bench/ladder-server.ts), rung by rung (HTTP; + the read model's
 * read; + its write; + the codec), each against the bare updates measured before and after it.
 * Prints a table and writes bench/results.json.
 *
 * Flags: --n 2000 --m 100000 --k 3000 --concurrency 32 --lab-batch 1000 --lab-parallel 1
 *        --list-pages 20 --list-repeats 5 --only intake,lab,health,list,memory,wave --keep-db --apart
 *        --database-url URL (default postgres://postgres@127.0.0.1:5432/shaodian_bench)
 * Against a running system instead: --api-url URL --temporal-address host:port --database-url URL
 * (or BENCH_API_URL, BENCH_TEMPORAL_ADDRESS, DATABASE_URL); --policy names its policy (default
 * "drill" for our own system, which runs it with a 24 h day so that nothing falls due mid-run).
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';

import { openDatabase, type Database } from '../src/db';
import { AesGcmCodec } from '../src/temporal/codec';
import { benchEmpty, benchTarget, bumpSignal, checkUpdate, countsQuery, finishSignal } from './baseline-workflows';
import {
  bareListPage,
  benchTransfer,
  createBenchKeys,
  insertSyntheticCases,
  seedBenchHotels,
  type BenchKeys,
} from './fixtures';
import type { IntakeRung, Rung } from './ladder-server';
import {
  ApiClient,
  forkTs,
  freePort,
  latencyStats,
  mapLimit,
  MiB,
  processStat,
  round,
  sleep,
  summarize,
  timedPool,
  waitUntil,
  type Child,
  type Summary,
  type Timed,
} from './lib';

// ---------------------------------------------------------------- options
interface Options {
  n: number;
  m: number;
  k: number;
  concurrency: number;
  labBatch: number;
  labParallel: number;
  listPages: number;
  listRepeats: number;
  only: Set<string>;
  keepDb: boolean;
  databaseUrl: string;
  apiUrl?: string;
  temporalAddress?: string;
  namespace: string;
  policy: string;
  out: string;
  labConcurrency: number;
  /** API and worker in processes of their own (docker-compose's topology) instead of `npm start`'s one. */
  apart: boolean;
}

const SCENARIOS = ['intake', 'lab', 'health', 'list', 'memory', 'wave'];
/** Run only when named: a diagnosis, not a target (the health check's floor, bench/ladder-server.ts). */
const DIAGNOSES = ['ladder'];

function parseOptions(argv: string[]): Options {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) flags.set(k, inline);
    else if (argv[i + 1] && !argv[i + 1]!.startsWith('--')) flags.set(k, argv[++i]!);
    else flags.set(k, 'true');
  }
  // Every flag the options below read; any other is refused after them.
  const read = new Set<string>();
  const flag = (k: string) => {
    read.add(k);
    return flags.get(k);
  };
  const num = (k: string, d: number) => {
    const v = flag(k);
    if (v === undefined) return d;
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0) throw new Error(`--${k} must be a number`);
    return Math.floor(x);
  };
  const bool = (k: string) => {
    const v = flag(k);
    if (v === undefined || v === 'false') return false;
    if (v === 'true') return true;
    throw new Error(`--${k} takes no value (or true/false)`);
  };
  // The bench is a tool outside src/: its own flags first, the environment as a fallback.
  const env = process.env;
  const apiUrl = flag('api-url') ?? env.BENCH_API_URL;
  const o: Options = {
    n: num('n', 2000),
    m: num('m', 100_000),
    k: num('k', 3000),
    concurrency: num('concurrency', 32),
    labBatch: Math.min(1000, num('lab-batch', 1000)),
    labParallel: num('lab-parallel', 1),
    listPages: num('list-pages', 20),
    listRepeats: num('list-repeats', 5),
    only: new Set((flag('only') ?? SCENARIOS.join(',')).split(',').map((s) => s.trim())),
    keepDb: bool('keep-db'),
    databaseUrl:
      flag('database-url') ??
      (apiUrl ? env.DATABASE_URL : undefined) ??
      'postgres://postgres@127.0.0.1:5432/shaodian_bench',
    apiUrl,
    temporalAddress: flag('temporal-address') ?? env.BENCH_TEMPORAL_ADDRESS,
    namespace: flag('namespace') ?? 'shaodian',
    policy: flag('policy') ?? (apiUrl ? 'standard' : 'drill'),
    out: flag('out') ?? path.join(__dirname, 'results.json'),
    // What the API uses per lab batch (API_LAB_BATCH_CONCURRENCY): the bare signals get as many in flight.
    labConcurrency: num('lab-concurrency', 32),
    apart: bool('apart'),
  };
  // A mistyped flag would otherwise start a ten-minute run that ignores it.
  for (const k of flags.keys()) if (!read.has(k)) throw new Error(`unknown flag --${k}`);
  if (o.apiUrl && !o.temporalAddress) throw new Error('--api-url needs --temporal-address (or BENCH_TEMPORAL_ADDRESS)');
  if (o.apiUrl && o.apart) throw new Error('--apart is for the system the bench starts, not with --api-url');
  for (const s of o.only)
    if (!SCENARIOS.includes(s) && !DIAGNOSES.includes(s)) throw new Error(`--only: unknown scenario ${s}`);
  if (o.k < o.n && o.only.has('memory')) o.k = o.n;
  return o;
}

// ---------------------------------------------------------------- results
interface ScenarioResult {
  name: string;
  unit: string;
  ours: number;
  baseline: number;
  /** Higher is better: ours/baseline for throughput, baseline/ours for latency. */
  ratio: number;
  target: number;
  met: boolean;
  detail: Record<string, unknown>;
}

const results: ScenarioResult[] = [];
const log = (msg: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

function throughputResult(name: string, ours: Summary, baseline: Summary, detail: Record<string, unknown>) {
  const ratio = round(ours.throughput / baseline.throughput, 3);
  results.push({
    name,
    unit: 'per second',
    ours: ours.throughput,
    baseline: baseline.throughput,
    ratio,
    target: 0.8,
    met: ratio >= 0.8,
    detail: { ours, baseline, ...detail },
  });
}

// ---------------------------------------------------------------- the system
interface System {
  apiUrl: string;
  temporalAddress: string;
  memory(): Promise<{ rss: number; heapUsed: number; gc: boolean } | undefined>;
  stop(): Promise<void>;
  dataDir?: string;
  /** The processes the bench started: the API's (with `--apart`; the whole system's otherwise) and the worker's (`--apart`). */
  pids?: { main: number; worker?: number };
  /** The bench's own system: a CPU profile of each of its processes' main threads (see profileHandlers). */
  profile?(action: 'start' | 'stop', tag: string): Promise<void>;
}

async function resetBenchDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = u.pathname.replace(/^\//, '');
  if (!/^shaodian_bench\w*$/.test(name)) {
    throw new Error(`refusing to reset database "${name}": the bench only recreates databases named shaodian_bench*`);
  }
  u.pathname = '/postgres';
  const admin = postgres(u.toString(), { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
}

async function dropBenchDatabase(url: string): Promise<void> {
  const u = new URL(url);
  const name = u.pathname.replace(/^\//, '');
  if (!/^shaodian_bench\w*$/.test(name)) return;
  u.pathname = '/postgres';
  const admin = postgres(u.toString(), { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end();
  }
}

async function startOwnSystem(o: Options): Promise<System> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-bench-'));
  const [port, devPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  // One log per process: api.log (the API and the dev server) and worker.log.
  const apiLog = fs.openSync(path.join(dataDir, o.apart ? 'api.log' : 'system.log'), 'a');
  const workerLog = o.apart ? fs.openSync(path.join(dataDir, 'worker.log'), 'a') : undefined;
  const closeLogs = () => {
    fs.closeSync(apiLog);
    if (workerLog !== undefined) fs.closeSync(workerLog);
  };
  const env: Record<string, string | undefined> = {
    ...process.env,
    NODE_ENV: 'production',
    PORT: String(port),
    API_HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    DATABASE_URL: o.databaseUrl,
    TEMPORAL_ADDRESS: '',
    TEMPORAL_NAMESPACE: o.namespace,
    TEMPORAL_DEV_PORT: String(devPort),
    TEMPORAL_UI_PORT: String(uiPort),
    TEMPORAL_DEV_HEADLESS: 'true',
    SEED_DEMO: 'never',
    LOG_LEVEL: 'warn',
    // Compressed days of a real day's length: nothing falls due during the run.
    DEFAULT_POLICY: 'drill',
    DRILL_DAY_SECONDS: '86400',
    // Simulators stay quiet: the bench plays lab, hotel desk and nurse itself.
    SIM_LAB_DELAY_MS: '86400000',
    SIM_COMMUNITY_DELAY_MS: '86400000',
    SIM_TRANSPORT_DELAY_MS: '86400000',
    API_RATE_LIMIT_PER_MINUTE: '100000000',
    // Every open case stays in the worker's cache, so memory per case is the worst case.
    WORKER_MAX_CACHED_WORKFLOWS: String(o.k + o.n + 1000),
  };
  // BENCH_SYSTEM_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the system (each of its processes).
  const nodeArgs = process.env.BENCH_SYSTEM_NODE_ARGS?.split(/\s+/).filter(Boolean);
  // Everything in one process, as `npm start` runs it; `--apart`: the production topology
  // (docker-compose), the API (here with the dev server) and the worker in processes of their own.
  // On this 2-core box one process carried the intake burst faster (docs/PERFORMANCE.md).
  const main = forkTs(path.join(__dirname, 'system.ts'), {
    gc: true,
    logFile: apiLog,
    nodeArgs,
    env: { ...env, BENCH_SYSTEM_PARTS: o.apart ? 'api' : 'all' },
  });
  const ready = await main.ready.catch((err: Error) => {
    closeLogs();
    throw new Error(`the system's ${o.apart ? 'API ' : ''}process: ${err.message} (log: ${dataDir})`);
  });
  const apiUrl = String(ready.apiUrl);
  const temporalAddress = String(ready.temporalAddress);
  let worker: Child | undefined;
  try {
    if (o.apart) {
      worker = forkTs(path.join(__dirname, 'system.ts'), {
        gc: true,
        logFile: workerLog,
        nodeArgs,
        env: {
          ...env,
          BENCH_SYSTEM_PARTS: 'worker',
          // The same dev server, database and data directory (its codec key) as the API.
          TEMPORAL_ADDRESS: temporalAddress,
          SIMULATOR_CALLBACK_URL: apiUrl,
        },
      });
      await worker.ready.catch((err: Error) => {
        throw new Error(`the system's worker process: ${err.message} (log: ${dataDir}/worker.log)`);
      });
    }
    if (
      !(await waitUntil(async () => (await fetch(`${apiUrl}/healthz`).catch(() => undefined))?.ok === true, 60_000))
    ) {
      throw new Error('the API did not answer /healthz');
    }
  } catch (err) {
    await worker?.stop();
    await main.stop();
    closeLogs();
    throw err;
  }
  // Memory per open case is the worker's: the process that holds the cases.
  const holder = worker ?? main;
  return {
    apiUrl,
    temporalAddress,
    dataDir,
    pids: { main: main.proc.pid!, ...(worker ? { worker: worker.proc.pid! } : {}) },
    async profile(action, tag) {
      const parts: [string, Child][] = worker
        ? [
            ['api', main],
            ['worker', worker],
          ]
        : [['system', main]];
      for (const [name, child] of parts)
        await child.ask(`profile-${action}`, {
          file: path.join(process.env.BENCH_PROFILE_DIR ?? '.', `${tag}-${name}.cpuprofile`),
        });
    },
    memory: () => holder.ask<{ rss: number; heapUsed: number; gc: boolean }>('memory'),
    async stop() {
      // The worker first (it drains), then the API and the dev server it talks to.
      await worker?.stop();
      await main.stop();
      closeLogs();
    },
  };
}

/** An external system: memory from its Prometheus metrics (the API process; the worker too under `npm start`). */
function externalSystem(o: Options): System {
  return {
    apiUrl: o.apiUrl!.replace(/\/+$/, ''),
    temporalAddress: o.temporalAddress!,
    async memory() {
      const text = await (await fetch(`${o.apiUrl}/metrics`)).text();
      const pick = (name: string) => Number(new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(text)?.[1] ?? NaN);
      return {
        rss: pick('shaodian_api_process_resident_memory_bytes'),
        heapUsed: pick('shaodian_api_nodejs_heap_size_used_bytes'),
        gc: false,
      };
    },
    async stop() {},
  };
}

// ---------------------------------------------------------------- context
interface Ctx {
  o: Options;
  runId: string;
  sys: System;
  db: Database;
  sql: postgres.Sql;
  keys: BenchKeys;
  api: {
    community: ApiClient;
    transport: ApiClient;
    /** The nurse of a case's hotel (read from the read model once per case, before any clock starts). */
    medical: (caseNo: string) => ApiClient;
    lab: ApiClient;
    supervisor: ApiClient;
  };
  /** Each open case's hotel, for its nurse's key. */
  hotelOf: Map<string, string>;
  client: Client;
  connection: Connection;
  baseline: Child;
  baselineQueue: string;
  /** Our open cases (case numbers), in OBSERVATION after the arrivals. */
  cases: string[];
  /** Bare open workflows (benchTarget ids). */
  targets: string[];
  hotels: string[];
  memoryBefore?: { rss: number; heapUsed: number };
  baselineMemoryBefore?: { rss: number; heapUsed: number };
}

async function phaseCounts(ctx: Ctx, caseNos: string[]): Promise<Record<string, number>> {
  const rows = await ctx.sql<{ phase: string; n: number }[]>`
    select phase, count(*)::int as n from cases where case_no = any(${caseNos}) group by phase`;
  return Object.fromEntries(rows.map((r) => [r.phase, r.n]));
}

async function waitForPhase(ctx: Ctx, caseNos: string[], phase: string, timeoutMs: number): Promise<void> {
  let last: Record<string, number> = {};
  const ok = await waitUntil(
    async () => {
      last = await phaseCounts(ctx, caseNos);
      return (last[phase] ?? 0) >= caseNos.length;
    },
    timeoutMs,
    500,
  );
  if (!ok) throw new Error(`cases did not all reach ${phase} in ${timeoutMs / 1000} s: ${JSON.stringify(last)}`);
}

/** Files transfers through the API; returns the case numbers and the timing. */
async function fileTransfers(ctx: Ctx, from: number, count: number) {
  const caseNos = new Array<string>(count);
  const items = Array.from({ length: count }, (_, i) => from + i);
  const timed = await timedPool(items, ctx.o.concurrency, async (i, idx) => {
    const r = await ctx.api.community.post<{ caseNo: string }>(
      '/api/v1/transfers',
      benchTransfer(ctx.runId, i, ctx.o.policy),
    );
    caseNos[idx] = r.caseNo;
  });
  return { caseNos: caseNos.filter(Boolean), timed };
}

async function postArrivals(ctx: Ctx, caseNos: string[]) {
  return timedPool(caseNos, ctx.o.concurrency, async (caseNo) => {
    await ctx.api.transport.post(`/api/v1/cases/${caseNo}/arrival`, {});
  });
}

async function bareRunning(ctx: Ctx, type: string): Promise<number> {
  const r = await ctx.client.workflow.count(`WorkflowType = '${type}' AND ExecutionStatus = 'Running'`);
  return r.count;
}

let targetSeq = 0;
async function startTargets(ctx: Ctx, count: number): Promise<void> {
  const ids = Array.from({ length: count }, () => `bench-target-${ctx.runId}-${++targetSeq}`);
  await mapLimit(ids, ctx.o.concurrency, (id) =>
    ctx.client.workflow.start(benchTarget, { taskQueue: ctx.baselineQueue, workflowId: id }),
  );
  ctx.targets.push(...ids);
  // Each has run its first workflow task (and sits in the worker's cache) before anything is measured.
  await mapLimit(ids, ctx.o.concurrency, (id) => ctx.client.workflow.getHandle(id).query(countsQuery));
}

/** Each case's hotel, from the read model: its nurse's key (medical keys act for their own hotel). */
async function knowHotels(ctx: Ctx, caseNos: string[]): Promise<void> {
  const unknown = caseNos.filter((c) => !ctx.hotelOf.has(c));
  if (!unknown.length) return;
  const rows = await ctx.sql<{ case_no: string; hotel_id: string | null }[]>`
    select case_no, hotel_id from cases where case_no = any(${unknown})`;
  for (const r of rows) if (r.hotel_id) ctx.hotelOf.set(r.case_no, r.hotel_id);
}

/** One ordered sample per case (a fever's extra sample), by id, once the read model shows it ordered. */
async function orderFeverSamples(ctx: Ctx, caseNos: string[]): Promise<string[]> {
  await knowHotels(ctx, caseNos);
  const fevers = await timedPool(caseNos, ctx.o.concurrency, (c, i) =>
    ctx.api
      .medical(c)
      .post(`/api/v1/cases/${c}/health-checks`, { checkId: `fever-${ctx.runId}-${i}`, temperatureC: 38.6 }),
  );
  if (fevers.errors) throw new Error(`fever checks failed: ${fevers.errorSamples.slice(0, 2).join('; ')}`);
  let ids: string[] = [];
  const ok = await waitUntil(
    async () => {
      const rows = await ctx.sql<{ sample_id: string }[]>`
        select distinct on (case_no) sample_id from samples
        where case_no = any(${caseNos}) and reason = 'fever' and status = 'ordered' and result = 'pending'
        order by case_no, sample_id`;
      ids = rows.map((r) => r.sample_id);
      return ids.length === caseNos.length;
    },
    300_000,
    500,
  );
  if (!ok) throw new Error(`only ${ids.length} of ${caseNos.length} fever samples were ordered`);
  // The fevers also opened escalations whose notices are still going out: the burst starts on a
  // quiet system (no case changed for 3 s), as the baseline does.
  let last = -1;
  await waitUntil(
    async () => {
      const [r] = await ctx.sql<{ v: number }[]>`
        select coalesce(sum(state_version), 0)::int as v from cases where case_no = any(${caseNos})`;
      const quiet = r!.v === last;
      last = r!.v;
      return quiet;
    },
    120_000,
    3000,
  );
  return ids;
}

// ---------------------------------------------------------------- scenarios
async function warmUp(ctx: Ctx): Promise<void> {
  log('warm-up: 50 transfers and arrivals, 50 bare starts, signals and updates');
  const { caseNos } = await fileTransfers(ctx, 1_000_000, 50);
  await waitForPhase(ctx, caseNos, 'IN_TRANSIT', 120_000);
  await postArrivals(ctx, caseNos);
  await waitForPhase(ctx, caseNos, 'OBSERVATION', 120_000);
  await knowHotels(ctx, caseNos);
  const warm = await timedPool(caseNos, 8, (c, i) =>
    ctx.api
      .medical(c)
      .post(`/api/v1/cases/${c}/health-checks`, { checkId: `warm-${ctx.runId}-${i}`, temperatureC: 36.6 }),
  );
  // A warm-up that fails is a broken bench, not a slow system: stop here, not with a NaN ratio later.
  if (warm.errors) throw new Error(`warm-up health checks failed: ${warm.errorSamples.slice(0, 2).join('; ')}`);
  await ctx.api.supervisor.get('/api/v1/cases?limit=50');
  await mapLimit(
    Array.from({ length: 50 }, (_, i) => i),
    8,
    (i) =>
      ctx.client.workflow.start(benchEmpty, {
        taskQueue: ctx.baselineQueue,
        workflowId: `bench-warm-${ctx.runId}-${i}`,
      }),
  );
  await startTargets(ctx, 50);
  await mapLimit(ctx.targets, 8, (id) => ctx.client.workflow.getHandle(id).signal(bumpSignal, { id }));
  await mapLimit(ctx.targets, 8, (id) =>
    ctx.client.workflow.getHandle(id).executeUpdate(checkUpdate, { args: [{ id, temperatureC: 36.6 }] }),
  );
  ctx.targets = [];
  await sleep(2000);
}

async function intake(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  log(`intake burst: ${o.n} transfers through the API, ${o.concurrency} in flight`);
  const ours = await fileTransfers(ctx, 0, o.n);
  ctx.cases = ours.caseNos;
  const oursS = summarize(ours.timed);
  log(`  ours: ${oursS.throughput}/s p50 ${oursS.p50} ms p99 ${oursS.p99} ms errors ${oursS.errors}`);
  const settleStart = Date.now();
  await waitForPhase(ctx, ctx.cases, 'IN_TRANSIT', 600_000);
  const settleS = (Date.now() - settleStart) / 1000;
  log(`  every case holds a room and waits for arrival ${round(settleS, 1)} s after the last 202`);

  log(`  bare: ${o.n} × client.workflow.start(benchEmpty)`);
  const ids = Array.from({ length: o.n }, (_, i) => `bench-empty-${ctx.runId}-${i}`);
  const bare = await timedPool(ids, o.concurrency, async (id) => {
    await ctx.client.workflow.start(benchEmpty, { taskQueue: ctx.baselineQueue, workflowId: id });
  });
  const bareS = summarize(bare);
  log(`  bare: ${bareS.throughput}/s p50 ${bareS.p50} ms p99 ${bareS.p99} ms`);
  await waitUntil(async () => (await bareRunning(ctx, 'benchEmpty')) === 0, 120_000, 500);
  throughputResult('intake burst', oursS, bareS, {
    concurrency: o.concurrency,
    oursSettleSeconds: round(settleS, 1),
    errorSamples: [...ours.timed.errorSamples, ...bare.errorSamples],
  });

  log(`  arrivals for the ${ctx.cases.length} cases (not scored)`);
  const arr = summarize(await postArrivals(ctx, ctx.cases));
  await waitForPhase(ctx, ctx.cases, 'OBSERVATION', 600_000);
  log(`  arrivals: ${arr.throughput}/s p50 ${arr.p50} ms; all in OBSERVATION`);
}

async function ensureOpenCases(ctx: Ctx, count: number): Promise<void> {
  if (ctx.cases.length >= count) return;
  const more = count - ctx.cases.length;
  log(`  opening ${more} more cases (transfers and arrivals)`);
  const r = await fileTransfers(ctx, ctx.cases.length, more);
  await waitForPhase(ctx, r.caseNos, 'IN_TRANSIT', 900_000);
  await postArrivals(ctx, r.caseNos);
  await waitForPhase(ctx, r.caseNos, 'OBSERVATION', 900_000);
  ctx.cases.push(...r.caseNos);
}

async function ensureTargets(ctx: Ctx, count: number): Promise<void> {
  if (ctx.targets.length >= count) return;
  log(`  starting ${count - ctx.targets.length} bare open workflows`);
  await startTargets(ctx, count - ctx.targets.length);
}

async function labBurst(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  await ensureOpenCases(ctx, o.n);
  await ensureTargets(ctx, o.n);
  const caseNos = ctx.cases.slice(0, o.n);
  // Results count only for samples really taken (the safety core answers `not_ordered` for the
  // rest): each case first reports a fever, which orders an extra sample from the simulated lab
  // at once. The burst then answers those samples. Not timed.
  const sampleIds = await orderFeverSamples(ctx, caseNos);
  const batches: string[][] = [];
  for (let i = 0; i < sampleIds.length; i += o.labBatch) batches.push(sampleIds.slice(i, i + o.labBatch));
  log(
    `lab-result burst: ${sampleIds.length} results in ${batches.length} batches of ≤ ${o.labBatch}, ${o.labParallel} at a time`,
  );
  const counts: Record<string, number> = {};
  const t = await timedPool(batches, o.labParallel, async (batch) => {
    const r = await ctx.api.lab.post<{ counts: Record<string, number> }>('/api/v1/lab/results', {
      results: batch.map((sampleId) => ({ sampleId, result: 'negative' })),
    });
    for (const [k, v] of Object.entries(r.counts)) counts[k] = (counts[k] ?? 0) + v;
  });
  const oursThroughput = (counts.applied ?? 0) / t.seconds;
  const t0 = Date.now();
  let inReadModel = 0;
  await waitUntil(
    async () => {
      const r = await ctx.sql<{ n: number }[]>`
        select count(*)::int as n from samples where sample_id = any(${sampleIds}) and result = 'negative'`;
      inReadModel = r[0]!.n;
      return inReadModel === sampleIds.length;
    },
    300_000,
    250,
  );
  const readModelLagS = (Date.now() - t0) / 1000;
  // Until every result is in the read model: the rate the system absorbs a push at, which the
  // answers' rate alone flatters when results are still being written after the last answer.
  const endToEnd = (counts.applied ?? 0) / (t.seconds + readModelLagS);
  log(
    `  ours: ${round(oursThroughput, 1)}/s applied ${counts.applied ?? 0}/${sampleIds.length} ` +
      `(${JSON.stringify(counts)}); in the read model: ${inReadModel} after +${round(readModelLagS, 1)} s ` +
      `(${round(endToEnd, 1)}/s until all were in it)`,
  );

  log(`  bare: ${o.n} signals to ${o.n} open workflows, ${o.labConcurrency * o.labParallel} in flight`);
  const targets = ctx.targets.slice(0, o.n);
  const bare = await timedPool(targets, o.labConcurrency * o.labParallel, async (id) => {
    await ctx.client.workflow.getHandle(id).signal(bumpSignal, { id });
  });
  const bareS = summarize(bare);
  const received = await countBare(ctx, targets, 'signals');
  log(`  bare: ${bareS.throughput}/s p50 ${bareS.p50} ms; signals received ${received}/${targets.length}`);
  const oursS = { ...summarize(t, counts.applied ?? 0) };
  throughputResult('lab-result burst', oursS, bareS, {
    batchSize: o.labBatch,
    batchesInParallel: o.labParallel,
    resultsApplied: counts.applied ?? 0,
    resultsAnswered: counts,
    resultsInReadModel: inReadModel,
    readModelLagSeconds: round(readModelLagS, 1),
    resultsPerSecondUntilInReadModel: round(endToEnd, 1),
    bareSignalsReceived: received,
    allApplied:
      (counts.applied ?? 0) === sampleIds.length && inReadModel === sampleIds.length && received >= targets.length,
    note: 'ours.p50/p95/p99 are per batch request; throughput is results per second',
  });
}

async function countBare(ctx: Ctx, ids: string[], what: 'signals' | 'updates'): Promise<number> {
  const counts = await mapLimit(
    ids,
    ctx.o.concurrency,
    async (id) => (await ctx.client.workflow.getHandle(id).query(countsQuery))[what],
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** The health check's bare baseline: one update to each bare open workflow, as many in flight as ours. */
function bareCheckUpdates(ctx: Ctx, targets: string[]): Promise<Timed> {
  return timedPool(targets, ctx.o.concurrency, async (id, i) => {
    await ctx.client.workflow
      .getHandle(id)
      .executeUpdate(checkUpdate, { args: [{ id, temperatureC: 36.4 + (i % 5) / 10 }] });
  });
}

async function healthMorning(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  await ensureOpenCases(ctx, o.n);
  await ensureTargets(ctx, o.n);
  const caseNos = ctx.cases.slice(0, o.n);
  await knowHotels(ctx, caseNos);
  log(`health-check morning: ${caseNos.length} checks through the API (updates), ${o.concurrency} in flight`);
  let duplicates = 0;
  let queued = 0;
  const pids = ctx.sys.pids;
  // BENCH_PROFILE_DIR: a CPU profile of our processes over exactly the timed checks.
  const profiling = process.env.BENCH_PROFILE_DIR && ctx.sys.profile ? ctx.sys.profile.bind(ctx.sys) : undefined;
  // The database's work per check (pg_stat_database of the bench's database): statements that
  // commit, and rows read. A backend flushes its counts at most once a second while busy and
  // within 10 s once idle, so both snapshots wait that out (nothing else runs meanwhile but the
  // worker's beat and the API's probe, about one transaction a second).
  const dbWork = async () => {
    await new Promise((r) => setTimeout(r, 11_000));
    const r = await ctx.sql<{ xacts: string; returned: string; fetched: string }[]>`
      select (xact_commit + xact_rollback)::text as xacts, tup_returned::text as returned, tup_fetched::text as fetched
      from pg_stat_database where datname = current_database()`;
    return { xacts: Number(r[0]!.xacts), returned: Number(r[0]!.returned), fetched: Number(r[0]!.fetched) };
  };
  const db0 = await dbWork();
  await profiling?.('start', 'health');
  const cpu0 = pids
    ? { main: processCpuMs(pids.main), worker: pids.worker ? processCpuMs(pids.worker) : 0 }
    : undefined;
  const t = await timedPool(caseNos, o.concurrency, async (caseNo, i) => {
    const r = await ctx.api
      .medical(caseNo)
      .post<{ result?: { duplicate: boolean }; queued?: boolean }>(`/api/v1/cases/${caseNo}/health-checks`, {
        checkId: `hc-${ctx.runId}-${i}`,
        temperatureC: 36.4 + (i % 5) / 10,
        symptoms: [],
      });
    // 202 without a result: accepted and queued (the worker was behind), applied when it catches up.
    if (r.result?.duplicate) duplicates++;
    if (!r.result) queued++;
  });
  await profiling?.('stop', 'health');
  // Our processes' own CPU per check (Linux /proc; the dev server, a child of the main one, apart).
  const cpuPerCheck =
    pids && cpu0
      ? {
          [o.apart ? 'apiMs' : 'systemMs']: round((processCpuMs(pids.main) - cpu0.main) / Math.max(1, t.ok), 2),
          ...(pids.worker ? { workerMs: round((processCpuMs(pids.worker) - cpu0.worker) / Math.max(1, t.ok), 2) } : {}),
        }
      : undefined;
  const oursS = summarize(t);
  const db1 = await dbWork();
  const perCheck = (n: number) => round(n / Math.max(1, t.ok), 2);
  const dbPerCheck = {
    transactions: perCheck(db1.xacts - db0.xacts),
    rowsReturned: perCheck(db1.returned - db0.returned),
    rowsFetched: perCheck(db1.fetched - db0.fetched),
  };
  log(
    `  ours: ${oursS.throughput}/s p50 ${oursS.p50} ms p99 ${oursS.p99} ms errors ${oursS.errors} queued (202) ${queued}` +
      (cpuPerCheck ? `; CPU a check: ${JSON.stringify(cpuPerCheck)}` : '') +
      `; the database a check: ${JSON.stringify(dbPerCheck)}`,
  );
  const checkIds = caseNos.map((_, i) => `hc-${ctx.runId}-${i}`);
  let recorded = 0;
  await waitUntil(
    async () => {
      const r = await ctx.sql<
        { n: number }[]
      >`select count(*)::int as n from health_checks where id = any(${checkIds})`;
      recorded = r[0]!.n;
      return recorded === checkIds.length;
    },
    300_000,
    250,
  );
  const targets = ctx.targets.slice(0, o.n);
  log(`  bare: ${targets.length} updates, ${o.concurrency} in flight`);
  const bareWorkerPid = ctx.baseline.proc.pid!;
  const bareCpu0 = { worker: processCpuMs(bareWorkerPid), client: process.cpuUsage() };
  const bare = await bareCheckUpdates(ctx, targets);
  const bareClientCpu = process.cpuUsage(bareCpu0.client);
  const bareCpuPerUpdate = {
    workerMs: round((processCpuMs(bareWorkerPid) - bareCpu0.worker) / Math.max(1, bare.ok), 2),
    clientMs: round((bareClientCpu.user + bareClientCpu.system) / 1000 / Math.max(1, bare.ok), 2),
  };
  const bareS = summarize(bare);
  log(
    `  bare: ${bareS.throughput}/s p50 ${bareS.p50} ms p99 ${bareS.p99} ms; CPU an update: ${JSON.stringify(bareCpuPerUpdate)}`,
  );
  throughputResult('health-check morning', oursS, bareS, {
    concurrency: o.concurrency,
    ...(cpuPerCheck ? { cpuMsPerCheck: cpuPerCheck, bareCpuMsPerUpdate: bareCpuPerUpdate } : {}),
    databasePerCheck: dbPerCheck,
    checksRecordedInReadModel: recorded,
    duplicates,
    queued,
    errorSamples: [...t.errorSamples, ...bare.errorSamples],
  });
}

async function supervisorList(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  log(`supervisor list: inserting ${o.m} read-model rows`);
  const t0 = Date.now();
  await insertSyntheticCases(ctx.db.db, o.m, ctx.hotels);
  const total = await ctx.sql<{ n: number }[]>`select count(*)::int as n from cases`;
  log(`  ${total[0]!.n} rows in cases (${round((Date.now() - t0) / 1000, 1)} s)`);
  // Fresh statistics for both sides (autovacuum would get there a minute later), and each
  // side's statements prepared before the clock starts.
  await ctx.sql`analyze cases`;
  for (let i = 0; i < 20; i++) {
    await ctx.api.supervisor.get(`/api/v1/cases?phase=OBSERVATION&colour=red&limit=50`);
    await ctx.api.supervisor.get(`/api/v1/cases?phase=OBSERVATION&hotelId=${ctx.hotels[0]}&limit=50`);
  }

  // Two filters a command centre uses at peak: red cases in observation; one hotel's open cases in observation.
  const filters = [
    { label: 'phase+colour', qs: 'phase=OBSERVATION&colour=red', where: { phase: 'OBSERVATION', colour: 'red' } },
    {
      label: 'hotel+phase',
      qs: `phase=OBSERVATION&hotelId=${ctx.hotels[0]}`,
      where: { phase: 'OBSERVATION', hotelId: ctx.hotels[0]! },
    },
  ];
  const apiLat: number[] = [];
  const sqlLat: number[] = [];
  let mismatches = 0;
  let pages = 0;
  // BENCH_PROFILE_DIR: a CPU profile of our processes over exactly the pages walked.
  const profiling = process.env.BENCH_PROFILE_DIR && ctx.sys.profile ? ctx.sys.profile.bind(ctx.sys) : undefined;
  await profiling?.('start', 'list');
  for (let rep = 0; rep < o.listRepeats; rep++) {
    for (const f of filters) {
      let cursor: string | null = null;
      let after = '';
      for (let p = 0; p < o.listPages; p++) {
        let t = performance.now();
        const page: { items: { caseNo: string }[]; nextCursor: string | null } = await ctx.api.supervisor.get(
          `/api/v1/cases?${f.qs}&limit=50${cursor ? `&cursor=${cursor}` : ''}`,
        );
        apiLat.push(performance.now() - t);
        t = performance.now();
        const rows = await bareListPage(ctx.sql, f.where, after);
        sqlLat.push(performance.now() - t);
        pages++;
        const apiIds = page.items.map((i) => i.caseNo).join();
        if (
          apiIds !==
          rows
            .slice(0, 50)
            .map((r) => r.case_no)
            .join()
        )
          mismatches++;
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
        after = page.items[page.items.length - 1]!.caseNo;
      }
    }
  }

  await profiling?.('stop', 'list');
  // Temporal's own list by search attributes, over the workflows it has (the real cases only).
  const tLat: number[] = [];
  let temporalRows = 0;
  for (let rep = 0; rep < o.listRepeats; rep++) {
    let token: Uint8Array | undefined;
    for (let p = 0; p < o.listPages; p++) {
      const t = performance.now();
      const r = await ctx.connection.workflowService.listWorkflowExecutions({
        namespace: o.namespace,
        pageSize: 50,
        nextPageToken: token,
        query: `CasePhase = "OBSERVATION" AND CaseColour = "red"`,
      });
      tLat.push(performance.now() - t);
      if (rep === 0) temporalRows += r.executions?.length ?? 0;
      if (!r.nextPageToken || r.nextPageToken.length === 0) break;
      token = r.nextPageToken;
    }
  }
  const api = latencyStats(apiLat);
  const bare = latencyStats(sqlLat);
  const temporal = latencyStats(tLat);
  log(
    `  API p50 ${api.p50} ms p99 ${api.p99}; bare SQL p50 ${bare.p50} ms p99 ${bare.p99}; Temporal list p50 ${temporal.p50} ms`,
  );
  const ratio = round(bare.p50 / api.p50, 3);
  results.push({
    name: 'supervisor list',
    unit: 'ms per page (p50)',
    ours: api.p50,
    baseline: bare.p50,
    ratio,
    target: 0.5,
    met: ratio >= 0.5,
    detail: {
      rows: total[0]!.n,
      pagesWalked: pages,
      pageSize: 50,
      filters: filters.map((f) => f.qs),
      ours: api,
      baseline: bare,
      temporalList: {
        ...temporal,
        rowsInFirstWalk: temporalRows,
        note: 'over the real workflows only; the M synthetic rows exist only in the read model',
      },
      p99Ratio: round(bare.p99 / api.p99, 3),
      pageMismatches: mismatches,
    },
  });
}

/** One rung of a ladder against the bare calls measured before and after it. */
interface LadderRung {
  path: 'health check' | 'intake';
  rung: Rung | IntakeRung;
  calls: number;
  errors: number;
  perSecond: number;
  p50: number;
  p99: number;
  bare: { perSecond: number; p50: number };
  ratio: number;
  /** CPU of the front's process per check, and of the bench's process per bare update (its gRPC client). */
  frontCpuMsPerCall: number;
  bareClientCpuMsPerCall: number;
}
const ladder: LadderRung[] = [];

/** The kernel's clock ticks a second, in which /proc reports CPU time (100 on every Linux seen). */
let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process (its own, not its children's), in ms; NaN where /proc cannot tell (not Linux). */
function processCpuMs(pid: number): number {
  const stat = processStat(pid);
  return stat ? (stat.ticks * 1000) / ticksPerSecond() : NaN;
}

/**
 * The health check's ladder: what the least front must cost, rung by rung, against bare updates
 * (climbLadder). Each rung's front sends N updates to bare open workflows (the codec rung's on a
 * bare worker with the codec). Then the intake's ladder, on the same codec worker.
 */
async function healthLadder(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  await ensureTargets(ctx, o.n);
  const targets = ctx.targets.slice(0, o.n);
  const codecKey = crypto.randomBytes(32).toString('base64');
  const codecQueue = `bench-baseline-codec-${ctx.runId}`;
  const codecWorker = forkTs(path.join(__dirname, 'baseline-worker.ts'), {
    args: [
      JSON.stringify({
        address: ctx.sys.temporalAddress,
        namespace: o.namespace,
        taskQueue: codecQueue,
        maxCachedWorkflows: o.n + 1000,
        maxConcurrentWorkflowTasks: 100,
        codecKey,
      }),
    ],
    env: { ...process.env },
  });
  try {
    await codecWorker.ready;
    const codecClient = new Client({
      connection: ctx.connection,
      namespace: o.namespace,
      dataConverter: {
        payloadCodecs: [new AesGcmCodec(new Map([['bench', Buffer.from(codecKey, 'base64')]]), 'bench')],
      },
    });
    const codecTargets = targets.map((id) => `${id}-codec`);
    log(`health ladder: ${codecTargets.length} bare open workflows with the codec`);
    await mapLimit(codecTargets, o.concurrency, (id) =>
      codecClient.workflow.start(benchTarget, { taskQueue: codecQueue, workflowId: id }),
    );
    await mapLimit(codecTargets, o.concurrency, (id) => codecClient.workflow.getHandle(id).query(countsQuery));
    await ctx.sql`create table if not exists bench_ladder (
      id text primary key, district text not null, version integer not null, updated_at timestamptz)`;
    await ctx.sql`create table if not exists bench_ladder_checks (
      id text primary key, target text not null, temperature_c real not null, taken_at timestamptz not null)`;
    await ctx.sql`insert into bench_ladder ${ctx.sql(
      [...targets, ...codecTargets].map((id) => ({ id, district: 'Bench', version: 0 })),
    )} on conflict do nothing`;

    await climbLadder(ctx, {
      path: 'health check',
      rungs: ['http', 'http+read', 'http+db', 'http+db+codec'] as Rung[],
      units: ['a check', 'an update'],
      frontArgs: (rung) => (rung.endsWith('codec') ? { codecKey } : {}),
      // A few calls first: the front's connections and prepared statements, not timed.
      warm: async (client, rung) => {
        for (const id of (rung.endsWith('codec') ? codecTargets : targets).slice(0, 20))
          await client.post(`/check/${id}`, { checkId: `warm-${id}`, temperatureC: 36.5 });
      },
      call: async (client, rung, i) => {
        const id = (rung.endsWith('codec') ? codecTargets : targets)[i]!;
        await client.post(`/check/${id}`, {
          checkId: `lad-${ctx.runId}-${rung}-${i}`,
          temperatureC: 36.4 + (i % 5) / 10,
        });
      },
      bare: () => bareCheckUpdates(ctx, targets),
    });
    await mapLimit(codecTargets, o.concurrency, (id) => codecClient.workflow.getHandle(id).signal(finishSignal));
    await intakeLadder(ctx, codecKey, codecQueue);
  } finally {
    await codecWorker.stop();
  }
}

/**
 * The intake's ladder: N transfers through the least front (bench/ladder-server.ts, `POST
 * /start/:id`), rung by rung, against bare starts of the empty workflow before and after each.
 * The front's part only: the case's own first task and activities, which ours runs beside its
 * intake, are not in it.
 */
async function intakeLadder(ctx: Ctx, codecKey: string, codecQueue: string): Promise<void> {
  const { o } = ctx;
  await climbLadder(ctx, {
    path: 'intake',
    rungs: ['start', 'start+db', 'start+db+codec'] as IntakeRung[],
    units: ['a transfer', 'a start'],
    frontArgs: (rung) =>
      rung.endsWith('codec') ? { taskQueue: codecQueue, codecKey } : { taskQueue: ctx.baselineQueue },
    warm: async (client, rung) => {
      for (let i = 0; i < 20; i++)
        await client.post(
          `/start/lad-${ctx.runId}-${tag(rung)}-warm-${i}`,
          benchTransfer(ctx.runId, 10_000_000 + i, 'drill'),
        );
    },
    call: async (client, rung, i) => {
      await client.post(`/start/lad-${ctx.runId}-${tag(rung)}-${i}`, benchTransfer(ctx.runId, i, 'drill'));
    },
    bare: (run) =>
      timedPool(
        Array.from({ length: o.n }, (_, i) => i),
        o.concurrency,
        async (i) => {
          await ctx.client.workflow.start(benchEmpty, {
            taskQueue: ctx.baselineQueue,
            workflowId: `bench-ladder-bare-${ctx.runId}-${run}-${i}`,
          });
        },
      ),
  });
}

/** A rung's name as it may stand in an id or a file name. */
const tag = (rung: string) => rung.replace(/\+/g, '-');

/** What one ladder is: its rungs, and how its front and the bare client make a call. */
interface LadderSpec<R extends Rung | IntakeRung> {
  path: LadderRung['path'];
  rungs: R[];
  /** What the front makes and what the bare client makes, for the log: e.g. "a check", "an update". */
  units: [string, string];
  /** The front's arguments besides the address, namespace, database and rung. */
  frontArgs(rung: R): Record<string, unknown>;
  /** Untimed calls through a new front, before its rung is measured. */
  warm(client: ApiClient, rung: R): Promise<void>;
  /** Call i of N through the front. */
  call(client: ApiClient, rung: R, i: number): Promise<void>;
  /** N bare calls; `run` numbers the run (0 before the first rung, then one after each). */
  bare(run: number): Promise<Timed>;
}

/**
 * Climbs a ladder: bare calls before the first rung and after each, and each rung (a front of its
 * own, bench/ladder-server.ts, N calls through it) judged against the mean of the two bare runs
 * beside it. With BENCH_PROFILE_DIR, a profile of each front over its rung.
 */
async function climbLadder<R extends Rung | IntakeRung>(ctx: Ctx, spec: LadderSpec<R>): Promise<void> {
  const { o } = ctx;
  const [unit, bareUnit] = spec.units;
  let run = 0;
  const bare = async () => {
    const c0 = process.cpuUsage();
    const t = await spec.bare(run++);
    const c1 = process.cpuUsage(c0);
    return { s: summarize(t), cpuMs: (c1.user + c1.system) / 1000 / Math.max(1, t.ok) };
  };
  let before = await bare();
  log(`${spec.path} ladder: bare ${before.s.throughput}/s (p50 ${before.s.p50} ms)`);
  const items = Array.from({ length: o.n }, (_, i) => i);
  for (const rung of spec.rungs) {
    const front = forkTs(path.join(__dirname, 'ladder-server.ts'), {
      args: [
        JSON.stringify({
          address: ctx.sys.temporalAddress,
          namespace: o.namespace,
          databaseUrl: o.databaseUrl,
          rung,
          ...spec.frontArgs(rung),
        }),
      ],
      env: { ...process.env },
    });
    try {
      const { url } = (await front.ready) as { url: string };
      const client = new ApiClient(url, 'none');
      const pid = front.proc.pid!;
      await spec.warm(client, rung);
      const profileDir = process.env.BENCH_PROFILE_DIR;
      if (profileDir) await front.ask('profile-start');
      const cpu0 = processCpuMs(pid);
      const t = await timedPool(items, o.concurrency, (i) => spec.call(client, rung, i));
      const frontCpu = processCpuMs(pid) - cpu0;
      if (profileDir)
        await front.ask('profile-stop', { file: path.join(profileDir, `ladder-${tag(rung)}.cpuprofile`) });
      const after = await bare();
      const ours = summarize(t);
      const bareRate = round((before.s.throughput + after.s.throughput) / 2, 1);
      const r: LadderRung = {
        path: spec.path,
        rung,
        calls: t.ok,
        errors: ours.errors,
        perSecond: ours.throughput,
        p50: ours.p50,
        p99: ours.p99,
        bare: { perSecond: bareRate, p50: round((before.s.p50 + after.s.p50) / 2, 2) },
        ratio: round(ours.throughput / bareRate, 3),
        frontCpuMsPerCall: round(frontCpu / Math.max(1, t.ok), 2),
        bareClientCpuMsPerCall: round((before.cpuMs + after.cpuMs) / 2, 2),
      };
      before = after;
      ladder.push(r);
      log(
        `  ${rung}: ${r.perSecond}/s (p50 ${r.p50} ms, errors ${r.errors}) against bare ${r.bare.perSecond}/s ` +
          `(the runs before and after it; after: ${after.s.throughput}/s): ${r.ratio}; ` +
          `the front's CPU ${r.frontCpuMsPerCall} ms ${unit}, the bare client's ${r.bareClientCpuMsPerCall} ms ${bareUnit}`,
      );
    } finally {
      await front.stop();
    }
  }
}

/**
 * The wave chart's aggregate (GET /api/v1/reports/wave, 14 calendar days) over M read-model rows:
 * target p95 within 200 ms (issue 14), measured through the API.
 */
async function waveAggregate(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  const have = (await ctx.sql<{ n: number }[]>`select count(*)::int as n from cases`)[0]!.n;
  if (have < o.m) {
    log(`wave: inserting ${o.m} read-model rows`);
    await insertSyntheticCases(ctx.db.db, o.m, ctx.hotels);
  }
  const rows = (await ctx.sql<{ n: number }[]>`select count(*)::int as n from cases`)[0]!.n;
  log(`wave: 14-day aggregate over ${rows} cases, ${o.listRepeats * 20} calls`);
  const lat: number[] = [];
  let days = 0;
  for (let i = 0; i < o.listRepeats * 20; i++) {
    const t = performance.now();
    const r: { days: unknown[] } = await ctx.api.supervisor.get('/api/v1/reports/wave');
    lat.push(performance.now() - t);
    days = r.days.length;
  }
  const { p50, p95, p99 } = latencyStats(lat);
  log(`  p50 ${p50} ms p95 ${p95} ms p99 ${p99} ms (${days} days)`);
  results.push({
    name: 'wave aggregate',
    unit: 'ms per call (p95)',
    ours: p95,
    baseline: 200,
    ratio: round(200 / p95, 3),
    target: 1,
    met: p95 <= 200,
    detail: { rows, calls: lat.length, days, p50, p95, p99, targetMs: 200 },
  });
}

async function memory(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  log(`worker memory: ${o.k} open cases`);
  await ensureOpenCases(ctx, o.k);
  await ensureTargets(ctx, o.k);
  await sleep(3000);
  const after = await ctx.sys.memory();
  const bareAfter = await ctx.baseline.ask<{ rss: number; heapUsed: number }>('memory');
  const before = ctx.memoryBefore!;
  const bareBefore = ctx.baselineMemoryBefore!;
  const open = ctx.cases.length;
  const perCase = (after!.rss - before.rss) / open / MiB;
  const heapPerCase = (after!.heapUsed - before.heapUsed) / open / MiB;
  const bareOpen = ctx.targets.length;
  const barePerWf = (bareAfter.rss - bareBefore.rss) / bareOpen / MiB;
  const bareHeapPerWf = (bareAfter.heapUsed - bareBefore.heapUsed) / bareOpen / MiB;
  log(
    `  ours: RSS ${round(after!.rss / MiB, 0)} MiB (+${round(perCase * 1024, 1)} KiB/case), heap ${round(after!.heapUsed / MiB, 0)} MiB ` +
      `(+${round(heapPerCase * 1024, 1)} KiB/case) with ${open} open; bare: +${round(barePerWf * 1024, 1)} KiB/workflow RSS`,
  );
  const limit = 300 / 1024; // MiB per open case (issue 11: under 300 KiB per open case)
  results.push({
    name: 'worker memory',
    unit: 'MiB RSS per open case',
    ours: round(perCase, 4),
    baseline: round(barePerWf, 4),
    ratio: round(limit / Math.max(perCase, 1e-6), 3),
    target: 1,
    met: perCase < limit,
    detail: {
      note: 'ratio = 300 KiB / ours (the bar is an absolute 300 KiB per open case; ≥ 1 meets it); baseline is the bare worker per open workflow, for reference',
      openCases: open,
      oursRssBeforeMiB: round(before.rss / MiB, 1),
      oursRssAfterMiB: round(after!.rss / MiB, 1),
      oursHeapBeforeMiB: round(before.heapUsed / MiB, 1),
      oursHeapAfterMiB: round(after!.heapUsed / MiB, 1),
      oursHeapPerCaseKiB: round(heapPerCase * 1024, 1),
      bareOpenWorkflows: bareOpen,
      bareRssBeforeMiB: round(bareBefore.rss / MiB, 1),
      bareRssAfterMiB: round(bareAfter.rss / MiB, 1),
      bareHeapPerWorkflowKiB: round(bareHeapPerWf * 1024, 1),
      measuredAfterGc: !!after?.gc,
      processIncludes: ctx.o.apiUrl
        ? 'the external API process (its metrics)'
        : ctx.o.apart
          ? 'the worker alone (--apart)'
          : 'worker and API (npm start without the dev server)',
    },
  });
}

// ---------------------------------------------------------------- report
function machine(sqlVersion: string) {
  const cpus = os.cpus();
  return {
    host: os.hostname().replace(/[^\w.-]/g, ''),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: round(os.totalmem() / 1024 ** 3, 1),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    postgres: sqlVersion,
    temporal: 'temporal server start-dev (SQLite, WAL)',
  };
}

function printTable(): void {
  const rows = results.map((r) => [
    r.name,
    `${r.ours} ${r.unit.startsWith('per') ? '/s' : r.unit.startsWith('ms') ? 'ms' : 'MiB'}`,
    `${r.baseline}`,
    `${r.ratio}`,
    `${r.target}`,
    r.met ? 'yes' : 'NO',
  ]);
  const head = ['scenario', 'ours', 'baseline', 'ratio', 'target', 'met'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log('\n' + line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('\nLatency (ms) p50 / p95 / p99:');
  for (const r of results) {
    const d = r.detail as { ours?: Partial<Summary>; baseline?: Partial<Summary> };
    if (d.ours?.p50 !== undefined && d.baseline?.p50 !== undefined) {
      console.log(
        `  ${r.name.padEnd(22)} ours ${d.ours.p50} / ${d.ours.p95} / ${d.ours.p99}   baseline ${d.baseline.p50} / ${d.baseline.p95} / ${d.baseline.p99}`,
      );
    }
  }
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const runId = crypto.randomBytes(3).toString('hex');
  const started = Date.now();
  log(`run ${runId}: N=${o.n} M=${o.m} K=${o.k} concurrency=${o.concurrency} scenarios=${[...o.only].join(',')}`);

  const own = !o.apiUrl;
  if (own) await resetBenchDatabase(o.databaseUrl);
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: os.tmpdir(), max: 10 });
  const sql = postgres(o.databaseUrl, { max: 4, onnotice: () => undefined });
  const cleanups: (() => Promise<void>)[] = [async () => void (await sql.end({ timeout: 5 })), () => db.close()];
  let sys: System | undefined;
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
    cleanups.length = 0;
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

  try {
    const rooms = Math.max(o.n, o.only.has('memory') ? o.k : 0) + 200;
    const seeded = await seedBenchHotels(db.db, rooms);
    const keys = await createBenchKeys(db.db, runId, seeded.hotels);
    log(`seeded ${seeded.hotels.length} bench hotels, ${seeded.rooms} rooms`);

    log(own ? 'starting the system (dev server, worker, API)' : `using the system at ${o.apiUrl}`);
    sys = own ? await startOwnSystem(o) : externalSystem(o);
    cleanups.push(() => sys!.stop());
    if (own && sys.dataDir) {
      const dir = sys.dataDir;
      cleanups.unshift(async () => fs.rmSync(dir, { recursive: true, force: true }));
    }
    const connection = await Connection.connect({ address: sys.temporalAddress });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: o.namespace });
    const baselineQueue = `bench-baseline-${runId}`;
    const baseline = forkTs(path.join(__dirname, 'baseline-worker.ts'), {
      gc: true,
      args: [
        JSON.stringify({
          address: sys.temporalAddress,
          namespace: o.namespace,
          taskQueue: baselineQueue,
          maxCachedWorkflows: o.k + o.n + 1000,
          maxConcurrentWorkflowTasks: 100,
        }),
      ],
      env: { ...process.env },
    });
    cleanups.push(() => baseline.stop());
    await baseline.ready;

    const hotelOf = new Map<string, string>();
    const apiUrl = sys.apiUrl;
    const nurses = new Map(Object.entries(keys.medical).map(([h, k]) => [h, new ApiClient(apiUrl, k)]));
    const api = {
      community: new ApiClient(sys.apiUrl, keys.community),
      transport: new ApiClient(sys.apiUrl, keys.transport),
      medical: (caseNo: string) => {
        const hotel = hotelOf.get(caseNo);
        const nurse = hotel ? nurses.get(hotel) : undefined;
        if (!nurse) throw new Error(`case ${caseNo}: hotel not known to the bench (call knowHotels first)`);
        return nurse;
      },
      lab: new ApiClient(sys.apiUrl, keys.lab),
      supervisor: new ApiClient(sys.apiUrl, keys.supervisor),
    };
    const ctx: Ctx = {
      o,
      runId,
      sys,
      db,
      sql,
      keys,
      api,
      client,
      connection,
      baseline,
      baselineQueue,
      cases: [],
      targets: [],
      hotels: seeded.hotels,
      hotelOf,
    };
    await warmUp(ctx);
    const m0 = await sys.memory();
    ctx.memoryBefore = m0 ? { rss: m0.rss, heapUsed: m0.heapUsed } : undefined;
    const b0 = await baseline.ask<{ rss: number; heapUsed: number }>('memory');
    ctx.baselineMemoryBefore = b0;

    if (o.only.has('intake')) await intake(ctx);
    if (o.only.has('lab')) await labBurst(ctx);
    if (o.only.has('health')) await healthMorning(ctx);
    if (o.only.has('list')) await supervisorList(ctx);
    if (o.only.has('memory')) await memory(ctx);
    if (o.only.has('wave')) await waveAggregate(ctx);
    if (o.only.has('ladder')) await healthLadder(ctx);

    const version = (await sql<{ v: string }[]>`show server_version`)[0]!.v;
    const out = {
      machine: machine(version),
      runAt: new Date().toISOString(),
      runSeconds: round((Date.now() - started) / 1000, 0),
      parameters: {
        n: o.n,
        m: o.m,
        k: o.k,
        concurrency: o.concurrency,
        labBatch: o.labBatch,
        labParallel: o.labParallel,
        topology: o.apiUrl ? 'external' : o.apart ? 'api and worker apart' : 'one process',
      },
      scenarios: results,
      ...(ladder.length ? { ladder } : {}),
    };
    fs.writeFileSync(o.out, JSON.stringify(out, null, 2) + '\n');
    printTable();
    console.log(`\nWrote ${path.relative(process.cwd(), o.out)} (${out.runSeconds} s)`);
    // A missed target fails the run (exit code 1), so a regression cannot pass unnoticed.
    const missed = results.filter((r) => !r.met).map((r) => r.name);
    if (missed.length) {
      console.log(`\nTargets missed: ${missed.join(', ')}`);
      process.exitCode = 1;
    }
  } finally {
    await cleanup();
    if (own && !o.keepDb) await dropBenchDatabase(o.databaseUrl).catch(() => undefined);
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
