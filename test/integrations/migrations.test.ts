import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { sql } from 'drizzle-orm';
import postgres from 'postgres';

import { openDatabase } from '../../src/db';
import { rowsOf } from '../../src/integrations/hotel';
import { TEST_PG_URL } from '../support/db';

/** Every migration in drizzle/ is applied exactly once. */
const journalEntries = (): number =>
  (
    JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../drizzle/meta/_journal.json'), 'utf8')) as {
      entries: unknown[];
    }
  ).entries.length;

const EXPECTED_TABLES = [
  'activity_effects',
  'address_inspections',
  'api_keys',
  'case_events',
  'cases',
  'certificates',
  'codec_audit',
  'directive_cases',
  'directives',
  'escalations',
  'health_checks',
  'hotels',
  'lab_results',
  'policies',
  'room_waits',
  'rooms',
  'samples',
  'worker_liveness',
];

/** An empty database of our own on the test server (not createTestDatabase: that one migrates already). */
async function emptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `shaodian_empty_${crypto.randomBytes(4).toString('hex')}`;
  const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const u = new URL(TEST_PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const a = postgres(TEST_PG_URL, { max: 1, onnotice: () => undefined });
      await a.unsafe(`drop database if exists "${name}" with (force)`);
      await a.end();
    },
  };
}

it('openDatabase on an empty database creates every table, and opening again changes nothing', async () => {
  const empty = await emptyDatabase();
  try {
    const bare = postgres(empty.url, { max: 1, onnotice: () => undefined });
    const before = await bare`select count(*)::int as n from information_schema.tables where table_schema = 'public'`;
    await bare.end();
    expect(before[0]!.n).toBe(0);

    // Many workers may start at once: concurrent migrations must serialise, not collide.
    const opened = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ databaseUrl: empty.url, dataDir: os.tmpdir(), max: 2 })),
    );
    const db = opened[0]!.db;
    const tables = rowsOf<{ table_name: string }>(
      await db.execute(
        sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
      ),
    ).map((t) => t.table_name);
    expect(tables).toEqual(EXPECTED_TABLES);
    const applied = rowsOf<{ n: number }>(
      await db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
    );
    expect(applied[0]!.n).toBe(journalEntries());
    const indexes = rowsOf<{ indexname: string }>(
      await db.execute(sql`select indexname from pg_indexes where tablename = 'rooms' order by indexname`),
    ).map((i) => i.indexname);
    expect(indexes).toEqual(expect.arrayContaining(['rooms_one_per_case', 'rooms_hotel_room_no', 'rooms_hotel_state']));
    await Promise.all(opened.map((d) => d.close()));

    const again = await openDatabase({ databaseUrl: empty.url, dataDir: os.tmpdir() });
    const still = rowsOf<{ n: number }>(
      await again.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
    );
    expect(still[0]!.n).toBe(journalEntries());
    await again.close();
  } finally {
    await empty.drop();
  }
});
