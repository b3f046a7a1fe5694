import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import request from 'supertest';

import { main } from '../../scripts/keys';
import { findKey } from '../../src/auth/keys';
import { loadConfig } from '../../src/config';
import { freePort } from '../support/ports';
import { createHarness, type Harness } from './harness';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ label: 'keys' });
});
afterAll(async () => h?.close());

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-keys-'));

test('while the system runs (runtime.json, live pid) the CLI goes through the API with the admin token', async () => {
  const port = await freePort();
  const server: Server = await new Promise((resolve) => {
    const s = h.app.listen(port, '127.0.0.1', () => resolve(s));
  });
  const dataDir = tmpDir();
  try {
    fs.writeFileSync(
      path.join(dataDir, 'runtime.json'),
      JSON.stringify({ pid: process.pid, apiUrl: `http://127.0.0.1:${port}`, adminToken: h.adminToken }),
      { mode: 0o600 },
    );
    const env = { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'silent' };
    const created = await run(
      path.join(ROOT, 'node_modules', '.bin', 'tsx'),
      ['scripts/keys.ts', 'create', '--role', 'lab', '--name', 'Lab 1', '--org', 'LAB1'],
      { cwd: ROOT, env, timeout: 60_000 },
    );
    // The whole key: one that ends in '-' has no word boundary after it (a trailing \b cut it short).
    const key = /\b(sd_[0-9a-f]{12}_[A-Za-z0-9_-]+)(?![A-Za-z0-9_-])/.exec(created.stdout)?.[1];
    expect(key).toBeDefined();
    expect(created.stdout).toMatch(/shown once/);
    expect(created.stderr).toMatch(/via the running API/);
    expect(await findKey(h.db, key!)).toMatchObject({ role: 'lab', name: 'Lab 1', orgId: 'LAB1' });
    // The new key works at once against the running API.
    const res = await request(h.app)
      .post('/api/v1/lab/results')
      .set('Authorization', `Bearer ${key}`)
      .send({ sampleId: 'X-1', result: 'negative' });
    expect(res.body).toMatchObject({ status: 'unknown_sample' });

    const lines: string[] = [];
    expect(
      await main(
        ['list'],
        loadConfig({ DATA_DIR: dataDir }),
        (s) => lines.push(s),
        () => undefined,
      ),
    ).toBe(0);
    expect(lines.join('\n')).toMatch(/lab\s+Lab 1/);
    expect(lines.join('\n')).not.toContain(key!);

    const id = /^sd_([0-9a-f]{12})_/.exec(key!)![1]!;
    expect(
      await main(
        ['revoke', id],
        loadConfig({ DATA_DIR: dataDir }),
        () => undefined,
        () => undefined,
      ),
    ).toBe(0);
    expect(await findKey(h.db, key!)).toBeUndefined();

    // Bad input is refused by the API with the field named.
    await expect(
      main(['create', '--role', 'wizard', '--name', 'x'], loadConfig({ DATA_DIR: dataDir }), () => undefined),
    ).rejects.toThrow(/role/);
  } finally {
    await new Promise((r) => server.close(r));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}, 90_000);

test('with nothing running (or a stale runtime.json) it opens the embedded database itself', async () => {
  const dataDir = tmpDir();
  // PGlite needs real ESM loading, which jest's VM lacks: run the CLI as the user would.
  const cli = (...args: string[]) =>
    run(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['scripts/keys.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'silent' },
      timeout: 90_000,
    });
  try {
    fs.writeFileSync(
      path.join(dataDir, 'runtime.json'),
      JSON.stringify({ pid: 2 ** 22 + 12345, apiUrl: 'http://127.0.0.1:1', adminToken: 'x' }),
    );
    const created = JSON.parse(
      (await cli('create', '--role', 'supervisor', '--name', 'Chief', '--district', 'Xigu', '--json')).stdout,
    ) as {
      key: string;
      identity: { role: string; district: string };
    };
    expect(created.identity).toMatchObject({ role: 'supervisor', district: 'Xigu' });
    expect(created.key).toMatch(/^sd_/);
    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);
    expect(JSON.parse((await cli('list', '--json')).stdout).items).toHaveLength(1);
    await expect(cli('revoke', 'nosuchkey')).rejects.toMatchObject({ code: 1 });
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}, 120_000);
