import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import postgres from 'postgres';

import { loadConfig } from '../../src/config';
import { DEMO_DISTRICT } from '../../src/db/demo-hotels';
import { createLogger } from '../../src/log';
import { resolveTemporalCli } from '../../src/temporal/cli';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { freePort } from '../support/ports';
import { sleep, waitFor } from '../support/wait';

/**
 * A directive survives its worker being killed (issue 12). An API process and a worker process
 * on a dev server; CASES running cases (a day is an hour, so nothing else moves); a directive
 * over all of them at a bounded rate; the worker SIGKILLed half-way and started again. The
 * directive completes; every case was told exactly once (one `policy_applied` in its event log)
 * and judges itself by the new version; every case is counted, applied or skipped with a reason.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const CASES = Number(process.env.DIRECTIVE_CASES ?? 120);
jest.setTimeout(15 * 60_000);

interface Proc {
  child: ChildProcess;
  exited: Promise<number | null>;
  logFile: string;
}
function spawnNode(name: string, script: string, env: Record<string, string>, logDir: string): Proc {
  const logFile = path.join(logDir, `${name}-${Date.now()}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  return { child, exited: new Promise((r) => child.once('exit', (code) => r(code))), logFile };
}
const stop = async (p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM') => {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  await p.exited;
};

describe('a directive and a killed worker', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-directive-'));
  const logDir = path.join(dir, 'logs');
  fs.mkdirSync(logDir);
  let db: TestDatabase;
  let dev: DevServer | undefined;
  let api: Proc | undefined;
  let worker: Proc | undefined;
  let env: Record<string, string>;
  let url = '';
  const startWorker = () => {
    worker = spawnNode('worker', 'src/worker.ts', { ...env, DATA_DIR: path.join(dir, 'worker') }, logDir);
  };

  beforeAll(async () => {
    db = await createTestDatabase('directive_kill');
    if (!db.url) throw new Error('needs the real Postgres');
    const config = loadConfig({ ...process.env, DATA_DIR: dir });
    const cli = await resolveTemporalCli({
      explicitPath: config.TEMPORAL_CLI_PATH,
      projectCacheDir: path.join(ROOT, '.cache', 'bin'),
      userCacheDir: config.cliCacheDir,
      env: config.processEnv,
      log: () => undefined,
    });
    dev = await startDevServer({
      cliPath: cli.path,
      dataDir: path.join(dir, 'temporal'),
      namespace: 'shaodian',
      port: await freePort(),
      uiPort: await freePort(),
      headless: true,
      log: createLogger('warn'),
    });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = {
      LOG_LEVEL: 'warn',
      NODE_ENV: 'test',
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: dev.address,
      TEMPORAL_NAMESPACE: 'shaodian',
      CODEC_KEY: crypto.randomBytes(32).toString('base64'),
      API_HMAC_KEY: crypto.randomBytes(32).toString('base64'),
      API_HOST: '127.0.0.1',
      SEED_DEMO: 'always',
      API_RATE_LIMIT_PER_MINUTE: '1000000',
      DEFAULT_POLICY: 'drill',
      DRILL_DAY_SECONDS: '3600',
      SIM_LAB_DELAY_MS: '3600000',
      SIM_TRANSPORT_DELAY_MS: '200',
      SIM_COMMUNITY_DELAY_MS: '200',
      SIMULATOR_CALLBACK_URL: url,
    };
    api = spawnNode(
      'api',
      'src/api/server.ts',
      { ...env, PORT: String(port), DATA_DIR: path.join(dir, 'api') },
      logDir,
    );
    await waitFor(
      'api ready',
      async () => {
        if (api!.child.exitCode !== null) throw new Error(fs.readFileSync(api!.logFile, 'utf8'));
        return (await fetch(`${url}/readyz`)).status < 500 ? true : undefined;
      },
      60_000,
      250,
    );
    startWorker();
  });

  afterAll(async () => {
    await stop(api, 'SIGKILL');
    await stop(worker, 'SIGKILL');
    await dev?.stop().catch(() => undefined);
    await db?.drop().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the directive completes, every case told exactly once, every case counted', async () => {
    const adminToken = (
      JSON.parse(fs.readFileSync(path.join(dir, 'api', 'runtime.json'), 'utf8')) as { adminToken: string }
    ).adminToken;
    const makeKey = async (body: Record<string, unknown>) => {
      const r = await fetch(`${url}/api/v1/admin/keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-admin-token': adminToken },
        body: JSON.stringify({ name: `dk-${body.role as string}`, district: DEMO_DISTRICT, ...body }),
      });
      expect(r.status).toBe(201);
      return ((await r.json()) as { key: string }).key;
    };
    const supervisor = await makeKey({ role: 'supervisor' });
    const call = async (token: string, method: string, route: string, body?: unknown) => {
      const r = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: r.status, json: (await r.json().catch(() => ({}))) as Record<string, unknown> };
    };

    // Cases filed by the supervisor, driven in by themselves (self-drive); the hotel desk reports arrival.
    const caseNos: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const r = await call(supervisor, 'POST', '/api/v1/transfers', {
        requestId: `directive-kill-${i}`,
        district: DEMO_DISTRICT,
        street: 'Fulilu',
        person: { name: '测试者', idNumber: `dk-${i}`, phone: '10000000000', birthDate: '1990-01-01' },
        homeAddress: `${i} Fuli Road`,
        transport: 'self_drive',
        reason: 'close_contact',
      });
      if (r.status !== 202) throw new Error(`transfer ${r.status}: ${JSON.stringify(r.json)}`);
      caseNos.push(r.json.caseNo as string);
    }
    const sql = postgres(db.url!, { max: 2, onnotice: () => undefined });
    try {
      await waitFor(
        'a room for every case',
        async () => {
          const [{ n }] =
            (await sql`select count(*)::int as n from cases where case_no in ${sql(caseNos)} and hotel_id is not null`) as unknown as [
              { n: number },
            ];
          return n === CASES ? true : undefined;
        },
        5 * 60_000,
        1000,
      );
      const rooms = await sql`select case_no, hotel_id from cases where case_no in ${sql(caseNos)}`;
      const desks = new Map<string, string>();
      for (const r of rooms) {
        const hotel = r.hotel_id as string;
        if (!desks.has(hotel)) desks.set(hotel, await makeKey({ role: 'hotel', orgId: hotel }));
        const a = await call(desks.get(hotel)!, 'POST', `/api/v1/cases/${r.case_no as string}/arrival`, {});
        expect(a.status).toBe(202);
      }
      await waitFor(
        'every case in observation',
        async () => {
          const [{ n }] =
            (await sql`select count(*)::int as n from cases where case_no in ${sql(caseNos)} and phase = 'OBSERVATION'`) as unknown as [
              { n: number },
            ];
          return n === CASES ? true : undefined;
        },
        5 * 60_000,
        1000,
      );

      // A new version: seven days instead of fourteen.
      const seed = (await call(supervisor, 'GET', `/api/v1/districts/${DEMO_DISTRICT}/policies/1`)).json
        .policy as Record<string, unknown>;
      const { version: _v, ...doc } = seed;
      const created = await call(supervisor, 'POST', `/api/v1/districts/${DEMO_DISTRICT}/policies`, {
        note: '7 days',
        policy: { ...doc, name: 'seven', stayDays: 7, sampling: { ...(doc.sampling as object), days: [1, 5, 6] } },
      });
      expect(created.status).toBe(201);
      const version = created.json.version as number;

      // The dry run first: every case answers, nothing changes.
      const t0 = Date.now();
      const dry = await call(supervisor, 'POST', '/api/v1/directives/preview', {
        district: DEMO_DISTRICT,
        policyVersion: version,
      });
      const dryMs = Date.now() - t0;
      expect(dry.status).toBe(200);
      const summary = dry.json.summary as { cases: number; applies: number; earlier: number };
      expect(summary.applies).toBe(summary.cases);
      expect(summary.earlier).toBe(summary.cases);
      const [{ n: untouched }] = (await sql`select count(*)::int as n from case_events
        where kind = 'policy_applied' and case_no in ${sql(caseNos)}`) as unknown as [{ n: number }];
      expect(untouched).toBe(0);

      const t1 = Date.now();
      const issued = await call(supervisor, 'POST', '/api/v1/directives', {
        requestId: 'dk-directive',
        district: DEMO_DISTRICT,
        policyVersion: version,
        reason: 'protocol change',
        ratePerSecond: 10,
      });
      expect(issued.status).toBe(202);
      const id = issued.json.directiveId as string;
      expect(issued.json.total).toBeGreaterThanOrEqual(CASES);

      // Half-way: the worker is killed, mid-batch.
      await waitFor(
        'half the cases told',
        async () => {
          const [{ n }] =
            (await sql`select count(*)::int as n from directive_cases where directive_id = ${id}`) as unknown as [
              { n: number },
            ];
          return n >= CASES / 2 ? true : undefined;
        },
        5 * 60_000,
        200,
      );
      await stop(worker, 'SIGKILL');
      await sleep(3000);
      startWorker();

      const done = await waitFor(
        'the directive completed',
        async () => {
          const r = await call(supervisor, 'GET', `/api/v1/directives/${id}`);
          return r.json.status === 'completed' ? r.json : undefined;
        },
        5 * 60_000,
        1000,
      );
      const runMs = Date.now() - t1;
      console.log(
        `directive over ${String(done.total)} cases: dry run ${dryMs} ms, execute (10/s, a worker killed half-way) ${runMs} ms`,
      );
      expect(done.done).toBe(done.total);
      expect((done.applied as number) + (done.skipped as number)).toBe(done.total);

      // Exactly once per case, and every case judges itself by the new version.
      const told = await sql`select case_no, count(*)::int as n from case_events
        where kind = 'policy_applied' and case_no in ${sql(caseNos)} group by case_no`;
      expect(told).toHaveLength(CASES);
      expect(told.every((r) => r.n === 1)).toBe(true);
      const versions = await sql`select distinct payload->'after'->>'policyVersion' as v from case_events
        where kind = 'policy_applied' and case_no in ${sql(caseNos)}`;
      expect(versions.map((r) => Number(r.v))).toEqual([version]);
      const outcomes =
        await sql`select outcome, count(*)::int as n from directive_cases where directive_id = ${id} group by outcome`;
      expect(outcomes.find((o) => o.outcome === 'applied')?.n).toBeGreaterThanOrEqual(CASES);
    } finally {
      await sql.end();
    }
  });
});
