import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { eq, sql } from 'drizzle-orm';

import { main } from '../../scripts/seed';
import { loadConfig } from '../../src/config';
import { hotels, rooms } from '../../src/db/schema';
import { freePort } from '../support/ports';
import { createHarness, type Harness } from './harness';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ label: 'seed' });
});
afterAll(async () => h?.close());

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-seed-'));
const xiguRooms = async () =>
  (
    await h.db
      .select({ n: sql<number>`count(*)`.mapWith(Number) })
      .from(rooms)
      .innerJoin(hotels, eq(hotels.id, rooms.hotelId))
      .where(eq(hotels.district, 'Xigu'))
  )[0]!.n;

test('while the system runs (runtime.json, live pid) `npm run seed` goes through the API with the admin token', async () => {
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
    const seeded = await run(TSX, ['scripts/seed.ts'], { cwd: ROOT, env, timeout: 90_000 });
    expect(seeded.stdout).toMatch(/Seeded 21 hotels, 1583 rooms in Xigu \(1583 rooms new\), via the running API/);
    expect(await xiguRooms()).toBe(1583);
    // It never touched the embedded database the running system owns.
    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(false);

    const lines: string[] = [];
    expect(await main(loadConfig({ DATA_DIR: dataDir }), (s) => lines.push(s))).toBe(0);
    expect(lines.join('\n')).toMatch(/\(0 rooms new\), via the running API/);

    // A wrong token is refused, and said so.
    fs.writeFileSync(
      path.join(dataDir, 'runtime.json'),
      JSON.stringify({ pid: process.pid, apiUrl: `http://127.0.0.1:${port}`, adminToken: 'stale' }),
    );
    await expect(main(loadConfig({ DATA_DIR: dataDir }), () => undefined)).rejects.toThrow(/refused to seed: 401/);
  } finally {
    await new Promise((r) => server.close(r));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}, 120_000);

test('with DATABASE_URL it seeds that database directly, whatever runtime.json says', async () => {
  if (!h.database.url) return; // no Postgres server here: the PGlite case below covers direct seeding
  const dataDir = tmpDir();
  try {
    // A live pid with an API that does not answer: going through it would fail.
    fs.writeFileSync(
      path.join(dataDir, 'runtime.json'),
      JSON.stringify({ pid: process.pid, apiUrl: 'http://127.0.0.1:1', adminToken: 'x' }),
    );
    const lines: string[] = [];
    expect(await main(loadConfig({ DATA_DIR: dataDir, DATABASE_URL: h.database.url }), (s) => lines.push(s))).toBe(0);
    expect(lines.join('\n')).toMatch(/Seeded 21 hotels, 1583 rooms in Xigu/);
    expect(lines.join('\n')).not.toMatch(/running API/);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}, 60_000);

test('a live process that left no API to ask keeps its embedded database: refused', async () => {
  const dataDir = tmpDir();
  try {
    // Another live process (this one's parent): its own pid would count as this process.
    fs.writeFileSync(path.join(dataDir, 'runtime.json'), JSON.stringify({ pid: process.ppid }));
    await expect(main(loadConfig({ DATA_DIR: dataDir }), () => undefined)).rejects.toThrow(
      /in use by the running system/,
    );
    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(false);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('with nothing running (or a stale runtime.json) it opens the embedded database itself', async () => {
  const dataDir = tmpDir();
  try {
    fs.writeFileSync(
      path.join(dataDir, 'runtime.json'),
      JSON.stringify({ pid: 2 ** 22 + 12345, apiUrl: 'http://127.0.0.1:1', adminToken: 'x' }),
    );
    // PGlite needs real ESM loading, which jest's VM lacks: run the CLI as the user would.
    const seeded = await run(TSX, ['scripts/seed.ts'], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'silent' },
      timeout: 150_000,
    });
    expect(seeded.stdout).toMatch(/Seeded 21 hotels, 1583 rooms in Xigu \(1583 rooms new\)/);
    expect(seeded.stdout).not.toMatch(/running API/);
    expect(fs.existsSync(path.join(dataDir, 'pglite'))).toBe(true);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}, 180_000);
