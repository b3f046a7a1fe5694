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
import { openDatabase, type Db } from '../src/db';
import { createHotelService, type HotelInput } from '../src/integrations/hotel';

export const DEMO_DISTRICT = 'Xigu';
export const DEMO_HOTEL_COUNT = 21;
export const DEMO_ROOM_COUNT = 1583;

const STREETS = ['Xiguchengjie', 'Chenping', 'Fulilu', 'Xianfenglu', 'Lintaojie', 'Sijiqing', 'Xiliugou'];
const NAMES = [
  'Lanhai Hotel',
  'Jincheng Business Hotel',
  'Hekou Inn',
  'Xigu Garden Hotel',
  'Huanghe Riverside Hotel',
  'Baita Hotel',
  'Anning Express Inn',
  'Qilian Hotel',
  'Yellow River Pearl Hotel',
  'Fuli Road Hotel',
  'Chenping Guesthouse',
  'Xianfeng Hotel',
  'Lintao Street Inn',
  'Sijiqing Hotel',
  'Xiliugou Lodge',
  'Longyuan Hotel',
  'Gaolan Hotel',
  'Xingfu Inn',
  'Daqing Hotel',
  'Dongchuan Hotel',
  'Heping Hotel',
];
/** Rooms per hotel: small inns to large business hotels, 1,583 in all. */
const SIZES = [112, 96, 54, 88, 100, 72, 48, 80, 104, 66, 40, 76, 58, 70, 44, 92, 84, 62, 78, 86, 73];

/** The 21 demo hotels, deterministic so that a second run describes the same rooms. */
export function demoHotels(): HotelInput[] {
  return SIZES.map((size, i) => {
    const perFloor = 10 + (i % 4) * 4; // 10, 14, 18 or 22 rooms a floor
    const hotelRooms: HotelInput['rooms'] = [];
    for (let n = 0; n < size; n++) {
      const floor = Math.floor(n / perFloor) + 1;
      const idx = (n % perFloor) + 1;
      hotelRooms.push({
        roomNo: `${floor}${String(idx).padStart(2, '0')}`,
        floor,
        // A few rooms by the lift on the two lowest floors are wheelchair-accessible.
        accessible: floor <= 2 && idx <= 2,
      });
    }
    return {
      id: `xigu-${String(i + 1).padStart(2, '0')}`,
      name: NAMES[i]!,
      district: DEMO_DISTRICT,
      street: STREETS[i % STREETS.length],
      // Every third hotel hosts a medical station, on its second floor.
      ...(i % 3 === 0 ? { medicalStationFloor: 2 } : {}),
      rooms: hotelRooms,
    };
  });
}

export async function seedDemoHotels(db: Db): Promise<{ hotels: number; rooms: number; added: number }> {
  const hotel = createHotelService(db);
  let rooms = 0;
  let added = 0;
  for (const h of demoHotels()) {
    const r = await hotel.addHotel(h);
    rooms += r.rooms;
    added += r.added;
  }
  return { hotels: DEMO_HOTEL_COUNT, rooms, added };
}

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
