import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import postgres from 'postgres';

import { openDatabase, type Database } from '../../src/db';

export const TEST_PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: boolean | undefined;
async function pgReachable(): Promise<boolean> {
  if (reachable !== undefined) return reachable;
  const sql = postgres(TEST_PG_URL, { max: 1, connect_timeout: 3, onnotice: () => undefined });
  try {
    await sql`select 1`;
    reachable = true;
  } catch {
    reachable = false;
  } finally {
    await sql.end({ timeout: 1 });
  }
  return reachable;
}

export interface TestDatabase extends Database {
  url?: string;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database for one test file: its own database on the real server when
 * it is reachable, else PGlite in a temp dir. `drop()` closes and removes it.
 */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  if (await pgReachable()) {
    const name = `shaodian_${label.replace(/\W/g, '_').toLowerCase()}_${crypto.randomBytes(4).toString('hex')}`;
    const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`create database "${name}"`);
    await admin.end();
    const u = new URL(TEST_PG_URL);
    u.pathname = `/${name}`;
    const url = u.toString();
    const db = await openDatabase({ databaseUrl: url, dataDir: os.tmpdir() });
    return {
      ...db,
      url,
      async drop() {
        await db.close();
        const a = postgres(TEST_PG_URL, { max: 1, onnotice: () => undefined });
        await a.unsafe(`drop database if exists "${name}" with (force)`);
        await a.end();
      },
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-pglite-'));
  const db = await openDatabase({ dataDir: dir });
  return {
    ...db,
    async drop() {
      await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
