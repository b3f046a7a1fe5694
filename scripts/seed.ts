/**
 * Demo data: one district's real set-up, 21 hotels with 1,583 rooms (Xigu, Lanzhou, 2020).
 * Hotel names and streets are illustrative. Safe to run twice: hotels are added by id, and a
 * second run neither duplicates rooms nor disturbs rooms already in use.
 *
 *   npm run seed            # DATABASE_URL, or the embedded database, or the running system
 *
 * One process owns the embedded database (PGlite), so while `npm start` runs this script asks
 * the running API to seed (DATA_DIR/runtime.json: its URL and admin token), like `npm run keys`;
 * with DATABASE_URL, or with nothing running, it opens the database itself.
 */
import fs from 'node:fs';
import path from 'node:path';

import { loadConfigOrExit, type Config } from '../src/config';
import { openDatabase } from '../src/db';
import { DEMO_DISTRICT, seedDemoHotels } from '../src/db/demo-hotels';
import { pidAlive } from '../src/process-alive';
import { readRuntime, type RuntimeInfo } from './keys';

export { DEMO_DISTRICT, DEMO_HOTEL_COUNT, DEMO_ROOM_COUNT, demoHotels, seedDemoHotels } from '../src/db/demo-hotels';

interface Seeded {
  hotels: number;
  rooms: number;
  added: number;
}

/**
 * PGlite has a single owner: a second process opening data/pglite would corrupt it. A live
 * process named in runtime.json without an API to ask (e.g. an older runtime.json) owns it.
 */
function assertEmbeddedDatabaseFree(config: Config): void {
  if (config.DATABASE_URL) return;
  const file = path.join(config.dataDir, 'runtime.json');
  if (!fs.existsSync(file)) return;
  let pid: number | undefined;
  try {
    pid = (JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: number }).pid;
  } catch {
    return;
  }
  if (!pid || pid === process.pid) return;
  if (!pidAlive(pid)) return; // stale file from a process that is gone
  throw new Error(
    `The embedded database ${path.join(config.dataDir, 'pglite')} is in use by the running system (pid ${pid}), ` +
      'which left no API to ask. Stop it (Ctrl-C) and run `npm run seed` again, or set DATABASE_URL to seed a Postgres server.',
  );
}

/** Through the running system: POST /api/v1/admin/seed-demo with its admin token. */
async function seedViaApi(rt: RuntimeInfo): Promise<Seeded> {
  let res: Response;
  try {
    res = await fetch(new URL('/api/v1/admin/seed-demo', rt.apiUrl), {
      method: 'POST',
      headers: { 'X-Admin-Token': rt.adminToken, 'Content-Type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(120_000),
    });
  } catch (err) {
    throw new Error(
      `The running system (pid ${rt.pid}) owns the database but its API at ${rt.apiUrl} does not answer: ${(err as Error).message}`,
    );
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    // not JSON: reported below
  }
  if (res.status !== 200) {
    throw new Error(
      `The running API at ${rt.apiUrl} refused to seed: ${res.status} ${String(json.detail ?? json.title ?? text.slice(0, 200))}`,
    );
  }
  return json as unknown as Seeded;
}

export async function main(config: Config, out: (s: string) => void = console.log): Promise<number> {
  // A shared Postgres takes any number of clients; only the embedded database has one owner.
  const rt = config.DATABASE_URL ? undefined : readRuntime(config.dataDir);
  let r: Seeded;
  let via: string;
  if (rt) {
    r = await seedViaApi(rt);
    via = `via the running API at ${rt.apiUrl} (pid ${rt.pid})`;
  } else {
    assertEmbeddedDatabaseFree(config);
    const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.dataDir, max: 2 });
    try {
      r = await seedDemoHotels(database.db);
    } finally {
      await database.close();
    }
    via = database.where;
  }
  out(`Seeded ${r.hotels} hotels, ${r.rooms} rooms in ${DEMO_DISTRICT} (${r.added} rooms new), ${via}.`);
  return 0;
}

if (require.main === module) {
  main(loadConfigOrExit())
    .then((code) => process.exit(code))
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
