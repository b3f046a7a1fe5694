import fs from 'node:fs';
import path from 'node:path';

import { WorkflowUpdateFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { eq } from 'drizzle-orm';

import { schema } from '../../src/db';
import {
  ackEscalationUpdate,
  arrivalSignal,
  cancelUpdate,
  changeStayUpdate,
  healthCheckUpdate,
  inspectionResultSignal,
  labResultSignal,
  setAddressUpdate,
  type CaseState,
} from '../../src/workflows/messages';
import {
  createHarness,
  hotelStaff,
  HOME,
  lab,
  nurse,
  PERSON,
  supervisor,
  community,
  testPolicy,
  type Harness,
} from '../support/case-harness';

let h: Harness;

/**
 * `npm run histories:record` sets RECORD_HISTORIES=1: the named tests save their histories to
 * test/histories/, which test/replay replays on every CI run so that a non-deterministic
 * change to the workflow fails the build. Record again only for a deliberate, patched change.
 */
async function maybeRecord(name: string, handle: Handle): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  fs.mkdirSync(HISTORIES, { recursive: true });
  // Binary protobuf: exact, and free of JSON-mapping differences between SDK versions.
  fs.writeFileSync(
    path.join(HISTORIES, `${name}.history.pb`),
    temporal.api.history.v1.History.encode(history).finish(),
  );
}
const HISTORIES = path.resolve(__dirname, '..', 'histories');
beforeAll(async () => {
  h = await createHarness('wf');
  await h.addHotel(20, 'HMAIN');
});
afterAll(async () => {
  await h?.close();
});

const now = () => new Date().toISOString();
type Handle = Awaited<ReturnType<Harness['start']>>;

async function arrive(handle: Handle, antigen?: 'negative' | 'positive') {
  await h.waitFor(handle, (s) => s.phase === 'IN_TRANSIT', 'IN_TRANSIT');
  await handle.signal(arrivalSignal, { at: now(), by: hotelStaff, antigen });
  return h.waitFor(handle, (s) => s.phase === 'OBSERVATION' || s.phase === 'RELEASE_PENDING', 'observation');
}

/** Answers every ordered, pending sample with `result`. */
async function answerOrdered(handle: Handle, result: 'negative' | 'positive', s?: CaseState) {
  const state = s ?? (await h.state(handle));
  for (const sample of state.samples.filter((x) => x.orderedAt && x.result === 'pending')) {
    await handle.signal(labResultSignal, {
      sampleId: sample.sampleId,
      result,
      labId: 'LAB1',
      reportedAt: now(),
      by: lab,
    });
  }
}

async function passInspection(handle: Handle) {
  const s = await h.waitFor(handle, (x) => x.inspection.status === 'requested', 'inspection requested');
  await handle.signal(inspectionResultSignal, {
    inspectionId: s.inspection.inspectionId,
    singleOccupancy: true,
    at: now(),
    inspector: 'inspector-1',
    by: community,
  });
}

/** Drives a case through observation with negatives until both scheduled samples are answered. */
async function answerAllNegatives(handle: Handle) {
  for (let i = 0; i < 2; i++) {
    const s = await h.waitFor(
      handle,
      (x) => x.samples.some((y) => y.orderedAt && y.result === 'pending') || x.phase === 'RELEASED',
      'an ordered sample',
    );
    await answerOrdered(handle, 'negative', s);
  }
}

describe('case workflow', () => {
  test('happy path: request → room → transit → observation → release, and the read model follows', async () => {
    const handle = await h.start();
    const assigned = await h.waitFor(handle, (s) => !!s.room, 'room');
    expect((await h.room(assigned.room!.roomId)).state).toBe('reserved');
    const obs = await arrive(handle);
    expect(obs.colour).toBe('green');
    expect((await h.room(obs.room!.roomId)).state).toBe('occupied');
    expect(obs.samples.filter((x) => x.reason === 'scheduled')).toHaveLength(2);
    await passInspection(handle);
    await answerAllNegatives(handle);
    const outcome = await handle.result();
    await maybeRecord('happy-path-released', handle);
    expect(outcome.phase).toBe('RELEASED');
    expect(outcome.certificateNo).toBe(`${obs.caseNo}-R`);
    const final = await h.state(handle);
    expect(Date.parse(final.endedAt!)).toBeGreaterThanOrEqual(Date.parse(final.releaseDue!));
    expect((await h.room(obs.room!.roomId)).state).toBe('awaiting_disinfection');

    // The read model equals the workflow's final state, and the event log holds every change.
    const row = (await h.db.db.select().from(schema.cases).where(eq(schema.cases.caseNo, obs.caseNo)))[0]!;
    expect(row.phase).toBe('RELEASED');
    expect(row.colour).toBe(final.colour);
    expect(row.roomId).toBe(final.room!.roomId);
    expect(row.stateVersion).toBe(final.version);
    expect(row.releaseDue?.toISOString()).toBe(final.releaseDue);
    expect(row.pendingResults).toBe(0);
    expect(row.displayName).toBe('张*丰');
    const events = await h.db.db.select().from(schema.caseEvents).where(eq(schema.caseEvents.caseNo, obs.caseNo));
    expect(events).toHaveLength(final.eventSeq);
    expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(['transfer_requested', 'arrived', 'lab_result']));
    expect(events.find((e) => e.kind === 'arrived')).toMatchObject({ actor: hotelStaff.id, actorRole: 'hotel' });
  });

  test('missed checks escalate reminder → nurse and stop when the check arrives', async () => {
    const policy = testPolicy({
      stayDays: 30,
      checkTimes: ['00:30'], // 1.25 s after arrival with a 60 s day
      checkWindowBeforeMs: 100,
      checkWindowAfterMs: 300,
      missedCheckSteps: [
        { level: 'reminder', afterMs: 0 },
        { level: 'nurse', afterMs: 1500 },
        { level: 'point_leader', afterMs: 4000 },
      ],
      clock: { kind: 'compressed', dayMs: 60_000 },
    });
    const handle = await h.start({ policy });
    await arrive(handle);
    // The first slot is 00:30 of day 1; nobody records a check.
    const reminded = await h.waitFor(handle, (s) => s.escalations.some((e) => e.kind === 'missed_check'), 'reminder');
    const esc = reminded.escalations.find((e) => e.kind === 'missed_check')!;
    expect(esc.level).toBe('reminder');
    const nursed = await h.waitFor(
      handle,
      (s) => s.escalations.find((e) => e.id === esc.id)!.level === 'nurse',
      'nurse step',
    );
    expect(nursed.escalations.find((e) => e.id === esc.id)!.status).toBe('open');
    const r = await handle.executeUpdate(healthCheckUpdate, {
      args: [{ checkId: 'c1', takenAt: now(), temperatureC: 36.6, symptoms: [], by: nurse }],
    });
    expect(r.fever).toBe(false);
    const after = await h.state(handle);
    expect(after.escalations.find((e) => e.id === esc.id)).toMatchObject({ status: 'closed', level: 'nurse' });
    // Past the point-leader step time: the chain stopped, nothing climbed.
    await new Promise((res) => setTimeout(res, 3000));
    const later = await h.state(handle);
    expect(later.escalations.find((e) => e.id === esc.id)!.level).toBe('nurse');
    expect(later.escalations.filter((e) => e.kind === 'missed_check')).toHaveLength(1);
    const levels = later.history.filter((x) => x.kind.startsWith('escalation_') && x.detail?.escalationId === esc.id);
    expect(levels.map((x) => x.kind)).toEqual(['escalation_opened', 'escalation_raised', 'escalation_closed']);
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    await handle.result();
    await maybeRecord('missed-check-chain-cancelled', handle);
  });

  test('fever opens a doctor escalation and orders an extra sample; duplicates are answered, not recorded twice', async () => {
    const handle = await h.start({ policy: testPolicy({ stayDays: 30 }) });
    await arrive(handle);
    const input = { checkId: 'fever-1', takenAt: now(), temperatureC: 38.2, symptoms: ['cough'], by: nurse };
    const r = await handle.executeUpdate(healthCheckUpdate, { args: [input] });
    expect(r.fever).toBe(true);
    expect(r.extraSampleId).toBeDefined();
    const again = await handle.executeUpdate(healthCheckUpdate, { args: [input] });
    expect(again.duplicate).toBe(true);
    const s = await h.waitFor(
      handle,
      (x) => !!x.samples.find((y) => y.sampleId === r.extraSampleId)?.orderedAt,
      'extra sample ordered',
    );
    expect(s.checks).toHaveLength(1);
    const fever = s.escalations.find((e) => e.id === r.escalationIds[0])!;
    expect(fever).toMatchObject({ kind: 'fever', level: 'doctor', severity: 'red', status: 'open' });
    expect(s.samples.find((y) => y.sampleId === r.extraSampleId)!.reason).toBe('fever');
    const acked = await handle.executeUpdate(ackEscalationUpdate, {
      args: [{ escalationId: fever.id, by: nurse, note: 'doctor informed' }],
    });
    expect(acked.status).toBe('acked');
    await expect(
      handle.executeUpdate(ackEscalationUpdate, { args: [{ escalationId: fever.id, by: nurse }] }),
    ).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    await handle.result();
    await maybeRecord('fever-extra-sample-cancelled', handle);
  });

  test('a health check outside observation is rejected by the validator and changes nothing', async () => {
    const handle = await h.start({ district: 'Nowhere' }); // no hotel: stays REQUESTED
    await h.waitFor(handle, (s) => s.escalations.some((e) => e.kind === 'no_room'), 'no-room escalation');
    const before = await h.state(handle);
    await expect(
      handle.executeUpdate(healthCheckUpdate, {
        args: [{ checkId: 'x', takenAt: now(), temperatureC: 36.5, symptoms: [], by: nurse }],
      }),
    ).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    const after = await h.state(handle);
    expect(after.checks).toHaveLength(0);
    expect(after.version).toBe(before.version);
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    expect((await handle.result()).phase).toBe('CANCELLED');
  });

  test('positive PCR → HOSPITAL_TRANSFER and the room goes to terminal disinfection', async () => {
    const handle = await h.start({ policy: testPolicy({ stayDays: 30 }) });
    await arrive(handle);
    const s = await h.waitFor(handle, (x) => x.samples.some((y) => y.orderedAt), 'sample ordered');
    await answerOrdered(handle, 'positive', s);
    const outcome = await handle.result();
    await maybeRecord('positive-hospital-transfer', handle);
    expect(outcome.phase).toBe('HOSPITAL_TRANSFER');
    const room = await h.room(s.room!.roomId);
    expect(room.state).toBe('awaiting_disinfection');
    expect(room.caseNo ?? room.lastCaseNo).toBe(s.caseNo);
    const final = await h.state(handle);
    expect(final.escalations.some((e) => e.kind === 'positive_result' && e.severity === 'red')).toBe(true);
    expect(final.hospital?.dispatchId).toBeDefined();
  });

  test('antigen positive at intake → hospital without check-in; the reserved room is freed', async () => {
    const handle = await h.start();
    await h.waitFor(handle, (s) => s.phase === 'IN_TRANSIT', 'IN_TRANSIT');
    const roomId = (await h.state(handle)).room!.roomId;
    await handle.signal(arrivalSignal, { at: now(), by: hotelStaff, antigen: 'positive' });
    expect((await handle.result()).phase).toBe('HOSPITAL_TRANSFER');
    expect((await h.room(roomId)).state).toBe('free');
  });

  test('a failed single-occupancy inspection blocks release until a new address passes', async () => {
    const handle = await h.start();
    await arrive(handle);
    const s1 = await h.waitFor(handle, (x) => x.inspection.status === 'requested', 'inspection requested');
    await handle.signal(inspectionResultSignal, {
      inspectionId: s1.inspection.inspectionId,
      singleOccupancy: false,
      at: now(),
      inspector: 'inspector-1',
      note: 'lives with family',
      by: community,
    });
    await answerAllNegatives(handle);
    // Past the end date with negatives in hand, still held by the address.
    const held = await h.waitFor(
      handle,
      (x) => x.releaseBlockers.length === 1 && x.releaseBlockers[0] === 'address_not_approved',
      'held only by address',
    );
    expect(held.phase).toBe('RELEASE_PENDING');
    expect(held.escalations.some((e) => e.kind === 'failed_inspection' && e.status === 'open')).toBe(true);
    const { inspectionId } = await handle.executeUpdate(setAddressUpdate, {
      args: [{ address: '兰州市西固区 another flat', reason: 'relative has an empty flat', by: supervisor }],
    });
    expect(inspectionId).toBe(`${held.caseNo}-I2`);
    const s2 = await h.waitFor(
      handle,
      (x) => x.inspection.inspectionId === inspectionId && x.inspection.status === 'requested',
      're-inspection',
    );
    expect(s2.escalations.find((e) => e.kind === 'failed_inspection')!.status).toBe('closed');
    await handle.signal(inspectionResultSignal, {
      inspectionId,
      singleOccupancy: true,
      at: now(),
      inspector: 'i2',
      by: community,
    });
    expect((await handle.result()).phase).toBe('RELEASED');
    await maybeRecord('failed-inspection-new-address-released', handle);
    const rows = await h.db.db
      .select()
      .from(schema.addressInspections)
      .where(eq(schema.addressInspections.caseNo, held.caseNo));
    expect(rows.map((r) => r.status).sort()).toEqual(['failed', 'passed']);
  });

  test('release waits for a pending result', async () => {
    const handle = await h.start();
    await arrive(handle);
    await passInspection(handle);
    const first = await h.waitFor(
      handle,
      (x) => x.samples.some((y) => y.orderedAt && y.result === 'pending'),
      'first sample',
    );
    await answerOrdered(handle, 'negative', first);
    // The day-2 sample is ordered and left pending past the end date.
    const held = await h.waitFor(
      handle,
      (x) => !x.releaseBlockers.includes('end_date_not_reached') && x.releaseBlockers.includes('result_pending'),
      'held by a pending result',
    );
    expect(held.phase).toBe('RELEASE_PENDING');
    expect(held.releaseBlockers).not.toContain('end_date_not_reached');
    await answerOrdered(handle, 'negative');
    expect((await handle.result()).phase).toBe('RELEASED');
  });

  test('an extension moves the release date and the case is not released before it', async () => {
    const handle = await h.start();
    const obs = await arrive(handle);
    const before = Date.parse(obs.releaseDue!);
    const { releaseDue } = await handle.executeUpdate(changeStayUpdate, {
      args: [{ days: 1, reason: 'close contact of a new case', by: supervisor }],
    });
    expect(Date.parse(releaseDue) - before).toBe(1500);
    await passInspection(handle);
    await answerAllNegatives(handle);
    const outcome = await handle.result();
    expect(outcome.phase).toBe('RELEASED');
    expect(Date.parse(outcome.endedAt)).toBeGreaterThanOrEqual(Date.parse(releaseDue));
    const s = await h.state(handle);
    expect(s.history.find((x) => x.kind === 'stay_extended')).toMatchObject({
      by: { id: supervisor.id },
      reason: 'close contact of a new case',
    });
    await expect(
      handle.executeUpdate(changeStayUpdate, { args: [{ days: 1, reason: 'too late', by: supervisor }] }),
    ).rejects.toThrow();
  });

  test('shortening the stay releases earlier and leaves a sample planned after the new date untaken', async () => {
    const policy = testPolicy({ stayDays: 3, sampling: { days: [1, 2, 3], type: 'PCR', time: '00:00' } });
    const handle = await h.start({ policy });
    const obs = await arrive(handle);
    const { releaseDue } = await handle.executeUpdate(changeStayUpdate, {
      args: [{ days: -1, reason: 'directive: shorter centralized period', by: supervisor }],
    });
    expect(Date.parse(releaseDue) - Date.parse(obs.releaseDue!)).toBe(-1500);
    await passInspection(handle);
    await answerAllNegatives(handle);
    expect((await handle.result()).phase).toBe('RELEASED');
    const s = await h.state(handle);
    const day3 = s.samples.find((x) => x.day === 3)!;
    expect(day3.orderedAt).toBeUndefined();
    expect(s.samples.filter((x) => x.orderedAt)).toHaveLength(2);
    expect(s.history.find((x) => x.kind === 'stay_shortened')?.reason).toBe('directive: shorter centralized period');
  });

  test('antigen positive at the door before any room was free → hospital, nothing held', async () => {
    const handle = await h.start({ district: 'Full', transport: 'self_drive' });
    await h.waitFor(handle, (s) => s.escalations.some((e) => e.kind === 'no_room'), 'no room');
    await handle.signal(arrivalSignal, { at: now(), by: hotelStaff, antigen: 'positive' });
    const outcome = await handle.result();
    expect(outcome.phase).toBe('HOSPITAL_TRANSFER');
    const s = await h.state(handle);
    expect(s.room).toBeUndefined();
    expect(s.hospital?.dispatchId).toBeDefined();
    expect(s.escalations.every((e) => e.status === 'closed')).toBe(true);
  });

  test('an extension after a failed inspection goes back to observation and inspects the home again', async () => {
    const handle = await h.start();
    await arrive(handle);
    const s1 = await h.waitFor(handle, (x) => x.inspection.status === 'requested', 'inspection requested');
    await handle.signal(inspectionResultSignal, {
      inspectionId: s1.inspection.inspectionId,
      singleOccupancy: false,
      at: now(),
      inspector: 'inspector-1',
      by: community,
    });
    await h.waitFor(handle, (x) => x.inspection.status === 'failed', 'failed');
    await handle.executeUpdate(changeStayUpdate, { args: [{ days: 2, reason: 'no home yet', by: supervisor }] });
    const back = await h.state(handle);
    expect(back.phase).toBe('OBSERVATION');
    expect(back.inspection).toMatchObject({ round: 2, status: 'none' });
    const again = await h.waitFor(
      handle,
      (x) => x.inspection.round === 2 && x.inspection.status === 'requested',
      'second inspection',
    );
    expect(again.phase).toBe('RELEASE_PENDING');
    await handle.signal(inspectionResultSignal, {
      inspectionId: again.inspection.inspectionId,
      singleOccupancy: true,
      at: now(),
      inspector: 'inspector-2',
      by: community,
    });
    for (let i = 0; i < 4; i++) {
      const x = await h.waitFor(
        handle,
        (y) => y.samples.some((z) => z.orderedAt && z.result === 'pending') || y.phase === 'RELEASED',
        'sample or release',
      );
      if (x.phase === 'RELEASED') break;
      await answerOrdered(handle, 'negative', x);
    }
    const outcome = await handle.result();
    expect(outcome.phase).toBe('RELEASED');
    expect(Date.parse(outcome.endedAt)).toBeGreaterThanOrEqual(Date.parse(again.releaseDue!));
  });

  describe('cancellation frees whatever the case holds', () => {
    test('in REQUESTED (no room anywhere)', async () => {
      const handle = await h.start({ district: 'Empty' });
      await h.waitFor(handle, (s) => s.escalations.some((e) => e.kind === 'no_room'), 'no room');
      await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'duplicate request', by: supervisor }] });
      const outcome = await handle.result();
      expect(outcome.phase).toBe('CANCELLED');
      const s = await h.state(handle);
      expect(s.escalations.every((e) => e.status === 'closed')).toBe(true);
    });

    test('in IN_TRANSIT: the reserved room is free again', async () => {
      const handle = await h.start();
      const s = await h.waitFor(handle, (x) => x.phase === 'IN_TRANSIT', 'in transit');
      await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'person tested elsewhere', by: supervisor }] });
      expect((await handle.result()).phase).toBe('CANCELLED');
      const room = await h.room(s.room!.roomId);
      expect(room.state).toBe('free');
      expect(room.caseNo).toBeNull();
    });

    test('in OBSERVATION: the room goes to disinfection and is no longer held', async () => {
      const handle = await h.start({ policy: testPolicy({ stayDays: 30 }) });
      const s = await arrive(handle);
      await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'moved to home isolation', by: supervisor }] });
      expect((await handle.result()).phase).toBe('CANCELLED');
      const room = await h.room(s.room!.roomId);
      expect(room.state).toBe('awaiting_disinfection');
    });

    test('in RELEASE_PENDING', async () => {
      const handle = await h.start();
      const s = await arrive(handle);
      await h.waitFor(handle, (x) => x.phase === 'RELEASE_PENDING', 'release pending');
      await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'policy change', by: supervisor }] });
      expect((await handle.result()).phase).toBe('CANCELLED');
      expect((await h.room(s.room!.roomId)).state).toBe('awaiting_disinfection');
      // The workflow has completed: the server refuses the update.
      await expect(
        handle.executeUpdate(cancelUpdate, { args: [{ reason: 'again', by: supervisor }] }),
      ).rejects.toThrow();
    });
  });

  test('a duplicate lab result is ignored and a result for an unknown sample is recorded and flagged', async () => {
    const handle = await h.start({ policy: testPolicy({ stayDays: 30 }) });
    await arrive(handle);
    const s = await h.waitFor(handle, (x) => x.samples.some((y) => y.orderedAt), 'ordered');
    const sample = s.samples.find((y) => y.orderedAt)!;
    const result = {
      sampleId: sample.sampleId,
      result: 'negative' as const,
      labId: 'LAB1',
      reportedAt: now(),
      by: lab,
    };
    await handle.signal(labResultSignal, result);
    await handle.signal(labResultSignal, { ...result, result: 'positive' });
    await handle.signal(labResultSignal, { ...result, sampleId: 'NO-SUCH-SAMPLE' });
    const after = await h.waitFor(handle, (x) => x.unknownResults.length === 1, 'unknown recorded');
    expect(after.duplicateResults).toBe(1);
    expect(after.samples.find((y) => y.sampleId === sample.sampleId)!.result).toBe('negative');
    expect(after.phase).toBe('OBSERVATION'); // the late "positive" duplicate changed nothing
    expect(after.escalations.some((e) => e.kind === 'unknown_sample')).toBe(true);
    expect(after.history.filter((x) => x.kind === 'lab_result')).toHaveLength(1);
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    await handle.result();
  });

  test('no room → command-centre escalation; when a room frees the case proceeds', async () => {
    await h.addHotel(1, 'HSMALL');
    await h.hotel.putOutOfService(
      (await h.db.db.select().from(schema.rooms).where(eq(schema.rooms.hotelId, 'HSMALL')))[0]!.id,
      'repairs',
    );
    // A district of its own: only HSMALL serves it.
    await h.db.db.update(schema.hotels).set({ district: 'Tiny' }).where(eq(schema.hotels.id, 'HSMALL'));
    const handle = await h.start({ district: 'Tiny' });
    const waiting = await h.waitFor(handle, (s) => s.escalations.some((e) => e.kind === 'no_room'), 'no room');
    expect(waiting.phase).toBe('REQUESTED');
    expect(waiting.escalations.find((e) => e.kind === 'no_room')).toMatchObject({
      level: 'command_centre',
      status: 'open',
    });
    const roomId = (await h.db.db.select().from(schema.rooms).where(eq(schema.rooms.hotelId, 'HSMALL')))[0]!.id;
    await h.hotel.returnToService(roomId);
    const assigned = await h.waitFor(handle, (s) => s.phase === 'IN_TRANSIT', 'room after it freed', 15_000);
    expect(assigned.room!.roomId).toBe(roomId);
    expect(assigned.escalations.find((e) => e.kind === 'no_room')!.status).toBe('closed');
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    await handle.result();
    await maybeRecord('no-room-then-room-cancelled', handle);
  });

  test('continue-as-new carries the whole state and the case still completes', async () => {
    const handle = await h.start({
      policy: testPolicy({ stayDays: 3 }),
      options: { continueAsNewAtHistoryLength: 30 },
    });
    const firstRun = (await handle.describe()).runId;
    await arrive(handle);
    for (let i = 0; i < 4; i++) {
      await handle.executeUpdate(healthCheckUpdate, {
        args: [{ checkId: `can-${i}`, takenAt: now(), temperatureC: 36.5, symptoms: [], by: nurse }],
      });
    }
    const carried = await h.waitFor(handle, (s) => s.generation >= 1, 'continued as new', 20_000);
    expect(carried.checks.map((c) => c.checkId)).toEqual(['can-0', 'can-1', 'can-2', 'can-3']);
    expect(carried.caseNo).toMatch(/^T/);
    expect(carried.room).toBeDefined();
    expect((await h.client.workflow.getHandle(handle.workflowId).describe()).runId).not.toBe(firstRun);
    const seqBefore = carried.eventSeq;
    await passInspection(h.client.workflow.getHandle(handle.workflowId) as Handle);
    const latest = h.client.workflow.getHandle(handle.workflowId) as Handle;
    for (let i = 0; i < 3; i++) {
      const s = await h.waitFor(
        latest,
        (x) => x.samples.some((y) => y.orderedAt && y.result === 'pending') || x.phase === 'RELEASED',
        'sample',
      );
      if (s.phase === 'RELEASED') break;
      await answerOrdered(latest, 'negative', s);
    }
    const outcome = await latest.result();
    await maybeRecord('continued-as-new-released', latest);
    expect(outcome.phase).toBe('RELEASED');
    const final = await h.state(latest);
    expect(final.eventSeq).toBeGreaterThan(seqBefore);
    const events = await h.db.db.select().from(schema.caseEvents).where(eq(schema.caseEvents.caseNo, final.caseNo));
    expect(events).toHaveLength(final.eventSeq);
  });

  test('history stored in Temporal holds no plain PII (payload codec)', async () => {
    const handle = await h.start();
    await arrive(handle);
    await handle.executeUpdate(cancelUpdate, { args: [{ reason: 'test over', by: supervisor }] });
    await handle.result();
    // Raw history, straight from the server, without our codec.
    const raw = await h.connection.workflowService.getWorkflowExecutionHistory({
      namespace: h.client.options.namespace,
      execution: { workflowId: handle.workflowId },
    });
    const bytes = Buffer.from(JSON.stringify(raw.history));
    const text = Buffer.from(
      (await import('@temporalio/proto')).temporal.api.history.v1.History.encode(raw.history!).finish(),
    ).toString('utf8');
    for (const pii of [PERSON.name, PERSON.idNumber, PERSON.phone, HOME, '福利路']) {
      expect(text.includes(pii)).toBe(false);
      expect(bytes.includes(Buffer.from(pii))).toBe(false);
    }
    // The same input decoded with the key does contain them: the check above can fail.
    const input = raw.history!.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads!;
    const decoded = await h.codec.decode(input as never);
    const plain = Buffer.from(decoded[0]!.data!).toString('utf8');
    expect(plain).toContain(PERSON.idNumber);
    expect(plain).toContain(PERSON.name);
  });
});
