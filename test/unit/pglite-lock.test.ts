import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { openDatabase } from '../../src/db';

describe('embedded database has one owner', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-lock-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a live owner (another pid) refuses a second opener with a clear message', async () => {
    fs.writeFileSync(path.join(dir, 'pglite.lock'), String(process.ppid));
    await expect(openDatabase({ dataDir: dir, migrate: false })).rejects.toThrow(/in use by process/);
  });

  test('a stale lock from a process that is gone is taken over, and released on close', async () => {
    fs.writeFileSync(path.join(dir, 'pglite.lock'), '999999999');
    const db = await openDatabase({ dataDir: dir });
    expect(fs.readFileSync(path.join(dir, 'pglite.lock'), 'utf8')).toBe(String(process.pid));
    await db.ping();
    await db.close();
    expect(fs.existsSync(path.join(dir, 'pglite.lock'))).toBe(false);
  }, 60_000);
});
