import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { eq } from 'drizzle-orm';

import { schema } from '../../src/db';
import type { CaseView } from '../../src/domain/case/view';
import {
  applyPolicyUpdate,
  arrivalSignal,
  homeCheckInUpdate,
  cancelUpdate,
  departureSignal,
  healthCheckSignal,
  healthCheckUpdate,
  inspectionResultSignal,
  labResultSignal,
  labResultUpdate,
  readModelBehindSignal,
  resolveEscalationUpdate,
  scopedHealthCheckUpdate,
  viewQuery,
} from '../../src/workflows/messages';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { isUnknownUpdate } from '../../src/api/temporal-ops';
import type { HealthCheckResult } from '../../src/workflows/messages';
import { createActivities, recordCase } from '../../src/activities';
import type { RecordCaseInput } from '../../src/activities/types';
import { createIntegrations } from '../../src/integrations';
import { createLogger } from '../../src/log';
import { createWorker, REPLAY_SINKS, WORKFLOW_BUNDLE } from '../../src/worker';
import { nextCheckSlot } from '../../src/domain/schedule';
import { uniqueQueue } from '../support/temporal';
import {
  PERSON,
  community,
  createHarness,
  hotelStaff,
  lab,
  nurse,
  supervisor,
  testPolicy,
  type Harness,
} from '../support/case-harness';
import { checkoutBuild, REPO_ROOT } from '../support/old-build';

/**
 * The decision-core case workflow against a real dev server: the decision core's rules through the
 * real shell, activities, read model and timers, with second-long days. Cases start
 * caseWorkflowV3 as the API starts them; one test runs the same story on caseWorkflowV2, the type
 * that drains. Their histories are recorded as test/histories/v3-*.
 */
let h: Harness;
type Handle = Awaited<ReturnType<Harness['startV2']>>;
/** Every case these tests start: their histories must replay (see the last test). */
const started: Handle[] = [];

const HISTORIES = path.resolve(__dirname, '..', 'histories');
async function maybeRecord(name: string, handle: Handle, type: 'v6' | 'v5' | 'v4' | 'v3' | 'v2' = 'v3'): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  fs.writeFileSync(
    path.join(HISTORIES, `${type}-${name}.history.pb`),
    temporal.api.history.v1.History.encode(history).finish(),
  );
}

beforeAll(async () => {
  h = await createHarness('wf2');
  // Enough rooms for every case of this file (a released room waits for disinfection).
  await h.addHotel(40, 'HV2');
});
afterAll(async () => {
  await h?.close();
});
afterEach(() => {
  for (const k of Object.keys(h.faults)) delete h.faults[k as keyof typeof h.faults];
});

const now = () => new Date().toISOString();
const view = (handle: Handle) => {
  if (!started.includes(handle)) started.push(handle);
  return handle.query(viewQuery);
};
async function waitView(handle: Handle, pred: (v: CaseView) => boolean, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last: CaseView | undefined;
  while (Date.now() < deadline) {
    last = await view(handle);
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last ${JSON.stringify(last).slice(0, 3000)}`);
}

async function arrive(handle: Handle) {
  await waitView(handle, (v) => v.phase === 'IN_TRANSIT', 'IN_TRANSIT');
  await handle.signal(arrivalSignal, { at: now(), by: hotelStaff });
  return waitView(handle, (v) => v.phase === 'OBSERVATION' || v.phase === 'RELEASE_PENDING', 'observation');
}

/** Answers every ordered sample from the lab it was ordered from. */
async function answerOrdered(handle: Handle, result: 'negative' | 'positive') {
  const v = await view(handle);
  for (const x of v.samples.filter((x) => x.status === 'ordered')) {
    await handle.signal(labResultSignal, { sampleId: x.sampleId, result, labId: x.labId!, reportedAt: now(), by: lab });
  }
}

async function passInspection(handle: Handle) {
  const v = await waitView(handle, (v) => v.inspection.status === 'requested', 'inspection requested');
  await handle.signal(inspectionResultSignal, {
    inspectionId: v.inspection.inspectionId,
    singleOccupancy: true,
    at: now(),
    inspector: 'Li',
    by: community,
  });
}

/** Arrival, negatives as the orders go out, a passed inspection: until the case has ended. */
async function happyPath(handle: Handle): Promise<CaseView> {
  await arrive(handle);
  return toRelease(handle);
}

/** An arrived case: negatives as the orders go out, a passed inspection, until it has ended. */
async function toRelease(handle: Handle): Promise<CaseView> {
  const deadline = Date.now() + 30_000;
  let v = await view(handle);
  let inspected = false;
  while (v.phase !== 'RELEASED' && Date.now() < deadline) {
    await answerOrdered(handle, 'negative');
    if (!inspected && v.inspection.status === 'requested') {
      await passInspection(handle);
      inspected = true;
    }
    await new Promise((r) => setTimeout(r, 150));
    v = await view(handle);
  }
  return waitView(handle, (x) => !!x.endedAt, 'ended');
}

test('happy path: released on two negatives of samples really taken, read model and rooms agree', async () => {
  const handle = await h.startV2();
  const v = await happyPath(handle);
  expect(v.phase).toBe('RELEASED');
  const counted = v.samples.filter((x) => x.status === 'resulted' && x.result === 'negative');
  expect(counted.length).toBeGreaterThanOrEqual(2);
  for (const x of counted) expect(x.takenAt).toBeDefined();
  expect(v.escalations.filter((e) => e.status === 'open')).toEqual([]);
  expect(v.closing?.unfinished).toEqual([]);
  const room = await h.room(v.room!.roomId);
  expect(room.state).toBe('awaiting_disinfection');
  const rows = await h.db.db.select().from(schema.samples).where(eq(schema.samples.caseNo, v.caseNo));
  expect(rows.filter((r) => r.status === 'resulted').length).toBe(counted.length);
  await waitFor(async () => (await caseRowIn(h, v.caseNo))?.phase === 'RELEASED');
  // The read model is written by the recordCase activity beside the loop, never by a local
  // activity in the task (NO_LOCAL_RECORDS_PATCH, asked once).
  const events = (await handle.fetchHistory()).events ?? [];
  expect(recordTasksOf(events).length).toBeGreaterThanOrEqual(3);
  expect(localActivityMarkersOf(events)).toHaveLength(0);
  expect(patchesOf(events)).toEqual(['no-local-records']);
  // (v3-local-records-released is the same story written in the task, before the patch: replayed.)
  await maybeRecord('happy-path-released', handle);
});

test('a case that answers a stream of queries while it works: no local activity, and its history replays', async () => {
  // What broke the in-task write (src/workflows/case-v2.ts, NO_LOCAL_RECORDS_PATCH): a query answered
  // while a local activity was in flight. A supervisor's screen, the Temporal UI's stack trace or
  // these tests' own polling all do that. The replay is checked by the last test.
  const handle = await h.startV2();
  let stop = false;
  const storm = (async () => {
    let answered = 0;
    while (!stop) {
      await view(handle);
      answered++;
    }
    return answered;
  })();
  let v: CaseView;
  try {
    v = await happyPath(handle);
  } finally {
    stop = true;
  }
  expect(await storm).toBeGreaterThanOrEqual(20);
  expect(v.phase).toBe('RELEASED');
  const events = (await handle.fetchHistory()).events ?? [];
  expect(localActivityMarkersOf(events)).toHaveLength(0);
  expect(recordTasksOf(events).length).toBeGreaterThanOrEqual(3);
  const rowOf = () => caseRowIn(h, v.caseNo);
  await waitFor(async () => (await rowOf())?.stateVersion === v.version);
  expect((await rowOf())?.phase).toBe('RELEASED');
});

test('a case that began writing the read model in the task goes on by activity after an upgrade; the history replays', async () => {
  // The workflow code of the last build that wrote in the task (db5e39a), from git, on this
  // node_modules: its worker starts the case; this build's takes over, as in a deploy.
  const old = checkoutBuild('db5e39a', fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-old-build-')), ['src']);
  const rebase = (file: string) => path.join(old, path.relative(REPO_ROOT, file));
  const u = await createHarness(
    'wf2up',
    {},
    {
      workflows: {
        workflowsPath: rebase(WORKFLOW_BUNDLE.workflowsPath),
        bundlerOptions: { preloadModules: WORKFLOW_BUNDLE.bundlerOptions.preloadModules.map(rebase) },
      },
    },
  );
  try {
    await u.addHotel(2, 'HUP');
    const handle = await u.startV2();
    const v0 = await arrive(handle);
    await handle.executeUpdate(healthCheckUpdate, {
      args: [{ checkId: 'chk-old-build', takenAt: now(), temperatureC: 36.6, symptoms: [], by: nurse, key: 'old-1' }],
    });
    const before = (await handle.fetchHistory()).events ?? [];
    expect(localActivityMarkersOf(before).length).toBeGreaterThanOrEqual(2);
    expect(patchesOf(before)).toEqual([]);

    await u.swapWorker();
    const v = await toRelease(handle);
    expect(v.phase).toBe('RELEASED');
    expect(v.checks.map((c) => c.checkId)).toContain('chk-old-build');
    const events = (await handle.fetchHistory()).events ?? [];
    expect(patchesOf(events)).toEqual(['no-local-records']);
    // Every in-task write came before the marker, every write since by activity.
    const marker = events.findIndex((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
    const lastLocal = Math.max(
      ...events.map((e, k) => (e.markerRecordedEventAttributes?.markerName === 'core_local_activity' ? k : -1)),
    );
    expect(lastLocal).toBeLessThan(marker);
    expect(recordTasksOf(events.slice(marker)).length).toBeGreaterThanOrEqual(1);
    const rowOf = () => caseRowIn(u, v0.caseNo);
    await waitFor(async () => (await rowOf())?.stateVersion === v.version);
    expect((await rowOf())?.phase).toBe('RELEASED');
    await maybeRecord('upgrade-to-no-local-records', handle);
    // Replayed here, while its harness is open (the last test replays the cases of `h` only).
    started.splice(started.indexOf(handle), 1);
    await Worker.runReplayHistory(
      { ...WORKFLOW_BUNDLE, sinks: REPLAY_SINKS, dataConverter: { payloadCodecs: [u.codec] }, replayName: 'upgrade' },
      await handle.fetchHistory(),
    );
  } finally {
    await u.close();
    fs.rmSync(old, { recursive: true, force: true });
  }
});

test('v3 and the v2 that drains tell the same story the same way; v3 leaves one patch marker and fewer timer events', async () => {
  const [v3, v2] = await Promise.all([h.startV2(), h.startV2({ workflowType: 'caseWorkflowV2' })]);
  const [a, b] = await Promise.all([happyPath(v3), happyPath(v2)]);
  const story = (v: CaseView) => ({
    phase: v.phase,
    results: v.samples.map((x) => `${x.type}:${x.status}:${x.result ?? ''}`),
    escalations: v.escalations.map((e) => `${e.kind}:${e.status}`),
    inspection: v.inspection.status,
    unfinished: v.closing?.unfinished,
  });
  expect(story(a)).toEqual(story(b));
  expect(a.phase).toBe('RELEASED');

  const count = (events: NonNullable<Awaited<ReturnType<Handle['fetchHistory']>>['events']>) => ({
    patchMarkers: events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch').length,
    changeVersions: events.filter((e) =>
      Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).includes(
        'TemporalChangeVersion',
      ),
    ).length,
    timersCancelled: events.filter((e) => e.timerCanceledEventAttributes).length,
    events: events.length,
  });
  const [e3, e2] = await Promise.all([v3.fetchHistory(), v2.fetchHistory()]);
  const c3 = count(e3.events ?? []);
  const c2 = count(e2.events ?? []);
  // v2 asks for its three rules and whether to write in the task; v3 only the last.
  expect(patchesOf(e2.events ?? [])).toEqual([
    'room-waiting-list',
    'missed-check-fold',
    'v2-local-records',
    'no-local-records',
  ]);
  expect(patchesOf(e3.events ?? [])).toEqual(['no-local-records']);
  expect(c2.patchMarkers).toBe(4);
  expect(c3.patchMarkers).toBe(1);
  expect(c3.changeVersions).toBeLessThan(c2.changeVersions);
  // v2 cancels its wake-up timer on every message and every task's outcome; v3 only when the next
  // wake-up moves.
  expect(c3.timersCancelled).toBeLessThan(c2.timersCancelled);
  expect(c3.events).toBeLessThan(c2.events);
  // v2 after NO_LOCAL_RECORDS_PATCH (v2-local-records-released is the same story before it).
  await maybeRecord('no-local-records-released', v2, 'v2');
});

test('a read-model write that Postgres refuses: the case goes on, the activity retries it, nothing is lost', async () => {
  const handle = await h.startV2();
  const v0 = await arrive(handle);
  const rowOf = () => caseRowIn(h, v0.caseNo);
  await waitFor(async () => (await rowOf())?.phase === v0.phase);
  // Postgres refuses the case's writes for a while.
  let refused = 0;
  h.faults.recordCase = () => {
    refused++;
    return true;
  };
  const reply = await handle.executeUpdate(healthCheckUpdate, {
    args: [{ checkId: 'chk-while-down', takenAt: now(), temperatureC: 36.7, symptoms: [], by: nurse, key: 'down-1' }],
  });
  expect(reply).toBeDefined();
  await waitFor(async () => refused >= 2);
  const checksOf = () =>
    h.db.db
      .select()
      .from(schema.healthChecks)
      .where(eq(schema.healthChecks.caseNo, v0.caseNo))
      .then((rows) => rows.map((r) => r.id));
  expect(await checksOf()).not.toContain('chk-while-down');
  // The case answers meanwhile.
  expect((await view(handle)).checks.map((c) => c.checkId)).toContain('chk-while-down');
  // Postgres back: the activity path (retrying every few seconds) writes the kept batch.
  delete h.faults.recordCase;
  await waitFor(async () => (await checksOf()).includes('chk-while-down'), 20_000);
  const live = await view(handle);
  await waitFor(async () => (await rowOf())?.stateVersion === live.version, 20_000);
  const events = (await handle.fetchHistory()).events ?? [];
  expect(localActivityMarkersOf(events)).toHaveLength(0);
  expect(recordTasksOf(events).length).toBeGreaterThanOrEqual(2);
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  await waitView(handle, (x) => !!x.endedAt, 'ended');
  await maybeRecord('records-refused', handle);
});

test('a result for a planned, never-ordered sample is refused and counts for nothing', async () => {
  const handle = await h.startV2({
    policy: testPolicy({ stayDays: 4, sampling: { days: [1, 3], type: 'PCR', time: '00:00' } }),
  });
  const v0 = await arrive(handle);
  // The day-3 sample: planned, days away from being ordered (the lab typed its id for another).
  const planned = v0.samples.filter((x) => x.status === 'planned' && Date.parse(x.dueAt) > Date.now() + 1000).pop()!;
  expect(planned).toBeDefined();
  await handle.signal(labResultSignal, {
    sampleId: planned.sampleId,
    result: 'negative',
    labId: 'LAB-SIM',
    reportedAt: now(),
    by: lab,
  });
  const v = await waitView(handle, (x) => x.refused.some((r) => r.sampleId === planned.sampleId), 'refusal recorded');
  const s = v.samples.find((x) => x.sampleId === planned.sampleId)!;
  expect(s.results).toEqual([]);
  expect(s.status === 'planned' || s.status === 'ordered').toBe(true);
  expect(v.refused.find((r) => r.sampleId === planned.sampleId)?.reason).toBe('sample was never ordered');
  expect(v.escalations.some((e) => e.kind === 'unexpected_result' && e.sampleId === planned.sampleId)).toBe(true);
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
});

test('a correction to positive sends the person to hospital; the room stays occupied until the departure', async () => {
  const handle = await h.startV2({ policy: testPolicy({ stayDays: 6 }) });
  await arrive(handle);
  await waitView(handle, (x) => x.samples.some((s) => s.status === 'ordered'), 'a sample ordered');
  await answerOrdered(handle, 'negative');
  let v = await waitView(handle, (x) => x.samples.some((s) => s.status === 'resulted'), 'a result');
  const sample = v.samples.find((x) => x.status === 'resulted')!;
  await handle.signal(labResultSignal, {
    sampleId: sample.sampleId,
    result: 'positive',
    labId: sample.labId!,
    reportedAt: now(),
    by: lab,
  });
  v = await waitView(handle, (x) => x.phase === 'HOSPITAL_TRANSFER' && !!x.closing, 'hospital transfer');
  expect(v.samples.find((x) => x.sampleId === sample.sampleId)!.status).toBe('corrected');
  expect(v.escalations.some((e) => e.kind === 'result_corrected' && e.severity === 'red' && e.status === 'open')).toBe(
    true,
  );
  // The vehicle is dispatched but the person is still in the room: it must not be freed.
  await waitView(handle, (x) => !x.closing!.unfinished.some((t) => t.kind === 'dispatchHospital'), 'dispatched');
  expect((await h.room(v.room!.roomId)).state).toBe('occupied');
  expect((await view(handle)).endedAt).toBeUndefined();
  await handle.signal(departureSignal, { at: now(), by: hotelStaff });
  v = await waitView(handle, (x) => !!x.endedAt, 'ended');
  const room = await h.room(v.room!.roomId);
  expect(room.state).toBe('awaiting_disinfection');
  expect(room.disinfection).toBe('terminal');
  await maybeRecord('correction-hospital-departure', handle);
});

test('a refused hospital dispatch keeps the case visibly unfinished with an open escalation, until the retry succeeds', async () => {
  h.faults.dispatchTransport = (i: { purpose: string }) => i.purpose === 'hospital';
  const handle = await h.startV2({ policy: testPolicy({ stayDays: 6, taskRetry: { initialMs: 800, maxMs: 800 } }) });
  await arrive(handle);
  await waitView(handle, (x) => x.samples.some((s) => s.status === 'ordered'), 'a sample ordered');
  await answerOrdered(handle, 'positive');
  let v = await waitView(
    handle,
    (x) => x.escalations.some((e) => e.kind === 'integration_failure' && e.status === 'open'),
    'integration failure open',
  );
  expect(v.phase).toBe('HOSPITAL_TRANSFER');
  expect(v.endedAt).toBeUndefined();
  expect(v.closing!.unfinished.map((t) => t.kind)).toContain('dispatchHospital');
  // Retries do not open a new escalation each time.
  await new Promise((r) => setTimeout(r, 2500));
  v = await view(handle);
  expect(v.escalations.filter((e) => e.kind === 'integration_failure').length).toBe(1);
  delete h.faults.dispatchTransport;
  v = await waitView(
    handle,
    (x) => x.escalations.some((e) => e.kind === 'integration_failure' && e.closedReason === 'retry_succeeded'),
    'failure closed by the retry',
  );
  await handle.signal(departureSignal, { at: now(), by: hotelStaff });
  v = await waitView(handle, (x) => !!x.endedAt, 'ended');
  expect(v.escalations.find((e) => e.kind === 'positive_result')?.closedReason).toBe('transferred_to_hospital');
});

test('a positive result after the case was cancelled reaches the command centre and the community', async () => {
  const handle = await h.startV2({ policy: testPolicy({ stayDays: 6 }) });
  await arrive(handle);
  const v0 = await waitView(handle, (x) => x.samples.some((s) => s.status === 'ordered'), 'a sample ordered');
  const ordered = v0.samples.find((x) => x.status === 'ordered')!;
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'sent home by directive', by: supervisor }] });
  await waitView(handle, (x) => !!x.endedAt, 'cancelled and ended');
  await handle.signal(labResultSignal, {
    sampleId: ordered.sampleId,
    result: 'positive',
    labId: ordered.labId!,
    reportedAt: now(),
    by: lab,
  });
  const v = await waitView(handle, (x) => x.escalations.some((e) => e.kind === 'late_result'), 'late result escalated');
  const esc = v.escalations.find((e) => e.kind === 'late_result')!;
  expect(esc).toMatchObject({ severity: 'red', level: 'command_centre', status: 'open', sampleId: ordered.sampleId });
  await waitFor(async () => {
    const rows = await h.db.db
      .select()
      .from(schema.activityEffects)
      .where(eq(schema.activityEffects.step, `alert:${esc.id}`));
    return rows.length === 1;
  });
  // Nobody closes it but a person, with a note; then the case may complete.
  await handle.executeUpdate(
    resolveEscalationUpdate as never,
    {
      args: [{ escalationId: esc.id, note: 'street office informed, home isolation tightened', by: supervisor }],
    } as never,
  );
  const after = await waitView(
    handle,
    (x) => x.escalations.find((e) => e.id === esc.id)!.status === 'closed',
    'resolved',
  );
  expect(after.escalations.find((e) => e.id === esc.id)).toMatchObject({
    closedReason: 'resolved',
    closedBy: supervisor,
  });
});

test('a health check queued (no worker answered) and its update both landing are one check and one fever escalation', async () => {
  const handle = await h.startV2({ policy: testPolicy({ stayDays: 6 }) });
  await arrive(handle);
  const check = { checkId: 'chk-k1', takenAt: now(), temperatureC: 38.9, symptoms: [], by: nurse, key: 'k1' };
  // The queued copy lands first (the API gave up waiting), then the update it gave up on.
  await handle.signal(healthCheckSignal, check);
  const answer = await handle.executeUpdate(healthCheckUpdate, { args: [check] });
  expect(answer).toMatchObject({ checkId: 'chk-k1', fever: true });
  // And the other order, for a second check.
  const second = { ...check, checkId: 'chk-k2', key: 'k2', temperatureC: 36.5 };
  await handle.executeUpdate(healthCheckUpdate, { args: [second] });
  await handle.signal(healthCheckSignal, second);
  // A queued check the case refuses (taken before the arrival) is on its record.
  const early = { ...check, checkId: 'chk-k3', key: 'k3', takenAt: new Date(Date.now() - 86_400_000).toISOString() };
  await handle.signal(healthCheckSignal, early);
  const v = await waitView(handle, (x) => x.refused.some((r) => r.kind === 'health_check'), 'the refusal recorded');
  expect(v.checks.map((c) => c.checkId).sort()).toEqual(['chk-k1', 'chk-k2']);
  expect(v.escalations.filter((e) => e.kind === 'fever')).toHaveLength(1);
  expect(v.refused.filter((r) => r.kind === 'health_check')).toHaveLength(1);
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  await maybeRecord('queued-health-check', handle);
});

test('waiting list: no room means a place on the list; a freed room wakes exactly the first case; one that ends while waiting leaves it', async () => {
  // A district with one room, and a recheck far beyond the test: only the wake-up can hand a room over.
  await h.hotel.addHotel({ id: 'HQUEUE', name: 'Queue', district: 'Queue', rooms: [{ roomNo: '1', floor: 1 }] });
  const policy = testPolicy({ roomQueue: { recheckMs: 10 * 60_000, colourFirst: true } });
  const at = (min: number) => new Date(Date.parse('2022-04-01T08:00:00Z') + min * 60_000).toISOString();
  const holder = await h.startV2({ district: 'Queue', policy, requestedAt: at(0) });
  const first = await waitView(holder, (v) => !!v.room, 'the only room');
  const green = await h.startV2({ district: 'Queue', policy, requestedAt: at(1) });
  await waitView(green, (v) => v.escalations.some((e) => e.kind === 'no_room'), 'green on the list');
  // A red case asked later but goes first (colourFirst); a third gives up while waiting.
  const red = await h.startV2({
    district: 'Queue',
    policy,
    requestedAt: at(2),
    person: { ...PERSON, chronicConditions: ['heart_disease'] },
  });
  const leaver = await h.startV2({ district: 'Queue', policy, requestedAt: at(3) });
  await waitView(leaver, (v) => v.escalations.some((e) => e.kind === 'no_room'), 'leaver on the list');
  const redView = await waitView(red, (v) => v.escalations.some((e) => e.kind === 'no_room'), 'red on the list');
  expect(redView.colour).toBe('red');
  expect((await h.hotel.queue('Queue')).entries.map((e) => e.caseNo)).toEqual([
    redView.caseNo,
    (await view(green)).caseNo,
    (await view(leaver)).caseNo,
  ]);
  await leaver.executeUpdate(cancelUpdate, { args: [{ reason: 'stays home after all', by: supervisor }] });
  const left = await waitView(leaver, (v) => !!v.endedAt, 'the leaver ended');
  expect(await h.hotel.queuePlace(left.caseNo)).toBeNull();

  // The holder is cancelled before arriving: its room is released and handed to the red case,
  // which is woken and takes it at once (its recheck is ten minutes away).
  const freedAt = Date.now();
  await holder.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  const moved = await waitView(red, (v) => v.room?.roomId === first.room!.roomId, 'red got the room', 15_000);
  expect(Date.now() - freedAt).toBeLessThan(15_000);
  expect(moved.escalations.find((e) => e.kind === 'no_room')).toMatchObject({
    status: 'closed',
    closedReason: 'room_assigned',
  });
  expect(moved.history.some((x) => x.kind === 'room_queued')).toBe(true);
  expect((await view(green)).room).toBeUndefined();
  expect((await h.hotel.queue('Queue')).entries.map((e) => [e.caseNo, e.place])).toEqual([
    [(await view(green)).caseNo, 1],
  ]);

  // The red case is cancelled too: the room goes to the green case.
  await red.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  await waitView(green, (v) => v.room?.roomId === first.room!.roomId, 'green got the room', 15_000);
  await green.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  for (const c of [holder, red, green]) await c.result();
  expect((await h.hotel.queue('Queue')).length).toBe(0);
  expect((await h.room(first.room!.roomId)).state).toBe('free');
  await maybeRecord('room-waiting-list', red);
});

test('a directive reaches a running case: the new stay, recorded once, a retry answered the same', async () => {
  const handle = await h.startV2({
    policy: testPolicy({ stayDays: 8, sampling: { days: [1, 6, 7], type: 'PCR', time: '00:00' } }),
  });
  await arrive(handle);
  const before = await waitView(handle, (x) => x.phase === 'OBSERVATION', 'observation');
  const shorter = {
    ...testPolicy({ stayDays: 3, sampling: { days: [1, 2], type: 'PCR', time: '00:00' } }),
    name: 'shorter',
    version: 2,
  };
  const input = {
    directiveId: 'DIR-TEST',
    issuedAt: now(),
    policy: shorter,
    reason: 'new protocol',
    by: supervisor,
  };
  const first = await handle.executeUpdate(applyPolicyUpdate, { args: [input] });
  expect(first).toMatchObject({ applied: true, before: { policyVersion: 1 }, after: { policyVersion: 2 } });
  // The fan-out retried: the same answer, nothing applied twice.
  expect(await handle.executeUpdate(applyPolicyUpdate, { args: [input] })).toEqual(first);
  const after = await view(handle);
  expect(after.policy).toEqual({ name: 'shorter', version: 2 });
  expect(Date.parse(after.releaseDue!) - Date.parse(after.stayStart!)).toBe(
    ((Date.parse(before.releaseDue!) - Date.parse(before.stayStart!)) * 3) / 8,
  );
  // Released under the new rules, with its negatives.
  const deadline = Date.now() + 30_000;
  let v = after;
  let inspected = false;
  while (v.phase !== 'RELEASED' && Date.now() < deadline) {
    await answerOrdered(handle, 'negative');
    if (!inspected && v.inspection.status === 'requested') {
      await passInspection(handle);
      inspected = true;
    }
    await new Promise((r) => setTimeout(r, 150));
    v = await view(handle);
  }
  v = await waitView(handle, (x) => !!x.endedAt, 'ended');
  expect(v.phase).toBe('RELEASED');
  expect(v.samples.filter((x) => x.result === 'negative').length).toBeGreaterThanOrEqual(2);
  await waitFor(async () =>
    (await h.db.db.select().from(schema.caseEvents).where(eq(schema.caseEvents.caseNo, v.caseNo))).some(
      (r) => r.kind === 'case_ended',
    ),
  );
  const rows = await h.db.db.select().from(schema.caseEvents).where(eq(schema.caseEvents.caseNo, v.caseNo));
  expect(rows.filter((r) => r.kind === 'policy_applied')).toHaveLength(1);
  await maybeRecord('directive-applied-released', handle);
});

test('home monitoring: released home, a check-in, a fever at home starts a return case; the history replays', async () => {
  const handle = await h.startV2({ policy: testPolicy({ homeMonitoringDays: 20 }) });
  await arrive(handle);
  const deadline = Date.now() + 30_000;
  let v = await view(handle);
  let inspected = false;
  while (v.phase !== 'HOME_MONITORING' && Date.now() < deadline) {
    await answerOrdered(handle, 'negative');
    if (!inspected && v.inspection.status === 'requested') {
      await passInspection(handle);
      inspected = true;
    }
    await new Promise((r) => setTimeout(r, 150));
    v = await view(handle);
  }
  expect(v.phase).toBe('HOME_MONITORING');
  const calm = await handle.executeUpdate(homeCheckInUpdate, {
    args: [{ checkInId: 'h-1', takenAt: now(), temperatureC: 36.4, symptoms: [], by: community, key: 'h-1' }],
  });
  expect(calm).toMatchObject({ fever: false, duplicate: false });
  const hot = await handle.executeUpdate(homeCheckInUpdate, {
    args: [{ checkInId: 'h-2', takenAt: now(), temperatureC: 38.9, symptoms: ['cough'], by: community, key: 'h-2' }],
  });
  expect(hot).toMatchObject({ fever: true, returning: true });
  const done = await waitView(handle, (x) => !!x.endedAt, 'ended after the return transfer');
  expect(done.phase).toBe('HOME_MONITORING_DONE');
  expect(done.home?.returnCaseNo).toMatch(/^QC/);
  const back = h.client.workflow.getHandle(`case-${done.home!.returnCaseNo}`);
  expect((await back.describe()).status.name).toBe('RUNNING');
  await back.terminate('test over');
  await maybeRecord('home-monitoring-fever-returned', handle);
});

test('missed checks fold: nobody checks a person for days, one escalation climbs once and counts the slots; a check closes it', async () => {
  const policy = testPolicy({ stayDays: 8, checkTimes: ['08:00', '16:00'] });
  // Every notice the case sends (the notify activity), counted as the worker runs it.
  const notices: { id: string; level: string; repeat?: number }[] = [];
  h.faults.notifyEscalation = (input) => {
    const { escalation, repeat } = input as {
      escalation: { id: string; level: string; kind: string };
      repeat?: number;
    };
    if (escalation.kind === 'missed_check') notices.push({ id: escalation.id, level: escalation.level, repeat });
    return false;
  };
  const handle = await h.startV2({ policy });
  await arrive(handle);
  // Two policy days nobody comes by: four slots or more.
  let v = await waitView(
    handle,
    (x) =>
      x.escalations.some(
        (e) => e.kind === 'missed_check' && Number(/^(\d+) health checks missed since /.exec(e.reason)?.[1]) >= 4,
      ),
    'four slots missed',
    20_000,
  );
  const missed = v.escalations.filter((e) => e.kind === 'missed_check');
  expect(missed).toHaveLength(1);
  expect(missed[0]).toMatchObject({ status: 'open', level: 'point_leader' });
  // The three steps (reminder, nurse, point leader) were noticed at most once each (steps that
  // passed within one wake-up are one notice at the level reached: at this day's length they are
  // milliseconds apart); after that, one reminder per further policy day of slots missed (two
  // check times here), numbered, never one per slot. (Each notice carries the escalation as it is
  // when sent, so the step notices may all say point_leader.)
  await waitFor(async () => notices.filter((n) => n.repeat).length >= 1);
  const steps = notices.filter((n) => !n.repeat);
  expect(steps.length).toBeGreaterThanOrEqual(1);
  expect(steps.length).toBeLessThanOrEqual(3);
  expect(steps[steps.length - 1]!.level).toBe('point_leader');
  // (Notices run side by side: they reach the hook in any order.)
  const repeats = notices.flatMap((n) => (n.repeat ? [n.repeat] : [])).sort((a, b) => a - b);
  expect(repeats).toEqual(repeats.map((_, i) => i + 1));
  expect(new Set(notices.map((n) => n.id))).toEqual(new Set([missed[0]!.id]));
  // The read model: one escalation row, and a check_missed record per folded slot.
  await waitFor(async () => {
    const rows = await h.db.db.select().from(schema.caseEvents).where(eq(schema.caseEvents.caseNo, v.caseNo));
    return rows.filter((r) => r.kind === 'check_missed').length >= 3;
  });
  const escRows = await h.db.db.select().from(schema.escalations).where(eq(schema.escalations.caseNo, v.caseNo));
  expect(escRows.filter((r) => r.kind === 'missed_check')).toHaveLength(1);
  // The nurse comes at last: the check closes it as check_received.
  await handle.executeUpdate(healthCheckUpdate, {
    args: [{ checkId: 'chk-late', takenAt: now(), temperatureC: 36.6, symptoms: [], by: nurse, key: 'late' }],
  });
  v = await view(handle);
  expect(v.escalations.find((e) => e.id === missed[0]!.id)).toMatchObject({
    status: 'closed',
    closedReason: 'check_received',
  });
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  await waitView(handle, (x) => !!x.endedAt, 'ended');
  await maybeRecord('missed-checks-folded', handle);
});

test('missed checks fold across continue-as-new: the new run carries the rule and the open chain', async () => {
  const policy = testPolicy({ stayDays: 30, checkTimes: ['08:00', '16:00'] });
  const handle = await h.startV2({ policy, options: { continueAsNewAtHistoryLength: 60 } });
  const firstRun = (await handle.describe()).runId;
  await arrive(handle);
  // Nobody checks the person; the history grows past 60 events and the case continues as new.
  await waitFor(async () => (await handle.describe()).runId !== firstRun, 30_000);
  const continuedAt = await view(handle);
  const countOf = (v: CaseView) =>
    Math.max(
      0,
      ...v.escalations
        .filter((e) => e.kind === 'missed_check' && e.status === 'open')
        .map((e) => Number(/^(\d+) health checks/.exec(e.reason)?.[1] ?? 1)),
    );
  // In the new run further slots still fold into the one open escalation (they would open one
  // each if the rule were lost, and an old case's would fold if it were asked of patched again).
  const v = await waitView(handle, (x) => countOf(x) >= countOf(continuedAt) + 3, 'more slots folded', 20_000);
  expect(v.escalations.filter((e) => e.kind === 'missed_check' && e.status === 'open')).toHaveLength(1);
  const latest = await handle.describe();
  expect(latest.runId).not.toBe(firstRun);
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  await waitView(handle, (x) => !!x.endedAt, 'ended');
  // The continued run's history starts from the carried input: replaying it runs that branch.
  if (process.env.RECORD_HISTORIES === '1') {
    const history = await h.client.workflow.getHandle(handle.workflowId, latest.runId).fetchHistory();
    fs.writeFileSync(
      path.join(HISTORIES, 'v3-missed-checks-continued.history.pb'),
      temporal.api.history.v1.History.encode(history).finish(),
    );
  }
});

test("a health check sent with the read model's version is answered with its write; what is not made is carried, then written", async () => {
  // ANSWER_WRITES_PATCH: the API sends the version of the row it read and makes the write the
  // answer carries (src/api/answer-writes.ts). Here the test is the API, and it drops one write.
  const handle = await h.startV2({ policy: testPolicy({ stayDays: 3 }) });
  const v0 = await arrive(handle);
  const rowOf = () => caseRowIn(h, v0.caseNo);
  await waitFor(async () => (await rowOf())?.stateVersion === (await view(handle)).version);
  const checksOf = async () =>
    (await h.db.db.select().from(schema.healthChecks).where(eq(schema.healthChecks.caseNo, v0.caseNo)))
      .map((r) => r.id)
      .sort();
  const send = async (checkId: string) => {
    const version = (await rowOf())!.stateVersion;
    return handle.executeUpdate(healthCheckUpdate, {
      args: [
        { checkId, takenAt: now(), temperatureC: 36.6, symptoms: [], by: nurse, key: checkId, readModel: { version } },
      ],
    });
  };
  // No activity write in flight when the check comes (a case hands out no write while one runs:
  // a timer's change right after the arrival made this test flaky).
  await waitFor(() => between(handle));
  const before = recordTasksOf((await handle.fetchHistory()).events ?? []).length;
  // Made: in the read model as soon as the API has written it, and no activity for it.
  const a = await send('chk-a');
  expect(a.readModelWrite?.checks.map((c) => c.checkId)).toEqual(['chk-a']);
  await recordCase(h.db.db, a.readModelWrite!);
  expect(await checksOf()).toEqual(['chk-a']);
  // Dropped (the API died): the next answer carries it again.
  const b = await send('chk-b');
  expect(b.readModelWrite).toBeDefined();
  const c = await send('chk-c');
  expect(c.readModelWrite?.checks.map((x) => x.checkId).sort()).toEqual(['chk-b', 'chk-c']);
  await recordCase(h.db.db, c.readModelWrite!);
  // The late write of the dropped answer changes nothing (older than the row).
  await recordCase(h.db.db, b.readModelWrite!);
  expect(await checksOf()).toEqual(['chk-a', 'chk-b', 'chk-c']);
  expect((await rowOf())!.stateVersion).toBe((await view(handle)).version);
  expect(recordTasksOf((await handle.fetchHistory()).events ?? []).length).toBe(before);
  // One the API could not make, handed back: the case writes it by activity.
  const d = await send('chk-d');
  expect(d.readModelWrite).toBeDefined();
  await handle.signal(readModelBehindSignal, { version: d.readModelWrite!.row.stateVersion! });
  await waitFor(async () => (await checksOf()).includes('chk-d'));
  // Dropped, and no check follows: the case's next write (the lab's results, its release) carries it.
  expect((await send('chk-e')).readModelWrite).toBeDefined();
  const v = await toRelease(handle);
  expect(v.phase).toBe('RELEASED');
  await waitFor(async () => (await rowOf())?.stateVersion === v.version);
  expect(await checksOf()).toEqual(['chk-a', 'chk-b', 'chk-c', 'chk-d', 'chk-e']);
  const events = (await handle.fetchHistory()).events ?? [];
  expect(patchesOf(events)).toEqual(['no-local-records', 'answer-writes']);
  await maybeRecord('answer-writes-released', handle);
});

test('v4, as new cases run it: health checks answered with their write, no patch marker and no TemporalChangeVersion upsert', async () => {
  const handle = await h.startV2({ workflowType: 'caseWorkflowV4' });
  const v0 = await arrive(handle);
  const rowOf = () => caseRowIn(h, v0.caseNo);
  // A case hands out no write while its own activity write runs (a timer's change can start one
  // between the test's look and its check: CI saw it once). So: wait until the case is between
  // tasks with its read model current, send, and if a timer still came in between, send another.
  let a: HealthCheckResult | undefined;
  let before = 0;
  let sent = '';
  for (let attempt = 0; attempt < 3 && !a?.readModelWrite; attempt++) {
    await waitFor(
      async () => (await between(handle)) && (await rowOf())?.stateVersion === (await view(handle)).version,
    );
    before = recordTasksOf((await handle.fetchHistory()).events ?? []).length;
    const version = (await rowOf())!.stateVersion;
    sent = `v4-${attempt}`;
    a = await handle.executeUpdate(healthCheckUpdate, {
      args: [
        {
          checkId: sent,
          takenAt: now(),
          temperatureC: 36.5,
          symptoms: [],
          by: nurse,
          key: sent,
          readModel: { version },
        },
      ],
    });
  }
  expect(a?.readModelWrite?.checks.map((c) => c.checkId)).toContain(sent);
  await recordCase(h.db.db, a!.readModelWrite!);
  expect((await rowOf())!.stateVersion).toBe((await view(handle)).version);
  expect(recordTasksOf((await handle.fetchHistory()).events ?? []).length).toBe(before);
  const v = await toRelease(handle);
  expect(v.phase).toBe('RELEASED');
  await waitFor(async () => (await rowOf())?.stateVersion === v.version);
  const events = (await handle.fetchHistory()).events ?? [];
  expect(patchesOf(events)).toEqual([]);
  expect(localActivityMarkersOf(events)).toHaveLength(0);
  expect(
    events.filter(
      (e) => e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.TemporalChangeVersion,
    ),
  ).toHaveLength(0);
  await maybeRecord('answer-writes-released', handle, 'v4');
});

test("v4: a sample's first result answered with its write (recordLabResult), its queued copy counted once", async () => {
  const handle = await h.startV2({ workflowType: 'caseWorkflowV4' });
  const v0 = await arrive(handle);
  const rowOf = () => caseRowIn(h, v0.caseNo);
  const ordered = await waitView(handle, (v) => v.samples.some((x) => x.status === 'ordered'), 'a sample ordered');
  const x = ordered.samples.find((x) => x.status === 'ordered')!;
  await waitFor(async () => (await rowOf())?.stateVersion === (await view(handle)).version);
  const before = recordTasksOf((await handle.fetchHistory()).events ?? []).length;
  const input = {
    sampleId: x.sampleId,
    result: 'negative' as const,
    labId: x.labId!,
    reportedAt: now(),
    by: lab,
    key: 'lab-first-1',
    first: true,
  };
  const a = await handle.executeUpdate(labResultUpdate, {
    args: [{ ...input, readModel: { version: (await rowOf())!.stateVersion } }],
  });
  expect(a).toMatchObject({ applied: true, status: 'applied' });
  expect(a.readModelWrite?.samples.map((s) => [s.sampleId, s.status])).toEqual([[x.sampleId, 'resulted']]);
  await recordCase(h.db.db, a.readModelWrite!);
  expect((await rowOf())!.stateVersion).toBe((await view(handle)).version);
  // Its queued copy (the API stopped waiting for the answer): the same result, once; and since
  // nobody may have made the answer's write, the case makes it by activity. (Whether the answer
  // itself scheduled none is asserted through the API, test/api/lab-answered.test.ts: here the
  // case's own timers may write meanwhile.)
  await handle.signal(labResultSignal, input);
  const v1 = await view(handle);
  expect(v1.samples.find((s) => s.sampleId === x.sampleId)!.results).toHaveLength(1);
  await waitFor(async () => recordTasksOf((await handle.fetchHistory()).events ?? []).length > before);
  const v = await toRelease(handle);
  expect(v.phase).toBe('RELEASED');
  await maybeRecord('lab-answered-released', handle, 'v4');
});

/** A case's health checks in the read model, by id. */
const checksIn = async (caseNo: string) =>
  (await h.db.db.select().from(schema.healthChecks).where(eq(schema.healthChecks.caseNo, caseNo)))
    .map((r) => r.id)
    .sort();
/** No activity and no workflow task pending: the case is between tasks. */
const between = async (handle: Handle) => {
  const d = await handle.describe();
  return (d.raw.pendingActivities ?? []).length === 0 && !d.raw.pendingWorkflowTask;
};
const check = (checkId: string, version?: number) => ({
  checkId,
  takenAt: now(),
  temperatureC: 36.6,
  symptoms: [],
  by: nurse,
  key: checkId,
  ...(version !== undefined ? { readModel: { version } } : {}),
});

test('v5, as new cases run it: the read model written in the workflow task, there by the answer; no recordCase activity but perhaps the last write', async () => {
  const handle = await h.startV2({ workflowType: 'caseWorkflowV5' });
  const v0 = await arrive(handle);
  const rowOf = () => caseRowIn(h, v0.caseNo);
  // Written by the worker in the task that made the change, before the task completed: a query
  // answered after it finds the row at least as new as the case it reads.
  expect((await rowOf())!.stateVersion).toBeGreaterThanOrEqual(v0.version);
  await waitFor(() => between(handle));
  const version = (await rowOf())!.stateVersion;
  // Sent as the API sends it, with the row's version: a v5 case hands no write to the API.
  const a = await handle.executeUpdate(healthCheckUpdate, { args: [check('v5-a', version)] });
  expect(a.readModelWrite).toBeUndefined();
  // No waiting: in the read model when the answer comes.
  expect(await checksIn(v0.caseNo)).toContain('v5-a');
  expect((await rowOf())!.stateVersion).toBeGreaterThan(version);
  // A queued check (a signal) too, with no activity: in the read model as soon as its task ran.
  await handle.signal(healthCheckSignal, check('v5-queued'));
  await waitFor(async () => (await checksIn(v0.caseNo)).includes('v5-queued'));
  expect(recordTasksOf((await handle.fetchHistory()).events ?? [])).toHaveLength(0);
  const v = await toRelease(handle);
  expect(v.phase).toBe('RELEASED');
  expect((await rowOf())!.stateVersion).toBe(v.version);
  expect((await rowOf())!.phase).toBe('RELEASED');
  const events = (await handle.fetchHistory()).events ?? [];
  // At most the run's last write goes by activity: the task that ends the run makes no write in
  // the task (it could never hear that one failed); a write in an earlier task is known made.
  expect(recordTasksOf(events).length).toBeLessThanOrEqual(1);
  expect(patchesOf(events)).toEqual([]);
  expect(localActivityMarkersOf(events)).toHaveLength(0);
  expect(await behindSignalsOf(events)).toHaveLength(0);
  await maybeRecord('task-writes-released', handle, 'v5');
});

test('v5: a write the worker cannot make is reported to the case before its task completes; the case writes by activity until the database takes it, then in the task again', async () => {
  const handle = await h.startV2({ workflowType: 'caseWorkflowV5', policy: testPolicy({ stayDays: 3 }) });
  const v0 = await arrive(handle);
  const rowOf = () => caseRowIn(h, v0.caseNo);
  await waitFor(() => between(handle));
  // Postgres refuses the case's writes, in the task and by activity alike.
  let refused = 0;
  h.faults.recordCase = () => {
    refused++;
    return true;
  };
  const reply = await handle.executeUpdate(healthCheckUpdate, { args: [check('v5-down')] });
  expect(reply).toMatchObject({ checkId: 'v5-down' });
  expect(await checksIn(v0.caseNo)).not.toContain('v5-down');
  // The report came with the task's fence, and the case went to the activity path.
  const historyOf = async () => (await handle.fetchHistory()).events ?? [];
  await waitFor(async () => recordTasksOf(await historyOf()).length >= 1);
  const behind = await behindSignalsOf(await historyOf());
  expect(behind).toHaveLength(1);
  expect(behind[0]).toMatchObject({ fence: expect.any(Number) as number });
  expect((await view(handle)).checks.map((c) => c.checkId)).toContain('v5-down');
  await waitFor(async () => refused >= 2);
  // Postgres back: the activity's retry writes what was kept.
  delete h.faults.recordCase;
  await waitFor(async () => (await checksIn(v0.caseNo)).includes('v5-down'), 30_000);
  await waitFor(async () => (await between(handle)) && (await rowOf())?.stateVersion === (await view(handle)).version);
  const activityWrites = recordTasksOf(await historyOf()).length;
  // In the task again: the next check is in the read model at its answer, with no activity.
  await handle.executeUpdate(healthCheckUpdate, { args: [check('v5-back')] });
  expect(await checksIn(v0.caseNo)).toContain('v5-back');
  expect(recordTasksOf(await historyOf())).toHaveLength(activityWrites);
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  const end = await waitView(handle, (x) => !!x.endedAt, 'ended');
  await waitFor(async () => (await rowOf())?.stateVersion === end.version);
  await maybeRecord('task-writes-refused', handle, 'v5');
});

test('v5: what a task that never completed wrote of its own (a later version, an escalation, a check, events) is replaced by the first write of a worker that takes the case up afresh', async () => {
  const handle = await h.startV2({ workflowType: 'caseWorkflowV5', policy: testPolicy({ stayDays: 3 }) });
  const v0 = await arrive(handle);
  const rowOf = () => caseRowIn(h, v0.caseNo);
  await waitFor(() => between(handle));
  const live = await view(handle);
  const row = (await rowOf())!;
  expect(row.stateVersion).toBe(live.version);
  // A task after the last one wrote, then never completed (its worker died): a later version, an
  // escalation and a check of its own, and events past the case's last.
  const phantomFence = row.writtenFence! + 1;
  const lastSeq = live.history.at(-1)!.seq;
  await h.db.db
    .update(schema.cases)
    .set({ stateVersion: live.version + 5, writtenFence: phantomFence, openEscalations: 1 })
    .where(eq(schema.cases.caseNo, v0.caseNo));
  await h.db.db.insert(schema.escalations).values({
    id: `${v0.caseNo}-E99`,
    caseNo: v0.caseNo,
    kind: 'missed_check',
    level: 'nurse',
    severity: 'amber',
    reason: 'never happened',
    status: 'open',
    openedAt: new Date(),
  });
  await h.db.db.insert(schema.healthChecks).values({
    id: 'phantom-check',
    caseNo: v0.caseNo,
    takenAt: new Date(),
    recordedBy: 'k-med',
  });
  await h.db.db.insert(schema.caseEvents).values({
    caseNo: v0.caseNo,
    seq: lastSeq + 1,
    actor: 'workflow',
    kind: 'escalation_opened',
    payload: {},
    at: new Date(),
  });
  // The task's retry ran on another worker, which took the case up afresh.
  await h.swapWorker();
  await handle.executeUpdate(healthCheckUpdate, { args: [check('v5-after')] });
  // The case's own timers go on meanwhile: the read model is read between two looks at the case,
  // and must lie between them (nothing of the phantom's, nothing the case does not have).
  const before = await view(handle);
  const repaired = (await rowOf())!;
  const checkRows = await checksIn(v0.caseNo);
  const escalationRows = (
    await h.db.db.select().from(schema.escalations).where(eq(schema.escalations.caseNo, v0.caseNo))
  ).map((e) => e.id);
  const eventRows = (
    await h.db.db
      .select()
      .from(schema.caseEvents)
      .where(eq(schema.caseEvents.caseNo, v0.caseNo))
      .orderBy(schema.caseEvents.seq)
  ).map((e) => `${e.seq}:${e.kind}`);
  const after = await view(handle);
  expect(repaired.stateVersion).toBeGreaterThanOrEqual(before.version);
  expect(repaired.stateVersion).toBeLessThanOrEqual(after.version);
  expect(checkRows).toContain('v5-after');
  expect(checkRows).not.toContain('phantom-check');
  expect(escalationRows).not.toContain(`${v0.caseNo}-E99`);
  for (const id of escalationRows) expect(after.escalations.map((e) => e.id)).toContain(id);
  const events = after.history.map((e) => `${e.seq}:${e.kind}`);
  expect(events.slice(0, eventRows.length)).toEqual(eventRows);
  expect(eventRows.length).toBeGreaterThanOrEqual(before.history.length);
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  await waitView(handle, (x) => !!x.endedAt, 'ended');
});

test('v5: the worker makes the write before Temporal hears the task complete (the SDK awaits the sink), so a slow write holds the answer, never the reverse', async () => {
  // This build relies on @temporalio/worker awaiting a sink's promise before it sends the
  // activation's completion (processSinkCalls): an SDK that stopped doing so fails here.
  const queue = uniqueQueue('wf5-slow');
  const log = createLogger('warn');
  const integrations = createIntegrations(h.config, { db: h.db.db, log });
  const writes: { caseNo: string; version: number; doneAt: number }[] = [];
  const worker = await createWorker({
    connection: h.nativeConnection,
    config: h.config,
    codec: h.codec,
    activities: createActivities({ db: h.db.db, integrations, log }),
    taskQueue: queue,
    taskWrite: async (batch: RecordCaseInput) => {
      await new Promise((r) => setTimeout(r, 400));
      await recordCase(h.db.db, batch);
      writes.push({ caseNo: batch.row.caseNo, version: batch.row.stateVersion ?? 0, doneAt: Date.now() });
    },
  });
  const running = worker.run();
  await h.addHotel(3); // rooms of its own: earlier cases may hold the shared hotel's
  try {
    const handle = await h.startV2({ workflowType: 'caseWorkflowV5', taskQueue: queue });
    started.splice(started.indexOf(handle), 1); // replayed here: its worker is this test's
    const v0 = await arrive(handle);
    await waitFor(() => between(handle));
    const answered = await handle.executeUpdate(healthCheckUpdate, { args: [check('v5-slow')] });
    const answeredAt = Date.now();
    expect(answered).toMatchObject({ checkId: 'v5-slow' });
    const w = writes.filter((x) => x.caseNo === v0.caseNo).at(-1)!;
    expect(w.doneAt).toBeLessThanOrEqual(answeredAt);
    expect(await checksIn(v0.caseNo)).toContain('v5-slow');
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    await waitView(handle, (x) => !!x.endedAt, 'ended');
    await Worker.runReplayHistory(
      { ...WORKFLOW_BUNDLE, sinks: REPLAY_SINKS, dataConverter: { payloadCodecs: [h.codec] }, replayName: 'slow' },
      await handle.fetchHistory(),
    );
  } finally {
    integrations.close();
    worker.shutdown();
    await running;
  }
});

test('v6 judges slots by event time: checks sent while its worker was away count for their slots, though both slots passed before it came back', async () => {
  // A policy day of 24 s: checks 8 s apart at 08:00 and 16:00 of each day from arrival, windows 1 s.
  const policy = testPolicy({
    clock: { kind: 'compressed', dayMs: 24_000 },
    stayDays: 3,
    checkTimes: ['08:00', '16:00'],
    checkWindowBeforeMs: 1000,
    checkWindowAfterMs: 1000,
  });
  const queue = uniqueQueue('wf5-event-time');
  const log = createLogger('warn');
  const integrations = createIntegrations(h.config, { db: h.db.db, log });
  const startWorker = async () => {
    const worker = await createWorker({
      connection: h.nativeConnection,
      config: h.config,
      codec: h.codec,
      activities: createActivities({ db: h.db.db, integrations, log }),
      taskQueue: queue,
    });
    return { worker, running: worker.run() };
  };
  let w: Awaited<ReturnType<typeof startWorker>> | undefined = await startWorker();
  await h.addHotel(3);
  try {
    const handle = await h.startV2({ workflowType: 'caseWorkflowV6', taskQueue: queue, policy });
    started.splice(started.indexOf(handle), 1); // replayed here: its worker is this test's
    const v0 = await arrive(handle);
    const a = Date.parse(v0.nextCheckDue!);
    const b = nextCheckSlot(policy, Date.parse(v0.stayStart!), a + 1, Infinity)!;
    expect(a - Date.now()).toBeGreaterThan(3000); // the worker goes before the first slot is judged
    w.worker.shutdown();
    await w.running;
    w = undefined;
    // Both slots pass, and the time each would be judged missed, with nobody to judge them.
    await new Promise((r) => setTimeout(r, b + 1500 - Date.now()));
    // The nurse's checks, taken in their windows, queued while no worker runs (as the API queues them).
    await handle.signal(healthCheckSignal, { ...check('et-a'), takenAt: new Date(a - 300).toISOString() });
    await handle.signal(healthCheckSignal, { ...check('et-b'), takenAt: new Date(b + 300).toISOString() });
    w = await startWorker();
    const v = await waitView(handle, (x) => x.checks.some((c) => c.checkId === 'et-b'), 'both checks taken in');
    // Each counted for its slot: the first check's decision did not judge the second slot missed.
    expect(v.checks.find((c) => c.checkId === 'et-a')?.dueAt).toBe(new Date(a).toISOString());
    expect(v.checks.find((c) => c.checkId === 'et-b')?.dueAt).toBe(new Date(b).toISOString());
    expect(v.escalations.filter((e) => e.kind === 'missed_check')).toEqual([]);
    expect(Date.parse(v.nextCheckDue!)).toBeGreaterThan(b);
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    await waitView(handle, (x) => !!x.endedAt, 'ended');
    const history = await handle.fetchHistory();
    // A new type, not a patch: no marker.
    expect(patchesOf(history.events ?? [])).toEqual([]);
    await Worker.runReplayHistory(
      {
        ...WORKFLOW_BUNDLE,
        sinks: REPLAY_SINKS,
        dataConverter: { payloadCodecs: [h.codec] },
        replayName: 'event-time',
      },
      history,
    );
    await maybeRecord('slots-by-event-time', handle, 'v6');
  } finally {
    integrations.close();
    if (w) {
      w.worker.shutdown();
      await w.running;
    }
  }
});

test("v6 judges a health check's jurisdiction itself (recordHealthCheckInScope): a key it does not cover is refused with nothing recorded; a v4 case knows no such update", async () => {
  const handle = await h.startV2({ workflowType: 'caseWorkflowV6' });
  const v0 = await arrive(handle);
  const hotelId = v0.room!.hotelId;
  const scoped = (checkId: string, caller: object) =>
    handle.executeUpdate(scopedHealthCheckUpdate, { args: [{ ...check(checkId), caller } as never] });
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => 'applied',
      (err: unknown) => {
        const cause = (err as { cause?: { type?: string } }).cause;
        return err instanceof WorkflowUpdateFailedError ? (cause?.type ?? 'untyped') : String(err);
      },
    );
  // Another hotel's nurse, a nurse bound to no hotel, another district's supervisor, another
  // street's community worker, a caller of no known shape: refused, before anything is recorded.
  expect(await refusal(scoped('sc-other-hotel', { role: 'medical', district: 'Xigu', orgId: 'H-OTHER' }))).toBe(
    'Forbidden',
  );
  expect(await refusal(scoped('sc-unbound', { role: 'medical' }))).toBe('Forbidden');
  expect(await refusal(scoped('sc-other-district', { role: 'supervisor', district: 'Elsewhere' }))).toBe('Forbidden');
  expect(await refusal(scoped('sc-other-street', { role: 'community', district: 'Xigu', street: 'Not-Fuli' }))).toBe(
    'Forbidden',
  );
  expect(await refusal(scoped('sc-no-shape', { role: 'nobody' }))).toBe('Forbidden');
  expect(await refusal(scoped('sc-no-caller', undefined as never))).toBe('Forbidden');
  // Refused in the validator: none of them is in the history or the case.
  const rejected = ((await handle.fetchHistory()).events ?? []).filter(
    (e) => e.workflowExecutionUpdateAcceptedEventAttributes,
  );
  expect(rejected).toHaveLength(0);
  expect((await view(handle)).checks.map((c) => c.checkId)).toEqual([]);
  // The hotel's own nurse: applied, answered as the plain update answers, and its caller is not part of the check.
  const own = await scoped('sc-own', { role: 'medical', district: 'Xigu', orgId: hotelId });
  expect(own).toMatchObject({ checkId: 'sc-own', duplicate: false, fever: false });
  expect(await checksIn(v0.caseNo)).toContain('sc-own');
  // The same check sent the other way (the API's fallback, a retry through the queue): one check, the first answer.
  const again = await handle.executeUpdate(healthCheckUpdate, { args: [check('sc-own')] });
  expect(again).toEqual(own);
  // An admin key covers every case. A refusal of the check itself comes after the scope: a key
  // that covers the case hears the case's own reason.
  expect(await refusal(scoped('sc-admin', { role: 'admin' }))).toBe('applied');
  expect(
    await refusal(
      handle.executeUpdate(scopedHealthCheckUpdate, {
        args: [{ ...check('sc-bad'), takenAt: 'not a date', caller: { role: 'admin' } } as never],
      }),
    ),
  ).toBe('InvalidInput');
  expect((await view(handle)).checks.map((c) => c.checkId).sort()).toEqual(['sc-admin', 'sc-own']);
  await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  await waitView(handle, (x) => !!x.endedAt, 'ended');
  await maybeRecord('scoped-health-check', handle, 'v6');

  // A v4 case registers no such handler: the SDK rejects the name, and nothing is recorded (the API then checks itself).
  const v4 = await h.startV2({ workflowType: 'caseWorkflowV4' });
  await arrive(v4);
  const err = await v4
    .executeUpdate(scopedHealthCheckUpdate, { args: [{ ...check('v4-scoped'), caller: { role: 'admin' } } as never] })
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(isUnknownUpdate(err)).toBe(true);
  expect((await v4.query(viewQuery)).checks).toEqual([]);
  await v4.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
  started.push(v4);
});

test('every history these tests produced replays against the code that produced it', async () => {
  expect(started.length).toBeGreaterThanOrEqual(5);
  const histories = await Promise.all(
    started.map(async (handle) => ({ workflowId: handle.workflowId, history: await handle.fetchHistory() })),
  );
  const errors: string[] = [];
  for await (const r of Worker.runReplayHistories(
    { ...WORKFLOW_BUNDLE, sinks: REPLAY_SINKS, dataConverter: { payloadCodecs: [h.codec] } },
    histories,
  )) {
    if (!r.error) continue;
    // Kept for whoever reads the failure: the whole error, and the history that failed to replay
    // (how the nondeterminisms of 2026-12-05 were found: test/evidence/README.md).
    const file = path.join(os.tmpdir(), 'shaodian-replay-failures', `${r.workflowId}.history.pb`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const failed = histories.find((x) => x.workflowId === r.workflowId)!.history;
    fs.writeFileSync(file, temporal.api.history.v1.History.encode(failed).finish());
    errors.push(`${r.workflowId} (history in ${file}): ${String(r.error)}`);
  }
  expect(errors).toEqual([]);
});

/** A case's row in the read model of a harness's database. */
const caseRowIn = async (hx: Harness, caseNo: string) =>
  (await hx.db.db.select().from(schema.cases).where(eq(schema.cases.caseNo, caseNo)))[0];

type HistoryEvents = NonNullable<Awaited<ReturnType<Handle['fetchHistory']>>['events']>;
const recordTasksOf = (events: HistoryEvents) =>
  events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'recordCase');
/** The readModelBehind signals' inputs, decoded, in order. */
const behindSignalsOf = async (events: HistoryEvents): Promise<unknown[]> =>
  Promise.all(
    events
      .filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'readModelBehind')
      .map(async (e) => {
        const [p] = await h.codec.decode([e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!]);
        return JSON.parse(Buffer.from(p!.data!).toString()) as unknown;
      }),
  );
const localActivityMarkersOf = (events: HistoryEvents) =>
  events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity');
/** The ids of the patches a history's markers name, in order. */
const patchesOf = (events: HistoryEvents) =>
  events
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
    .map((e) => {
      const data = e.markerRecordedEventAttributes!.details!['patch-data']!.payloads![0]!.data!;
      return (JSON.parse(Buffer.from(data).toString()) as { id: string }).id;
    });

async function waitFor(pred: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('timed out');
}
