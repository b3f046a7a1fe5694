import { and, eq } from 'drizzle-orm';
import request from 'supertest';

import { caseEvents, cases, directiveCases, rooms } from '../../src/db/schema';
import type { CaseView } from '../../src/domain/case/view';
import { waitFor as poll } from '../support/wait';

/** Polls `get` until `ok` holds of what it returns. */
const waitFor = <T>(get: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 30_000): Promise<T> =>
  poll(
    what,
    async () => {
      const v = await get();
      return ok(v) ? v : undefined;
    },
    ms,
    250,
  );
import {
  createHarness,
  liveState,
  seedReadModel,
  validTransfer,
  type Harness,
  startTestWorker,
  type TestWorker,
} from './harness';

/**
 * Policies as data and directives, through the API with a real worker (issue 12). A policy day
 * lasts DAY_S seconds. The field is played by a loop: the lab answers every ordered sample
 * negative, the street passes every inspection, a nurse checks every case twice a day.
 */
const DAY_S = 2;
const DAY = DAY_S * 1000;
let h: Harness;
let worker: TestWorker | undefined;

beforeAll(async () => {
  h = await createHarness({ label: 'directives', env: { DRILL_DAY_SECONDS: String(DAY_S) } });
  await seedReadModel(h.db);
  worker = await startTestWorker(h);
});
afterAll(async () => {
  await worker?.stop();
  await h?.close();
});

const sup = () => h.auth('supervisor');

const view = (caseNo: string) => liveState<CaseView>(h, caseNo);

const keys = new Map<string, { Authorization: string }>();
async function keyFor(body: Record<string, unknown>): Promise<{ Authorization: string }> {
  const id = JSON.stringify(body);
  if (!keys.has(id)) {
    const res = await request(h.app).post('/api/v1/admin/keys').set('X-Admin-Token', h.adminToken).send(body);
    expect(res.status).toBe(201);
    keys.set(id, { Authorization: `Bearer ${res.body.key}` });
  }
  return keys.get(id)!;
}

/** The field for a set of cases, until stopped: labs, inspectors and nurses doing their work. */
function field(caseNos: string[]): { stop: () => Promise<void>; checks: Map<string, number> } {
  let on = true;
  const checks = new Map<string, number>();
  const answered = new Set<string>();
  const loop = (async () => {
    let round = 0;
    while (on) {
      round++;
      for (const caseNo of caseNos) {
        const s = await view(caseNo);
        const lab = await keyFor({ name: 'Simulated lab', role: 'lab', orgId: 'SIM-LAB' });
        for (const smp of s.samples)
          if (smp.status === 'ordered' && !answered.has(smp.sampleId)) {
            answered.add(smp.sampleId);
            await request(h.app)
              .post('/api/v1/lab/results')
              .set(lab)
              .send({ results: [{ sampleId: smp.sampleId, result: 'negative' }] });
          }
        if (s.inspection.status === 'requested')
          await request(h.app)
            .post(`/api/v1/cases/${caseNo}/address-inspections`)
            .set(h.auth('community'))
            .send({ inspectionId: s.inspection.inspectionId, singleOccupancy: true, inspector: 'Li' });
        if ((s.phase === 'OBSERVATION' || s.phase === 'RELEASE_PENDING') && s.room && round % 2 === 0) {
          const nurse = await keyFor({ name: 'Nurse', role: 'medical', district: 'D1', orgId: s.room.hotelId });
          const n = (checks.get(caseNo) ?? 0) + 1;
          checks.set(caseNo, n);
          await request(h.app)
            .post(`/api/v1/cases/${caseNo}/health-checks`)
            .set(nurse)
            .send({ checkId: `chk-${caseNo}-${n}`, temperatureC: 36.5, symptoms: [] });
        }
      }
      await new Promise((r) => setTimeout(r, DAY / 4));
    }
  })();
  return {
    checks,
    stop: async () => {
      on = false;
      await loop;
    },
  };
}

async function admit(n: number): Promise<string[]> {
  const nos: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(h.app)
      .post('/api/v1/transfers')
      .set(h.auth('community'))
      .send(validTransfer({ transport: 'self_drive' }));
    expect(res.status).toBe(202);
    nos.push(res.body.caseNo as string);
  }
  for (const caseNo of nos) {
    const s = await waitFor(
      () => view(caseNo),
      (v) => !!v.room,
      `a room for ${caseNo}`,
      30_000,
    );
    const desk = await keyFor({ name: 'Desk', role: 'hotel', district: 'D1', orgId: s.room!.hotelId });
    expect((await request(h.app).post(`/api/v1/cases/${caseNo}/arrival`).set(desk).send({})).status).toBe(202);
  }
  for (const caseNo of nos)
    await waitFor(
      () => view(caseNo),
      (v) => v.phase === 'OBSERVATION',
      'observation',
    );
  return nos;
}

test('policy versions: the seed, field-level errors, a new current version, and district scope', async () => {
  const list = await request(h.app).get('/api/v1/districts/D1/policies').set(sup());
  expect(list.status).toBe(200);
  expect(list.body.items).toHaveLength(1);
  expect(list.body.items[0]).toMatchObject({ version: 1, name: 'drill', current: true, createdBy: null });
  const seed = list.body.items[0].policy as Record<string, unknown>;
  expect(seed.release).toMatchObject({ requiredNegatives: 2, afebrileCheckWithinMs: DAY });

  const { version: _v, ...doc } = seed;
  const bad = await request(h.app)
    .post('/api/v1/districts/D1/policies')
    .set(sup())
    .send({
      note: 'typos',
      policy: {
        ...doc,
        stayDays: 7,
        checkTimes: ['8:00', '16:00'],
        sampling: { days: [1, 9], type: 'PCR', time: '09:00' },
        severity: { ...(doc.severity as object), fever: 'purple' },
      },
    });
  expect(bad.status).toBe(400);
  expect(bad.headers['content-type']).toMatch(/problem\+json/);
  const paths = (bad.body.errors as { path: string }[]).map((e) => e.path);
  expect(paths).toEqual(expect.arrayContaining(['policy.checkTimes.0', 'policy.severity.fever']));
  // Nothing was created.
  expect((await request(h.app).get('/api/v1/districts/D1/policies').set(sup())).body.items).toHaveLength(1);
  const later = await request(h.app)
    .post('/api/v1/districts/D1/policies')
    .set(sup())
    .send({
      note: 'day after the stay',
      policy: { ...doc, stayDays: 7, sampling: { days: [1, 9], type: 'PCR', time: '09:00' } },
    });
  expect(later.status).toBe(400);
  expect(later.body.errors).toEqual([
    expect.objectContaining({ path: 'policy.sampling.days.1', message: 'day 9 is after the 7-day stay' }),
    expect.objectContaining({ path: 'policy.release.requiredNegatives' }),
  ]);

  // At most 30 home days.
  const home = await request(h.app)
    .post('/api/v1/districts/D1/policies')
    .set(sup())
    .send({ note: 'too long at home', policy: { ...doc, homeMonitoringDays: 31 } });
  expect(home.status).toBe(400);
  expect(home.body.errors).toEqual([expect.objectContaining({ path: 'policy.homeMonitoringDays' })]);

  // Another district's supervisor may not; a supervisor bound to none may not write.
  const other = await request(h.app)
    .post('/api/v1/districts/D1/policies')
    .set(h.auth('supervisorOther'))
    .send({ note: 'x', policy: doc });
  expect(other.status).toBe(403);
});

test('14 + 7 → 7 + 3 on live cases: dry run, directive, nobody released without negatives, dates moved', async () => {
  // Two cases well into their stay, two just arrived.
  const early = await admit(2);
  const fieldEarly = field(early);
  await new Promise((r) => setTimeout(r, 8.5 * DAY));
  const late = await admit(2);
  const all = [...early, ...late];
  const fieldLate = field(late);
  await new Promise((r) => setTimeout(r, 1 * DAY));

  const seed = (await request(h.app).get('/api/v1/districts/D1/policies/1').set(sup())).body.policy;
  const { version: _v, ...doc } = seed;
  const created = await request(h.app)
    .post('/api/v1/districts/D1/policies')
    .set(sup())
    .send({
      note: 'June 2022 protocol: 7 + 3',
      policy: {
        ...doc,
        name: 'close-contact-7+3',
        stayDays: 7,
        sampling: { ...doc.sampling, days: [1, 5, 6] },
      },
    });
  expect(created.body.errors ?? []).toEqual([]);
  expect(created.status).toBe(201);
  expect(created.body).toMatchObject({ version: 2, current: true, name: 'close-contact-7+3' });

  const dry = await request(h.app)
    .post('/api/v1/directives/preview')
    .set(sup())
    .send({ district: 'D1', policyVersion: 2 });
  expect(dry.status).toBe(200);
  const previewed = (dry.body.cases as { caseNo: string; outcome: string; after: { releaseDue: string } }[]).filter(
    (c) => all.includes(c.caseNo),
  );
  expect(previewed).toHaveLength(4);
  expect(previewed.every((c) => c.outcome === 'applies')).toBe(true);
  expect(dry.body.summary).toMatchObject({ applies: expect.any(Number), earlier: expect.any(Number) });
  expect(dry.body.summary.earlier).toBeGreaterThanOrEqual(4);
  // The dry run changed nothing.
  for (const caseNo of all) expect((await view(caseNo)).policy.version).toBe(1);

  const body = {
    requestId: `dir-${Date.now()}`,
    district: 'D1',
    policyVersion: 2,
    reason: 'June 2022 protocol',
    ratePerSecond: 10,
  };
  const issued = await request(h.app).post('/api/v1/directives').set(sup()).send(body);
  expect(issued.status).toBe(202);
  const id = issued.body.directiveId as string;
  // A supervisor retrying after a timeout gets the same directive; another body under the id is refused.
  const again = await request(h.app).post('/api/v1/directives').set(sup()).send(body);
  expect(again.status).toBe(202);
  expect(again.body.directiveId).toBe(id);
  const clash = await request(h.app)
    .post('/api/v1/directives')
    .set(sup())
    .send({ ...body, reason: 'other' });
  expect(clash.status).toBe(409);

  const done = await waitFor(
    async () =>
      (await request(h.app).get(`/api/v1/directives/${id}`).set(sup())).body as {
        status: string;
        done: number;
        total: number;
        applied: number;
      },
    (b) => b.status === 'completed',
    'directive completed',
    60_000,
  );
  expect(done.done).toBe(done.total);
  expect(done.applied).toBeGreaterThanOrEqual(4);

  for (const caseNo of all) {
    const v = await view(caseNo);
    expect(v.policy).toMatchObject({ name: 'close-contact-7+3', version: 2 });
    expect(Date.parse(v.releaseDue!)).toBe(Date.parse(v.stayStart!) + 7 * DAY);
  }
  // Each case recorded it once, with who issued it and the values before and after.
  for (const caseNo of all) {
    const rows = await h.db
      .select()
      .from(caseEvents)
      .where(and(eq(caseEvents.caseNo, caseNo), eq(caseEvents.kind, 'policy_applied')));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.payload).toMatchObject({
      directiveId: id,
      before: { policyVersion: 1 },
      after: { policyVersion: 2 },
    });
  }
  const outcomes = await h.db.select().from(directiveCases).where(eq(directiveCases.directiveId, id));
  expect(outcomes.filter((o) => all.includes(o.caseNo)).every((o) => o.outcome === 'applied')).toBe(true);

  // Everyone is released in the end, and nobody without two negatives of samples taken.
  for (const caseNo of all)
    await waitFor(
      () => view(caseNo),
      (v) => v.phase === 'RELEASED',
      `release of ${caseNo}`,
      60_000,
    );
  await fieldEarly.stop();
  await fieldLate.stop();
  for (const caseNo of all) {
    const v = await view(caseNo);
    const negatives = v.samples.filter((x) => x.result === 'negative' && x.takenAt);
    expect(negatives.length).toBeGreaterThanOrEqual(2);
    const released = Date.parse(v.closing?.startedAt ?? v.endedAt!);
    expect(released).toBeGreaterThanOrEqual(Date.parse(v.stayStart!) + 7 * DAY);
  }
  // The late pair took the new plan's day 5 and day 6 samples before release.
  for (const caseNo of late) {
    const v = await view(caseNo);
    const days = v.samples.filter((x) => x.result === 'negative').map((x) => x.day);
    expect(days).toEqual(expect.arrayContaining([5, 6]));
  }

  // A directive over cases that have all ended counts them as skipped.
  const after = await request(h.app)
    .post('/api/v1/directives/preview')
    .set(sup())
    .send({ district: 'D1', policyVersion: 1, filter: { phases: ['OBSERVATION'] } });
  expect(after.status).toBe(200);
  expect((after.body.cases as { caseNo: string }[]).some((c) => all.includes(c.caseNo))).toBe(false);
}, 180_000);

test('home monitoring through the API: released home, the street checks in, a fever at home starts a new transfer', async () => {
  // The district's policy gets eight home days (a new version: new transfers take it).
  const current = (await request(h.app).get('/api/v1/districts/D1/policies').set(sup())).body.items[0];
  const { version: _v, ...doc } = current.policy as Record<string, unknown>;
  const created = await request(h.app)
    .post('/api/v1/districts/D1/policies')
    .set(sup())
    .send({
      note: 'home days',
      policy: {
        ...doc,
        name: 'with-home',
        stayDays: 3,
        homeMonitoringDays: 8,
        sampling: { ...(doc.sampling as object), days: [1, 2] },
      },
    });
  expect(created.body.errors ?? []).toEqual([]);
  expect(created.status).toBe(201);

  // The rooms the earlier stays left are cleaned (the hotel's part, not this test's).
  await h.db.update(rooms).set({ state: 'free', caseNo: null }).where(eq(rooms.state, 'awaiting_disinfection'));
  const [calm, hot] = await admit(2);
  expect((await view(calm!)).policy.name).toBe('with-home');
  const f = field([calm!, hot!]);
  for (const caseNo of [calm!, hot!])
    await waitFor(
      () => view(caseNo),
      (v) => v.phase === 'HOME_MONITORING',
      `home monitoring of ${caseNo}`,
      60_000,
    );
  await f.stop();

  const community = h.auth('community');
  // Another street's community worker may not check in someone of this street.
  const other = await request(h.app)
    .post(`/api/v1/cases/${calm}/home-check-ins`)
    .set(h.auth('communityOther'))
    .send({ temperatureC: 36.5 });
  expect(other.status).toBe(403);
  // A check-in without a temperature is refused, field by field, and changes nothing.
  const bad = await request(h.app).post(`/api/v1/cases/${calm}/home-check-ins`).set(community).send({ symptoms: [] });
  expect(bad.status).toBe(400);
  expect(bad.body.errors).toEqual([expect.objectContaining({ path: 'temperatureC' })]);

  const ok = await request(h.app)
    .post(`/api/v1/cases/${calm}/home-check-ins`)
    .set(community)
    .set('Idempotency-Key', 'home-calm-1')
    .send({ temperatureC: 36.4, symptoms: [] });
  expect(ok.status).toBe(200);
  expect(ok.body.result).toMatchObject({ fever: false, day: expect.any(Number), duplicate: false });
  // The tablet retries: the same answer, one check-in.
  const again = await request(h.app)
    .post(`/api/v1/cases/${calm}/home-check-ins`)
    .set(community)
    .set('Idempotency-Key', 'home-calm-1')
    .send({ temperatureC: 36.4, symptoms: [] });
  expect(again.body.result).toEqual(ok.body.result);

  const fever = await request(h.app)
    .post(`/api/v1/cases/${hot}/home-check-ins`)
    .set(community)
    .send({ temperatureC: 38.6, symptoms: ['cough'] });
  expect(fever.status).toBe(200);
  expect(fever.body.result).toMatchObject({ fever: true, returning: true });
  const back = await waitFor(
    () => view(hot!),
    (v) => !!v.home?.returnCaseNo,
    'the return transfer',
    30_000,
  );
  expect(back.phase).toBe('HOME_MONITORING_DONE');
  expect(back.home).toMatchObject({ outcome: 'returned' });
  expect(back.escalations.find((e) => e.kind === 'home_fever')).toMatchObject({
    status: 'closed',
    closedReason: 'returned_to_quarantine',
  });
  // The person is in a new case, on its way back (by vehicle, from home).
  const returned = await waitFor(
    async () => (await request(h.app).get(`/api/v1/cases/${back.home!.returnCaseNo}`).set(sup())).body,
    (b) => b.state?.phase !== undefined,
    'the new case',
    30_000,
  );
  expect(['REQUESTED', 'ROOM_ASSIGNED', 'IN_TRANSIT']).toContain(returned.state.phase);

  // The calm one's two days pass: HOME_MONITORING_DONE; the missed day escalated to the community.
  const done = await waitFor(
    () => view(calm!),
    (v) => v.phase === 'HOME_MONITORING_DONE',
    'home days done',
    30_000,
  );
  // The check-in counts for the home day it was answered on (day 1, or later on a slow box).
  expect(done.home).toMatchObject({ outcome: 'completed', checkedDays: [ok.body.result.day] });
  expect(done.escalations.filter((e) => e.kind === 'missed_home_check').length).toBe(done.home!.missedDays.length);
  // Released, for the reports and the certificate: the read model counts it as released.
  const row = await waitFor(
    async () => (await h.db.select().from(cases).where(eq(cases.caseNo, calm!)))[0],
    (r) => r?.phase === 'HOME_MONITORING_DONE',
    'the read model',
    10_000,
  );
  // The read model's end is the end of the hotel stay (occupancy and releases count from it).
  expect(row!.endedAt!.getTime()).toBeLessThanOrEqual(Date.parse(done.home!.startedAt));
}, 180_000);
