import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { Client, Connection } from '@temporalio/client';
import postgres from 'postgres';

import { DEMO_DISTRICT } from '../../src/db/demo-hotels';
import { loadCodec } from '../../src/temporal/codec';
import type { ClusterState } from '../../scripts/cluster';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { sleep, waitFor } from '../support/wait';

/**
 * `npm run cluster` under test: the real script on free ports with fresh databases (the app's
 * behind a TCP proxy that a test can cut), an alert webhook that records what it receives, and
 * each role's calls through the APIs only (every answer kept for the assertions).
 */
export const ROOT = path.resolve(__dirname, '..', '..');
const PG = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export { sleep, waitFor };

export const pgAt = (db: string): string => {
  const u = new URL(PG);
  u.pathname = `/${db}`;
  return u.toString();
};

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A frontend port whose whole family (gRPC, membership, HTTP, metrics), the APIs and the UI are free. */
async function clusterPorts(): Promise<{ temporal: number; api: number; ui: number }> {
  for (let i = 0; i < 50; i++) {
    // Membership ports are stored as smallint: keep the family below 32767.
    const f = 12_000 + Math.floor(Math.random() * 18_000);
    const family = [0, 1, 2, 6, 10, -300, -299, -298, -294, 767, 768, 769, 770].map((d) => f + d);
    const api = f + 1000;
    if ((await Promise.all([...family, api, api + 1, api + 2].map(portFree))).every(Boolean))
      return { temporal: f, api, ui: api + 2 };
  }
  throw new Error('no free port family');
}

export interface Answer {
  op: string;
  api: string;
  status: number;
  ms: number;
  phase: string;
  problem: boolean;
}

export interface CaseView {
  phase: string;
  room?: { hotelId: string; roomId: string };
  samples: { sampleId: string; status: string; result?: string }[];
  checks: { checkId: string; fever: boolean }[];
  escalations: { kind: string; status: string }[];
  inspection: { status: string; inspectionId?: string };
  releaseBlockers: string[];
}

export interface ClusterOptions {
  workers: number;
  ui: boolean;
  /** A policy day in seconds (the drill policy). */
  dayS: number;
  restartDelayMs: number;
  /** More settings for the cluster's APIs and workers. */
  env?: Record<string, string>;
}

export interface ClusterHarness {
  dir: string;
  suffix: string;
  appDb: string;
  proxy: TcpProxy;
  alerts: { at: number; body: string }[];
  answers: Answer[];
  phase: string;
  apis: string[];
  admin: string;
  temporal: Client;
  /** Secrets and addresses a process of our own (an older build's worker) needs to join. */
  appEnv: Record<string, string>;
  state(): ClusterState;
  call(
    api: number,
    token: string,
    method: string,
    route: string,
    body?: unknown,
    op?: string,
  ): Promise<{ status: number; json: Record<string, unknown> }>;
  key(name: string, body: Record<string, unknown>): Promise<string>;
  view(caseNo: string, api?: number): Promise<CaseView | undefined>;
  transfer(i: number, api?: number): Promise<string>;
  arrive(caseNo: string): Promise<string>;
  answerSamples(caseNos: string[], answered: Map<string, string>): Promise<void>;
  workflowId(caseNo: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions): Promise<ClusterHarness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-cluster-'));
  const suffix = crypto.randomBytes(3).toString('hex');
  const appDb = `shaodian_cluster_${suffix}`;
  const temporalDb = `temporal_cluster_${suffix}`;
  const alerts: { at: number; body: string }[] = [];
  const alertServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      alerts.push({ at: Date.now(), body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => alertServer.listen(0, '127.0.0.1', r));
  const alertUrl = `http://127.0.0.1:${(alertServer.address() as net.AddressInfo).port}/alerts`;

  const pg = new URL(PG);
  const proxy = await startTcpProxy({ host: pg.hostname, port: Number(pg.port || 5432) });
  const proxied = new URL(pgAt(appDb));
  proxied.host = `127.0.0.1:${proxy.port}`;

  const ports = await clusterPorts();
  const appEnvPassed = {
    DEFAULT_POLICY: 'drill',
    DRILL_DAY_SECONDS: String(opts.dayS),
    // The test is the lab (through API 2): the simulated lab would answer too late to matter.
    SIM_LAB_DELAY_MS: '3600000',
    SIM_COMMUNITY_DELAY_MS: '300',
    SIM_TRANSPORT_DELAY_MS: '300',
    API_RATE_LIMIT_PER_MINUTE: '1000000',
    NOTIFY_WEBHOOK_URL: alertUrl,
    ...opts.env,
  };
  const script: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'scripts/cluster.ts',
      '--workers',
      String(opts.workers),
      '--apis',
      '2',
      ...(opts.ui ? ['--ui-port', String(ports.ui)] : ['--no-ui']),
      '--temporal-port',
      String(ports.temporal),
      '--api-port',
      String(ports.api),
      '--data-dir',
      dir,
      '--database-url',
      proxied.toString(),
      '--temporal-database-url',
      pgAt('postgres'),
      '--temporal-db',
      temporalDb,
      '--restart-delay-ms',
      String(opts.restartDelayMs),
      '--log-level',
      'warn',
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        ...(process.env.XDG_CACHE_HOME ? { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME } : {}),
        ...appEnvPassed,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let scriptLog = '';
  script.stdout!.on('data', (d) => (scriptLog += String(d)));
  script.stderr!.on('data', (d) => (scriptLog += String(d)));
  const scriptExited = new Promise<number | null>((r) => script.once('exit', (c) => r(c)));
  const stateFile = path.join(dir, 'cluster.json');
  const state = () => JSON.parse(fs.readFileSync(stateFile, 'utf8')) as ClusterState;

  const cleanup = async () => {
    const pids = (() => {
      try {
        const s = state();
        return [...s.apis.map((a) => a.pid), ...s.workers.map((w) => w.pid), ...Object.values(s.temporalPids)];
      } catch {
        return [];
      }
    })();
    if (script.exitCode === null) {
      script.kill('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([scriptExited, new Promise((r) => (timer = setTimeout(r, 90_000)))]);
      clearTimeout(timer);
    }
    for (const pid of pids) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    proxy.set('up');
    await proxy.close();
    alertServer.closeAllConnections();
    alertServer.close();
    const sql = postgres(pgAt('postgres'), { max: 1, onnotice: () => undefined });
    for (const db of [appDb, temporalDb, `${temporalDb}_visibility`])
      await sql.unsafe(`drop database if exists ${db} with (force)`).catch(() => undefined);
    await sql.end();
    if (process.env.KEEP_CLUSTER_LOGS) console.log(`cluster logs: ${dir}/logs`);
    else fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    // The script exiting early is an answer at once, not 20 minutes of waiting for "ready".
    let exited = false;
    await Promise.race([
      waitFor(
        'the cluster to be ready',
        async () => (exited || scriptLog.includes('Shaodian cluster ready') ? true : undefined),
        20 * 60_000,
        1000,
      ),
      scriptExited.then((code) => {
        exited = true;
        throw new Error(`npm run cluster exited (${code}) before it was ready:\n${scriptLog}`);
      }),
    ]);
  } catch (err) {
    await cleanup();
    throw err;
  }

  const apis = state().apis.map((a) => a.url);
  const admin = fs.readFileSync(state().adminKeyFile, 'utf8').trim();
  const connection = await Connection.connect({ address: state().temporal });
  const secrets = JSON.parse(fs.readFileSync(path.join(dir, 'secrets.json'), 'utf8')) as {
    CODEC_KEY: string;
    API_HMAC_KEY: string;
  };
  const { codec } = loadCodec({ CODEC_KEY: secrets.CODEC_KEY, CODEC_KEY_ID: 'k1', dataDir: dir });
  const temporal = new Client({ connection, namespace: 'shaodian', dataConverter: { payloadCodecs: [codec] } });
  const appSql = postgres(pgAt(appDb), { max: 2, onnotice: () => undefined });

  const answers: Answer[] = [];
  const keys: Record<string, string> = {};
  const h: ClusterHarness = {
    dir,
    suffix,
    appDb,
    proxy,
    alerts,
    answers,
    phase: 'setup',
    apis,
    admin,
    temporal,
    appEnv: {
      ...appEnvPassed,
      ...secrets,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      DATABASE_URL: proxied.toString(),
      TEMPORAL_ADDRESS: state().temporal,
      SIMULATOR_CALLBACK_URL: apis[0]!,
    },
    state,
    async call(api, token, method, route, body, op = route) {
      const t0 = Date.now();
      const phase = h.phase;
      try {
        const r = await fetch(`${apis[api]}${route}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(60_000),
        });
        const text = await r.text();
        answers.push({
          op,
          api: `api-${api + 1}`,
          status: r.status,
          ms: Date.now() - t0,
          phase,
          problem: (r.headers.get('content-type') ?? '').includes('application/problem+json'),
        });
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON
        }
        return { status: r.status, json };
      } catch (err) {
        answers.push({ op, api: `api-${api + 1}`, status: 0, ms: Date.now() - t0, phase, problem: false });
        throw err;
      }
    },
    async key(name, body) {
      if (keys[name]) return keys[name];
      const r = await h.call(0, admin, 'POST', '/api/v1/admin/keys', { name, district: DEMO_DISTRICT, ...body });
      if (r.status !== 201) throw new Error(`key ${name}: ${r.status} ${JSON.stringify(r.json)}`);
      return (keys[name] = r.json.key as string);
    },
    async view(caseNo, api = 0) {
      const sup = await h.key('supervisor', { role: 'supervisor' });
      const r = await h.call(api, sup, 'GET', `/api/v1/cases/${caseNo}`);
      return r.status === 200 && r.json.source === 'workflow' ? (r.json.state as CaseView) : undefined;
    },
    async transfer(i, api = 0) {
      const community = await h.key('community', { role: 'community', street: 'Fulilu' });
      const r = await h.call(api, community, 'POST', '/api/v1/transfers', {
        requestId: `cluster-${suffix}-${i}`,
        district: DEMO_DISTRICT,
        street: 'Fulilu',
        person: {
          name: `Cluster Person ${i}`,
          idNumber: `CLUSTER-${i}`,
          phone: '10000000000',
          birthDate: '1985-01-01',
        },
        homeAddress: `${i} Cluster Lane`,
        transport: 'self_drive',
        reason: 'close_contact',
      });
      if (r.status !== 202) throw new Error(`transfer ${i}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json.caseNo as string;
    },
    /** The hotel's desk reports the arrival (through API 2). */
    async arrive(caseNo) {
      const v = await waitFor(
        `a room for ${caseNo}`,
        async () => {
          const s = await h.view(caseNo);
          return s?.room ? s : undefined;
        },
        90_000,
      );
      const hotel = await h.key(`hotel-${v.room!.hotelId}`, { role: 'hotel', orgId: v.room!.hotelId });
      const r = await h.call(1, hotel, 'POST', `/api/v1/cases/${caseNo}/arrival`, { antigen: 'negative' });
      if (r.status !== 202) throw new Error(`arrival ${caseNo}: ${r.status}`);
      await waitFor(
        `${caseNo} in observation`,
        async () => ((await h.view(caseNo))?.phase === 'OBSERVATION' ? true : undefined),
        90_000,
      );
      return v.room!.hotelId;
    },
    /** Answers every ordered sample of these cases through API 2, as the lab. */
    async answerSamples(caseNos, answered) {
      const results: { sampleId: string; result: string }[] = [];
      for (const c of caseNos) {
        const s = await h.view(c);
        for (const smp of s?.samples ?? [])
          if (smp.status === 'ordered' && !answered.has(smp.sampleId))
            results.push({ sampleId: smp.sampleId, result: 'negative' });
        // The observation rule: a nurse checks a case whose release waits for a recent check.
        if (s?.room && s.releaseBlockers.includes('no_recent_afebrile_check')) {
          const nurse = await h.key(`nurse-${s.room.hotelId}`, { role: 'medical', orgId: s.room.hotelId });
          await h.call(0, nurse, 'POST', `/api/v1/cases/${c}/health-checks`, {
            checkId: `release-${c}-${Date.now()}`,
            temperatureC: 36.5,
            symptoms: [],
          });
        }
      }
      if (results.length === 0) return;
      const lab = await h.key('lab', { role: 'lab', orgId: 'SIM-LAB', district: undefined });
      const r = await h.call(1, lab, 'POST', '/api/v1/lab/results', { results }, 'lab');
      if (r.status !== 200 && r.status !== 207) return;
      for (const x of r.json.results as { sampleId: string; status: string }[])
        if (x.status === 'applied' || x.status === 'duplicate') answered.set(x.sampleId, x.status);
    },
    async workflowId(caseNo) {
      // The read model's first row is written by the case's first activity, a moment after the
      // API answered the transfer (seconds on a busy cluster): wait for it, within reason.
      return waitFor(
        `the read-model row of ${caseNo}`,
        async () => {
          const [row] = await appSql`select workflow_id from cases where case_no = ${caseNo}`;
          return row ? String(row.workflow_id) : undefined;
        },
        60_000,
        250,
      );
    },
    async stop() {
      await appSql.end();
      await connection.close();
      await cleanup();
    },
  };
  return h;
}
