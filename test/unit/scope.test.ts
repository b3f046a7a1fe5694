import type { ApiKey } from '../../src/api/auth';
import { keyCovers } from '../../src/api/scope';

const key = (role: ApiKey['role'], extra: Partial<ApiKey> = {}): ApiKey =>
  ({ id: 'k', name: 'k', role, district: 'D1', ...extra }) as ApiKey;
const atHotel = { district: 'D1', street: 'S1', hotelId: 'H1' };
const noRoomYet = { district: 'D1', street: 'S1', hotelId: undefined };

test('hotel and medical keys act for their own hotel only; one bound to no hotel covers no case', () => {
  expect(keyCovers(key('hotel', { orgId: 'H1' }), atHotel)).toBe(true);
  expect(keyCovers(key('hotel', { orgId: 'H2' }), atHotel)).toBe(false);
  expect(keyCovers(key('medical', { orgId: 'H1' }), atHotel)).toBe(true);
  expect(keyCovers(key('hotel'), atHotel)).toBe(false);
  expect(keyCovers(key('medical'), atHotel)).toBe(false);
});

test('a hotel of the district may record an arrival at its door before any room is known, nothing else', () => {
  expect(keyCovers(key('hotel', { orgId: 'H2' }), noRoomYet, 'arrival')).toBe(true);
  expect(keyCovers(key('hotel', { orgId: 'H2' }), noRoomYet, 'act')).toBe(false);
  expect(keyCovers(key('hotel', { orgId: 'H2' }), atHotel, 'arrival')).toBe(false);
  expect(keyCovers(key('hotel', { orgId: 'H2', district: 'D9' }), noRoomYet, 'arrival')).toBe(false);
  expect(keyCovers(key('medical', { orgId: 'H2' }), noRoomYet, 'arrival')).toBe(false);
});
