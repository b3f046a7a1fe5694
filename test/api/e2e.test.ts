import { and, eq } from 'drizzle-orm';
import request from 'supertest';

import { caseEvents, cases } from '../../src/db/schema';
import type { CaseView as CaseState } from '../../src/domain/case/view';
import { workflowIdFor } from '../../src/api/ids';
import { CaseColourKey, CasePhaseKey, OpenEscalationsKey } from '../../src/temporal/search-attributes';
import {
  createHarness,
  type Harness,
  liveState,
  seedReadModel,
  validTransfer,
  startTestWorker,
  type TestWorker,
} from './harness';

/**
 * One case through the API with a real worker, each step by the role that does it in the
 * field: community files, transport/hotel report the arrival, nurses check, the lab reports,
 * the community inspects the home, supervisors steer; then release. A day lasts 1 s.
 */
let h: Harness;
let worker: TestWorker | undefined;

beforeAll(async () => {
  h = await createHarness({ label: 'e2e', env: { DRILL_DAY_SECONDS: '1' } });
  await seedReadModel(h.db);
  worker = await startTestWorker(h);
});
afterAll(async () => {
  await worker?.stop();
  await h?.close();
});

async function newKey(body: Record<string, unknown>): Promise<{ Authorization: string }> {
  const res = await request(h.app).post('/api/v1/admin/keys').set('X-Admin-Token', h.adminToken).send(body);
  expect(res.status).toBe(201);
  return { Authorization: `Bearer ${res.body.key}` };
}

const live = (caseNo: string) => liveState<CaseState>(h, caseNo);

async function waitFor(caseNo: string, pred: (s: CaseState) => boolean, what: string, ms = 30_000): Promise<CaseState> {
  const deadline = Date.now() + ms;
  let s: CaseState | undefined;
  while (Date.now() < deadline) {
    s = await live(caseNo);
    if (pred(s)) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; phase ${s?.phase}`);
}

test('transfer → arrival → checks → results → inspection → release, each by its role', async () => {
  const body = validTransfer({ policyName: 'drill' });
  const filed = await request(h.app).post('/api/v1/transfers').set(h.auth('community')).send(body);
  expect(filed.status).toBe(202);
  const { caseNo } = filed.body as { caseNo: string };

  const transit = await waitFor(caseNo, (s) => s.phase === 'IN_TRANSIT', 'transport dispatched');
  expect(transit.colour).toBe('red'); // hypertension
  // A new case runs caseWorkflowV6. The start set the search attributes the first task would have
  // (the colour as the decision core classified it), so that task upserts none of them, and v5
  // asks no patch: no marker, no TemporalChangeVersion upsert.
  const wf = h.temporal.client.workflow.getHandle(workflowIdFor(caseNo));
  const described = await wf.describe();
  expect(described.type).toBe('caseWorkflowV6');
  const events = (await wf.fetchHistory()).events ?? [];
  const started = events[0]!.workflowExecutionStartedEventAttributes!.searchAttributes!.indexedFields!;
  expect(Object.keys(started).sort()).toEqual([CaseColourKey.name, CasePhaseKey.name, OpenEscalationsKey.name].sort());
  const firstDone = events.findIndex((e) => e.workflowTaskCompletedEventAttributes);
  const nextTask = events.findIndex((e, i) => i > firstDone && e.workflowTaskScheduledEventAttributes);
  expect(firstDone).toBeGreaterThan(0);
  expect(nextTask).toBeGreaterThan(firstDone);
  const upserted = events
    .slice(firstDone, nextTask)
    .flatMap((e) =>
      Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}),
    );
  expect(upserted).toEqual([]);
  expect(events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')).toHaveLength(0);
  const hotelId = transit.room!.hotelId;
  const hotelKey = await newKey({ name: 'Front desk', role: 'hotel', district: 'D1', orgId: hotelId });
  const nurseKey = await newKey({ name: 'Nurse Wang', role: 'medical', district: 'D1', orgId: hotelId });
  // The lab the simulator orders from: only its key may answer for those samples.
  const labKey = await newKey({ name: 'Simulated lab', role: 'lab', orgId: 'SIM-LAB' });

  const arrived = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/arrival`)
    .set(hotelKey)
    .send({ antigen: 'negative' });
  expect(arrived.status).toBe(202);
  await waitFor(caseNo, (s) => s.phase === 'OBSERVATION', 'observation');

  const check = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurseKey)
    .send({ checkId: 'c-1', temperatureC: 36.6, symptoms: [] });
  expect(check.status).toBe(200);
  expect(check.body.result).toMatchObject({ checkId: 'c-1', fever: false, duplicate: false });
  const retry = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurseKey)
    .send({ checkId: 'c-1', temperatureC: 36.6, symptoms: [] });
  expect(retry.body.result.duplicate).toBe(true);

  const extended = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/extend`)
    .set(h.auth('supervisor'))
    .send({ days: 1, reason: 'household contact tested late' });
  expect(extended.status).toBe(200);
  expect(extended.body.result.releaseDue).toEqual(expect.any(String));
  const recoloured = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/colour`)
    .set(h.auth('supervisor'))
    .send({ colour: 'yellow', reason: 'condition controlled' });
  expect(recoloured.status).toBe(200);

  // Answer every sample the workflow orders and the home inspection when it is requested.
  const answered = new Set<string>();
  let inspected = false;
  let recheckedAt = 0;
  let rechecks = 0;
  const final = await waitFor(
    caseNo,
    (s) => {
      for (const smp of s.samples) {
        if (smp.status === 'ordered' && !answered.has(smp.sampleId)) {
          answered.add(smp.sampleId);
          void request(h.app)
            .post('/api/v1/lab/results')
            .set(labKey)
            .send({ results: [{ sampleId: smp.sampleId, result: 'negative' }] })
            .then((r) => {
              expect(r.body.results[0].status).toMatch(/applied|unknown_sample/);
              if (r.body.results[0].status === 'unknown_sample') answered.delete(smp.sampleId);
            });
        }
      }
      if (s.releaseBlockers.join() === 'no_recent_afebrile_check' && Date.now() - recheckedAt > 500) {
        // The observation rule: the last thing holding release is a check without fever within
        // the last policy day; a nurse records one (again, if a slow machine let it grow old).
        recheckedAt = Date.now();
        void request(h.app)
          .post(`/api/v1/cases/${caseNo}/health-checks`)
          .set(nurseKey)
          .send({ checkId: `c-release-${++rechecks}`, temperatureC: 36.5, symptoms: [] })
          // (A supertest request is sent when awaited or then'd.)
          .then(() => undefined);
      }
      if (s.inspection.status === 'requested' && !inspected) {
        inspected = true;
        void request(h.app)
          .post(`/api/v1/cases/${caseNo}/address-inspections`)
          .set(h.auth('community'))
          .send({ inspectionId: s.inspection.inspectionId, singleOccupancy: true, inspector: 'Street office Li' })
          .then((r) => expect(r.status).toBe(202));
      }
      return s.phase === 'RELEASED';
    },
    'release',
    60_000,
  );
  expect(final.releaseBlockers).toEqual([]);
  expect(answered.size).toBeGreaterThanOrEqual(2);

  // Every command is in the event log under the identity of the key that sent it.
  const deadline = Date.now() + 10_000;
  let actors: string[] = [];
  while (Date.now() < deadline) {
    const rows = await h.db.select({ actor: caseEvents.actor }).from(caseEvents).where(eq(caseEvents.caseNo, caseNo));
    actors = rows.map((r) => r.actor);
    if (actors.some((a) => a.includes(h.keyIds.supervisor)) && actors.some((a) => a.includes(h.keyIds.community)))
      break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(actors.join('\n')).toContain(h.keyIds.supervisor);
  expect(actors.join('\n')).toContain(h.keyIds.community);
  const [row] = await h.db.select().from(cases).where(eq(cases.caseNo, caseNo));
  expect(row).toMatchObject({ phase: 'RELEASED', inspectionStatus: 'passed' });

  const closed = await request(h.app).post(`/api/v1/cases/${caseNo}/door-alarms`).set(hotelKey).send({});
  expect([202, 409]).toContain(closed.status);
}, 120_000);

test('a fever escalates; the nurse at that hotel acknowledges it; a second ack is refused with the reason', async () => {
  const filed = await request(h.app)
    .post('/api/v1/transfers')
    .set(h.auth('community'))
    .send(validTransfer({ transport: 'self_drive', pickupAddress: undefined }));
  const { caseNo } = filed.body as { caseNo: string };
  const s = await waitFor(caseNo, (x) => x.phase === 'IN_TRANSIT' || x.phase === 'ROOM_ASSIGNED', 'room');
  const hotelId = s.room!.hotelId;
  const nurseKey = await newKey({ name: 'Nurse Zhao', role: 'medical', district: 'D1', orgId: hotelId });
  const hotelKey = await newKey({ name: 'Desk', role: 'hotel', district: 'D1', orgId: hotelId });
  expect((await request(h.app).post(`/api/v1/cases/${caseNo}/arrival`).set(hotelKey).send({})).status).toBe(202);
  await waitFor(caseNo, (x) => x.phase === 'OBSERVATION', 'observation');

  const fever = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/health-checks`)
    .set(nurseKey)
    .send({ temperatureC: 38.4, symptoms: ['cough'] });
  expect(fever.status).toBe(200);
  expect(fever.body.result.fever).toBe(true);
  const escalationId = fever.body.result.escalationIds[0] as string;
  expect(escalationId).toBeTruthy();

  // The escalation reaches the read model through the workflow's records activity.
  const deadline = Date.now() + 10_000;
  let listed = false;
  while (!listed && Date.now() < deadline) {
    const res = await request(h.app).get('/api/v1/escalations').set(nurseKey);
    listed = res.body.items.some((e: { id: string }) => e.id === escalationId);
    if (!listed) await new Promise((r) => setTimeout(r, 200));
  }
  expect(listed).toBe(true);

  const ack = await request(h.app)
    .post(`/api/v1/escalations/${escalationId}/ack`)
    .set(nurseKey)
    .send({ note: 'Doctor on the way' });
  expect(ack.status).toBe(200);
  expect(ack.body.result).toMatchObject({ id: escalationId, status: 'acked' });
  const again = await request(h.app).post(`/api/v1/escalations/${escalationId}/ack`).set(nurseKey).send({});
  expect(again.status).toBe(409);
  expect(again.body.detail).toMatch(/already acked/);

  const cancelled = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/cancel`)
    .set(h.auth('supervisor'))
    .send({ reason: 'transferred to another district' });
  expect(cancelled.status).toBe(200);
  await waitFor(caseNo, (x) => x.phase === 'CANCELLED', 'cancelled');
  const late = await request(h.app)
    .post(`/api/v1/cases/${caseNo}/cancel`)
    .set(h.auth('supervisor'))
    .send({ reason: 'again' });
  expect([404, 409]).toContain(late.status);

  const rows = await h.db
    .select()
    .from(caseEvents)
    .where(and(eq(caseEvents.caseNo, caseNo)));
  expect(rows.map((r) => r.actor).join('\n')).toContain(h.keyIds.supervisor);
}, 90_000);

interface CaseBody {
  state?: { room?: { roomId: string } } | null;
  roomWait?: { place: number; district: string } | null;
}

test('more people than rooms: the waiting list through the API, and a freed room goes to the first in line', async () => {
  const supervisorQ = await newKey({ name: 'Supervisor DQ', role: 'supervisor', district: 'DQ' });
  const communityQ = await newKey({ name: 'Community DQ', role: 'community', district: 'DQ', street: 'SQ' });
  const hotel = await request(h.app)
    .post('/api/v1/hotels')
    .set(supervisorQ)
    .send({ id: 'HQ1', name: 'One room', district: 'DQ', street: 'SQ', rooms: [{ roomNo: '101', floor: 1 }] });
  expect(hotel.status).toBe(201);
  const file = async () => {
    const res = await request(h.app)
      .post('/api/v1/transfers')
      .set(communityQ)
      .send(
        validTransfer({
          district: 'DQ',
          street: 'SQ',
          person: { ...(validTransfer().person as object), chronicConditions: [] },
        }),
      );
    expect(res.status).toBe(202);
    return res.body.caseNo as string;
  };
  const getCase = (caseNo: string) => request(h.app).get(`/api/v1/cases/${caseNo}`).set(supervisorQ);
  const until = async (caseNo: string, pred: (b: CaseBody) => boolean, what: string) => {
    const deadline = Date.now() + 20_000;
    let body: CaseBody = {};
    while (Date.now() < deadline) {
      body = (await getCase(caseNo)).body as CaseBody;
      if (pred(body)) return body;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting for ${what}: ${JSON.stringify(body).slice(0, 500)}`);
  };

  const first = await file();
  const holder = await until(first, (b) => !!b.state?.room, 'the only room');
  const second = await file();
  const waiting = await until(second, (b) => b.roomWait?.place === 1, 'a place on the list');
  expect(waiting.state!.room).toBeUndefined();
  expect(waiting.roomWait).toMatchObject({ place: 1, district: 'DQ' });

  const queue = await request(h.app).get('/api/v1/room-queue').set(supervisorQ);
  expect(queue.status).toBe(200);
  expect(queue.body).toMatchObject({ district: 'DQ', length: 1, entries: [{ caseNo: second, place: 1 }] });
  expect(queue.body.oldestSince).toEqual(expect.any(String));
  // Another district's supervisor may not look; an admin key must name the district.
  const outside = await request(h.app).get('/api/v1/room-queue?district=DQ').set(h.auth('supervisor'));
  expect(outside.status).toBe(403);
  const bad = await request(h.app).get('/api/v1/room-queue?limit=0').set(supervisorQ);
  expect(bad.status).toBe(400);
  expect(bad.headers['content-type']).toMatch(/problem\+json/);

  // The first case is cancelled before it arrives: its room goes to the second, which is woken.
  const cancelled = await request(h.app)
    .post(`/api/v1/cases/${first}/cancel`)
    .set(supervisorQ)
    .send({ reason: 'stays home' });
  expect(cancelled.status).toBe(200);
  const moved = await until(
    second,
    (b) => b.state?.room?.roomId === holder.state!.room!.roomId,
    'the room handed over',
  );
  expect(moved.roomWait ?? null).toBeNull();
  expect((await request(h.app).get('/api/v1/room-queue').set(supervisorQ)).body).toMatchObject({
    length: 0,
    entries: [],
  });
  await request(h.app).post(`/api/v1/cases/${second}/cancel`).set(supervisorQ).send({ reason: 'test over' });
});
