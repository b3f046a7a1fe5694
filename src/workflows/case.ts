import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  allHandlersFinished,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';

import type { CaseActivities, CaseEventRecord } from '../activities/types';
import { classifyColour } from '../domain/colour';
import { policyDayMs } from '../domain/policy';
import { unmetReleaseCriteria } from '../domain/release';
import { nextCheckSlot, releaseDueAt, samplingPlan } from '../domain/schedule';
import {
  maskName,
  SYSTEM_ACTOR,
  TERMINAL_PHASES,
  type Actor,
  type Escalation,
  type EscalationKind,
  type EscalationLevel,
  type HealthCheck,
  type Phase,
  type Sample,
  type SampleReason,
} from '../domain/types';
import {
  CaseColourKey,
  CasePhaseKey,
  HotelIdKey,
  OpenEscalationsKey,
  ReleaseDueKey,
} from '../temporal/search-attributes';
import {
  ackEscalationUpdate,
  arrivalSignal,
  cancelUpdate,
  changeColourUpdate,
  changeStayUpdate,
  doorAlarmSignal,
  healthCheckUpdate,
  inspectionResultSignal,
  labResultSignal,
  setAddressUpdate,
  stateQuery,
  type CaseInput,
  type CaseOutcome,
  type CaseState,
  type HealthCheckResult,
} from './messages';

const acts = proxyActivities<CaseActivities>({
  startToCloseTimeout: '1 minute',
  // Unlimited attempts: an integration that is down for a while delays the case, never fails it.
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/**
 * Orders and inspection requests give up after a while (the loop escalates and tries again
 * later) so that an outage of the lab or the street office never freezes the case's loop:
 * cancellations, hospital transfers and missed-check escalations keep working meanwhile.
 */
const bounded = proxyActivities<Pick<CaseActivities, 'orderSample' | 'requestInspection'>>({
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

const records = proxyActivities<Pick<CaseActivities, 'recordCase' | 'notifyEscalation'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

/**
 * Read-model writes as local activities: a marker in the workflow task instead of an activity
 * task and a second workflow task per change, which roughly halves the server round trips of a
 * health check. Versioned: cases started before this change keep their remote-activity path.
 */
const LOCAL_RECORDS_PATCH = 'local-records-v2';
const NO_LOCAL_RECORDS_PATCH = 'no-local-records';
const localRecords = proxyLocalActivities<Pick<CaseActivities, 'recordCase'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

const iso = (t: number): string => new Date(t).toISOString();
const ms = (s: string | undefined): number | undefined => (s === undefined ? undefined : Date.parse(s));
const isTerminal = (p: Phase): boolean => TERMINAL_PHASES.includes(p);
const ACTIVE_OBSERVATION: Phase[] = ['OBSERVATION', 'RELEASE_PENDING'];
const HISTORY_KEPT = 400;
const MAX_STAY_CHANGE_DAYS = 60;

/**
 * One person's quarantine, from transfer request to release (DESIGN.md "The case workflow").
 * Driven only by its input policy, signals, updates and timers. Handlers change state and
 * wake the main loop; the main loop performs the side effects (activities) in order.
 */
export async function caseWorkflow(input: CaseInput): Promise<CaseOutcome> {
  const { policy } = input;
  const request = { ...input.request };
  const info = workflowInfo();
  const workflowId = info.workflowId;
  const caseNo = request.caseNo;

  const s: CaseState = input.carried ?? {
    caseNo,
    phase: 'REQUESTED',
    colourReasons: [],
    policyName: policy.name,
    requestedAt: request.requestedAt,
    stayAdjustDays: 0,
    samples: [],
    unknownResults: [],
    checks: [],
    escalations: [],
    inspection: { inspectionId: `${caseNo}-I1`, round: 1, status: 'none' },
    releaseBlockers: [],
    history: [],
    version: 0,
    eventSeq: 0,
    missedChains: [],
    inspectionToRequest: false,
    releaseBlockedEscalated: false,
    duplicateResults: 0,
    generation: 0,
  };

  // ---- change tracking: every change is an event with who made it; the flusher writes them ----
  let pendingEvents: CaseEventRecord[] = [];
  const dirtySamples = new Set<string>();
  const dirtyEscalations = new Set<string>();
  let newChecks: HealthCheck[] = [];
  let inspectionDirty = false;
  let dirty = false;
  let wakeCounter = 0;
  const wake = () => {
    wakeCounter++;
  };

  function record(kind: string, by: Actor, payload: Record<string, unknown> = {}, reason?: string): void {
    const at = iso(Date.now());
    s.version++;
    s.eventSeq++;
    pendingEvents.push({ seq: s.eventSeq, actor: by, kind, payload: reason ? { ...payload, reason } : payload, at });
    s.history.push({ at, by, kind, reason, detail: Object.keys(payload).length ? payload : undefined });
    // The event log in Postgres keeps everything; the live state keeps the recent past only,
    // so that a noisy case cannot grow its carried state without bound.
    if (s.history.length > HISTORY_KEPT) s.history.splice(0, s.history.length - HISTORY_KEPT);
    dirty = true;
  }

  function setPhase(phase: Phase, by: Actor = SYSTEM_ACTOR, reason?: string): void {
    if (s.phase === phase) return;
    const from = s.phase;
    s.phase = phase;
    record('phase_changed', by, { from, to: phase }, reason);
    log.info('case phase', { caseNo, from, to: phase });
  }

  function openEscalation(kind: EscalationKind, level: EscalationLevel, reason: string): Escalation {
    const esc: Escalation = {
      id: `${caseNo}-E${s.escalations.length + 1}`,
      kind,
      level,
      severity: policy.severity[kind] ?? 'amber',
      reason,
      status: 'open',
      openedAt: iso(Date.now()),
    };
    s.escalations.push(esc);
    dirtyEscalations.add(esc.id);
    notifyQueue.push(esc.id);
    record('escalation_opened', SYSTEM_ACTOR, { escalationId: esc.id, kind, level, severity: esc.severity });
    return esc;
  }

  function raiseEscalation(esc: Escalation, level: EscalationLevel, reason: string): void {
    esc.level = level;
    esc.reason = reason;
    dirtyEscalations.add(esc.id);
    notifyQueue.push(esc.id);
    record('escalation_raised', SYSTEM_ACTOR, { escalationId: esc.id, level });
  }

  function closeEscalation(esc: Escalation | undefined, closedReason: string, by: Actor = SYSTEM_ACTOR): void {
    if (!esc || esc.status === 'closed') return;
    esc.status = 'closed';
    esc.closedAt = iso(Date.now());
    esc.closedReason = closedReason;
    dirtyEscalations.add(esc.id);
    record('escalation_closed', by, { escalationId: esc.id, closedReason });
  }

  const findEscalation = (id: string | undefined) => (id ? s.escalations.find((e) => e.id === id) : undefined);
  const openEscalations = () => s.escalations.filter((e) => e.status === 'open');

  function addSample(reason: SampleReason, dueAt: number, day?: number, type = policy.sampling.type): Sample {
    const sample: Sample = {
      sampleId: `${caseNo}-S${s.samples.length + 1}`,
      type,
      reason,
      day,
      dueAt: iso(dueAt),
      result: 'pending',
    };
    s.samples.push(sample);
    dirtySamples.add(sample.sampleId);
    record('sample_planned', SYSTEM_ACTOR, { sampleId: sample.sampleId, reason, day });
    return sample;
  }

  // ---- read model, event log and search attributes, written after every change ----
  const notifyQueue: string[] = [];
  let lastSearchAttributes = '';
  let flushing = false;

  async function flush(): Promise<void> {
    if (flushing) return;
    flushing = true;
    try {
      while (dirty || notifyQueue.length) {
        dirty = false;
        const events = pendingEvents;
        pendingEvents = [];
        const samples = s.samples.filter((x) => dirtySamples.has(x.sampleId));
        dirtySamples.clear();
        const escalations = s.escalations.filter((x) => dirtyEscalations.has(x.id));
        dirtyEscalations.clear();
        const checks = newChecks;
        newChecks = [];
        const sendInspection = inspectionDirty;
        inspectionDirty = false;
        updateSearchAttributes();
        await writeRecords({
          row: readModelRow(),
          events,
          samples,
          checks,
          escalations,
          inspection: sendInspection
            ? {
                inspectionId: s.inspection.inspectionId,
                status: s.inspection.status,
                address: request.homeAddress,
                requestedAt: s.inspection.requestedAt,
                resultAt: s.inspection.resultAt,
                inspector: s.inspection.inspector,
                note: s.inspection.note,
              }
            : undefined,
        });
        if (patched(LOCAL_RECORDS_PATCH)) {
          // All of this flush's notices at once: a run of missed checks must not queue up.
          const notices = notifyQueue.splice(0).map(findEscalation);
          await Promise.all(notices.filter((e): e is Escalation => !!e).map(notify));
        } else {
          while (notifyQueue.length) {
            const esc = findEscalation(notifyQueue.shift());
            if (esc) await notify(esc);
          }
        }
      }
    } finally {
      flushing = false;
    }
  }

  async function notify(esc: Escalation): Promise<void> {
    try {
      await CancellationScope.nonCancellable(() =>
        records.notifyEscalation({ workflowId, caseNo, hotelId: s.room?.hotelId, escalation: esc }),
      );
    } catch (err) {
      // A webhook that refuses (4xx) must not fail the case: the escalation is on the list anyway.
      if (!(err instanceof ActivityFailure)) throw err;
      log.warn('escalation notification refused', { caseNo, escalationId: esc.id });
    }
  }

  async function writeRecords(input: Parameters<CaseActivities['recordCase']>[0]): Promise<void> {
    // Cases that reach code with NO_LOCAL_RECORDS_PATCH write through the activity from then on:
    // a local activity can be resolved in another workflow task on replay than it was live
    // (src/workflows/case-v2.ts, NO_LOCAL_RECORDS_PATCH). Asked first: a run that has it does not
    // ask LOCAL_RECORDS_PATCH here (the loop still asks it elsewhere, as before).
    const write =
      !patched(NO_LOCAL_RECORDS_PATCH) && patched(LOCAL_RECORDS_PATCH) ? localRecords.recordCase : records.recordCase;
    try {
      await CancellationScope.nonCancellable(() => write(input));
    } catch (err) {
      // Only a permanent failure gets here (transient ones retry forever). The next write
      // carries the whole row again; this batch's events are missing from the log, and we say so.
      if (!(err instanceof ActivityFailure)) throw err;
      log.warn('read model write refused', { caseNo, events: input.events.length });
    }
  }

  function readModelRow() {
    const open = openEscalations();
    return {
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
      nextCheckDue: s.nextCheckDue,
      pendingResults: s.samples.filter((x) => x.orderedAt && x.result === 'pending').length,
      openEscalations: open.length,
      openRedEscalations: open.filter((e) => e.severity === 'red').length,
      inspectionStatus: s.inspection.status,
      endedAt: s.endedAt,
      stateVersion: s.version,
    };
  }

  function updateSearchAttributes(): void {
    const pairs: SearchAttributeUpdatePair[] = [
      { key: CasePhaseKey, value: s.phase },
      { key: CaseColourKey, value: s.colour ?? null },
      { key: HotelIdKey, value: s.room?.hotelId ?? null },
      { key: ReleaseDueKey, value: s.releaseDue ? new Date(s.releaseDue) : null },
      { key: OpenEscalationsKey, value: openEscalations().length },
    ];
    const signature = JSON.stringify(pairs.map((p) => p.value));
    if (signature === lastSearchAttributes) return;
    lastSearchAttributes = signature;
    upsertSearchAttributes(pairs);
  }

  // ---- handlers ----
  setHandler(stateQuery, () => s);

  setHandler(arrivalSignal, (a) => {
    if (s.arrivedAt || isTerminal(s.phase)) {
      record('arrival_ignored', a.by, { phase: s.phase });
      wake();
      return;
    }
    s.arrivedAt = Number.isNaN(Date.parse(a.at)) ? iso(Date.now()) : a.at;
    record('arrived', a.by, { antigen: a.antigen ?? null });
    if (a.antigen === 'positive') {
      const sample = addSample('antigen', ms(s.arrivedAt)!, undefined, 'antigen');
      sample.orderedAt = s.arrivedAt;
      sample.result = 'positive';
      sample.resultAt = s.arrivedAt;
      openEscalation('antigen_positive', 'doctor', 'Rapid antigen positive at intake');
      s.hospital ??= { reason: 'antigen_positive' };
    }
    wake();
  });

  setHandler(labResultSignal, (r) => {
    const sample = s.samples.find((x) => x.sampleId === r.sampleId);
    if (!sample) {
      s.unknownResults.push({ sampleId: r.sampleId, result: r.result, labId: r.labId, at: r.reportedAt });
      record('unknown_sample_result', r.by, { sampleId: r.sampleId, labId: r.labId, flagged: true });
      openEscalation('unknown_sample', 'command_centre', `Result for unknown sample ${r.sampleId}`);
      wake();
      return;
    }
    if (sample.result !== 'pending') {
      s.duplicateResults++;
      return;
    }
    sample.result = r.result;
    sample.resultAt = r.reportedAt;
    sample.labId ??= r.labId;
    dirtySamples.add(sample.sampleId);
    record('lab_result', r.by, { sampleId: sample.sampleId, result: r.result });
    if (r.result === 'positive' && !isTerminal(s.phase)) {
      openEscalation('positive_result', 'doctor', `Positive ${sample.type} result`);
      s.hospital ??= { reason: 'positive_result' };
    }
    wake();
  });

  setHandler(doorAlarmSignal, (d) => {
    if (!ACTIVE_OBSERVATION.includes(s.phase)) {
      record('door_alarm_ignored', d.by, { phase: s.phase, sensorId: d.sensorId ?? null });
      wake();
      return;
    }
    record('door_alarm', d.by, { sensorId: d.sensorId ?? null });
    // One open alarm escalation at a time: a door opened again and again is one problem.
    if (!s.escalations.some((e) => e.kind === 'door_alarm' && e.status === 'open')) {
      openEscalation('door_alarm', 'nurse', 'Door sensor alarm');
    }
    wake();
  });

  setHandler(inspectionResultSignal, (r) => {
    if (r.inspectionId !== s.inspection.inspectionId || s.inspection.status !== 'requested') {
      record('inspection_result_ignored', r.by, { inspectionId: r.inspectionId, current: s.inspection.inspectionId });
      wake();
      return;
    }
    s.inspection.status = r.singleOccupancy ? 'passed' : 'failed';
    s.inspection.resultAt = r.at;
    s.inspection.inspector = r.inspector;
    s.inspection.note = r.note;
    inspectionDirty = true;
    record('inspection_result', r.by, { inspectionId: r.inspectionId, singleOccupancy: r.singleOccupancy });
    if (!r.singleOccupancy) {
      openEscalation(
        'failed_inspection',
        'command_centre',
        'Home failed the single-occupancy inspection: set another address or extend the stay',
      );
    }
    wake();
  });

  const checkResults = new Map<string, HealthCheckResult>();
  setHandler(
    healthCheckUpdate,
    (c): HealthCheckResult => {
      const previous = checkResults.get(c.checkId) ?? findCheckResult(c.checkId);
      if (previous) return { ...previous, duplicate: true };
      const takenAt = ms(c.takenAt)!;
      const check: HealthCheck = {
        checkId: c.checkId,
        takenAt: c.takenAt,
        temperatureC: c.temperatureC,
        symptoms: (c.symptoms ?? []).map(String),
        by: c.by,
      };
      const slot = ms(s.currentSlot);
      if (slot !== undefined && takenAt >= slot - policy.checkWindowBeforeMs) {
        check.dueAt = s.currentSlot;
        advanceSlot(slot);
      }
      s.checks.push(check);
      newChecks.push(check);
      // Any check stops every missed-check chain: someone has seen the person.
      for (const chain of s.missedChains) closeEscalation(findEscalation(chain.escalationId), 'check_received', c.by);
      s.missedChains = [];
      const fever = c.temperatureC !== undefined && c.temperatureC >= policy.feverThresholdC;
      record('health_check', c.by, { checkId: c.checkId, fever, symptoms: check.symptoms.length });
      const escalationIds: string[] = [];
      let extraSampleId: string | undefined;
      if (fever || check.symptoms.length > 0) {
        const kind: EscalationKind = fever ? 'fever' : 'symptom';
        escalationIds.push(
          openEscalation(kind, 'doctor', fever ? `Temperature ${c.temperatureC} °C` : 'Symptoms reported').id,
        );
        extraSampleId = addSample(fever ? 'fever' : 'symptom', takenAt, undefined, policy.extraSampleType).sampleId;
      }
      const result: HealthCheckResult = {
        checkId: c.checkId,
        duplicate: false,
        fever,
        escalationIds,
        extraSampleId,
        nextCheckDue: s.nextCheckDue,
      };
      checkResults.set(c.checkId, result);
      wake();
      return result;
    },
    {
      validator: (c) => {
        if (!ACTIVE_OBSERVATION.includes(s.phase) || s.closing)
          throw new Error(`case is ${s.closing ?? s.phase}, not in observation`);
        if (!c.checkId) throw new Error('checkId is required');
        if (!c.by?.id) throw new Error('by is required');
        if (c.symptoms !== undefined && !Array.isArray(c.symptoms)) throw new Error('symptoms must be a list');
        if (Number.isNaN(Date.parse(c.takenAt))) throw new Error('takenAt is not a date');
        if (
          c.temperatureC !== undefined &&
          (typeof c.temperatureC !== 'number' ||
            !Number.isFinite(c.temperatureC) ||
            c.temperatureC < 30 ||
            c.temperatureC > 45)
        )
          throw new Error('temperatureC out of range 30–45');
      },
    },
  );

  function findCheckResult(checkId: string): HealthCheckResult | undefined {
    const c = s.checks.find((x) => x.checkId === checkId);
    if (!c) return undefined;
    return {
      checkId,
      duplicate: true,
      fever: c.temperatureC !== undefined && c.temperatureC >= policy.feverThresholdC,
      escalationIds: [],
      nextCheckDue: s.nextCheckDue,
    };
  }

  setHandler(
    changeStayUpdate,
    (c) => {
      s.stayAdjustDays += c.days;
      s.releaseBlockedEscalated = false;
      if (s.stayStart) {
        // Scheduled samples that now fall after release stay planned and are simply not taken.
        s.releaseDue = iso(releaseDueAt(policy, ms(s.stayStart)!, s.stayAdjustDays));
        const now = Date.now();
        if (s.phase === 'RELEASE_PENDING' && now < ms(s.releaseDue)! - policy.inspectionLeadMs) {
          // Moved well into the future: back to observation; a failed home is inspected again
          // at the new lead time, a passed one stays passed.
          setPhase('OBSERVATION', c.by, 'stay extended');
          if (s.inspection.status === 'failed' || s.inspection.status === 'requested') {
            const round = s.inspection.round + 1;
            s.inspection = { inspectionId: `${caseNo}-I${round}`, round, status: 'none' };
            inspectionDirty = true;
          }
        }
        if (!s.currentSlot && ACTIVE_OBSERVATION.includes(s.phase)) advanceSlot(now - 1);
      }
      record(
        c.days > 0 ? 'stay_extended' : 'stay_shortened',
        c.by,
        { days: c.days, releaseDue: s.releaseDue ?? null },
        c.reason,
      );
      wake();
      return { releaseDue: s.releaseDue ?? '' };
    },
    {
      validator: (c) => {
        if (isTerminal(s.phase) || s.closing) throw new Error(`case is ${s.closing ?? s.phase}`);
        if (!Number.isInteger(c.days) || c.days === 0 || Math.abs(c.days) > MAX_STAY_CHANGE_DAYS)
          throw new Error(
            `days must be a non-zero integer between -${MAX_STAY_CHANGE_DAYS} and ${MAX_STAY_CHANGE_DAYS}`,
          );
        if (policy.stayDays + s.stayAdjustDays + c.days < 1) throw new Error('stay cannot be shorter than one day');
        if (!c.reason?.trim()) throw new Error('reason is required');
      },
    },
  );

  setHandler(
    changeColourUpdate,
    (c) => {
      const from = s.colour;
      s.colour = c.colour;
      s.colourReasons = [`set_by:${c.by.role}`];
      s.colourFixedBy = c.by;
      record('colour_changed', c.by, { from: from ?? null, to: c.colour }, c.reason);
      wake();
      return { colour: c.colour };
    },
    {
      validator: (c) => {
        if (isTerminal(s.phase) || s.closing) throw new Error(`case is ${s.closing ?? s.phase}`);
        if (!['green', 'yellow', 'red'].includes(c.colour)) throw new Error('colour must be green, yellow or red');
        if (!c.reason?.trim()) throw new Error('reason is required');
      },
    },
  );

  setHandler(
    setAddressUpdate,
    (c) => {
      request.homeAddress = c.address;
      const failed = s.escalations.filter((e) => e.kind === 'failed_inspection' && e.status !== 'closed');
      for (const e of failed) closeEscalation(e, 'new_address', c.by);
      if (s.inspection.status !== 'none') {
        const round = s.inspection.round + 1;
        s.inspection = { inspectionId: `${caseNo}-I${round}`, round, status: 'none' };
        s.inspectionToRequest = s.phase === 'RELEASE_PENDING';
        inspectionDirty = true;
      }
      record('address_changed', c.by, { inspectionId: s.inspection.inspectionId }, c.reason);
      wake();
      return { inspectionId: s.inspection.inspectionId };
    },
    {
      validator: (c) => {
        if (isTerminal(s.phase) || s.closing) throw new Error(`case is ${s.closing ?? s.phase}`);
        if (typeof c.address !== 'string' || !c.address.trim()) throw new Error('address is required');
        if (!c.reason?.trim()) throw new Error('reason is required');
      },
    },
  );

  setHandler(
    cancelUpdate,
    (c) => {
      s.cancelled = { reason: c.reason, by: c.by, at: iso(Date.now()) };
      record('cancel_requested', c.by, { phase: s.phase }, c.reason);
      wake();
      return { phase: s.phase };
    },
    {
      validator: (c) => {
        if (isTerminal(s.phase)) throw new Error(`case is already ${s.phase}`);
        if (s.closing) throw new Error(`case is already closing (${s.closing})`);
        if (s.cancelled) throw new Error('case is already being cancelled');
        if (s.hospital) throw new Error('case is being transferred to hospital');
        if (!c.reason?.trim()) throw new Error('reason is required');
      },
    },
  );

  setHandler(
    ackEscalationUpdate,
    (a) => {
      const esc = findEscalation(a.escalationId)!;
      esc.status = 'acked';
      esc.ackedAt = iso(Date.now());
      esc.ackedBy = a.by;
      dirtyEscalations.add(esc.id);
      // An acknowledged missed-check chain stops climbing: someone is on it.
      s.missedChains = s.missedChains.filter((m) => m.escalationId !== esc.id);
      record('escalation_acked', a.by, { escalationId: esc.id }, a.note);
      wake();
      return esc;
    },
    {
      validator: (a) => {
        const esc = findEscalation(a.escalationId);
        if (!esc) throw new Error(`no escalation ${a.escalationId} on this case`);
        if (esc.status !== 'open') throw new Error(`escalation is already ${esc.status}`);
      },
    },
  );

  // ---- schedule helpers ----
  function advanceSlot(after: number): void {
    // Checks continue past the due date while release is held (failed home, pending result).
    const until = Math.max(ms(s.releaseDue)!, Date.now() + policyDayMs(policy));
    const next = nextCheckSlot(policy, ms(s.stayStart)!, after + 1, until);
    s.currentSlot = next === undefined ? undefined : iso(next);
    s.nextCheckDue = s.currentSlot;
  }

  /** Runs an activity; a permanent failure escalates to the command centre instead of failing the case. */
  async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ActivityFailure && !isCancellation(err)) {
        // The type only: a remote system's message may echo an address back.
        const cause = err.cause instanceof ApplicationFailure ? (err.cause.type ?? 'ApplicationFailure') : 'timeout';
        openEscalation('integration_failure', 'command_centre', `${what} failed: ${cause}`);
        return undefined;
      }
      throw err;
    }
  }

  /**
   * Waits until the deadline, or until a handler has run since `seen` (read at the top of the
   * caller's loop, before its awaits, so that a message arriving during an activity or a flush
   * is never slept through), or the case is cancelled.
   */
  async function sleepUntil(deadline: number | undefined, seen: number): Promise<void> {
    if (dirty || notifyQueue.length) await flush();
    const woken = () => wakeCounter !== seen || !!s.cancelled;
    if (deadline === undefined) await condition(woken);
    else await condition(woken, Math.max(1, deadline - Date.now()));
  }

  // ---- phases ----
  async function reserveRoom(): Promise<void> {
    let backoff = policy.roomRetry.initialMs;
    let noRoom: Escalation | undefined = s.escalations.find((e) => e.kind === 'no_room' && e.status !== 'closed');
    while (!s.room && !s.cancelled && !s.hospital) {
      const seen = wakeCounter;
      // Not cancellable mid-call: a room taken by the database must be known, to be given back.
      const room = await attempt('reserveRoom', () =>
        CancellationScope.nonCancellable(() =>
          acts.reserveRoom({ workflowId, caseNo, colour: s.colour ?? 'green', district: request.district }),
        ),
      );
      if (room) {
        s.room = room;
        record('room_assigned', SYSTEM_ACTOR, { hotelId: room.hotelId, roomId: room.roomId, roomNo: room.roomNo });
        closeEscalation(noRoom, 'room_assigned');
        return;
      }
      noRoom ??= openEscalation('no_room', 'command_centre', `No free room for a ${s.colour ?? 'green'} case`);
      await sleepUntil(Date.now() + backoff, seen);
      backoff = Math.min(backoff * 2, policy.roomRetry.maxMs);
    }
  }

  async function transportAndArrival(): Promise<void> {
    if (!s.dispatchedAt) {
      // Someone who drove straight to the site may arrive before a room was even assigned.
      if (request.transport === 'vehicle' && !s.arrivedAt) {
        const d = await attempt('dispatchTransport', () =>
          CancellationScope.nonCancellable(() =>
            acts.dispatchTransport({
              workflowId,
              caseNo,
              step: 'intake',
              purpose: 'intake',
              hotelId: s.room!.hotelId,
              roomNo: s.room!.roomNo,
              pickupAddress: request.pickupAddress,
            }),
          ),
        );
        s.dispatchId = d?.dispatchId;
      }
      s.dispatchedAt = iso(Date.now());
      record('transport_dispatched', SYSTEM_ACTOR, { mode: request.transport, dispatchId: s.dispatchId ?? null });
    }
    setPhase('IN_TRANSIT');
    const from = Math.max(ms(request.expectedArrivalAt) ?? 0, ms(s.dispatchedAt)!);
    let deadline = from + policy.arrivalDeadlineMs;
    let late = s.escalations.find((e) => e.kind === 'late_arrival' && e.status !== 'closed');
    while (!s.arrivedAt && !s.cancelled) {
      await sleepUntil(deadline, wakeCounter);
      // (the loop condition re-reads arrival itself, so no wake can be lost here)
      if (s.arrivedAt || s.cancelled) break;
      if (Date.now() >= deadline) {
        if (!late) late = openEscalation('late_arrival', 'point_leader', 'Person has not arrived by the deadline');
        else if (late.status === 'open' && late.level !== 'command_centre')
          raiseEscalation(late, 'command_centre', 'Person still has not arrived');
        deadline = Date.now() + policy.lateArrivalRepeatMs;
      }
    }
    if (s.arrivedAt) closeEscalation(late, 'arrived');
  }

  async function intake(): Promise<void> {
    const arrivedAt = ms(s.arrivedAt)!;
    if (!s.colourFixedBy) {
      const decision = classifyColour(request.person, policy, arrivedAt);
      if (decision.colour !== s.colour) record('colour_classified', SYSTEM_ACTOR, { colour: decision.colour });
      s.colour = decision.colour;
      s.colourReasons = decision.reasons;
    }
    if (s.hospital) return; // antigen positive at the door: straight on to hospital
    await attempt('checkIn', () => acts.checkIn({ workflowId, caseNo, roomId: s.room!.roomId }));
    s.stayStart = s.arrivedAt;
    const releaseDue = releaseDueAt(policy, arrivedAt, s.stayAdjustDays);
    s.releaseDue = iso(releaseDue);
    for (const planned of samplingPlan(policy, arrivedAt, releaseDue))
      addSample('scheduled', planned.dueAt, planned.day);
    s.currentSlot = undefined;
    // Slots start when the person is in the room: someone who waited at the door for a room
    // is not charged with the checks they could not have had.
    advanceSlot(Math.max(arrivedAt, Date.now()) - 1);
    // A slot whose window already opened at arrival is the arrival check's to satisfy, not a miss.
    record('checked_in', SYSTEM_ACTOR, { roomId: s.room!.roomId, releaseDue: s.releaseDue });
    setPhase('OBSERVATION');
  }

  /** The observation loop: checks, samples, escalation steps, inspection and release. */
  async function observe(): Promise<'released' | 'hospital' | 'cancelled' | 'continue'> {
    for (;;) {
      const seen = wakeCounter;
      if (s.cancelled) return 'cancelled';
      if (s.hospital) return 'hospital';
      const now = Date.now();
      const releaseDue = ms(s.releaseDue)!;

      // Samples due: order them (oldest first).
      for (const sample of s.samples) {
        if (sample.orderedAt || sample.result !== 'pending' || ms(sample.dueAt)! > now) continue;
        if (sample.reason === 'scheduled' && ms(sample.dueAt)! >= releaseDue) continue;
        const order = await attempt('orderSample', () =>
          bounded.orderSample({
            workflowId,
            caseNo,
            sampleId: sample.sampleId,
            type: sample.type,
            reason: sample.reason,
            hotelId: s.room?.hotelId,
          }),
        );
        dirtySamples.add(sample.sampleId);
        if (!order) {
          // The lab refused or is away: the escalation is open; try this sample again later.
          sample.dueAt = iso(Date.now() + policy.roomRetry.maxMs);
          record('sample_order_failed', SYSTEM_ACTOR, { sampleId: sample.sampleId, retryAt: sample.dueAt });
          continue;
        }
        sample.orderedAt = order.orderedAt;
        sample.labId ??= order.labId;
        record('sample_ordered', SYSTEM_ACTOR, { sampleId: sample.sampleId, labId: sample.labId ?? null });
      }

      // Missed checks: a slot whose window closed without a check opens a chain.
      let slot = ms(s.currentSlot);
      const firstStepMs = policy.checkWindowAfterMs + (policy.missedCheckSteps[0]?.afterMs ?? 0);
      while (slot !== undefined && now >= slot + firstStepMs) {
        const first = policy.missedCheckSteps[0];
        const esc = openEscalation('missed_check', first?.level ?? 'nurse', `Health check due ${iso(slot)} missed`);
        s.missedChains.push({ escalationId: esc.id, slotAt: iso(slot), step: 0 });
        advanceSlot(slot);
        slot = ms(s.currentSlot);
      }
      for (const chain of s.missedChains) {
        // A while: after downtime every step already due is taken, none waits for the next slot.
        for (;;) {
          const next = policy.missedCheckSteps[chain.step + 1];
          if (!next || now < ms(chain.slotAt)! + policy.checkWindowAfterMs + next.afterMs) break;
          chain.step++;
          const esc = findEscalation(chain.escalationId);
          if (esc && esc.status === 'open')
            raiseEscalation(esc, next.level, `Health check due ${chain.slotAt} still missing`);
        }
      }

      // Home inspection, a lead time before release.
      if (s.phase === 'OBSERVATION' && now >= releaseDue - policy.inspectionLeadMs) {
        setPhase('RELEASE_PENDING');
        if (s.inspection.status === 'none') s.inspectionToRequest = true;
      }
      if (s.inspectionToRequest) {
        s.inspectionToRequest = false;
        s.inspection.status = 'requested';
        s.inspection.requestedAt = iso(now);
        inspectionDirty = true;
        record('inspection_requested', SYSTEM_ACTOR, { inspectionId: s.inspection.inspectionId });
        await attempt('requestInspection', () =>
          bounded.requestInspection({
            workflowId,
            caseNo,
            inspectionId: s.inspection.inspectionId,
            district: request.district,
            street: request.street,
            address: request.homeAddress,
          }),
        );
      }

      // Release when every criterion holds; re-checked on every wake.
      if (s.phase === 'RELEASE_PENDING') {
        const unmet = unmetReleaseCriteria(policy, {
          now,
          releaseDue,
          samples: s.samples,
          escalations: s.escalations,
          inspection: s.inspection.status,
        });
        if (unmet.join() !== s.releaseBlockers.join()) {
          s.releaseBlockers = unmet;
          record('release_blockers', SYSTEM_ACTOR, { unmet });
        }
        if (unmet.length === 0) return 'released';
        planReleaseCheckSample(unmet, now);
        if (
          !s.releaseBlockedEscalated &&
          now >= releaseDue + policy.releaseBlockedEscalateAfterMs &&
          !unmet.includes('end_date_not_reached')
        ) {
          s.releaseBlockedEscalated = true;
          openEscalation('release_blocked', 'command_centre', `Release held: ${unmet.join(', ')}`);
        }
      }

      if (dirty) await flush();
      if (shouldContinueAsNew()) return 'continue';

      // Sleep until the next thing due, or until a message arrives.
      const due: number[] = [releaseDue, releaseDue - policy.inspectionLeadMs];
      if (s.currentSlot) due.push(ms(s.currentSlot)! + firstStepMs);
      for (const x of s.samples) {
        if (x.orderedAt || x.result !== 'pending') continue;
        if (x.reason === 'scheduled' && ms(x.dueAt)! >= releaseDue) continue;
        due.push(ms(x.dueAt)!);
      }
      for (const chain of s.missedChains) {
        const next = policy.missedCheckSteps[chain.step + 1];
        if (next) due.push(ms(chain.slotAt)! + policy.checkWindowAfterMs + next.afterMs);
      }
      if (!s.releaseBlockedEscalated) due.push(releaseDue + policy.releaseBlockedEscalateAfterMs);
      const future = due.filter((t) => t > now);
      await sleepUntil(future.length ? Math.min(...future) : undefined, seen);
    }
  }

  /**
   * Release held only for want of negatives, with nothing taken or planned that could supply
   * them: plan one more sample, far enough after the last for the pair rule.
   */
  function planReleaseCheckSample(unmet: string[], now: number): void {
    if (!unmet.includes('not_enough_negatives') && !unmet.includes('negatives_too_close')) return;
    if (unmet.includes('result_pending') || unmet.includes('positive_result')) return;
    const releaseDue = ms(s.releaseDue)!;
    const waiting = s.samples.some(
      (x) => !x.orderedAt && x.result === 'pending' && (x.reason !== 'scheduled' || ms(x.dueAt)! < releaseDue),
    );
    if (waiting) return;
    const last = Math.max(0, ...s.samples.filter((x) => x.orderedAt).map((x) => ms(x.orderedAt)!));
    addSample('release_check', Math.max(now, last + policy.release.minApartMs));
    wake();
  }

  function shouldContinueAsNew(): boolean {
    const limit = input.options?.continueAsNewAtHistoryLength;
    return workflowInfo().continueAsNewSuggested || (limit !== undefined && workflowInfo().historyLength >= limit);
  }

  async function release(): Promise<CaseOutcome> {
    s.closing = 'RELEASED';
    await attempt('checkOut', () =>
      acts.checkOut({ workflowId, caseNo, roomId: s.room!.roomId, terminalDisinfection: false }),
    );
    const releasedAt = iso(Date.now());
    const certificateNo = `${caseNo}-R`;
    await attempt('handOverToCommunity', () =>
      acts.handOverToCommunity({
        workflowId,
        caseNo,
        district: request.district,
        street: request.street,
        releasedAt,
        certificateNo,
      }),
    );
    s.nextCheckDue = undefined;
    s.currentSlot = undefined;
    for (const chain of s.missedChains) closeEscalation(findEscalation(chain.escalationId), 'released');
    s.missedChains = [];
    return finish('RELEASED', 'released', certificateNo);
  }

  async function hospitalTransfer(): Promise<CaseOutcome> {
    const reason = s.hospital!.reason;
    s.closing = 'HOSPITAL_TRANSFER';
    record('hospital_transfer_started', SYSTEM_ACTOR, { reason });
    if (s.dispatchId && !s.arrivedAt) {
      const dispatchId = s.dispatchId;
      await attempt('cancelTransport', () => acts.cancelTransport({ workflowId, caseNo, dispatchId }));
    }
    const d = await attempt('dispatchTransport', () =>
      acts.dispatchTransport({
        workflowId,
        caseNo,
        step: 'hospital',
        purpose: 'hospital',
        hotelId: s.room?.hotelId ?? '',
        roomNo: s.room?.roomNo,
      }),
    );
    s.hospital!.dispatchId = d?.dispatchId;
    if (s.room) {
      const roomId = s.room.roomId;
      // Checked in: terminal disinfection after the person leaves. Reserved only: nobody was in it.
      if (s.stayStart)
        await attempt('checkOut', () => acts.checkOut({ workflowId, caseNo, roomId, terminalDisinfection: true }));
      else await attempt('releaseRoom', () => acts.releaseRoom({ workflowId, caseNo, roomId }));
    }
    s.nextCheckDue = undefined;
    s.currentSlot = undefined;
    return finish('HOSPITAL_TRANSFER', reason);
  }

  async function cancelCase(): Promise<CaseOutcome> {
    const c = s.cancelled ?? { reason: 'workflow cancelled', by: SYSTEM_ACTOR, at: iso(Date.now()) };
    s.cancelled = c;
    s.closing = 'CANCELLED';
    if (s.dispatchId && !s.arrivedAt) {
      const dispatchId = s.dispatchId;
      await attempt('cancelTransport', () => acts.cancelTransport({ workflowId, caseNo, dispatchId }));
    }
    if (s.room) {
      const roomId = s.room.roomId;
      if (s.stayStart)
        await attempt('checkOut', () =>
          acts.checkOut({ workflowId, caseNo, roomId, terminalDisinfection: !!s.hospital }),
        );
      else await attempt('releaseRoom', () => acts.releaseRoom({ workflowId, caseNo, roomId }));
    }
    for (const e of openEscalations()) closeEscalation(e, 'case_cancelled', c.by);
    s.missedChains = [];
    s.nextCheckDue = undefined;
    s.currentSlot = undefined;
    return finish('CANCELLED', c.reason, undefined, c.by);
  }

  async function finish(
    phase: Phase,
    reason: string,
    certificateNo?: string,
    by: Actor = SYSTEM_ACTOR,
  ): Promise<CaseOutcome> {
    s.endedAt = iso(Date.now());
    s.endReason = reason;
    s.releaseBlockers = [];
    // Nobody can acknowledge anything on a closed case: close what is still open, with why.
    for (const e of s.escalations) if (e.status !== 'closed') closeEscalation(e, `case_${phase.toLowerCase()}`, by);
    s.missedChains = [];
    setPhase(phase, by, reason);
    await condition(allHandlersFinished);
    await flush();
    return { caseNo, phase, endedAt: s.endedAt, reason, certificateNo };
  }

  // ---- the lifecycle ----
  if (!input.carried) {
    const decision = classifyColour(request.person, policy, ms(request.requestedAt) ?? Date.now());
    s.colour = decision.colour;
    s.colourReasons = decision.reasons;
    record(
      'transfer_requested',
      request.requestedBy,
      { policy: policy.name, policyVersion: policy.version, transport: request.transport, reason: request.reason },
      request.note,
    );
  } else {
    s.generation++;
    lastSearchAttributes = '';
  }

  try {
    await flush();
    if (s.phase === 'REQUESTED') {
      await reserveRoom();
      if (s.cancelled) return await CancellationScope.nonCancellable(cancelCase);
      if (s.hospital) return await hospitalTransfer(); // antigen positive at the door before a room
      setPhase('ROOM_ASSIGNED');
      await flush();
    }
    if (s.phase === 'ROOM_ASSIGNED' || s.phase === 'IN_TRANSIT') {
      await transportAndArrival();
      if (s.cancelled) return await CancellationScope.nonCancellable(cancelCase);
      await intake();
      await flush();
    }
    if (s.hospital && !isTerminal(s.phase)) return await hospitalTransfer();
    const outcome = await observe();
    switch (outcome) {
      case 'released':
        return await release();
      case 'hospital':
        return await hospitalTransfer();
      case 'cancelled':
        return await CancellationScope.nonCancellable(cancelCase);
      case 'continue':
        await condition(allHandlersFinished);
        await flush();
        return await continueAsNew<typeof caseWorkflow>({ ...input, request, carried: s });
    }
  } catch (err) {
    // A Temporal-level cancellation (e.g. `temporal workflow cancel`) still frees what the case holds.
    if (isCancellation(err) && !isTerminal(s.phase)) {
      return await CancellationScope.nonCancellable(async () => {
        s.cancelled ??= { reason: 'workflow cancelled', by: SYSTEM_ACTOR, at: iso(Date.now()) };
        return cancelCase();
      });
    }
    throw err;
  }
}
