/**
 * Demo data: one district's real set-up, 21 hotels with 1,583 rooms (Xigu, Lanzhou, 2020;
 * DOMAIN.md "Figures reported"). Hotel names and streets are illustrative. Adding is
 * idempotent by hotel id, so seeding twice neither duplicates rooms nor disturbs rooms in use.
 */
import type { Db } from '.';
import { createHotelService, type HotelInput } from '../integrations/hotel';

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
