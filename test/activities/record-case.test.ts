import type { WorkflowInfo } from '@temporalio/workflow';
import { MockActivityEnvironment } from '@temporalio/testing/lib/mocking-activity-environment';
import { asc, eq } from 'drizzle-orm';

import {
  createActivities,
  recordCase,
  recordCases,
  recordCaseJson,
  LOCAL_WRITE_COOLDOWN_MS,
  LOCAL_WRITE_DEADLINE_MS,
  LOCAL_WRITE_FAILURES_AWAY,
} from '../../src/activities';
import type { CaseActivities, CaseEventRecord, CaseRow, RecordCaseInput } from '../../src/activities/types';
import type { Db } from '../../src/db';
import { addressInspections, caseEvents, cases, escalations, healthChecks, samples } from '../../src/db/schema';
import type { Actor, Escalation, Sample } from '../../src/domain/types';
import { createIntegrations, type Integrations } from '../../src/integrations';
import { createWriter } from '../../src/api/answer-writes';
import { taskWriteSinks } from '../../src/activities/task-writes';
import { caseRowFixture } from '../support/case-row';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { silentLog, testConfig } from '../integrations/helpers';

let tdb: TestDatabase;
let integ: Integrations;
let acts: CaseActivities;

beforeAll(async () => {
  tdb = await createTestDatabase('recordcase');
  integ = createIntegrations(testConfig(), { db: tdb.db, log: silentLog });
  acts = createActivities({ db: tdb.db, integrations: integ, log: silentLog });
});
afterAll(async () => {
  integ.close();
  await tdb.drop();
});

const nurse = { id: 'key-nurse-1', role: 'medical' as const, name: 'Ward 3 nurses' };
const system = { id: 'workflow', role: 'system' as const, name: 'Shaodian' };

const row = caseRowFixture;
const ev = (seq: number, kind: string, actor: Actor = system): CaseEventRecord => ({
  seq,
  actor,
  kind,
  payload: { n: seq },
  at: new Date(Date.UTC(2024, 2, 1, 0, seq)).toISOString(),
});
const input = (r: CaseRow, events: CaseEventRecord[] = [], extra: Partial<RecordCaseInput> = {}): RecordCaseInput => ({
  row: r,
  events,
  samples: [],
  checks: [],
  escalations: [],
  ...extra,
});
/** The test database, except that while `hanging` every write (a statement or a transaction) is taken and never answered. */
function hangingDb(hanging: boolean): { db: Db; hanging: boolean } {
  const h = { hanging, db: undefined as unknown as Db };
  h.db = new Proxy(tdb.db, {
    get: (target, prop, receiver) =>
      (prop === 'transaction' || prop === 'execute') && h.hanging
        ? () => new Promise(() => undefined)
        : Reflect.get(target, prop, receiver),
  }) as Db;
  return h;
}
const caseRow = async (caseNo: string) => (await tdb.db.select().from(cases).where(eq(cases.caseNo, caseNo)))[0];
const eventsOf = (caseNo: string) =>
  tdb.db.select().from(caseEvents).where(eq(caseEvents.caseNo, caseNo)).orderBy(asc(caseEvents.seq));

it('the newer version wins, an older one is ignored, events are de-duplicated', async () => {
  await acts.recordCase(input(row('R1', 1), [ev(1, 'requested')]));
  await acts.recordCase(
    input(row('R1', 3, { phase: 'OBSERVATION', colour: 'yellow', hotelId: 'h', roomId: 'h:101' }), [
      ev(2, 'room_assigned'),
      ev(3, 'arrived', nurse),
    ]),
  );
  // A late retry of version 2 arrives after version 3.
  await acts.recordCase(input(row('R1', 2, { phase: 'ROOM_ASSIGNED', hotelId: 'h' }), [ev(2, 'room_assigned')]));
  // And version 3 retried.
  await acts.recordCase(
    input(row('R1', 3, { phase: 'OBSERVATION', colour: 'yellow', hotelId: 'h', roomId: 'h:101' }), [
      ev(2, 'room_assigned'),
      ev(3, 'arrived', nurse),
    ]),
  );

  expect(await caseRow('R1')).toMatchObject({
    phase: 'OBSERVATION',
    colour: 'yellow',
    hotelId: 'h',
    roomId: 'h:101',
    stateVersion: 3,
  });
  const events = await eventsOf('R1');
  expect(events.map((e) => [e.seq, e.kind])).toEqual([
    [1, 'requested'],
    [2, 'room_assigned'],
    [3, 'arrived'],
  ]);
  // Who did it: the key's id, role and name, never a person's PII.
  expect(events[2]).toMatchObject({ actor: 'key-nurse-1', actorRole: 'medical', actorName: 'Ward 3 nurses' });
  expect(events[2]!.payload).toEqual({ n: 3 });
});

it('a field the workflow clears is cleared, dates are stored as instants', async () => {
  await acts.recordCase(input(row('R2', 1, { nextCheckDue: '2024-03-02T00:00:00.000Z', colour: 'red' })));
  await acts.recordCase(
    input(
      row('R2', 2, { phase: 'RELEASED', endedAt: '2024-03-15T02:00:00.000Z', releaseDue: '2024-03-15T00:00:00.000Z' }),
    ),
  );
  const r = await caseRow('R2');
  expect(r).toMatchObject({ phase: 'RELEASED', nextCheckDue: null, colour: null });
  expect(r!.endedAt?.toISOString()).toBe('2024-03-15T02:00:00.000Z');
  expect(r!.releaseDue?.toISOString()).toBe('2024-03-15T00:00:00.000Z');
});

it('the one-statement write stores edge values as the statements did: rounding, date-only instants, text, event order', async () => {
  const odd = 'O\'Brien "张" \u2028 \u{1F600} \\';
  const payload = { note: odd, nested: { list: [1, null, 'x'], empty: {} } };
  const events = [5, 3, 4].map((seq) => ({ ...ev(seq, 'health_check', nurse), payload }));
  await acts.recordCase(
    input(row('R9', 1, { requestedAt: '2024-03-01', displayName: odd, hotelId: 'hotel-r9' }), events, {
      checks: [
        { checkId: 'a', takenAt: '2024-03-01T08:00:00Z', temperatureC: 37.05, symptoms: ['cough'], by: nurse },
        { checkId: 'b', takenAt: '2024-03-01T20:00:00+08:00', temperatureC: 36.95, symptoms: [], by: nurse },
        { checkId: 'c', takenAt: '2024-03-02T08:00:00.123456Z', symptoms: [], by: nurse },
      ],
      escalations: [
        {
          id: 'esc-r9',
          kind: 'fever',
          level: 'nurse',
          severity: 'amber',
          reason: odd,
          status: 'open',
          openedAt: '2024-03-01T08:00:00.000Z',
          ackedBy: nurse,
        },
      ],
    }),
  );
  const r = await caseRow('R9');
  // JavaScript reads a date-only string as UTC midnight; the database must not read it in its own zone.
  expect(r!.requestedAt.toISOString()).toBe('2024-03-01T00:00:00.000Z');
  expect(r!.displayName).toBe(odd);
  const checks = await tdb.db
    .select()
    .from(healthChecks)
    .where(eq(healthChecks.caseNo, 'R9'))
    .orderBy(asc(healthChecks.id));
  // toFixed(1), as the statements stored it: 37.05 is 37.04999… in binary, so 37.0, not 37.1.
  expect(checks.map((c) => [c.id, c.temperatureC, c.takenAt.toISOString(), c.symptoms])).toEqual([
    ['a', (37.05).toFixed(1), '2024-03-01T08:00:00.000Z', ['cough']],
    ['b', (36.95).toFixed(1), '2024-03-01T12:00:00.000Z', []],
    ['c', null, '2024-03-02T08:00:00.123Z', []],
  ]);
  const log = await tdb.db.select().from(caseEvents).where(eq(caseEvents.caseNo, 'R9')).orderBy(asc(caseEvents.id));
  // Inserted in the order the write lists them (the event feed reads by id), each with its payload intact.
  expect(log.map((e) => e.seq)).toEqual([5, 3, 4]);
  expect(log.map((e) => [e.actor, e.actorRole, e.actorName, e.payload])).toEqual(
    Array(3).fill([nurse.id, nurse.role, nurse.name, payload]),
  );
  const [esc] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'esc-r9'));
  expect(esc).toMatchObject({ hotelId: 'hotel-r9', reason: odd, ackedBy: nurse.id, ackedAt: null, status: 'open' });
});

it('a lone surrogate in a name is stored as U+FFFD, not refused (every later write of the case would fail)', async () => {
  const cut = '\ud842*明'; // a name masked in the middle of a surrogate pair
  expect(
    await recordCase(
      tdb.db,
      input(row('R10', 1, { displayName: cut }), [ev(1, 'requested')], {
        escalations: [
          {
            id: 'esc-r10',
            kind: 'fever',
            level: 'nurse',
            severity: 'amber',
            reason: `fever \udc00`,
            status: 'open',
            openedAt: '2024-03-01T08:00:00.000Z',
          },
        ],
      }),
    ),
  ).toBe(true);
  expect((await caseRow('R10'))!.displayName).toBe('\ufffd*明');
  const [esc] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'esc-r10'));
  expect(esc!.reason).toBe('fever \ufffd');
  // A pair that is whole stays whole.
  await recordCase(tdb.db, input(row('R10', 2, { displayName: '\u{20BB7}*明' })));
  expect((await caseRow('R10'))!.displayName).toBe('\u{20BB7}*明');
});

it('lone surrogates become U+FFFD wherever they are (values, keys, next to backslashes); text that only looks like one stays', () => {
  const payload = {
    'key \udc00': 'value \ud800',
    pair: '\u{20BB7}',
    backslashThenLone: '\\\ud83d',
    escapedLookalike: '\\ud800 is text',
    split: ['\ud83d', '\ude00'],
  };
  const json = recordCaseJson(input(row('J1', 1), [{ ...ev(1, 'x'), payload }]));
  const back = JSON.parse(json) as { events: { payload: Record<string, unknown> }[] };
  expect(back.events[0]!.payload).toEqual({
    'key \ufffd': 'value \ufffd',
    pair: '\u{20BB7}',
    backslashThenLone: '\\\ufffd',
    escapedLookalike: '\\ud800 is text',
    split: ['\ufffd', '\ufffd'],
  });
  // Nothing a lone surrogate is left for jsonb to refuse.
  expect(json).not.toMatch(/(?<!\\)(?:\\\\)*\\ud[89a-f]/i);
});

it('an older write that lists a key twice keeps the first, as DO NOTHING did; a value left out takes its column default', async () => {
  await recordCase(tdb.db, input(row('R11', 2), [ev(1, 'a')]));
  const stale = input(row('R11', 1), [ev(2, 'first'), ev(2, 'second')]);
  expect(await recordCase(tdb.db, stale)).toBe(false);
  expect((await eventsOf('R11')).map((e) => [e.seq, e.kind])).toEqual([
    [1, 'a'],
    [2, 'first'],
  ]);
  const bare = row('R12', 1) as Partial<CaseRow>;
  delete bare.pendingResults;
  delete bare.inspectionStatus;
  delete bare.stateVersion;
  await recordCase(
    tdb.db,
    input(bare as CaseRow, [], { inspection: { inspectionId: 'ins-r12' } as RecordCaseInput['inspection'] }),
  );
  expect(await caseRow('R12')).toMatchObject({ pendingResults: 0, inspectionStatus: 'none', stateVersion: 0 });
  const [ins] = await tdb.db.select().from(addressInspections).where(eq(addressInspections.id, 'ins-r12'));
  expect(ins).toMatchObject({ status: 'requested', address: '' });
});

it('a failed write says why without the write itself (no home address in a failure or a log)', async () => {
  const err = await recordCase(
    tdb.db,
    input(row('R13', 1), [], {
      inspection: { inspectionId: 'ins-r13', status: 'requested', address: '幸福路 8号 3单元 402' },
      lastSeq: 2 ** 40, // out of the integer range: the database refuses the write
    }),
  ).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err).toBeInstanceOf(Error);
  expect(err!.message).toMatch(/^read model write failed: /);
  expect(`${err!.message} ${err!.stack} ${JSON.stringify(err)}`).not.toContain('幸福路');
  expect(err!.cause).toBeUndefined();
  expect(await caseRow('R13')).toBeUndefined(); // all or nothing
});

it('concurrent writes in any order leave the newest state and every event once', async () => {
  const versions = Array.from({ length: 30 }, (_, i) => i + 1);
  // Deterministic shuffle so a failure is reproducible.
  const order = versions.map((v) => ({ v, k: (v * 7919) % 31 })).sort((a, b) => a.k - b.k);
  await Promise.all(
    order.flatMap(({ v }) => {
      const write = input(row('R3', v, { pendingResults: v }), [ev(v, `change-${v}`)]);
      return [acts.recordCase(write), acts.recordCase(write)];
    }),
  );
  expect(await caseRow('R3')).toMatchObject({ stateVersion: 30, pendingResults: 30 });
  expect((await eventsOf('R3')).map((e) => e.seq)).toEqual(versions);
});

it('detail rows: the newest write updates them, a stale one only fills in what is missing', async () => {
  const s1: Sample = {
    sampleId: 'R4-S1',
    type: 'PCR',
    reason: 'scheduled',
    day: 1,
    dueAt: '2024-03-01T01:00:00.000Z',
    result: 'pending',
  };
  const e1: Escalation = {
    id: 'R4-E1',
    kind: 'fever',
    level: 'doctor',
    severity: 'red',
    reason: 'temperature 38.1',
    status: 'open',
    openedAt: '2024-03-02T00:00:00.000Z',
  };
  // orderSample ran first and stored the lab's id.
  await acts.orderSample({ workflowId: 'case-R4', caseNo: 'R4', sampleId: 'R4-S1', type: 'PCR', reason: 'scheduled' });
  const [ordered] = await tdb.db.select().from(samples).where(eq(samples.sampleId, 'R4-S1'));

  await acts.recordCase(
    input(row('R4', 5, { hotelId: 'h' }), [], {
      samples: [s1],
      escalations: [e1],
      checks: [
        { checkId: 'R4-C1', takenAt: '2024-03-02T00:00:00.000Z', temperatureC: 38.1, symptoms: ['cough'], by: nurse },
      ],
      inspection: {
        inspectionId: 'R4-I1',
        status: 'requested',
        address: 'Flat 5',
        requestedAt: '2024-03-10T00:00:00.000Z',
      },
    }),
  );
  await acts.recordCase(
    input(row('R4', 6, { hotelId: 'h' }), [], {
      samples: [{ ...s1, result: 'negative', resultAt: '2024-03-01T09:00:00.000Z' }],
      escalations: [{ ...e1, status: 'acked', ackedAt: '2024-03-02T00:10:00.000Z', ackedBy: nurse }],
      // The workflow need not repeat the address.
      inspection: { inspectionId: 'R4-I1', status: 'passed', resultAt: '2024-03-11T00:00:00.000Z', inspector: 'w-9' },
    }),
  );
  // A stale write (version 4) must not undo the result or the ack, but adds a sample it has.
  await acts.recordCase(
    input(row('R4', 4), [], {
      samples: [s1, { ...s1, sampleId: 'R4-S0' }],
      escalations: [e1],
      inspection: { inspectionId: 'R4-I1', status: 'requested', address: 'Flat 5' },
    }),
  );

  const sampleRows = await tdb.db.select().from(samples).where(eq(samples.caseNo, 'R4')).orderBy(asc(samples.sampleId));
  expect(sampleRows.map((s) => [s.sampleId, s.result])).toEqual([
    ['R4-S0', 'pending'],
    ['R4-S1', 'negative'],
  ]);
  expect(sampleRows[1]!.labId).toBe(ordered!.labId); // the workflow's row had no labId yet: kept
  expect(sampleRows[1]!.resultAt?.toISOString()).toBe('2024-03-01T09:00:00.000Z');

  const [esc] = await tdb.db.select().from(escalations).where(eq(escalations.id, 'R4-E1'));
  expect(esc).toMatchObject({ status: 'acked', ackedBy: 'key-nurse-1', severity: 'red', hotelId: 'h' });

  const [check] = await tdb.db.select().from(healthChecks).where(eq(healthChecks.id, 'R4-C1'));
  expect(check).toMatchObject({ caseNo: 'R4', temperatureC: '38.1', symptoms: ['cough'], recordedBy: 'key-nurse-1' });

  const [insp] = await tdb.db.select().from(addressInspections).where(eq(addressInspections.id, 'R4-I1'));
  expect(insp).toMatchObject({ status: 'passed', address: 'Flat 5', inspector: 'w-9', street: 'Fulilu' });
  expect((await caseRow('R4'))!.stateVersion).toBe(6);
});

it('a read model that follows a whole lifecycle ends matching the last state', async () => {
  const steps: [number, Partial<CaseRow>][] = [
    [1, { phase: 'REQUESTED' }],
    [2, { phase: 'ROOM_ASSIGNED', hotelId: 'h', roomId: 'h:1' }],
    [3, { phase: 'IN_TRANSIT', hotelId: 'h', roomId: 'h:1' }],
    [4, { phase: 'OBSERVATION', hotelId: 'h', roomId: 'h:1', colour: 'green', arrivedAt: '2024-03-01T08:00:00.000Z' }],
    [5, { phase: 'RELEASE_PENDING', hotelId: 'h', roomId: 'h:1', colour: 'green', inspectionStatus: 'requested' }],
    [6, { phase: 'RELEASED', hotelId: 'h', roomId: 'h:1', colour: 'green', inspectionStatus: 'passed' }],
  ];
  for (const [v, patch] of steps) await acts.recordCase(input(row('R5', v, patch), [ev(v, String(patch.phase))]));
  expect(await caseRow('R5')).toMatchObject({ phase: 'RELEASED', inspectionStatus: 'passed', stateVersion: 6 });
  expect((await eventsOf('R5')).map((e) => e.kind)).toEqual(steps.map(([, p]) => p.phase));
});

it('a write at a version already written replaces it: a phantom from a task that never completed is repaired by its retry', async () => {
  // The task that made version 3 wrote inside itself, then its worker died before the task
  // completed: its content (times, a check nobody will resend) never became the case's.
  await acts.recordCase({ ...input(row('R8', 2), [ev(1, 'requested'), ev(2, 'room_assigned')]), lastSeq: 2 });
  const phantomAt = '2024-03-01T05:00:00.000Z';
  await acts.recordCase({
    ...input(row('R8', 3, { phase: 'OBSERVATION', arrivedAt: phantomAt }), [
      { ...ev(3, 'arrived'), at: phantomAt },
      ev(4, 'health_check'),
    ]),
    lastSeq: 4,
  });
  // The retried task reaches version 3 too, with the true content and one event fewer.
  const trueAt = '2024-03-01T05:00:07.000Z';
  await acts.recordCase({
    ...input(row('R8', 3, { phase: 'OBSERVATION', arrivedAt: trueAt }), [{ ...ev(3, 'arrived'), at: trueAt }]),
    lastSeq: 3,
  });
  expect((await caseRow('R8'))!.arrivedAt?.toISOString()).toBe(trueAt);
  const events = await eventsOf('R8');
  expect(events.map((e) => [e.seq, e.kind, e.at.toISOString()])).toEqual([
    [1, 'requested', '2024-03-01T00:01:00.000Z'],
    [2, 'room_assigned', '2024-03-01T00:02:00.000Z'],
    [3, 'arrived', trueAt],
  ]);
  // An older write arriving late still changes nothing and removes nothing.
  await acts.recordCase({ ...input(row('R8', 2), [ev(2, 'room_assigned')]), lastSeq: 2 });
  expect((await caseRow('R8'))!.stateVersion).toBe(3);
  expect((await eventsOf('R8')).map((e) => e.seq)).toEqual([1, 2, 3]);
});

it('a write inside a workflow task gets a deadline; after some hang in a row, the next fail at once until the activity path writes again', async () => {
  // A database that takes every transaction and never answers (a partition).
  const partition = hangingDb(true);
  const acts2 = createActivities({ db: partition.db, integrations: integ, log: silentLog });
  const inTask = new MockActivityEnvironment({ isLocal: true, workflowType: 'caseWorkflowV2' });
  const asActivity = new MockActivityEnvironment({ isLocal: false });

  // Each of the first ones waits out the deadline: slow is not away.
  for (let i = 0; i < LOCAL_WRITE_FAILURES_AWAY; i++) {
    const t0 = Date.now();
    await expect(inTask.run(acts2.recordCase, input(row('R6', 1)))).rejects.toThrow(/no answer within/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(LOCAL_WRITE_DEADLINE_MS - 50);
  }
  // That many in a row: away. The next fails at once, even with the database back.
  partition.hanging = false;
  const t1 = Date.now();
  await expect(inTask.run(acts2.recordCase, input(row('R6', 2)))).rejects.toThrow(/activity path/);
  expect(Date.now() - t1).toBeLessThan(LOCAL_WRITE_DEADLINE_MS);
  expect(await caseRow('R6')).toBeUndefined();
  expect(LOCAL_WRITE_COOLDOWN_MS).toBeGreaterThan(LOCAL_WRITE_DEADLINE_MS);
  // A v1 case's local write has no other path: it is never refused by the cooldown.
  const v1Task = new MockActivityEnvironment({ isLocal: true, workflowType: 'caseWorkflow' });
  await v1Task.run(acts2.recordCase, input(row('R6v1', 1)));
  expect((await caseRow('R6v1'))!.stateVersion).toBe(1);
  // The activity path is not held back by it; its success ends the cooldown.
  await asActivity.run(acts2.recordCase, input(row('R6', 2)));
  expect((await caseRow('R6'))!.stateVersion).toBe(2);
  await inTask.run(acts2.recordCase, input(row('R6', 3)));
  expect((await caseRow('R6'))!.stateVersion).toBe(3);
});

it('a write inside a workflow task that succeeds between slow ones keeps the path open (a loaded database is not away)', async () => {
  const slow = hangingDb(false);
  const acts3 = createActivities({ db: slow.db, integrations: integ, log: silentLog });
  const inTask = new MockActivityEnvironment({ isLocal: true, workflowType: 'caseWorkflowV2' });
  for (let v = 1; v <= 2 * LOCAL_WRITE_FAILURES_AWAY; v++) {
    slow.hanging = v % 2 === 1;
    const write = inTask.run(acts3.recordCase, input(row('R7', v)));
    if (slow.hanging) await expect(write).rejects.toThrow(/no answer within/);
    else await write;
  }
  expect((await caseRow('R7'))!.stateVersion).toBe(2 * LOCAL_WRITE_FAILURES_AWAY);
});

it("many cases' writes in one statement land as each alone would, a case's later write after its earlier", async () => {
  const fresh = await recordCases(tdb.db, [
    input(row('B1', 1), [ev(1, 'requested')]),
    input(row('B2', 1), [ev(1, 'requested')]),
    input(row('B1', 2, { phase: 'OBSERVATION' }), [ev(2, 'arrived', nurse)]),
    // An older write of B2 after its newer one in the same statement: adds nothing, moves nothing back.
    input(row('B2', 0, { phase: 'CANCELLED' }), [ev(1, 'stale')]),
  ]);
  expect(fresh).toEqual([true, true, true, false]);
  expect((await caseRow('B1'))!).toMatchObject({ phase: 'OBSERVATION', stateVersion: 2 });
  expect((await caseRow('B2'))!).toMatchObject({ phase: 'REQUESTED', stateVersion: 1 });
  expect((await eventsOf('B1')).map((e) => `${e.seq}:${e.kind}`)).toEqual(['1:requested', '2:arrived']);
  expect((await eventsOf('B2')).map((e) => `${e.seq}:${e.kind}`)).toEqual(['1:requested']);
});

it("the API's batched writer: a write the database refuses fails alone, the others of its statement land", async () => {
  const writer = createWriter(tdb.db);
  // Two go at once, alone; the two after them wait and go together in one statement.
  const results = await Promise.allSettled([
    writer.write(input(row('W1', 1), [ev(1, 'requested')]), 5000),
    writer.write(input(row('W2', 1), [ev(1, 'requested')]), 5000),
    writer.write(input(row('W3', 1), [ev(1, 'requested')]), 5000),
    // No phase: the cases row refuses it (NOT NULL), and with it the statement it shares with W3.
    writer.write(input(row('W4', 1, { phase: undefined as unknown as CaseRow['phase'] }), [ev(1, 'requested')]), 5000),
  ]);
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
  expect(String((results[3] as PromiseRejectedResult).reason)).toMatch(/read model write failed: .*phase/);
  for (const c of ['W1', 'W2', 'W3']) expect((await caseRow(c))!.stateVersion).toBe(1);
  expect(await caseRow('W4')).toBeUndefined();
});

it("the API's batched writer: a hung statement frees its slot, and a write whose caller gave up is not made", async () => {
  const hd = hangingDb(true);
  const writer = createWriter(hd.db, { inFlight: 1, statementMs: 300 });
  const hung = writer.write(input(row('H1', 1), [ev(1, 'requested')]), 5000);
  // Behind the hung statement; its caller gives up at 100 ms.
  const abandoned = writer.write(input(row('H2', 1), [ev(1, 'requested')]), 100);
  await expect(abandoned).rejects.toThrow(/not made in 100 ms/);
  hd.hanging = false;
  const later = writer.write(input(row('H3', 1), [ev(1, 'requested')]), 5000);
  await expect(hung).rejects.toThrow(/did not finish in 300 ms/);
  await expect(later).resolves.toBeUndefined();
  expect((await caseRow('H3'))!.stateVersion).toBe(1);
  // The abandoned write was dropped from the queue, not made after the slot came free.
  expect(await caseRow('H2')).toBeUndefined();
});

it("the API's batched writer refuses at once beyond its queue limit", async () => {
  const hd = hangingDb(true);
  const writer = createWriter(hd.db, { inFlight: 1, queueMax: 1, statementMs: 200 });
  const first = writer.write(input(row('Q1', 1)), 1000);
  const queued = writer.write(input(row('Q2', 1)), 1000);
  await expect(writer.write(input(row('Q3', 1)), 1000)).rejects.toThrow(/beyond the limit/);
  hd.hanging = false;
  await expect(first).rejects.toThrow(/did not finish/);
  await expect(queued).resolves.toBeUndefined();
});

describe('caseWorkflowV5: writes made in workflow tasks (drizzle/0008_task_write_fence.sql)', () => {
  const escalation = (id: string, status = 'open'): Escalation => ({
    id,
    kind: 'missed_check',
    level: 'nurse',
    severity: 'amber',
    reason: `escalation ${id}`,
    status: status as Escalation['status'],
    openedAt: '2024-03-02T00:00:00.000Z',
  });
  const check = (checkId: string) => ({
    checkId,
    takenAt: '2024-03-02T00:00:00.000Z',
    temperatureC: 36.6,
    symptoms: [],
    by: nurse,
  });
  const escalationIds = async (caseNo: string) =>
    (await tdb.db.select().from(escalations).where(eq(escalations.caseNo, caseNo))).map((e) => e.id).sort();
  const checkIds = async (caseNo: string) =>
    (await tdb.db.select().from(healthChecks).where(eq(healthChecks.caseNo, caseNo))).map((c) => c.id).sort();

  it('a task that never completed wrote a later version and rows of its own: the retry, a repair at a later fence, replaces the row and removes them', async () => {
    await recordCase(tdb.db, input(row('F1', 4), [ev(1, 'requested'), ev(2, 'arrived')], { fence: 100 }));
    // The task at fence 105 wrote and never completed: version 6, an escalation, a check, two events.
    await recordCase(
      tdb.db,
      input(row('F1', 6, { openEscalations: 1 }), [ev(3, 'escalation_opened'), ev(4, 'missed_check')], {
        fence: 105,
        escalations: [escalation('F1-E1')],
        checks: [check('phantom')],
        lastSeq: 4,
      }),
    );
    // Its retry (fence 108) took a check first: version 5, no escalation. A lower version, still newer.
    expect(
      await recordCase(
        tdb.db,
        input(row('F1', 5), [ev(3, 'health_check', nurse)], {
          fence: 108,
          checks: [check('real')],
          lastSeq: 3,
          repair: { samples: [], checks: ['real'], escalations: [] },
        }),
      ),
    ).toBe(true);
    expect((await caseRow('F1'))!).toMatchObject({ stateVersion: 5, openEscalations: 0, writtenFence: 108 });
    expect((await eventsOf('F1')).map((e) => `${e.seq}:${e.kind}`)).toEqual([
      '1:requested',
      '2:arrived',
      '3:health_check',
    ]);
    expect(await escalationIds('F1')).toEqual([]);
    expect(await checkIds('F1')).toEqual(['real']);
  });

  it('a write from an earlier task that lands late (a zombie) changes nothing, whatever its version', async () => {
    await recordCase(tdb.db, input(row('F2', 3), [ev(1, 'requested')], { fence: 50 }));
    await recordCase(tdb.db, input(row('F2', 4, { phase: 'OBSERVATION' }), [ev(2, 'arrived')], { fence: 60 }));
    expect(await recordCase(tdb.db, input(row('F2', 9, { phase: 'RELEASED' }), [ev(2, 'wrong')], { fence: 55 }))).toBe(
      false,
    );
    expect((await caseRow('F2'))!).toMatchObject({ stateVersion: 4, phase: 'OBSERVATION', writtenFence: 60 });
    expect((await eventsOf('F2')).map((e) => e.kind)).toEqual(['requested', 'arrived']);
  });

  it('two writes of one task go by version; a repair of the same task wins (the retry of a task that failed)', async () => {
    await recordCase(tdb.db, input(row('F3', 5), [], { fence: 70 }));
    expect(await recordCase(tdb.db, input(row('F3', 4), [], { fence: 70 }))).toBe(false);
    expect((await caseRow('F3'))!.stateVersion).toBe(5);
    expect(
      await recordCase(
        tdb.db,
        input(row('F3', 4), [], { fence: 70, repair: { samples: [], checks: [], escalations: [] } }),
      ),
    ).toBe(true);
    expect((await caseRow('F3'))!.stateVersion).toBe(4);
  });

  it("the worker makes a task's two writes in order, so a repair written first is not put back over the second (taskWriteSinks)", async () => {
    await recordCase(tdb.db, input(row('F9', 5), [ev(1, 'requested')], { fence: 60, checks: [check('c1')] }));
    // A worker took the case up afresh: in its first task the loop went round twice, a repair at
    // version 6, then version 7 with a check. The SDK calls both sinks at once; the repair's
    // statement is the slower to start (a busy pool).
    const sinks = taskWriteSinks({
      write: async (b) => {
        if (b.repair) await new Promise((r) => setTimeout(r, 50));
        await recordCase(tdb.db, b);
      },
      report: async () => {
        throw new Error('no write should be reported');
      },
      log: silentLog,
    });
    const info = { workflowId: 'case-F9', runId: 'run-F9', taskTimeoutMs: 10_000 } as WorkflowInfo;
    await Promise.all([
      sinks.readModel.write.fn(
        info,
        input(row('F9', 6), [ev(2, 'arrived')], {
          fence: 70,
          lastSeq: 2,
          checks: [],
          repair: { samples: [], checks: ['c1'], escalations: [] },
        }),
        70,
      ),
      sinks.readModel.write.fn(
        info,
        input(row('F9', 7), [ev(2, 'arrived'), ev(3, 'health_check', nurse)], {
          fence: 70,
          lastSeq: 3,
          checks: [check('c2')],
        }),
        70,
      ),
    ]);
    expect((await caseRow('F9'))!).toMatchObject({ stateVersion: 7, writtenFence: 70 });
    expect(await checkIds('F9')).toEqual(['c1', 'c2']);
    expect((await eventsOf('F9')).map((e) => `${e.seq}:${e.kind}`)).toEqual([
      '1:requested',
      '2:arrived',
      '3:health_check',
    ]);
  });

  it("an in-task repair that lands after its own task's write by activity changes nothing (drizzle/0011)", async () => {
    await recordCase(tdb.db, input(row('F10', 5), [ev(1, 'requested')], { fence: 60, checks: [check('c1')] }));
    // A fresh copy's first task wrote in the task (a repair at v6, A), then finished and wrote by
    // activity (X: v7, a check more, carrying A). A's statement stalled past its deadline and
    // lands after X.
    const repairOf = (checks: string[]) => ({ samples: [], checks, escalations: [] });
    // X through the `recordCase` activity, which marks its writes as made by activity.
    const byActivity = (i: RecordCaseInput) => new MockActivityEnvironment({ isLocal: false }).run(acts.recordCase, i);
    await byActivity(
      input(row('F10', 7), [ev(2, 'arrived'), ev(3, 'health_check', nurse)], {
        fence: 70,
        lastSeq: 3,
        checks: [check('c2')],
        repair: repairOf(['c1', 'c2']),
      }),
    );
    expect((await caseRow('F10'))!).toMatchObject({ stateVersion: 7, writtenInTask: false });
    expect(
      await recordCase(
        tdb.db,
        input(row('F10', 6), [ev(2, 'arrived')], { fence: 70, lastSeq: 2, repair: repairOf(['c1']), inTask: true }),
      ),
    ).toBe(false);
    expect((await caseRow('F10'))!).toMatchObject({ stateVersion: 7, writtenFence: 70, writtenInTask: false });
    expect(await checkIds('F10')).toEqual(['c1', 'c2']);
    expect((await eventsOf('F10')).map((e) => `${e.seq}:${e.kind}`)).toEqual([
      '1:requested',
      '2:arrived',
      '3:health_check',
    ]);
    // Between writes made in tasks, a repair of the same task still wins (the retry of a failed
    // attempt), and so does the activity's repair over an in-task write.
    await recordCase(tdb.db, input(row('F11', 5), [], { fence: 80, inTask: true }));
    expect(await recordCase(tdb.db, input(row('F11', 4), [], { fence: 80, repair: repairOf([]), inTask: true }))).toBe(
      true,
    );
    expect((await caseRow('F11'))!).toMatchObject({ stateVersion: 4, writtenInTask: true });
    await recordCase(tdb.db, input(row('F12', 5), [], { fence: 90, inTask: true }));
    await byActivity(input(row('F12', 4), [], { fence: 90, repair: repairOf([]) }));
    expect((await caseRow('F12'))!).toMatchObject({ stateVersion: 4, writtenInTask: false });
    // A write without a fence (the API's, for older cases) leaves the mark alone.
    await recordCase(tdb.db, input(row('F12', 6)));
    expect((await caseRow('F12'))!).toMatchObject({ stateVersion: 6, writtenInTask: false });
  });

  it("during an upgrade, the retry of an old worker's failed task still replaces what that attempt wrote in the task (no mark: 0009's rules)", async () => {
    const repairOf = (checks: string[]) => ({ samples: [], checks, escalations: [] });
    await recordCase(tdb.db, input(row('F13', 5), [], { fence: 100, checks: [check('c1')], inTask: true }));
    // An old worker (no mark) applied an update in the task at fence 200, wrote, and was stopped
    // before completing it; the update never reached the history.
    await recordCase(tdb.db, input(row('F13', 6), [], { fence: 200, checks: [check('c2')] }));
    expect((await caseRow('F13'))!).toMatchObject({ stateVersion: 6, writtenInTask: null });
    // The retry, on a new worker: its first write repairs, at the same fence and a lower version.
    expect(
      await recordCase(tdb.db, input(row('F13', 5), [], { fence: 200, repair: repairOf(['c1']), inTask: true })),
    ).toBe(true);
    expect((await caseRow('F13'))!).toMatchObject({ stateVersion: 5, writtenInTask: true });
    expect(await checkIds('F13')).toEqual(['c1']);
  });

  it('a repair keeps what it lists, a late result the API filed, and a sample a lab has answered', async () => {
    await recordCase(
      tdb.db,
      input(row('F4', 2), [], {
        fence: 10,
        escalations: [escalation('F4-E1'), escalation('F4-E2')],
        checks: [check('c1'), check('c2')],
      }),
    );
    await tdb.db.insert(escalations).values({
      id: 'F4-L-S9-positive',
      caseNo: 'F4',
      kind: 'late_result',
      level: 'command_centre',
      severity: 'red',
      reason: 'late',
      status: 'open',
      openedAt: new Date(),
    });
    await recordCase(
      tdb.db,
      input(row('F4', 3), [], { fence: 20, repair: { samples: [], checks: ['c1'], escalations: ['F4-E1'] } }),
    );
    expect(await escalationIds('F4')).toEqual(['F4-E1', 'F4-L-S9-positive']);
    expect(await checkIds('F4')).toEqual(['c1']);
  });

  it('writes without a fence (older cases, the API) keep the version rule', async () => {
    await recordCase(tdb.db, input(row('F5', 3)));
    expect(await recordCase(tdb.db, input(row('F5', 2)))).toBe(false);
    expect(await recordCase(tdb.db, input(row('F5', 3, { phase: 'OBSERVATION' })))).toBe(true);
    expect((await caseRow('F5'))!).toMatchObject({ stateVersion: 3, phase: 'OBSERVATION', writtenFence: null });
  });
});
