import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  proxySinks,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';

import type { CaseActivities, RecordCaseInput } from '../activities/types';
import {
  decide,
  decideQueued,
  dueTasks,
  initialState,
  isComplete,
  nextWakeAt,
  policyOf,
  previewPolicy,
  validate,
} from '../domain/case/decide';
import type {
  CaseContext,
  CaseEvent,
  CaseState,
  ChangeRecord,
  Decision,
  MessageEvent,
  Reply,
  Task,
  TaskResult,
} from '../domain/case/model';
import { caseView } from '../domain/case/view';
import { keyCovers, type KeyScope } from '../domain/jurisdiction';
import { checkScheduleOf } from '../domain/rounds';
import { maskName, ROLES, SYSTEM_ACTOR } from '../domain/types';
import {
  CaseColourKey,
  CasePhaseKey,
  HotelIdKey,
  OpenEscalationsKey,
  ReleaseDueKey,
} from '../temporal/search-attributes';
import {
  ackEscalationUpdate,
  applyPolicyUpdate,
  arrivalSignal,
  homeCheckInUpdate,
  cancelUpdate,
  changeColourUpdate,
  changeStayUpdate,
  departureSignal,
  doorAlarmSignal,
  healthCheckSignal,
  healthCheckUpdate,
  scopedHealthCheckUpdate,
  inspectionResultSignal,
  labResultSignal,
  labResultUpdate,
  previewPolicyQuery,
  readModelBehindSignal,
  resolveEscalationUpdate,
  roomOfferedSignal,
  setAddressUpdate,
  stateQuery,
  viewQuery,
  type CaseInputV2,
  type CaseOutcome,
} from './messages';
import type { ReadModelSinks } from './sinks';

/** Every task is bounded: a system that stays down surfaces as a failed task, which the case retries and escalates. */
const acts = proxyActivities<CaseActivities>({
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
const notices = proxyActivities<Pick<CaseActivities, 'notifyEscalation'>>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '2 minutes',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});
/**
 * Read-model writes as an ordinary activity, running beside the loop: the path of cases started
 * before LOCAL_RECORDS_PATCH, and the fallback of newer ones while a local write fails. (A local
 * activity left running while the loop goes on resolves at a different point on replay than it
 * did live, which breaks determinism: the local write below is awaited by the loop instead.)
 */
const records = proxyActivities<Pick<CaseActivities, 'recordCase'>>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '1 minute',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds' },
});

/**
 * Read-model writes as a local activity awaited by the loop (LOCAL_RECORDS_PATCH): the write runs
 * inside the workflow task that made the change and leaves one marker in history, instead of an
 * activity task and a second workflow task per message. Short and tried once: alerts started in
 * the same task reach the server when the task completes, so a slow or failing write must not hold
 * them; its batch goes to the activity path and the loop goes on (the worker fails these writes
 * at once while its database is away: LOCAL_WRITE_DEADLINE_MS in src/activities).
 */
const localRecords = proxyLocalActivities<Pick<CaseActivities, 'recordCase'>>({
  startToCloseTimeout: '2 seconds',
  // Waiting for a free local-activity slot counts too: a worker full of them does not hold alerts.
  scheduleToCloseTimeout: '3 seconds',
  retry: { maximumAttempts: 1 },
});

/**
 * The read model written in the workflow task (caseWorkflowV5): the worker makes the write before
 * it sends the task's completion (src/activities/task-writes.ts), so there is no activity and no
 * second workflow task for it, and no event in history either.
 */
const { readModel: taskWrite } = proxySinks<ReadModelSinks>();

const HISTORY_KEPT = 400;
/** The waiting list for rooms (src/integrations/hotel.ts reserveInQueue). */
export const ROOM_QUEUE_PATCH = 'room-waiting-list';
/** One missed-check escalation per person at a time (CaseContext.foldMissedChecks). */
export const MISSED_CHECK_FOLD_PATCH = 'missed-check-fold';
/** The read model written inside the workflow task (localRecords). */
export const LOCAL_RECORDS_PATCH = 'v2-local-records';
/**
 * The end of the in-task write: from the first workflow task a case runs on code with this patch,
 * it writes the read model only through the activity beside the loop, never a local activity.
 *
 * Why: with SDK 1.24 (core), a query answered while the write's local activity is in flight lets
 * core complete the workflow task early. When the local activity has finished by then, its marker
 * goes into that completion although the workflow has not yet been told the result; the workflow
 * hears it in the next task, together with that task's events. On replay core tells it at once,
 * in the first task. Whatever the loop does on hearing it (start a timer, go round again, hand a
 * failed batch to the activity) then happens in a different task than it did live: timer ids
 * shift ("Timer fired event did not have expected timer id 7, it was 6") or commands come in
 * another order ("Activity machine does not handle ... UpsertWorkflowSearchAttributes"). Both
 * histories are in test/evidence; docs/ARCHITECTURE.md, "Versioning", has the whole story.
 */
export const NO_LOCAL_RECORDS_PATCH = 'no-local-records';
/**
 * The read model written by the answer: a health check sent by the API with the read model's
 * version (`readModel`) is answered with its read-model write (`readModelWrite`), which the API
 * applies before it answers the nurse, instead of an activity task and a second workflow task per
 * check. Until the case knows that write is in the read model (the next check's `readModel`
 * version reaches it, or an activity write that carried it succeeded), its content stays owed and
 * is carried again by every later write; the API reports a write it could not make
 * (readModelBehindSignal) and the case then writes it by activity. docs/ARCHITECTURE.md, "The read
 * model written by the answer".
 */
export const ANSWER_WRITES_PATCH = 'answer-writes';

/**
 * One person's quarantine (v2): a thin interpreter around the pure decision core in
 * src/domain/case. Messages and timer ticks go into `decide`; the tasks it asks for run as
 * activities, each outcome fed back as an event. Alerts never wait for the read model: notices
 * are tasks of their own, and the read model is written beside the loop, not in its way.
 *
 * Cases started before caseWorkflowV3 drain on this type: it asks `patched` for each rule, so
 * every history it wrote replays unchanged (test/histories/v2-*).
 */
export async function caseWorkflowV2(input: CaseInputV2): Promise<CaseOutcome> {
  return runCase(input, false);
}

/**
 * The case as new cases run it (v3): the same decision core, messages and read model as v2, with
 * its three patched rules always on and no markers for them (one marker per run since
 * NO_LOCAL_RECORDS_PATCH: the read model by activity, not in the task), and two fewer history events per turn
 * of the loop: the wake-up timer is kept while the next wake-up time stays the same (v2 cancels
 * and starts one on every message), and the search attributes the start set are not upserted
 * again. It decides as v2 with its patches on, and also ticks where v2 can miss a wake-up (the
 * start of a continued run; a timer that fired with a message that woke the loop first):
 * docs/ARCHITECTURE.md, "Versioning". Continue-as-new keeps the type.
 */
export async function caseWorkflowV3(input: CaseInputV2): Promise<CaseOutcome> {
  return runCase(input, true);
}

/**
 * The case as new cases run it (v4): v3 with the two patches v3 asks since it was written always
 * on, and asked of nobody: the read model by activity from the first write (`no-local-records`),
 * and health checks whose answer carries their write (`answer-writes`). So a new case records no
 * patch marker and no `TemporalChangeVersion` upsert at all (a v3 case: one of each per run, and
 * one more at its first check). The same commands as v3 with both patches on.
 * docs/ARCHITECTURE.md, "Versioning". Continue-as-new keeps the type.
 */
export async function caseWorkflowV4(input: CaseInputV2): Promise<CaseOutcome> {
  return runCase(input, true, true);
}

/**
 * The case as new cases run it (v5): v4 with its read model written inside the workflow task by
 * the worker (the `readModel` sink, src/workflows/sinks.ts), instead of a `recordCase` activity and
 * a second workflow task per change, or a write handed to the API in an update's answer. The
 * worker makes the write before it completes the task, so whatever the case answers, and whatever
 * Temporal records, is in the read model by then. A write the worker could not make comes back as
 * `readModelBehind` with the task's fence, before the task completes, so the case hears of it in
 * its next task; a task that follows with no such word means the write was made. Meanwhile and
 * until an activity write succeeds, the case writes by activity, as v4 does. Its last write before
 * it ends or continues as new goes by activity too, so that no run ends on a write it cannot hear
 * about. docs/ARCHITECTURE.md, "The read model written in the task (v5)". Continue-as-new keeps the type.
 */
export async function caseWorkflowV5(input: CaseInputV2): Promise<CaseOutcome> {
  return runCase(input, true, true, true);
}

/**
 * The case as new cases run it (v6): v5 deciding with its check slots judged by event time
 * (CaseContext.slotsByEventTime): only a tick judges a watched slot missed, after the messages
 * already in the history, so a check a busy case takes in late still counts for the slot it was
 * sent in time for; a check counts for the slot whose window holds it; missed-check chains climb
 * on ticks; release waits for the tick that judges a slot whose time came; a held case with one
 * check time a day goes on being checked. Its commands differ from v5's where its decisions do, so
 * it is a new type: v5 cases drain on v5. docs/ARCHITECTURE.md, "Versioning". Continue-as-new
 * keeps the type.
 */
export async function caseWorkflowV6(input: CaseInputV2): Promise<CaseOutcome> {
  return runCase(input, true, true, true, true);
}

async function runCase(input: CaseInputV2, v3: boolean, v4 = false, v5 = false, v6 = false): Promise<CaseOutcome> {
  const { request, policy } = input;
  // v2: cases started on code with the district's waiting list use it; cases started before keep
  // asking for a room on their own backoff (their histories replay unchanged).
  // Likewise, cases started on code that folds missed checks into one escalation do so; older
  // ones keep an escalation per missed slot, also after continuing as new (the new run would see
  // the patch as new code: the rule is carried, or the state would mix both kinds of chain).
  // v3 was written after all three: every rule is on. Both types ask `patched` one thing since:
  // whether the read model is still written in the task (NO_LOCAL_RECORDS_PATCH).
  const ctx: CaseContext = {
    policy,
    request,
    roomQueue: v3 || patched(ROOM_QUEUE_PATCH),
    foldMissedChecks:
      v3 || (input.carried ? input.carried.foldMissedChecks === true : patched(MISSED_CHECK_FOLD_PATCH)),
    // v6: slots judged by event time (a new type: the rule changes decisions, v5 cases drain on v5).
    slotsByEventTime: v6,
  };
  // Cases started on code that writes the read model inside the workflow task do so (also after
  // continuing as new: the path leaves no trace in the state); older ones keep the activity.
  const localWrites = !v4 && (v3 || patched(LOCAL_RECORDS_PATCH));
  const { workflowId } = workflowInfo();
  const caseNo = request.caseNo;

  let s: CaseState;
  let history: ChangeRecord[] = input.carried?.history ?? [];
  // Change records not yet in the event log: kept until written, carried across continue-as-new.
  let unrecorded: ChangeRecord[] = input.carried?.unrecorded ?? [];
  const touched = {
    samples: new Set<string>(),
    escalations: new Set<string>(),
    checks: new Set<string>(),
    inspection: false,
  };
  let wake = 0;
  let recordedVersion = -1;
  /**
   * A write handed to the API in an update's answer (ANSWER_WRITES_PATCH) and not yet known to be
   * in the read model: its content is owed, and every later write carries it again.
   */
  let handed: { events: ChangeRecord[]; batch: RecordCaseInput; version: number; fence?: number } | undefined;
  /**
   * v5: a write made in a workflow task failed (the worker said so, readModelBehind): writes go
   * by activity until one succeeds.
   */
  let taskWritesAway = false;
  /**
   * v5: whether this worker's copy of the case has made its first write since it took the case up
   * (a replay after a restart, an eviction, or a task that failed): that write repairs whatever a
   * task that never completed wrote. Not part of the case's state: it changes what the write
   * carries, never a command.
   */
  let repairedHere = false;
  /** How many runs came before this one: v5's writes are ordered by run, then task. */
  const runNo = input.carried?.run ?? 0;
  /** v5: the order of a write made now (the run, then the task's history length). */
  const fenceNow = () => runNo * 2 ** 32 + workflowInfo().historyLength;
  const alarm = wakeAlarm(() => {
    wake++;
  });

  function absorb(d: Decision): Decision {
    s = d.state;
    if (d.records.length) {
      unrecorded.push(...d.records);
      history.push(...d.records);
      if (history.length > HISTORY_KEPT) history = history.slice(-HISTORY_KEPT);
    }
    for (const id of d.touched.samples) touched.samples.add(id);
    for (const id of d.touched.escalations) touched.escalations.add(id);
    for (const id of d.touched.checks) touched.checks.add(id);
    touched.inspection ||= d.touched.inspection;
    if (d.changed) wake++;
    return d;
  }
  const apply = (event: CaseEvent): Decision => absorb(decide(s, event, ctx, Date.now()));

  if (input.carried) {
    s = input.carried.state;
    // v3: what fell due between the last run's last look at the clock and this run's start (a
    // worker away at the hand-over) is handled now, not at the next message. Judged by event time,
    // only once the messages that waited for this run are in (below, after the handlers).
    if (v3 && !ctx.slotsByEventTime) apply({ type: 'tick' });
  } else {
    s = undefined as unknown as CaseState;
    absorb(initialState(ctx, request.homeAddress, request.requestedBy, Date.now(), request.note));
  }

  // ---- messages: every one goes through decide; updates answer with its reply ----
  const answer = (r: Reply | undefined): Record<string, unknown> => {
    if (!r) return {};
    if (r.ok) return r.value;
    throw failureOf(r);
  };
  const refusal = (e: MessageEvent): void => {
    const r = validate(s, e, ctx, Date.now());
    if (r && !r.ok) throw failureOf(r);
  };
  // The message's own fields, then its type: a field called "type" in the input cannot change what it is.
  const asEvent = (type: MessageEvent['type'], i: object) => ({ ...i, type }) as unknown as MessageEvent;
  // `readModel` is the API's word on the read model, not part of the message (ANSWER_WRITES_PATCH).
  const message = (i: object): { content: object; readModel?: { version: number } } => {
    if (!('readModel' in i)) return { content: i };
    const { readModel, ...content } = i as { readModel?: unknown };
    const version = (readModel as { version?: unknown } | null)?.version;
    return typeof version === 'number' && Number.isInteger(version) ? { content, readModel: { version } } : { content };
  };
  const update = (type: MessageEvent['type']) => ({
    handler: (i: object) => {
      const { content, readModel } = message(i);
      const d = apply(asEvent(type, content));
      const result = answer(d.reply);
      if (!readModel || !answerWrites()) return result;
      // A message that changed nothing (a duplicate; perhaps the update landing after its queued
      // copy, whose sender stopped waiting) hands nothing out: what is owed is written by activity.
      if (!d.changed) {
        if (reclaim() || !nothingToWrite()) wake++;
        return result;
      }
      const write = handOver(readModel.version);
      return write ? { ...result, readModelWrite: write } : result;
    },
    validator: (i: object) => refusal(asEvent(type, message(i).content)),
  });
  const signal = (type: MessageEvent['type']) => (i: object) => {
    apply(asEvent(type, i));
  };

  setHandler(arrivalSignal, signal('arrival'));
  setHandler(departureSignal, signal('departure'));
  setHandler(labResultSignal, (i: object) => {
    // The queued copy of an answered first result (`first`, sent only beside recordLabResult)
    // means its sender stopped waiting for the update's answer: a write handed out in that answer
    // may have nobody to make it, so the case makes it. (Older results carry no `first`.)
    // (v5 hands no write to the API.)
    if (!v5 && 'first' in i && reclaim()) wake++;
    apply(asEvent('labResult', i));
  });
  setHandler(doorAlarmSignal, signal('doorAlarm'));
  setHandler(inspectionResultSignal, signal('inspectionResult'));
  setHandler(roomOfferedSignal, () => {
    apply({ type: 'roomOffered' });
  });
  // A health check queued because no worker answered its update: applied the same way, and a
  // refusal is recorded on the case (its sender was told "queued" and cannot be told otherwise).
  setHandler(healthCheckSignal, (i: object) => {
    // The queued copy of a check means its sender stopped waiting for the update's answer: a write
    // handed out in an answer may have nobody to make it, so the case makes it. (v5 hands none out.)
    if (!v5 && reclaim()) wake++;
    absorb(decideQueued(s, asEvent('healthCheck', message(i).content), ctx, Date.now()));
  });
  // The API could not make a write it was handed: the case makes it by activity.
  setHandler(readModelBehindSignal, (i) => {
    if (v5) {
      // The worker could not make the write of the task named by `fence`: this is the task right
      // after it (the worker reports before it completes that task), so `handed` is that write.
      // A report about a task that never completed (its retry wrote again) names no write held.
      if (handed?.fence === undefined || (i as { fence?: unknown } | undefined)?.fence !== handed.fence) return;
      reclaim();
      taskWritesAway = true;
      wake++;
      return;
    }
    if (reclaim()) wake++;
  });
  for (const [def, type] of [
    [healthCheckUpdate, 'healthCheck'],
    [labResultUpdate, 'labResult'],
    [changeStayUpdate, 'changeStay'],
    [changeColourUpdate, 'changeColour'],
    [setAddressUpdate, 'setAddress'],
    [cancelUpdate, 'cancel'],
    [ackEscalationUpdate, 'ackEscalation'],
    [resolveEscalationUpdate, 'resolveEscalation'],
    [applyPolicyUpdate, 'applyPolicy'],
    [homeCheckInUpdate, 'homeCheckIn'],
  ] as const) {
    const u = update(type);
    // The update definitions are typed for the v1 answers; v2 answers with the decider's reply.
    setHandler(def as never, u.handler as never, { validator: u.validator as never });
  }
  if (v5) {
    // A health check with the caller's scope (API_SCOPED_CHECKS): the case judges the key's
    // jurisdiction from its own facts, fresher than the read model's row, so the API need not read
    // that row first. v5 and v6 only: they hand no read-model write to the API, which is what the
    // API's read was otherwise for. Registering a handler adds no command: histories of cases that
    // never took one replay the same.
    const check = update('healthCheck');
    const withoutCaller = (i: object): object => {
      const { caller: _c, ...rest } = i as { caller?: unknown };
      return rest;
    };
    setHandler(scopedHealthCheckUpdate as never, ((i: object) => check.handler(withoutCaller(i))) as never, {
      validator: ((i: object) => {
        const caller = (i as { caller?: unknown }).caller;
        const where = { district: request.district, street: request.street, hotelId: s.room?.hotelId };
        // A caller with no scope, or one of the wrong shape, is covered by nothing.
        if (!isKeyScope(caller) || !keyCovers(caller, where))
          throw ApplicationFailure.create({
            type: 'Forbidden',
            message: "outside this key's jurisdiction",
            nonRetryable: true,
          });
        check.validator(withoutCaller(i));
      }) as never,
    });
  }
  setHandler(viewQuery, () => caseView(s, ctx, Date.now(), history.slice(-100)));
  setHandler(previewPolicyQuery, (i) => previewPolicy(s, ctx, i, Date.now()));
  setHandler(stateQuery, () => caseView(s, ctx, Date.now(), history.slice(-100)) as never);
  // The SDK hands the messages that came before this run's first task to their handlers as each is
  // set (above): a check queued in time during the hand-over counts before the slot is judged.
  if (input.carried && ctx.slotsByEventTime) apply({ type: 'tick' });

  // A Temporal-level cancel (e.g. `temporal workflow cancel`) becomes a cancel of the case, which
  // still frees what the case holds: the loop itself runs on, not cancellable.
  let cancelRequested = false;
  CancellationScope.current().cancelRequested.catch(() => {
    cancelRequested = true;
    wake++;
  });

  // ---- tasks: each due task runs as an activity; its outcome is an event ----
  const running = new Set<string>();
  function startTask(t: Task): void {
    running.add(t.id);
    apply({ type: 'taskStarted', taskId: t.id });
    void runTask(t).then(
      (result) => {
        running.delete(t.id);
        apply({ type: 'taskSucceeded', taskId: t.id, result });
      },
      (err: unknown) => {
        running.delete(t.id);
        if (!(err instanceof ActivityFailure)) throw err;
        // The failure's type only: a remote system's message may echo an address back.
        const cause = err.cause instanceof ApplicationFailure ? (err.cause.type ?? 'ApplicationFailure') : 'timeout';
        apply({ type: 'taskFailed', taskId: t.id, error: cause });
      },
    );
  }

  async function runTask(t: Task): Promise<TaskResult> {
    const base = { workflowId, caseNo };
    const room = s.room;
    switch (t.kind) {
      case 'reserveRoom':
        return {
          kind: 'room',
          room: await acts.reserveRoom({
            ...base,
            colour: s.colour,
            district: request.district,
            ...(ctx.roomQueue
              ? {
                  queue: {
                    requestedAt: s.requestedAt,
                    colourFirst: policyOf(s, ctx).roomQueue.colourFirst,
                  },
                }
              : {}),
          }),
        };
      case 'leaveRoomQueue':
        await acts.leaveRoomQueue(base);
        return { kind: 'none' };
      case 'releaseRoom':
        await acts.releaseRoom({ ...base, roomId: t.subject! });
        return { kind: 'none' };
      case 'checkIn':
        await acts.checkIn({ ...base, roomId: t.subject! });
        return { kind: 'none' };
      case 'checkOut':
        await acts.checkOut({ ...base, roomId: t.subject!, terminalDisinfection: !!t.terminal });
        return { kind: 'none' };
      case 'dispatchTransport':
      case 'dispatchHospital': {
        const hospital = t.kind === 'dispatchHospital';
        const d = await acts.dispatchTransport({
          ...base,
          step: hospital ? 'hospital' : 'intake',
          purpose: hospital ? 'hospital' : 'intake',
          hotelId: room?.hotelId ?? '',
          district: request.district,
          ...(room ? { roomNo: room.roomNo } : {}),
          ...(!hospital && request.pickupAddress ? { pickupAddress: request.pickupAddress } : {}),
        });
        return { kind: 'dispatch', dispatchId: d.dispatchId };
      }
      case 'cancelTransport':
        await acts.cancelTransport({ ...base, dispatchId: t.subject! });
        return { kind: 'none' };
      case 'orderSample': {
        const sample = s.samples.find((x) => x.sampleId === t.subject)!;
        const o = await acts.orderSample({
          ...base,
          sampleId: sample.sampleId,
          type: sample.type,
          reason: sample.reason,
          ...(room ? { hotelId: room.hotelId } : {}),
        });
        return { kind: 'order', labId: o.labId, orderedAt: o.orderedAt, ...(o.orderId ? { orderId: o.orderId } : {}) };
      }
      case 'requestInspection':
        await acts.requestInspection({
          ...base,
          inspectionId: t.subject!,
          district: request.district,
          street: request.street,
          address: s.homeAddress,
        });
        return { kind: 'none' };
      case 'handOver':
        await acts.handOverToCommunity({
          ...base,
          district: request.district,
          street: request.street,
          releasedAt: s.closing?.startedAt ?? new Date().toISOString(),
          certificateNo: s.closing?.certificateNo ?? `${caseNo}-R`,
        });
        return { kind: 'none' };
      case 'notify': {
        const esc = s.escalations.find((e) => e.id === t.subject);
        if (esc)
          await notices.notifyEscalation({
            ...base,
            ...(room ? { hotelId: room.hotelId } : {}),
            escalation: esc,
            ...(t.repeat ? { repeat: t.repeat } : {}),
          });
        return { kind: 'none' };
      }
      case 'returnTransfer': {
        const r = await acts.startReturnTransfer({
          ...base,
          request,
          // The address the case holds now (a new one after a failed inspection), not the first.
          homeAddress: s.homeAddress,
          policy: policyOf(s, ctx),
        });
        return { kind: 'returned', caseNo: r.caseNo };
      }
      case 'alertCommunity': {
        const esc = s.escalations.find((e) => e.id === t.subject)!;
        await acts.alertCommunity({
          ...base,
          district: request.district,
          street: request.street,
          escalationId: esc.id,
          kind: esc.kind,
          reason: esc.reason,
        });
        return { kind: 'none' };
      }
    }
  }

  // ---- the read model: one write at a time, never long in the alerts' way ----
  let recording = false;
  const nothingToWrite = () =>
    !unrecorded.length && s.version === recordedVersion && !touched.samples.size && !touched.escalations.size;
  /** A batch that was not written goes back in front of what came since, for the next write. */
  function keep(events: ChangeRecord[], batch: RecordCaseInput): void {
    unrecorded = [...events, ...unrecorded];
    for (const x of batch.samples) touched.samples.add(x.sampleId);
    for (const x of batch.escalations) touched.escalations.add(x.id);
    for (const x of batch.checks) touched.checks.add(x.checkId);
    if (batch.inspection) touched.inspection = true;
  }
  /**
   * The handed write's content back among what is to be written (the API failed it, or nobody is
   * waiting to make it): the next write, by activity, carries it. Whether there was one.
   */
  function reclaim(): boolean {
    if (!handed) return false;
    keep(handed.events, handed.batch);
    handed = undefined;
    recordedVersion = -1;
    return true;
  }
  /** Whether this case hands its writes to the API in the answer (never while it writes in the task). */
  const answerWrites = () =>
    !v5 && (v4 || ((!localWrites || patched(NO_LOCAL_RECORDS_PATCH)) && patched(ANSWER_WRITES_PATCH)));
  /**
   * The write for the API to make, after an update the API sent with the read model's version
   * (`readModelVersion`, read before it sent it). A handed write at or below that version is in
   * the read model: the write that put the row there carried it. Otherwise it is carried again.
   * None while an activity write runs: the loop writes after it, in order.
   */
  function handOver(readModelVersion: number): RecordCaseInput | undefined {
    if (handed && readModelVersion >= handed.version) handed = undefined;
    if (recording) return undefined;
    if (handed) reclaim();
    if (nothingToWrite()) return undefined;
    const events = unrecorded;
    unrecorded = [];
    const batch = recordInput(events);
    handed = { events, batch, version: s.version };
    recordedVersion = s.version;
    return batch;
  }
  /** The activity path: beside the loop (older cases; newer ones while local writes fail). */
  function writeRecords(): void {
    if (recording || nothingToWrite()) return;
    // Whatever a write handed to the API carried is carried again, so this write makes it whole.
    reclaim();
    recording = true;
    const events = unrecorded;
    unrecorded = [];
    // v5: in the order of the tasks, and a repair: the writes of a task that never completed are
    // replaced whatever it left (an activity write is rare in v5: after a report, or the last).
    const batch = v5 ? { ...recordInput(events), fence: fenceNow(), repair: repairIds() } : recordInput(events);
    const version = s.version;
    void (async () => {
      try {
        await records.recordCase(batch);
        recordedVersion = version;
        // v5: the database takes writes again; the next ones go in the task.
        taskWritesAway = false;
      } catch {
        // Postgres away: keep the batch and try again shortly; the case goes on meanwhile.
        keep(events, batch);
        log.warn('read model write failed; will retry', { caseNo });
        await sleep('5 seconds');
      } finally {
        recording = false;
        wake++;
      }
    })();
  }
  /**
   * The local path: awaited by the loop, inside the workflow task (LOCAL_RECORDS_PATCH). A failed
   * or slow write hands its batch to the activity path; the loop writes here again once that one
   * is done (`recording`), so a database that stays away costs one quick refusal per retry.
   */
  async function writeRecordsHere(): Promise<void> {
    if (recording || nothingToWrite()) return;
    const events = unrecorded;
    unrecorded = [];
    const batch = recordInput(events);
    const version = s.version;
    try {
      await localRecords.recordCase(batch);
      recordedVersion = version;
    } catch {
      keep(events, batch);
      log.warn('read model write in the workflow task failed; the activity path takes over', { caseNo });
      writeRecords();
    }
  }

  /**
   * v5: a write made in a workflow task is known to be in the read model once a later task runs
   * with no word from the worker that it failed (readModelBehind, which reaches the case before
   * the task that wrote could complete). Its content is then no longer owed.
   */
  function confirmTaskWrite(): void {
    if (handed?.fence !== undefined && handed.fence !== fenceNow()) handed = undefined;
  }
  /**
   * v5: the write handed to the worker, made before this task completes. A second write in the
   * same task (the loop went round again) carries the first's content too, whichever lands last.
   */
  function writeInTask(): void {
    confirmTaskWrite();
    if (recording) return;
    if (handed) reclaim();
    // The first write of this copy of the case repairs, and is made even with nothing new.
    const repair = !repairedHere && !workflowInfo().unsafe.isReplaying;
    if (nothingToWrite() && !repair) return;
    const fence = fenceNow();
    const events = unrecorded;
    unrecorded = [];
    const batch = { ...recordInput(events), fence, ...(repair ? { repair: repairIds() } : {}) };
    handed = { events, batch, version: s.version, fence };
    recordedVersion = s.version;
    if (repair) repairedHere = true;
    taskWrite.write(batch, fence);
  }
  /** Every sample, check and escalation the case has (a repair write). */
  function repairIds(): NonNullable<RecordCaseInput['repair']> {
    return {
      samples: s.samples.map((x) => x.sampleId),
      checks: s.checks.map((c) => c.checkId),
      escalations: s.escalations.map((e) => e.id),
    };
  }

  function recordInput(events: ChangeRecord[]): RecordCaseInput {
    const open = s.escalations.filter((e) => e.status === 'open');
    const samples = s.samples.filter((x) => touched.samples.has(x.sampleId));
    const escalations = s.escalations.filter((x) => touched.escalations.has(x.id));
    const checks = s.checks.filter((x) => touched.checks.has(x.checkId));
    const inspection = touched.inspection;
    touched.samples.clear();
    touched.escalations.clear();
    touched.checks.clear();
    touched.inspection = false;
    return {
      lastSeq: s.eventSeq,
      row: {
        caseNo,
        workflowId,
        requestId: request.requestId,
        district: request.district,
        street: request.street,
        displayName: maskName(request.person.name),
        phase: s.phase,
        colour: s.colour,
        policyName: s.policyName,
        hotelId: s.room?.hotelId,
        roomId: s.room?.roomId,
        requestedAt: s.requestedAt,
        arrivedAt: s.arrivedAt,
        stayStart: s.stayStart,
        releaseDue: s.releaseDue,
        nextCheckDue: s.closing ? undefined : s.currentSlot,
        // What the nurses' rounds list the slots after the watched one by (src/domain/rounds.ts).
        ...(s.closing || !s.currentSlot ? {} : { checkSchedule: checkScheduleOf(policyOf(s, ctx)) }),
        pendingResults: s.samples.filter((x) => x.status === 'ordered').length,
        openEscalations: open.length,
        openRedEscalations: open.filter((e) => e.severity === 'red').length,
        inspectionStatus: s.inspection.status,
        // The read model's end is the end of the hotel stay: home monitoring comes after it.
        endedAt: s.home?.startedAt ?? s.endedAt,
        stateVersion: s.version,
      },
      events: events.map((e) => ({
        seq: e.seq,
        actor: e.by,
        kind: e.kind,
        payload: e.reason ? { ...e.payload, reason: e.reason } : e.payload,
        at: e.at,
      })),
      samples: samples.map((x) => ({
        sampleId: x.sampleId,
        type: x.type,
        reason: x.reason,
        dueAt: x.dueAt,
        status: x.status,
        ...(x.order ? { labId: x.order.labId, orderedAt: x.order.takenAt, orderId: x.order.orderId } : {}),
        result: x.result ?? 'pending',
        ...(x.results.length ? { resultAt: x.results[x.results.length - 1]!.receivedAt } : {}),
      })),
      checks: checks.map((c) => ({
        checkId: c.checkId,
        takenAt: c.takenAt,
        dueAt: c.dueAt,
        temperatureC: c.temperatureC,
        symptoms: c.symptoms,
        by: c.by,
      })),
      escalations: escalations.map(({ notices: _n, ...e }) => e),
      ...(inspection
        ? {
            inspection: {
              inspectionId: s.inspection.inspectionId,
              status: s.inspection.status === 'requesting' ? 'requested' : s.inspection.status,
              requestedAt: s.inspection.requestedAt,
              resultAt: s.inspection.resultAt,
              inspector: s.inspection.inspector,
              note: s.inspection.note,
            },
          }
        : {}),
    };
  }

  // v3: what the start (or the run this one continues) already set is not upserted again: the
  // first comparison is with the attributes of the run's first event (none of ours is upserted
  // before it), so replay decides the same.
  let lastSearchAttributes: string | undefined = v3 ? undefined : '';
  function updateSearchAttributes(): void {
    const pairs: SearchAttributeUpdatePair[] = [
      { key: CasePhaseKey, value: s.phase },
      { key: CaseColourKey, value: s.colour },
      { key: HotelIdKey, value: s.room?.hotelId ?? null },
      { key: ReleaseDueKey, value: s.releaseDue ? new Date(s.releaseDue) : null },
      { key: OpenEscalationsKey, value: s.escalations.filter((e) => e.status === 'open').length },
    ];
    const signature = searchAttributeSignature(pairs.map((p) => p.value));
    lastSearchAttributes ??= searchAttributeSignature(
      pairs.map((p) => workflowInfo().typedSearchAttributes.get(p.key) ?? null),
    );
    if (signature === lastSearchAttributes) return;
    lastSearchAttributes = signature;
    upsertSearchAttributes(pairs);
  }

  const continueAsNewLimit = input.options?.continueAsNewAtHistoryLength;
  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested ||
    (continueAsNewLimit !== undefined && workflowInfo().historyLength >= continueAsNewLimit);

  // ---- the loop ----
  return await CancellationScope.nonCancellable(async () => {
    for (;;) {
      if (cancelRequested && !s.closing) {
        apply({ type: 'cancel', reason: 'workflow cancelled', by: SYSTEM_ACTOR });
        cancelRequested = false;
      }
      const now = Date.now();
      for (const t of dueTasks(s, now)) if (!running.has(t.id)) startTask(t);
      updateSearchAttributes();
      // `patched` is asked only by cases that write in the task, so the others carry no marker.
      if (localWrites && !recording && !patched(NO_LOCAL_RECORDS_PATCH)) {
        const before = wake;
        await writeRecordsHere();
        // Anything that happened while the write ran (a message, a task's outcome) is handled
        // before the loop waits: go round again.
        if (wake !== before) continue;
      } else if (v5) {
        confirmTaskWrite();
        // The last write of a run goes by activity: the run must not end on a write whose failure
        // it could only hear of in a task it will never have.
        const finishing = running.size === 0 && (isComplete(s, ctx, now) || shouldContinueAsNew());
        if (taskWritesAway || finishing) writeRecords();
        else writeInTask();
      } else writeRecords();

      const quiet = running.size === 0 && !recording && unrecorded.length === 0;
      // The case does not end, or continue as new, owing the read model a write handed out.
      if (quiet && handed && (isComplete(s, ctx, now) || shouldContinueAsNew())) {
        reclaim();
        continue;
      }
      if (quiet && isComplete(s, ctx, now)) {
        return {
          caseNo,
          phase: s.phase,
          endedAt: s.endedAt!,
          reason: s.closing?.reason,
          ...(s.closing?.certificateNo ? { certificateNo: s.closing.certificateNo } : {}),
          // The final state, so that reading a closed case needs no query (a query on a closed
          // workflow replays its whole history). The result is not part of determinism.
          view: caseView(s, ctx, now, []),
        };
      }
      if (quiet && shouldContinueAsNew()) {
        return await continueAsNew<typeof caseWorkflowV2>({
          ...input,
          carried: {
            state: s,
            history,
            unrecorded,
            foldMissedChecks: ctx.foldMissedChecks === true,
            ...(v5 ? { run: runNo + 1 } : {}),
          },
        });
      }

      const seen = wake;
      const next = nextWakeAt(s, ctx, now);
      if (v3) {
        alarm.set(next, now);
        await condition(() => wake !== seen);
        // Also when the alarm's time has come but its callback has not run yet: a message in the
        // same activation can wake the loop first, and a message whose decision does not look at
        // the time (a refused queued report) would otherwise leave that wake-up unhandled.
        if (alarm.rang(Date.now())) apply({ type: 'tick' });
      } else if (next === undefined) await condition(() => wake !== seen);
      else if (!(await condition(() => wake !== seen, Math.max(1, next - now)))) apply({ type: 'tick' });
    }
  });
}

/**
 * The v3 case's one wake-up timer. It is kept while the time it is set for stays the same, so a
 * message that does not move the next wake-up leaves no timer events in history (v2 waits with a
 * `condition` timeout: a timer cancelled and another started on every message). When it fires it
 * bumps the loop's counter through `onRing`; `rang` tells the loop a tick is due: it rang, or the
 * time it is set for has come (its timer fired in this activation, its callback not run yet; a
 * tick twice is harmless, `tick` only looks at what is due).
 */
function wakeAlarm(onRing: () => void): {
  set(at: number | undefined, now: number): void;
  rang(now: number): boolean;
} {
  let armed: { at: number; scope: CancellationScope } | undefined;
  let rung = false;
  return {
    set(at, now) {
      if (armed && armed.at === at) return;
      armed?.scope.cancel();
      armed = undefined;
      if (at === undefined) return;
      const mine = { at, scope: new CancellationScope() };
      armed = mine;
      mine.scope
        .run(() => sleep(Math.max(1, at - now)))
        .then(
          () => {
            if (armed !== mine) return;
            armed = undefined;
            rung = true;
            onRing();
          },
          () => undefined, // cancelled: a later `set` replaced it
        );
    },
    rang(now) {
      const r = rung || (armed !== undefined && armed.at <= now);
      rung = false;
      return r;
    },
  };
}

function searchAttributeSignature(values: unknown[]): string {
  return JSON.stringify(values.map((v) => (v instanceof Date ? v.getTime() : v)));
}

function failureOf(r: Extract<Reply, { ok: false }>): ApplicationFailure {
  const type = r.code === 'invalid' ? 'InvalidInput' : r.code === 'not_found' ? 'NotFound' : 'Conflict';
  return ApplicationFailure.create({ type, message: r.message, nonRetryable: true });
}

const optionalText = (v: unknown): boolean => v === undefined || (typeof v === 'string' && v.length > 0);
function isKeyScope(v: unknown): v is KeyScope {
  if (typeof v !== 'object' || v === null) return false;
  const k = v as Record<string, unknown>;
  return (
    typeof k.role === 'string' &&
    (ROLES as readonly string[]).includes(k.role) &&
    optionalText(k.district) &&
    optionalText(k.street) &&
    optionalText(k.orgId)
  );
}
