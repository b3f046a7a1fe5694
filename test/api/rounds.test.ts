import { eq } from 'drizzle-orm';
import request from 'supertest';

import { cases, hotels, rooms } from '../../src/db/schema';
import type { CaseView } from '../../src/domain/case/view';
import { waitFor } from '../support/wait';
import { caseInObservation, createHarness, liveState, orgKey, startTestWorker, type Harness } from './harness';

/**
 * A nurse's rounds (GET /api/v1/hotels/{hotelId}/rounds) through the API, with a real worker that
 * is stopped and started: the list shows the slot a person's case watches and the slots after it
 * from the read model alone; a check taken in the listed window while no worker runs is queued,
 * and counts for that slot (not missed) once a worker takes it in, the case then watching exactly
 * the slot the rounds listed next.
 */
let h: Harness;
let worker: { stop(): Promise<void> } | undefined;

interface Slot {
  caseNo: string;
  roomId: string | null;
  roomNo: string | null;
  slotAt: string;
  windowOpensAt: string | null;
  windowClosesAt: string | null;
  watched: boolean;
}

beforeAll(async () => {
  // A policy day of 120 s: checks at 08:00 and 16:00 are 40 s apart, their windows 5 s either side.
  h = await createHarness({
    label: 'rounds',
    env: { DRILL_DAY_SECONDS: '120', API_REPORT_WAIT_MS: '800', API_PROBE_INTERVAL_MS: '300' },
  });
  await h.db.insert(hotels).values({ id: 'HR', name: 'Rounds Hotel', district: 'D1', street: 'S1' });
  await h.db
    .insert(rooms)
    .values(
      Array.from({ length: 3 }, (_, i) => ({ id: `HR-${101 + i}`, hotelId: 'HR', roomNo: String(101 + i), floor: 1 })),
    );
  worker = await startTestWorker(h);
});

afterAll(async () => {
  await worker?.stop();
  await h?.close();
});

const rounds = (auth: { Authorization: string }, query = '') =>
  request(h.app).get(`/api/v1/hotels/HR/rounds${query}`).set(auth);

test('the rounds list the watched slot and the ones after it; a check in the window counts, worker away or not', async () => {
  const { caseNo, nurse } = await caseInObservation(h);
  const view = await liveState<CaseView>(h, caseNo);
  expect(view.room?.hotelId).toBe('HR');

  const first = await waitFor(
    'the case on the rounds',
    async () => {
      const res = await rounds(nurse);
      expect(res.status).toBe(200);
      const mine = (res.body.items as Slot[]).filter((x) => x.caseNo === caseNo);
      return mine.length >= 2 ? mine : undefined;
    },
    10_000,
    200,
  );
  // The watched slot is the case's own; the next follows 40 s (8 policy hours) later.
  expect(first[0]).toMatchObject({ watched: true, slotAt: view.nextCheckDue, roomId: view.room?.roomId });
  expect(first.slice(1).every((x) => !x.watched)).toBe(true);
  const [a, b] = first.map((x) => Date.parse(x.slotAt));
  expect(b! - a!).toBe(40_000);
  expect(Date.parse(first[0]!.windowOpensAt!)).toBe(a! - 5_000);
  expect(Date.parse(first[0]!.windowClosesAt!)).toBe(a! + 5_000);
  const [row] = await h.db.select().from(cases).where(eq(cases.caseNo, caseNo));
  expect(row!.checkSchedule).toMatchObject({ checkTimes: ['08:00', '16:00'], windowBeforeMs: 5_000 });

  // No worker: the list does not change, and the nurse still has her round.
  await worker!.stop();
  worker = undefined;
  const opens = Date.parse(first[0]!.windowOpensAt!);
  await new Promise((r) => setTimeout(r, Math.max(0, opens - Date.now() + 200)));
  const check = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurse)
    .set('Idempotency-Key', `round-${caseNo}`)
    .send({ checkId: `round-${caseNo}`, takenAt: new Date().toISOString(), temperatureC: 36.5, symptoms: [] });
  expect(check.status).toBe(202);
  const meanwhile = ((await rounds(nurse)).body.items as Slot[]).filter((x) => x.caseNo === caseNo);
  expect(meanwhile.map((x) => x.slotAt).slice(0, 2)).toEqual(first.map((x) => x.slotAt).slice(0, 2));

  // The worker back: the check counted for its slot, and the case watches the slot listed next.
  worker = await startTestWorker(h);
  const after = await waitFor(
    'the next slot watched',
    async () => {
      const v = await liveState<CaseView>(h, caseNo);
      return v.nextCheckDue !== first[0]!.slotAt ? v : undefined;
    },
    30_000,
    200,
  );
  expect(after.nextCheckDue).toBe(first[1]!.slotAt);
  expect(after.escalations.filter((e) => e.kind === 'missed_check')).toEqual([]);
  const next = await waitFor(
    'the rounds moved on',
    async () => {
      const mine = ((await rounds(nurse)).body.items as Slot[]).filter((x) => x.caseNo === caseNo);
      return mine[0]?.slotAt === first[1]!.slotAt ? mine : undefined;
    },
    10_000,
    200,
  );
  expect(next[0]!.watched).toBe(true);
});

test('who may see a hotel rounds, and bad windows', async () => {
  // The hotel's own nurse and desk, the district's supervisor: yes.
  expect((await rounds(await orgKey(h, 'medical', 'HR'))).status).toBe(200);
  expect((await rounds(await orgKey(h, 'hotel', 'HR'))).status).toBe(200);
  expect((await rounds(h.auth('supervisor'))).status).toBe(200);
  // Another hotel's nurse, another district's supervisor: outside their jurisdiction; a community worker: not their role.
  expect((await rounds(h.auth('medicalOther'))).status).toBe(403);
  expect((await rounds(h.auth('supervisorOther'))).status).toBe(403);
  expect((await rounds(h.auth('community'))).status).toBe(403);
  const none = await request(h.app).get('/api/v1/hotels/NOPE/rounds').set(h.auth('supervisor'));
  expect(none.status).toBe(404);

  const backwards = await rounds(h.auth('supervisor'), '?from=2026-12-06T10:00:00Z&to=2026-12-06T09:00:00Z');
  expect(backwards.status).toBe(400);
  expect(backwards.headers['content-type']).toMatch(/application\/problem\+json/);
  expect(backwards.body.errors).toEqual([expect.objectContaining({ in: 'query', path: 'to' })]);
  const tooLong = await rounds(h.auth('supervisor'), '?from=2026-12-01T00:00:00Z&to=2026-12-09T00:00:00Z');
  expect(tooLong.status).toBe(400);
  const garbage = await rounds(h.auth('supervisor'), '?from=yesterday&extra=1');
  expect(garbage.status).toBe(400);
  expect((garbage.body.errors as { path: string }[]).map((e) => e.path).sort()).toEqual(['extra', 'from']);
});
