/**
 * Demo data: one district's real set-up, 21 hotels with 1,583 rooms (Xigu, Lanzhou, 2020).
 * Hotel names and streets are illustrative. Safe to run twice: hotels are added by id, and a
 * second run neither duplicates rooms nor disturbs rooms already in use.
 *
 *   npm run seed            # DATABASE_URL, or the embedded database when no system runs
 */
import fs from 'node:fs';
import path from 'node:path';

import { loadConfigOrExit, type Config } from '../src/config';
import { openDatabase } from '../src/db';
import { DEMO_DISTRICT, seedDemoHotels } from '../src/db/demo-hotels';

export { DEMO_DISTRICT, DEMO_HOTEL_COUNT, DEMO_ROOM_COUNT, demoHotels, seedDemoHotels } from '../src/db/demo-hotels';

/**
 * PGlite has a single owner: a second process opening data/pglite would corrupt it. The
 * running system leaves data/runtime.json with its pid; if that process lives, refuse.
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
  try {
    process.kill(pid, 0);
  } catch {
    return; // stale file from a process that is gone
  }
  throw new Error(
    `The embedded database ${path.join(config.dataDir, 'pglite')} is in use by the running system (pid ${pid}). ` +
      'Stop it (Ctrl-C) and run `npm run seed` again, or set DATABASE_URL to seed a Postgres server.',
  );
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  assertEmbeddedDatabaseFree(config);
  const database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.dataDir });
  try {
    const r = await seedDemoHotels(database.db);
    console.log(
      `Seeded ${database.where}: ${r.hotels} hotels, ${r.rooms} rooms in ${DEMO_DISTRICT} (${r.added} rooms new).`,
    );
  } finally {
    await database.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
