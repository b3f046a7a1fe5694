import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { freePort } from '../support/ports';

/**
 * The all-in-one process as a newcomer runs it (`npm start` = node --import tsx src/main.ts),
 * on free ports and a temp DATA_DIR: it becomes ready, survives SIGKILL without losing a
 * case, refuses bad configuration by name, and stays up (503) when Temporal is away.
 */
const ROOT = path.resolve(__dirname, '..', '..');

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startSystem(env: Record<string, string>): Proc {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', TEMPORAL_DEV_HEADLESS: 'true', ...cliEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

const cliEnv = (): Record<string, string> =>
  process.env.TEMPORAL_CLI_PATH_RESOLVED ? { TEMPORAL_CLI_PATH: process.env.TEMPORAL_CLI_PATH_RESOLVED } : {};

async function waitReady(url: string, proc: Proc, timeoutMs = 60_000): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (proc.child.exitCode !== null) throw new Error(`exited ${proc.child.exitCode}:\n${proc.output()}`);
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) return Date.now() - started;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`not ready in ${timeoutMs} ms:\n${proc.output()}`);
}

async function stop(proc: Proc): Promise<void> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) {
    proc.child.kill('SIGTERM');
    await proc.exited;
  }
}

describe('npm start (all-in-one)', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-system-'));
  let ports: Record<string, string>;
  let api: string;
  const procs: Proc[] = [];

  beforeAll(async () => {
    ports = {
      PORT: String(await freePort()),
      TEMPORAL_DEV_PORT: String(await freePort()),
      TEMPORAL_UI_PORT: String(await freePort()),
    };
    api = `http://127.0.0.1:${ports.PORT}`;
  });
  afterAll(async () => {
    for (const p of procs) await stop(p);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('comes up ready, survives SIGKILL without losing a case, and stops cleanly on SIGTERM', async () => {
    const first = startSystem({ DATA_DIR: dataDir, ...ports });
    procs.push(first);
    await waitReady(api, first);
    expect(first.output()).toContain(`API            ${api}/api/v1`);
    expect(first.output()).toContain(`Data dir       ${dataDir}`);
    expect(fs.existsSync(path.join(dataDir, 'temporal.sqlite'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, 'codec-dev.key'))).toBe(true);

    // Keys through the running system, as `npm run keys` does.
    const { adminToken } = JSON.parse(fs.readFileSync(path.join(dataDir, 'runtime.json'), 'utf8')) as {
      adminToken: string;
    };
    const key = async (body: object) => {
      const r = await fetch(`${api}/api/v1/admin/keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-admin-token': adminToken },
        body: JSON.stringify(body),
      });
      expect(r.status).toBe(201);
      return ((await r.json()) as { key: string }).key;
    };
    const community = await key({ role: 'community', name: 'Fulilu office', district: 'Xigu', street: 'Fulilu' });
    const transfer = await fetch(`${api}/api/v1/transfers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${community}` },
      body: JSON.stringify({
        requestId: 'system-test-0001',
        district: 'Xigu',
        street: 'Fulilu',
        person: { name: '赵六', idNumber: '620102199001019999', phone: '13900009999', birthDate: '1990-01-01' },
        homeAddress: '西固区福利路 9 号',
        transport: 'self_drive',
        reason: 'close_contact',
        policyName: 'standard',
      }),
    });
    expect(transfer.status).toBe(202);
    const { caseNo } = (await transfer.json()) as { caseNo: string };

    // SIGKILL: no chance to clean up; the dev server child is orphaned holding its port.
    first.child.kill('SIGKILL');
    await first.exited;

    const second = startSystem({ DATA_DIR: dataDir, ...ports });
    procs.push(second);
    await waitReady(api, second);
    const supervisor = await (async () => {
      const { adminToken: t2 } = JSON.parse(fs.readFileSync(path.join(dataDir, 'runtime.json'), 'utf8')) as {
        adminToken: string;
      };
      const r = await fetch(`${api}/api/v1/admin/keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-admin-token': t2 },
        body: JSON.stringify({ role: 'supervisor', name: 'Xigu command', district: 'Xigu' }),
      });
      return ((await r.json()) as { key: string }).key;
    })();
    const deadline = Date.now() + 30_000;
    let live: { source?: string; state?: { phase: string; room?: unknown } } = {};
    while (Date.now() < deadline) {
      const r = await fetch(`${api}/api/v1/cases/${caseNo}`, { headers: { authorization: `Bearer ${supervisor}` } });
      live = (await r.json()) as typeof live;
      if (live.source === 'workflow' && live.state?.phase === 'IN_TRANSIT') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(live.source).toBe('workflow');
    expect(live.state?.phase).toBe('IN_TRANSIT');
    expect(live.state?.room).toBeDefined();

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'runtime.json'))).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'temporal-dev.pid'))).toBe(false);
  });

  test('a bad variable stops the start with a message naming it', async () => {
    const p = startSystem({ DATA_DIR: dataDir, PORT: 'abc' });
    procs.push(p);
    expect(await p.exited).toBe(78);
    expect(p.output()).toMatch(/PORT: /);
  });

  test('with TEMPORAL_ADDRESS pointing at nothing, /readyz answers 503 with the reason and nothing crashes', async () => {
    const port = String(await freePort());
    const p = startSystem({
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-noTemporal-')),
      PORT: port,
      TEMPORAL_ADDRESS: '127.0.0.1:9',
    });
    procs.push(p);
    const url = `http://127.0.0.1:${port}`;
    let status = 0;
    let body: { checks?: { temporal?: { ok: boolean; error?: string }; database?: { ok: boolean } } } = {};
    for (let i = 0; i < 120 && status === 0; i++) {
      try {
        const r = await fetch(`${url}/readyz`);
        status = r.status;
        body = (await r.json()) as typeof body;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    expect(status).toBe(503);
    expect(body.checks?.temporal?.ok).toBe(false);
    expect(body.checks?.temporal?.error).toBeTruthy();
    expect(body.checks?.database?.ok).toBe(true);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 3000)); // the worker keeps retrying; the process stays up
    expect(p.child.exitCode).toBeNull();
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  });
});
