/**
 * The case's decision core: `decide(state, event, ctx, now)` returns the next state, the
 * answer to a message, the tasks to run and the change records. Pure and deterministic: no
 * Temporal, no I/O, no clock but `now`. Every rule of a case lives here; the workflow only
 * feeds events in and runs tasks (docs/ARCHITECTURE.md "The decision core").
 */
import { classifyColour, colourOnRequest } from '../colour';
import { policyDayMs, withCaseDefaults, type CasePolicy, type Policy } from '../policy';
import { nextCheckSlot, releaseDueAt } from '../schedule';
import {
  SYSTEM_ACTOR,
  TERMINAL_PHASES,
  type Actor,
  type EscalationKind,
  type EscalationLevel,
  type Phase,
  type SampleReason,
} from '../types';
import type {
  CaseCheck,
  HomeMonitoring,
  CaseContext,
  CaseEscalation,
  CaseEvent,
  CaseSample,
  CaseState,
  ChangeRecord,
  CloseReason,
  Closing,
  Decision,
  MessageEvent,
  MissedChain,
  RejectCode,
  Reply,
  Task,
  TaskKind,
  TaskResult,
  Touched,
} from './model';
import { TASK_KINDS } from './model';
import { releaseViolations } from './invariants';
import {
  afebrileCheckExpiry,
  ANTIGEN_REPORTERS,
  CLOSE_REASONS,
  CLOSING_CANCEL_REASON,
  samplingSlots,
  unmetCriteria,
} from './rules';

const iso = (t: number): string => new Date(t).toISOString();
const ms = (s: string): number => Date.parse(s);
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

const ACTIVE: readonly Phase[] = ['OBSERVATION', 'RELEASE_PENDING'];
const MAX_STAY_CHANGE_DAYS = 60;
const KEYS_KEPT = 500;
const KEYS_MAX = 5000;
const KEY_RETENTION_MS = 7 * 86_400_000;
const REFUSED_KEPT = 100;
const NOTIFY_ATTEMPTS = 20;
const TEMPERATURE = { min: 30, max: 45 };

/** Kinds whose subject ends with the case: they close with `case_ended` when it ends. */
const ENDS_WITH_CASE: readonly EscalationKind[] = [
  'no_room',
  'late_arrival',
  'missed_check',
  'door_alarm',
  'failed_inspection',
  'release_blocked',
];

/**
 * Failed tasks a person may waive by resolving their escalation: all but a room reservation (a
 * room cannot be waived into existence) and notices (they open no escalation).
 */
const WAIVABLE: readonly TaskKind[] = TASK_KINDS.filter(
  // Leaving the waiting list neither: a room handed to the case would stay held for nobody.
  // Nor sending a feverish person back from home: they must be transferred.
  (k) => k !== 'reserveRoom' && k !== 'notify' && k !== 'leaveRoomQueue' && k !== 'returnTransfer',
);

export const isTerminalPhase = (p: Phase): boolean => TERMINAL_PHASES.includes(p);

/** The rules a case is judged by now: a directive's policy once one reached it, else its own. */
export const policyOf = (s: Pick<CaseState, 'policy'>, ctx: CaseContext): CasePolicy =>
  withCaseDefaults(s.policy ?? ctx.policy);

// ---------------------------------------------------------------------------------------
// The draft: a mutable copy of the state plus what this decision produced.
// ---------------------------------------------------------------------------------------
class Draft {
  readonly records: ChangeRecord[] = [];
  readonly commands: Task[] = [];
  readonly touched: Touched = { samples: [], escalations: [], checks: [], inspection: false };
  changed = false;
  /** The rules in force: the case's own (a directive's) or the one it started with. */
  policy: CasePolicy;
  /** This decision is a tick: the case looks at the clock (slots are judged missed only then, CaseContext.slotsByEventTime). */
  tick = false;

  readonly s: CaseState;

  constructor(
    readonly original: CaseState,
    readonly ctx: CaseContext,
    readonly now: number,
  ) {
    this.s = clone(original);
    this.policy = policyOf(original, ctx);
  }

  record(kind: string, by: Actor, payload: Record<string, unknown> = {}, reason?: string): void {
    this.s.eventSeq++;
    this.changed = true;
    this.records.push({ seq: this.s.eventSeq, at: iso(this.now), by, kind, payload, ...(reason ? { reason } : {}) });
  }

  touchSample(id: string): void {
    this.changed = true;
    if (!this.touched.samples.includes(id)) this.touched.samples.push(id);
  }

  touchEscalation(id: string): void {
    this.changed = true;
    if (!this.touched.escalations.includes(id)) this.touched.escalations.push(id);
  }

  setPhase(phase: Phase, by: Actor = SYSTEM_ACTOR, reason?: string): void {
    if (this.s.phase === phase) return;
    const from = this.s.phase;
    this.s.phase = phase;
    this.record('phase_changed', by, { from, to: phase }, reason);
  }

  // ---- tasks ----
  task(id: string): Task | undefined {
    return this.s.tasks.find((t) => t.id === id);
  }

  /** Adds a task unless one with the id is already pending or running; returns it. */
  addTask(
    kind: TaskKind,
    id: string,
    opts: Partial<Pick<Task, 'subject' | 'terminal' | 'closing' | 'repeat'>> = {},
    dueAt = this.now,
  ): Task {
    const existing = this.task(id);
    if (existing && (existing.status === 'pending' || existing.status === 'running')) return existing;
    if (existing) this.s.tasks = this.s.tasks.filter((t) => t !== existing);
    const t: Task = { id, kind, status: 'pending', dueAt: iso(dueAt), attempts: 0, ...opts };
    this.s.tasks.push(t);
    this.commands.push(t);
    this.changed = true;
    return t;
  }

  /** A pending task no longer wanted is dropped; a running one finishes and its outcome is still applied. */
  dropTask(pred: (t: Task) => boolean): void {
    for (const t of this.s.tasks) {
      if (t.status === 'pending' && pred(t)) {
        t.status = 'dropped';
        this.changed = true;
        if (t.escalationId) this.closeEscalation(t.escalationId, 'not_needed', SYSTEM_ACTOR);
      }
    }
  }

  liveTask(kind: TaskKind, subject?: string): Task | undefined {
    return this.s.tasks.find(
      (t) =>
        t.kind === kind &&
        (subject === undefined || t.subject === subject) &&
        (t.status === 'pending' || t.status === 'running'),
    );
  }

  // ---- escalations ----
  escalation(id: string | undefined): CaseEscalation | undefined {
    return id ? this.s.escalations.find((e) => e.id === id) : undefined;
  }

  openEscalation(
    kind: EscalationKind,
    level: EscalationLevel,
    reason: string,
    extra: Partial<Pick<CaseEscalation, 'taskId' | 'sampleId' | 'severity'>> = {},
  ): CaseEscalation {
    const esc: CaseEscalation = {
      id: `${this.s.caseNo}-E${++this.s.counters.escalations}`,
      kind,
      level,
      severity: this.policy.severity[kind] ?? 'amber',
      reason,
      status: 'open',
      openedAt: iso(this.now),
      notices: 0,
      ...extra,
    };
    this.s.escalations.push(esc);
    this.touchEscalation(esc.id);
    this.record('escalation_opened', SYSTEM_ACTOR, { escalationId: esc.id, kind, level, severity: esc.severity });
    this.notify(esc);
    return esc;
  }

  raiseEscalation(esc: CaseEscalation, level: EscalationLevel, reason: string): void {
    if (esc.status === 'closed' || esc.level === level) return;
    esc.level = level;
    esc.reason = reason;
    this.touchEscalation(esc.id);
    this.record('escalation_raised', SYSTEM_ACTOR, { escalationId: esc.id, level });
    this.notify(esc);
  }

  private notify(esc: CaseEscalation, repeat?: number): void {
    esc.notices++;
    this.addTask('notify', `notify:${esc.id}:${esc.notices}`, { subject: esc.id, ...(repeat ? { repeat } : {}) });
  }

  /** The escalation is still open and still true: tell its level again (a reminder, numbered). */
  remind(esc: CaseEscalation, repeat: number): void {
    if (esc.status === 'open') this.notify(esc, repeat);
  }

  /**
   * The only way an escalation closes: for a reason its kind allows, or `resolved` by a person
   * with a note. Anything else is a bug, and throws (the property tests look for it).
   */
  closeEscalation(id: string | undefined, reason: CloseReason, by: Actor, note?: string): void {
    const esc = this.escalation(id);
    if (!esc || esc.status === 'closed') return;
    if (reason === 'resolved') {
      if (by.role === 'system' || !note?.trim())
        throw new Error(`escalation ${esc.id}: resolved needs a person and a note`);
    } else if (!CLOSE_REASONS[esc.kind].includes(reason)) {
      throw new Error(`escalation ${esc.id} (${esc.kind}) cannot close for ${reason}`);
    }
    esc.status = 'closed';
    esc.closedAt = iso(this.now);
    esc.closedReason = reason;
    // By event time: a notice this same decision asked for (a slot judged missed by a check that
    // then closed its chain) has nobody to reach: the escalation stays on record, unannounced.
    if (this.ctx.slotsByEventTime)
      for (const t of this.commands)
        if (t.kind === 'notify' && t.subject === esc.id && t.status === 'pending') t.status = 'dropped';
    esc.closedBy = by;
    if (note) esc.note = note;
    this.touchEscalation(esc.id);
    this.record('escalation_closed', by, { escalationId: esc.id, closedReason: reason }, note);
  }

  // ---- samples ----
  sample(id: string): CaseSample | undefined {
    return this.s.samples.find((x) => x.sampleId === id);
  }

  addSample(
    reason: SampleReason,
    dueAt: number,
    opts: Partial<Pick<CaseSample, 'day' | 'anchor' | 'slot' | 'type'>> = {},
  ): CaseSample {
    const sample: CaseSample = {
      sampleId: `${this.s.caseNo}-S${++this.s.counters.samples}`,
      type: opts.type ?? this.policy.sampling.type,
      reason,
      ...(opts.day !== undefined ? { day: opts.day } : {}),
      ...(opts.anchor ? { anchor: opts.anchor } : {}),
      ...(opts.slot ? { slot: opts.slot } : {}),
      dueAt: iso(dueAt),
      status: 'planned',
      results: [],
    };
    this.s.samples.push(sample);
    this.touchSample(sample.sampleId);
    this.record('sample_planned', SYSTEM_ACTOR, { sampleId: sample.sampleId, reason, day: opts.day ?? null });
    return sample;
  }

  cancelSample(sample: CaseSample, reason: string): void {
    if (sample.status !== 'planned') return;
    // An order already on its way is left to finish: its outcome decides what the sample is.
    if (this.liveTask('orderSample', sample.sampleId)?.status === 'running') return;
    this.dropTask((t) => t.kind === 'orderSample' && t.subject === sample.sampleId);
    sample.status = 'cancelled';
    sample.cancelReason = reason;
    this.touchSample(sample.sampleId);
    this.record('sample_cancelled', SYSTEM_ACTOR, { sampleId: sample.sampleId }, reason);
    unpark(this, sample.sampleId);
  }

  refuse(kind: string, by: Actor, reason: string, sampleId?: string): void {
    this.s.refused.push({ kind, at: iso(this.now), by, reason, ...(sampleId ? { sampleId } : {}) });
    if (this.s.refused.length > REFUSED_KEPT) this.s.refused.splice(0, this.s.refused.length - REFUSED_KEPT);
    this.record(`${kind}_refused`, by, { ...(sampleId ? { sampleId } : {}) }, reason);
  }

  finish(reply?: Reply, duplicate = false): Decision {
    // The version orders read-model writes: it moves when something a reader sees changed, not
    // for the decider's own bookkeeping (a task started, a retry rescheduled).
    const t = this.touched;
    if (this.records.length || t.samples.length || t.escalations.length || t.checks.length || t.inspection)
      this.s.version++;
    return {
      // Nothing changed: the state given, untouched (cheap for the many ticks that change nothing).
      state: this.changed ? this.s : this.original,
      reply,
      duplicate,
      commands: this.commands,
      records: this.records,
      touched: this.touched,
      changed: this.changed,
    };
  }
}

// ---------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------
export function initialState(ctx: CaseContext, homeAddress: string, by: Actor, now: number, note?: string): Decision {
  const { request } = ctx;
  const policy = withCaseDefaults(ctx.policy);
  const colour = colourOnRequest(request, policy, now);
  const s: CaseState = {
    schema: 2,
    caseNo: request.caseNo,
    phase: 'REQUESTED',
    colour: colour.colour,
    colourReasons: colour.reasons,
    policyName: policy.name,
    policyVersion: policy.version,
    requestedAt: request.requestedAt,
    homeAddress,
    checkedIn: false,
    occupied: false,
    roomReleased: false,
    stayAdjustDays: 0,
    samples: [],
    checks: [],
    escalations: [],
    inspection: { inspectionId: `${request.caseNo}-I1`, round: 1, status: 'none' },
    releaseBlockers: [],
    missedChains: [],
    tasks: [],
    parked: [],
    refused: [],
    keys: {},
    keyOrder: [],
    counters: { samples: 0, escalations: 0, inspections: 1 },
    version: 0,
    eventSeq: 0,
  };
  const d = new Draft(s, ctx, now);
  d.record(
    'transfer_requested',
    by,
    { policy: policy.name, policyVersion: policy.version, transport: request.transport },
    note,
  );
  evaluate(d);
  return d.finish();
}

// ---------------------------------------------------------------------------------------
// Decide
// ---------------------------------------------------------------------------------------
const MESSAGE_TYPES = new Set<CaseEvent['type']>([
  'arrival',
  'departure',
  'labResult',
  'doorAlarm',
  'inspectionResult',
  'healthCheck',
  'changeStay',
  'changeColour',
  'setAddress',
  'cancel',
  'ackEscalation',
  'resolveEscalation',
  'applyPolicy',
  'homeCheckIn',
]);
export const isMessage = (e: CaseEvent): e is MessageEvent => MESSAGE_TYPES.has(e.type);

/**
 * What identifies a message's content under its key: everything but who sent it and the times
 * a client may leave to the server (a retry of "now" is a later now, not another message).
 */
export function fingerprint(e: MessageEvent): string {
  const { by: _by, key: _key, ...rest } = e as MessageEvent & { at?: string; takenAt?: string; reportedAt?: string };
  delete rest.at;
  delete rest.takenAt;
  delete rest.reportedAt;
  // The API's note of the read model's version (ANSWER_WRITES_PATCH) is not part of a message.
  delete (rest as { readModel?: unknown }).readModel;
  return JSON.stringify(rest, Object.keys(rest).sort());
}

/** Field reports: accepted even while no worker runs, never refused by a validator. */
const SIGNAL_TYPES = new Set<CaseEvent['type']>(['arrival', 'departure', 'labResult', 'doorAlarm', 'inspectionResult']);

const reject = (code: RejectCode, message: string): Reply => ({ ok: false, code, message });
const ok = (value: Record<string, unknown> = {}): Reply => ({ ok: true, value });

export function decide(state: CaseState, event: CaseEvent, ctx: CaseContext, now: number): Decision {
  if (isMessage(event) && event.key) {
    const kept = state.keys[event.key];
    // A field report under a key already used for something else is still a report: it is applied
    // as if it had no key (and the clash is recorded), never dropped.
    if (kept && kept.fingerprint !== fingerprint(event) && SIGNAL_TYPES.has(event.type)) {
      const d = decide(state, { ...event, key: undefined } as CaseEvent, ctx, now);
      const draft = new Draft(d.state, ctx, now);
      draft.record('idempotency_key_reused', event.by, { type: event.type });
      const again = draft.finish(d.reply, d.duplicate);
      return { ...again, records: [...d.records, ...again.records], commands: d.commands, touched: d.touched };
    }
    if (kept) {
      const same = kept.fingerprint === fingerprint(event);
      return {
        state,
        reply: same ? kept.reply : reject('conflict', 'This idempotency key was used for a different message'),
        duplicate: same,
        commands: [],
        records: [],
        touched: { samples: [], escalations: [], checks: [], inspection: false },
        changed: false,
      };
    }
  }
  const d = new Draft(state, ctx, now);
  let reply: Reply | undefined;
  let duplicate = false;
  if (isMessage(event)) {
    const refusal = validate(state, event, ctx, now);
    if (refusal) return d.finish(refusal);
    const r = applyMessage(d, event);
    reply = r.reply;
    duplicate = r.duplicate;
    if (event.key && reply.ok) keep(d, event.key, fingerprint(event), reply);
  } else {
    d.tick = event.type === 'tick';
    applyInternal(d, event);
  }
  evaluate(d);
  return d.finish(reply, duplicate);
}

/** What a refused queued report is called in the case's records (`<kind>_refused`). */
const QUEUED_REFUSAL_KIND: Partial<Record<MessageEvent['type'], string>> = { healthCheck: 'health_check' };

/**
 * A report that normally comes as an update (a health check) but arrived by the queue, because
 * no worker answered when it was sent: the sender already has its answer (202, queued), so a
 * refusal cannot go back to them. It is applied exactly like the update (the same key and check
 * id make update and queued copy one report, whichever comes first), and a refusal is recorded
 * on the case instead of vanishing.
 */
export function decideQueued(state: CaseState, event: MessageEvent, ctx: CaseContext, now: number): Decision {
  const d = decide(state, event, ctx, now);
  const kind = QUEUED_REFUSAL_KIND[event.type];
  if (!kind || !d.reply || d.reply.ok || d.changed) return d;
  const draft = new Draft(state, ctx, now);
  draft.refuse(kind, event.by, d.reply.message);
  return draft.finish(d.reply, false);
}

/**
 * Keeps a message's answer under its key. Keys are forgotten oldest first, but never before they
 * are KEY_RETENTION_MS old (a client retries within minutes, not days), unless the case holds
 * KEYS_MAX of them.
 */
function keep(d: Draft, key: string, fp: string, reply: Reply): void {
  d.s.keys[key] = { fingerprint: fp, reply, at: iso(d.now) };
  d.changed = true;
  d.s.keyOrder.push(key);
  const order = d.s.keyOrder;
  while (order.length > KEYS_MAX || (order.length > KEYS_KEPT && isOld(d, d.s.keys[order[0]!]))) {
    delete d.s.keys[order.shift()!];
  }
}
const isOld = (d: Draft, k: { at?: string } | undefined) => !k?.at || d.now - ms(k.at) > KEY_RETENTION_MS;

/**
 * The checks an update's validator runs before anything reaches history: a refusal here
 * changes nothing. Signals (field reports) are never refused here; decide records what it
 * could not apply instead, so that nothing a person reported is silently lost.
 */
export function validate(state: CaseState, e: MessageEvent, ctx: CaseContext, now: number): Reply | undefined {
  const kept = e.key ? state.keys[e.key] : undefined;
  if (kept && !SIGNAL_TYPES.has(e.type))
    return kept.fingerprint === fingerprint(e)
      ? undefined
      : reject('conflict', 'This idempotency key was used for a different message');
  if (kept) return undefined;
  const policy = policyOf(state, ctx);
  const closed = state.closing || isTerminalPhase(state.phase);
  const closedMsg = `case is ${state.closing?.target ?? state.phase}`;
  switch (e.type) {
    case 'healthCheck': {
      if (state.checks.some((c) => c.checkId === e.checkId)) return undefined; // answered as a duplicate
      if (!ACTIVE.includes(state.phase) || state.closing) return reject('conflict', `${closedMsg}, not in observation`);
      if (!e.checkId?.trim()) return reject('invalid', 'checkId is required');
      const t = ms(e.takenAt);
      if (Number.isNaN(t)) return reject('invalid', 'takenAt is not a date');
      if (t > now + policy.clockSkewMs) return reject('invalid', 'takenAt is in the future');
      if (state.arrivedAt && t < ms(state.arrivedAt) - policy.checkWindowBeforeMs)
        return reject('invalid', 'takenAt is before the person arrived');
      return measurementProblem(e);
    }
    case 'changeStay': {
      if (closed) return reject('conflict', closedMsg);
      if (!Number.isInteger(e.days) || e.days === 0 || Math.abs(e.days) > MAX_STAY_CHANGE_DAYS)
        return reject(
          'invalid',
          `days must be a non-zero integer between -${MAX_STAY_CHANGE_DAYS} and ${MAX_STAY_CHANGE_DAYS}`,
        );
      if (policy.stayDays + state.stayAdjustDays + e.days < 1)
        return reject('invalid', 'stay cannot be shorter than one day');
      if (!e.reason?.trim()) return reject('invalid', 'reason is required');
      return undefined;
    }
    case 'changeColour':
      if (closed) return reject('conflict', closedMsg);
      if (!['green', 'yellow', 'red'].includes(e.colour))
        return reject('invalid', 'colour must be green, yellow or red');
      if (!e.reason?.trim()) return reject('invalid', 'reason is required');
      return undefined;
    case 'setAddress':
      if (closed) return reject('conflict', closedMsg);
      if (typeof e.address !== 'string' || !e.address.trim()) return reject('invalid', 'address is required');
      if (!e.reason?.trim()) return reject('invalid', 'reason is required');
      return undefined;
    case 'cancel':
      if (closed) return reject('conflict', `case is already ${state.closing?.target ?? state.phase}`);
      if (state.hospital) return reject('conflict', 'case is being transferred to hospital');
      if (!e.reason?.trim()) return reject('invalid', 'reason is required');
      return undefined;
    case 'ackEscalation': {
      const esc = state.escalations.find((x) => x.id === e.escalationId);
      if (!esc) return reject('not_found', `no escalation ${e.escalationId} on this case`);
      if (esc.status !== 'open') return reject('conflict', `escalation is already ${esc.status}`);
      return undefined;
    }
    case 'homeCheckIn': {
      if (!state.home) return reject('conflict', `case is ${state.phase}, not in home monitoring`);
      if (state.checks.some((c) => c.home && c.checkId === e.checkInId)) return undefined; // answered as a duplicate
      if (state.home.doneAt) return reject('conflict', `case is ${state.phase}, home monitoring is over`);
      if (state.checks.some((c) => c.checkId === e.checkInId))
        return reject('conflict', 'checkInId is the id of a health check in the hotel: use another');
      if (!e.checkInId?.trim()) return reject('invalid', 'checkInId is required');
      const t = ms(e.takenAt);
      if (Number.isNaN(t)) return reject('invalid', 'takenAt is not a date');
      if (t > now + policy.clockSkewMs) return reject('invalid', 'takenAt is in the future');
      if (t < ms(state.home.startedAt) - policy.clockSkewMs)
        return reject('invalid', 'takenAt is before the person went home');
      return measurementProblem(e);
    }
    case 'applyPolicy': {
      if (typeof e.directiveId !== 'string' || !e.directiveId.trim())
        return reject('invalid', 'directiveId is required');
      if (state.directives?.[e.directiveId]) return undefined; // answered as before
      if (Number.isNaN(ms(e.issuedAt))) return reject('invalid', 'issuedAt is not a date');
      const p = e.policy as Partial<Policy> | undefined;
      if (
        !p ||
        typeof p !== 'object' ||
        typeof p.name !== 'string' ||
        !Number.isInteger(p.version) ||
        !Number.isInteger(p.stayDays) ||
        p.stayDays! < 1 ||
        !p.release ||
        !p.sampling ||
        !Array.isArray(p.checkTimes) ||
        !p.clock
      )
        return reject('invalid', 'policy is not a complete policy');
      if (p.clock.kind !== policy.clock.kind || policyDayMs(p as Policy) !== policyDayMs(policy))
        return reject('invalid', "the policy's clock differs from the case's (a drill case takes drill policies)");
      if (!e.reason?.trim()) return reject('invalid', 'reason is required');
      return undefined;
    }
    case 'resolveEscalation': {
      const esc = state.escalations.find((x) => x.id === e.escalationId);
      if (!esc) return reject('not_found', `no escalation ${e.escalationId} on this case`);
      if (esc.status === 'closed') return reject('conflict', 'escalation is already closed');
      if (!e.note?.trim()) return reject('invalid', 'note is required: say how it was resolved');
      if (e.by.role === 'system') return reject('invalid', 'an escalation is resolved by a person');
      const task = esc.taskId ? state.tasks.find((t) => t.id === esc.taskId) : undefined;
      if (task && (task.status === 'pending' || task.status === 'running') && !WAIVABLE.includes(task.kind))
        return reject('conflict', `a failed ${task.kind} cannot be waived; it closes when the retry succeeds`);
      // An attempt on its way may yet succeed: its outcome must not be thrown away by a waiver.
      if (task?.status === 'running')
        return reject('conflict', `a ${task.kind} attempt is in flight; resolve it once that attempt has ended`);
      return undefined;
    }
    default:
      return undefined;
  }
}

/** What a health check and a home check-in both report: symptoms as strings, a temperature in range. */
function measurementProblem(e: { symptoms: unknown; temperatureC?: unknown }): Reply | undefined {
  if (!Array.isArray(e.symptoms) || e.symptoms.some((x) => typeof x !== 'string'))
    return reject('invalid', 'symptoms must be a list of strings');
  if (
    e.temperatureC !== undefined &&
    (typeof e.temperatureC !== 'number' || !(e.temperatureC >= TEMPERATURE.min && e.temperatureC <= TEMPERATURE.max))
  )
    return reject('invalid', `temperatureC out of range ${TEMPERATURE.min}–${TEMPERATURE.max}`);
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------
function applyMessage(d: Draft, e: MessageEvent): { reply: Reply; duplicate: boolean } {
  const { s } = d;
  switch (e.type) {
    case 'arrival':
      return { reply: onArrival(d, e), duplicate: false };
    case 'departure':
      return { reply: onDeparture(d, e), duplicate: false };
    case 'labResult':
      return onLabResult(d, e);
    case 'doorAlarm': {
      if (!ACTIVE.includes(s.phase) || s.closing) {
        d.refuse('door_alarm', e.by, `case is ${s.phase}`);
        return { reply: ok({ applied: false }), duplicate: false };
      }
      d.record('door_alarm', e.by, { sensorId: e.sensorId ?? null });
      // A door opened again and again is one problem until someone closes it.
      const open = s.escalations.find((x) => x.kind === 'door_alarm' && x.status !== 'closed');
      const esc = open ?? d.openEscalation('door_alarm', 'nurse', 'Door sensor alarm');
      return { reply: ok({ applied: true, escalationId: esc.id }), duplicate: false };
    }
    case 'inspectionResult':
      return { reply: onInspectionResult(d, e), duplicate: false };
    case 'healthCheck':
      return onHealthCheck(d, e);
    case 'changeStay':
      return { reply: onChangeStay(d, e), duplicate: false };
    case 'changeColour': {
      const from = s.colour;
      s.colour = e.colour;
      s.colourReasons = [`set_by:${e.by.role}`];
      s.colourFixedBy = e.by;
      d.record('colour_changed', e.by, { from, to: e.colour }, e.reason);
      return { reply: ok({ colour: e.colour }), duplicate: false };
    }
    case 'setAddress': {
      s.homeAddress = e.address;
      for (const x of s.escalations.filter((x) => x.kind === 'failed_inspection'))
        d.closeEscalation(x.id, 'new_address', e.by);
      if (s.inspection.status !== 'none') newInspectionRound(d);
      d.record('address_changed', e.by, { inspectionId: s.inspection.inspectionId }, e.reason);
      return { reply: ok({ inspectionId: s.inspection.inspectionId }), duplicate: false };
    }
    case 'cancel': {
      const previousPhase = s.phase;
      d.record('cancel_requested', e.by, { phase: previousPhase }, e.reason);
      startClosing(d, 'CANCELLED', e.reason, e.by);
      return { reply: ok({ phase: s.phase, previousPhase }), duplicate: false };
    }
    case 'ackEscalation': {
      const esc = d.escalation(e.escalationId)!;
      esc.status = 'acked';
      esc.ackedAt = iso(d.now);
      esc.ackedBy = e.by;
      if (e.note) esc.note = e.note;
      d.touchEscalation(esc.id);
      // An acknowledged missed-check chain stops climbing: someone is on it.
      s.missedChains = s.missedChains.filter((m) => m.escalationId !== esc.id);
      d.record('escalation_acked', e.by, { escalationId: esc.id }, e.note);
      return { reply: ok(escalationReply(esc)), duplicate: false };
    }
    case 'resolveEscalation': {
      const esc = d.escalation(e.escalationId)!;
      const task = esc.taskId ? d.task(esc.taskId) : undefined;
      d.closeEscalation(esc.id, 'resolved', e.by, e.note);
      s.missedChains = s.missedChains.filter((m) => m.escalationId !== esc.id);
      if (task && (task.status === 'pending' || task.status === 'running')) waiveTask(d, task, e.by);
      return { reply: ok(escalationReply(esc)), duplicate: false };
    }
    case 'applyPolicy':
      return onApplyPolicy(d, e);
    case 'homeCheckIn':
      return onHomeCheckIn(d, e);
  }
}

// ---------------------------------------------------------------------------------------
// Home monitoring (policy.homeMonitoringDays): after release, the community checks in daily.
// ---------------------------------------------------------------------------------------
const homeDay = (h: HomeMonitoring, t: number, dayMs: number): number =>
  Math.min(h.days, Math.max(1, Math.floor((t - ms(h.startedAt)) / dayMs) + 1));

function startHome(d: Draft): void {
  const { s, policy } = d;
  const days = policy.homeMonitoringDays ?? 0;
  s.home = {
    startedAt: iso(d.now),
    until: iso(d.now + days * policyDayMs(policy)),
    days,
    checkedDays: [],
    missedDays: [],
  };
  d.setPhase('HOME_MONITORING', SYSTEM_ACTOR, 'handed over to the community');
  d.record('home_monitoring_started', SYSTEM_ACTOR, { days, until: s.home.until });
}

function endHome(d: Draft, outcome: 'completed' | 'returned'): void {
  const { s } = d;
  const h = s.home!;
  h.doneAt = iso(d.now);
  h.outcome = outcome;
  for (const x of s.escalations)
    if (x.kind === 'missed_home_check' && x.status !== 'closed') d.closeEscalation(x.id, 'case_ended', SYSTEM_ACTOR);
  d.setPhase(
    'HOME_MONITORING_DONE',
    SYSTEM_ACTOR,
    outcome === 'returned' ? 'sent back through a transfer' : 'home days done',
  );
  d.record('home_monitoring_ended', SYSTEM_ACTOR, { outcome });
}

/** Days that passed without a check-in escalate to the community worker; the last day ends it. */
function homeDays(d: Draft): void {
  const { s, policy } = d;
  const h = s.home;
  if (!h || h.doneAt) return;
  const dayMs = policyDayMs(policy);
  const passed = Math.min(h.days, Math.floor((d.now - ms(h.startedAt)) / dayMs));
  for (let day = 1; day <= passed; day++) {
    if (h.checkedDays.includes(day) || h.missedDays.includes(day)) continue;
    h.missedDays.push(day);
    const esc = d.openEscalation('missed_home_check', 'community', `Home check-in for day ${day} missed`);
    h.missed = [...(h.missed ?? []), { day, escalationId: esc.id }];
    d.addTask('alertCommunity', `alertCommunity:${esc.id}`, { subject: esc.id });
  }
  if (d.now >= ms(h.until)) endHome(d, 'completed');
}

function onHomeCheckIn(
  d: Draft,
  e: Extract<MessageEvent, { type: 'homeCheckIn' }>,
): { reply: Reply; duplicate: boolean } {
  const { s, policy } = d;
  const h = s.home!;
  const previous = s.checks.find((c) => c.home && c.checkId === e.checkInId);
  const reply = (c: CaseCheck, duplicate: boolean) =>
    ok({
      checkInId: c.checkId,
      duplicate,
      fever: c.fever,
      day: homeDay(h, Math.min(ms(c.takenAt), d.now), policyDayMs(policy)),
      escalationIds: c.escalationIds,
      ...(h.outcome === 'returned' ? { returning: true } : {}),
    });
  if (previous) return { reply: reply(previous, true), duplicate: true };
  const takenAt = ms(e.takenAt);
  const fever = e.temperatureC !== undefined && e.temperatureC >= policy.feverThresholdC;
  const check: CaseCheck = {
    checkId: e.checkInId,
    takenAt: iso(takenAt),
    ...(e.temperatureC !== undefined ? { temperatureC: e.temperatureC } : {}),
    symptoms: e.symptoms.map(String),
    by: e.by,
    fever,
    escalationIds: [],
    home: true,
  };
  // The day it was taken on, never a day still to come (a clock running ahead fills no future day).
  const day = homeDay(h, Math.min(takenAt, d.now), policyDayMs(policy));
  // A day already counted as missed stays missed: a late report does not fill it.
  if (!h.checkedDays.includes(day) && !h.missedDays.includes(day)) h.checkedDays.push(day);
  // The person was seen: the missed days up to this check's day are answered.
  for (const m of h.missed ?? []) if (m.day <= day) d.closeEscalation(m.escalationId, 'check_received', e.by);
  s.checks.push(check);
  d.touched.checks.push(check.checkId);
  d.record('home_check_in', e.by, { checkId: check.checkId, day, fever, symptoms: check.symptoms.length });
  if (fever || check.symptoms.length > 0)
    check.escalationIds.push(
      returnFromHome(d, fever ? `Temperature ${e.temperatureC} °C at home` : 'Symptoms at home').id,
    );
  return { reply: reply(check, false), duplicate: false };
}

/** A fever, a symptom or a positive result at home: the person goes back through a transfer. */
function returnFromHome(d: Draft, why: string): CaseEscalation {
  const esc = d.openEscalation('home_fever', 'community', `${why}: back through a transfer`);
  d.addTask('alertCommunity', `alertCommunity:${esc.id}`, { subject: esc.id });
  d.addTask('returnTransfer', 'returnTransfer', { closing: true });
  endHome(d, 'returned');
  return esc;
}

/** What a directive looks at, before and after: also what its dry run reports. */
function policyFacts(s: CaseState): Record<string, unknown> {
  const planned = s.samples.filter((x) => x.status === 'planned' || x.status === 'ordered');
  return {
    policy: s.policyName,
    policyVersion: s.policyVersion,
    phase: s.closing?.target ?? s.phase,
    colour: s.colour,
    releaseDue: s.releaseDue ?? null,
    samplesOutstanding: planned.length,
    releaseBlockers: [...s.releaseBlockers],
  };
}

/**
 * A directive: the case is judged by the new policy from now on. The stay is counted from the
 * same arrival (a person's own extension stays on top), the samples still to come are planned
 * by the new days (days already past are not caught up: what was taken counts, and the release
 * rule plans any PCR still missing), the colour is judged again unless a person fixed it, and
 * the checks follow the new times from the next one. Nothing here releases anyone: `evaluate`
 * does, by the same criteria as always.
 */
function onApplyPolicy(
  d: Draft,
  e: Extract<MessageEvent, { type: 'applyPolicy' }>,
): { reply: Reply; duplicate: boolean } {
  const { s } = d;
  // A directive is answered once; any repeat (a retried fan-out, another key) gets that answer.
  const earlier = s.directives?.[e.directiveId];
  if (earlier) return { reply: earlier.reply, duplicate: true };
  const answer = (reply: Reply, duplicate = false) => {
    s.directives = { ...(s.directives ?? {}), [e.directiveId]: { issuedAt: e.issuedAt, reply } };
    d.changed = true;
    return { reply, duplicate };
  };
  if (s.closing || isTerminalPhase(s.phase))
    return answer(ok({ applied: false, skipped: 'ended', after: policyFacts(s) }));
  // Two directives in flight at once: the one issued later wins, whichever arrives last.
  if (s.policyIssuedAt && ms(e.issuedAt) < ms(s.policyIssuedAt))
    return answer(ok({ applied: false, skipped: 'superseded', after: policyFacts(s) }));
  const before = policyFacts(s);
  const samplesBefore = new Map(s.samples.map((x) => [x.sampleId, x.status]));
  s.policy = clone(e.policy);
  s.policyName = e.policy.name;
  s.policyVersion = e.policy.version;
  s.policyIssuedAt = e.issuedAt;
  d.policy = withCaseDefaults(s.policy);
  const policy = d.policy;
  // A person's own shortening on top of a shorter stay: at least one day remains.
  if (policy.stayDays + s.stayAdjustDays < 1) s.stayAdjustDays = 1 - policy.stayDays;
  if (!s.colourFixedBy) {
    const c = classifyColour(d.ctx.request.person, policy, ms(s.arrivedAt ?? s.requestedAt));
    if (c.colour !== s.colour) d.record('colour_classified', e.by, { colour: c.colour, directiveId: e.directiveId });
    s.colour = c.colour;
    s.colourReasons = c.reasons;
  }
  if (s.stayStart) {
    s.releaseDue = iso(releaseDueAt(policy, ms(s.stayStart), s.stayAdjustDays));
    replanSamples(d, false, 'policy changed');
    stayMoved(d, e.by, 'policy changed');
    if (ACTIVE.includes(s.phase)) {
      // Folded cases (code with the missed-check-fold patch): the slot being watched is not
      // dropped; the new rules' next slot from it on is watched, so one overdue now is escalated
      // by them. (Older cases skipped to the first slot after now, as their histories recorded.)
      const watched = s.currentSlot ? ms(s.currentSlot) : undefined;
      s.currentSlot = undefined;
      advanceSlot(d, (d.ctx.foldMissedChecks && watched !== undefined ? Math.min(watched, d.now) : d.now) - 1);
    }
  }
  const planned = s.samples.filter((x) => !samplesBefore.has(x.sampleId)).map((x) => x.sampleId);
  const cancelled = s.samples
    .filter((x) => x.status === 'cancelled' && samplesBefore.get(x.sampleId) !== 'cancelled')
    .map((x) => x.sampleId);
  evaluate(d);
  const after = policyFacts(s);
  d.record(
    'policy_applied',
    e.by,
    { directiveId: e.directiveId, before, after, samplesPlanned: planned, samplesCancelled: cancelled },
    e.reason,
  );
  return answer(
    ok({
      applied: true,
      before,
      after,
      samplesPlanned: planned.length,
      samplesCancelled: cancelled.length,
      released: (s.closing as Closing | undefined)?.target === 'RELEASED',
    }),
  );
}

/** An escalation as an update answers it: as the case now holds it. */
function escalationReply(esc: CaseEscalation): Record<string, unknown> {
  const { notices: _n, ...rest } = esc;
  return { ...rest };
}

function onArrival(d: Draft, e: Extract<MessageEvent, { type: 'arrival' }>): Reply {
  const { s, policy } = d;
  if (s.arrivedAt) {
    d.refuse('arrival', e.by, 'already arrived');
    return ok({ applied: false, reason: 'already arrived' });
  }
  if (s.closing || isTerminalPhase(s.phase)) {
    d.refuse('arrival', e.by, `case is ${s.closing?.target ?? s.phase}`);
    return ok({ applied: false, reason: 'case closed' });
  }
  // A reported time is bounded: a back-dated arrival would put every sample due at once and
  // bring release forward; a future one would keep missed-check escalations from ever firing.
  const reported = ms(e.at);
  const floor = Math.max(ms(s.requestedAt) || 0, d.now - policy.arrivalBackdateMaxMs);
  const at = Number.isNaN(reported) ? d.now : Math.min(d.now, Math.max(floor, reported));
  s.arrivedAt = iso(at);
  d.record('arrived', e.by, {
    ...(at !== reported ? { reportedAt: e.at, bounded: true } : {}),
    antigen: e.antigen ?? null,
  });
  d.closeEscalation(s.lateArrival?.escalationId, 'arrived', e.by);
  s.lateArrival = undefined;
  d.dropTask((t) => t.kind === 'dispatchTransport');
  if (e.antigen) {
    // A rapid test at the door is a medical result: hotel and medical staff may give it, a driver may not.
    if (!ANTIGEN_REPORTERS.includes(e.by.role)) {
      d.refuse('antigen_result', e.by, `a ${e.by.role} key cannot report an antigen result`);
    } else {
      const sample = d.addSample('antigen', at, { type: 'antigen' });
      sample.status = 'resulted';
      sample.order = { labId: 'point-of-care', takenAt: iso(at) };
      sample.result = e.antigen;
      sample.results.push({
        result: e.antigen,
        labId: 'point-of-care',
        reportedAt: iso(at),
        receivedAt: iso(d.now),
        by: e.by,
      });
      d.record('lab_result', e.by, { sampleId: sample.sampleId, result: e.antigen });
      if (e.antigen === 'positive') {
        d.openEscalation('antigen_positive', 'doctor', 'Rapid antigen positive at intake', {
          sampleId: sample.sampleId,
        });
        startHospital(d, 'antigen_positive', sample.sampleId);
      }
    }
  }
  return ok({ applied: true, arrivedAt: s.arrivedAt });
}

function onDeparture(d: Draft, e: Extract<MessageEvent, { type: 'departure' }>): Reply {
  const { s } = d;
  if (s.closing?.target !== 'HOSPITAL_TRANSFER' || !s.closing.awaitingDeparture) {
    d.refuse('departure', e.by, 'no departure is awaited');
    return ok({ applied: false, reason: 'no departure is awaited' });
  }
  const reported = ms(e.at);
  const at = Number.isNaN(reported) ? d.now : Math.min(d.now, Math.max(ms(s.closing.startedAt), reported));
  s.closing.awaitingDeparture = false;
  s.closing.departedAt = iso(at);
  s.occupied = false;
  s.departureDeadline = undefined;
  d.record('departed', e.by, { at: s.closing.departedAt });
  for (const x of s.escalations.filter((x) => x.kind === 'late_departure')) d.closeEscalation(x.id, 'departed', e.by);
  // Only now is the room empty: terminal disinfection after a positive case.
  if (s.room)
    d.addTask('checkOut', `checkOut:${s.room.roomId}`, { subject: s.room.roomId, terminal: true, closing: true });
  return ok({ applied: true });
}

/** Why a lab result was not taken, as the case answers it (the API maps these to the lab's statuses). */
export const LAB_REFUSAL = {
  unknownSample: 'unknown sample',
  notOrdered: 'sample was never ordered',
  otherLab: 'sample was ordered from another lab',
  overtaken: 'another result for this sample reached the case first; to be confirmed with the lab',
} as const;

function onLabResult(d: Draft, e: Extract<MessageEvent, { type: 'labResult' }>): { reply: Reply; duplicate: boolean } {
  const { s } = d;
  const sample = d.sample(e.sampleId);
  const unexpected = (why: string, status = 'refused') => {
    d.refuse('lab_result', e.by, why, e.sampleId);
    // One open question per sample: a lab resending the same wrong id is one problem.
    // A positive the case cannot count still reaches the command centre as red.
    if (
      !s.escalations.some(
        (x) =>
          x.kind === 'unexpected_result' &&
          x.sampleId === e.sampleId &&
          x.status !== 'closed' &&
          (e.result !== 'positive' || x.severity === 'red'),
      )
    )
      d.openEscalation(
        'unexpected_result',
        'command_centre',
        `A ${e.result} lab result the case could not take: ${why}`,
        {
          sampleId: e.sampleId,
          ...(e.result === 'positive' ? { severity: 'red' as const } : {}),
        },
      );
    return { reply: ok({ applied: false, status, reason: why }), duplicate: false };
  };
  if (!sample) return unexpected(LAB_REFUSAL.unknownSample);
  if (sample.status === 'planned' && d.liveTask('orderSample', sample.sampleId)?.status === 'running') {
    // The lab answered before the order's own answer reached the case: a race, not an error. The
    // result waits for the order; it counts only if the order is confirmed (taken), else it is refused.
    s.parked.push(e);
    d.record('lab_result_parked', e.by, { sampleId: e.sampleId });
    return { reply: ok({ applied: false, status: 'parked' }), duplicate: false };
  }
  if (sample.status === 'planned' || sample.status === 'cancelled') return unexpected(LAB_REFUSAL.notOrdered);
  if (sample.order!.labId !== e.labId) return unexpected(LAB_REFUSAL.otherLab);
  // Sent as the sample's first result, yet another result got here first: a delivery sent later
  // overtook this one (an update waits for a worker; a signal goes straight into history). Taken
  // as a correction it could undo the lab's real correction, so a person confirms with the lab.
  if (e.first && sample.status !== 'ordered' && sample.result !== e.result)
    return unexpected(LAB_REFUSAL.overtaken, 'conflicting');

  const entry = { result: e.result, labId: e.labId, reportedAt: e.reportedAt, receivedAt: iso(d.now), by: e.by };
  const ended = !!s.closing || isTerminalPhase(s.phase);
  if (sample.status === 'ordered') {
    sample.status = 'resulted';
    sample.result = e.result;
    sample.results.push(entry);
    d.touchSample(sample.sampleId);
    d.record('lab_result', e.by, { sampleId: sample.sampleId, result: e.result, late: ended || undefined });
    if (e.result === 'positive') positiveResult(d, sample.sampleId);
    return { reply: ok({ applied: true, status: 'applied' }), duplicate: false };
  }
  if (sample.result === e.result) return { reply: ok({ applied: false, status: 'duplicate' }), duplicate: true };
  // A different result for a resulted sample is the lab's correction: recorded, escalated, and
  // the criteria re-evaluated with it (evaluate runs after every event).
  const from = sample.result;
  sample.status = 'corrected';
  sample.result = e.result;
  sample.results.push(entry);
  d.touchSample(sample.sampleId);
  d.record('lab_result_corrected', e.by, { sampleId: sample.sampleId, from, to: e.result });
  const correction = d.openEscalation(
    'result_corrected',
    ended ? 'command_centre' : 'doctor',
    `Lab corrected a ${sample.type} result from ${from} to ${e.result}`,
    { sampleId: sample.sampleId },
  );
  if (e.result === 'positive') positiveResult(d, sample.sampleId, correction);
  return { reply: ok({ applied: true, status: 'corrected' }), duplicate: false };
}

/**
 * A positive reaches someone: a red escalation and the hospital while the person is here; the
 * command centre and the community once they have gone. A correction already opened its own
 * red escalation, which then stands for the positive.
 */
function positiveResult(d: Draft, sampleId: string, correction?: CaseEscalation): void {
  const { s } = d;
  if (s.closing?.target === 'HOSPITAL_TRANSFER') return; // already on the way
  if (!s.closing) {
    if (!correction) d.openEscalation('positive_result', 'doctor', 'Positive result', { sampleId });
    startHospital(d, 'positive_result', sampleId);
    return;
  }
  // Still in the room while the case closes (a check-out that keeps failing): the room gets
  // terminal disinfection, whatever the case closes as.
  if (s.occupied)
    for (const t of s.tasks)
      if (t.kind === 'checkOut' && (t.status === 'pending' || t.status === 'running')) t.terminal = true;
  // The person has gone (released home, cancelled): the command centre and the community must act.
  const esc =
    correction ??
    d.openEscalation('late_result', 'command_centre', `Positive result after the case ended (${s.phase})`, {
      sampleId,
    });
  d.addTask('alertCommunity', `alertCommunity:${esc.id}`, { subject: esc.id });
  // At home under monitoring: back through a transfer, like a fever.
  if (s.home && !s.home.doneAt) returnFromHome(d, 'Positive result at home');
}

function onInspectionResult(d: Draft, e: Extract<MessageEvent, { type: 'inspectionResult' }>): Reply {
  const { s } = d;
  const current = s.inspection;
  if (
    e.inspectionId !== current.inspectionId ||
    (current.status !== 'requested' && current.status !== 'requesting') ||
    s.closing
  ) {
    d.refuse(
      'inspection_result',
      e.by,
      e.inspectionId !== current.inspectionId ? 'not the current inspection' : `inspection is ${current.status}`,
    );
    return ok({ applied: false, current: current.inspectionId });
  }
  current.status = e.singleOccupancy ? 'passed' : 'failed';
  current.resultAt = e.at;
  current.inspector = e.inspector;
  if (e.note) current.note = e.note;
  d.touched.inspection = true;
  d.dropTask((t) => t.kind === 'requestInspection');
  d.record('inspection_result', e.by, { inspectionId: e.inspectionId, singleOccupancy: e.singleOccupancy });
  if (e.singleOccupancy) {
    for (const x of s.escalations.filter((x) => x.kind === 'failed_inspection'))
      d.closeEscalation(x.id, 'inspection_passed', e.by);
  } else if (!s.escalations.some((x) => x.kind === 'failed_inspection' && x.status !== 'closed')) {
    d.openEscalation(
      'failed_inspection',
      'command_centre',
      'Home failed the single-occupancy inspection: set another address or extend the stay',
    );
  }
  return ok({ applied: true });
}

function onHealthCheck(
  d: Draft,
  e: Extract<MessageEvent, { type: 'healthCheck' }>,
): { reply: Reply; duplicate: boolean } {
  const { s, policy } = d;
  const previous = s.checks.find((c) => c.checkId === e.checkId);
  if (previous) return { reply: ok(checkReply(s, previous, true)), duplicate: true };
  const takenAt = ms(e.takenAt);
  const fever = e.temperatureC !== undefined && e.temperatureC >= policy.feverThresholdC;
  const check = {
    checkId: e.checkId,
    takenAt: iso(takenAt),
    ...(e.temperatureC !== undefined ? { temperatureC: e.temperatureC } : {}),
    symptoms: e.symptoms.map(String),
    by: e.by,
    fever,
    escalationIds: [] as string[],
  } as (typeof s.checks)[number];
  // Judged by event time: the slots whose time to be judged had come when the check was taken
  // were missed (it was not taken for them); it counts for the slot its window holds, if any.
  if (d.ctx.slotsByEventTime && !s.closing && ACTIVE.includes(s.phase)) judgeMissed(d, Math.min(takenAt, d.now));
  const slot = s.currentSlot ? ms(s.currentSlot) : undefined;
  if (slot !== undefined && takenAt >= slot - policy.checkWindowBeforeMs) {
    check.dueAt = s.currentSlot;
    advanceSlot(d, slot);
  }
  // Any check stops every missed-check chain: someone has seen the person.
  for (const chain of s.missedChains) d.closeEscalation(chain.escalationId, 'check_received', e.by);
  s.missedChains = [];
  d.record('health_check', e.by, { checkId: e.checkId, fever, symptoms: check.symptoms.length });
  if (fever || check.symptoms.length > 0) {
    const kind = fever ? 'fever' : 'symptom';
    check.escalationIds.push(
      d.openEscalation(kind, 'doctor', fever ? `Temperature ${e.temperatureC} °C` : 'Symptoms reported').id,
    );
    check.extraSampleId = d.addSample(kind, Math.max(takenAt, d.now), { type: policy.extraSampleType }).sampleId;
  }
  s.checks.push(check);
  d.touched.checks.push(check.checkId);
  return { reply: ok(checkReply(s, check, false)), duplicate: false };
}

function checkReply(s: CaseState, c: CaseState['checks'][number], duplicate: boolean): Record<string, unknown> {
  return {
    checkId: c.checkId,
    duplicate,
    fever: c.fever,
    escalationIds: c.escalationIds,
    ...(c.extraSampleId ? { extraSampleId: c.extraSampleId } : {}),
    ...(s.currentSlot ? { nextCheckDue: s.currentSlot } : {}),
  };
}

function onChangeStay(d: Draft, e: Extract<MessageEvent, { type: 'changeStay' }>): Reply {
  const { s, policy } = d;
  s.stayAdjustDays += e.days;
  if (s.stayStart) {
    s.releaseDue = iso(releaseDueAt(policy, ms(s.stayStart), s.stayAdjustDays));
    replanSamples(d);
    stayMoved(d, e.by, 'stay extended');
    if (!s.currentSlot && ACTIVE.includes(s.phase)) advanceSlot(d, d.now - 1);
  }
  d.record(
    e.days > 0 ? 'stay_extended' : 'stay_shortened',
    e.by,
    { days: e.days, releaseDue: s.releaseDue ?? null },
    e.reason,
  );
  return ok({ releaseDue: s.releaseDue ?? null, stayAdjustDays: s.stayAdjustDays });
}

/** The release date moved: a case waiting for release that is now well before it observes again. */
function stayMoved(d: Draft, by: Actor, reason: string): void {
  const { s, policy } = d;
  if (s.phase === 'RELEASE_PENDING' && d.now < ms(s.releaseDue!) - policy.inspectionLeadMs) {
    // Moved well into the future: back to observation; a failed or unanswered home is inspected
    // again at the new lead time, a passed one stays passed.
    d.setPhase('OBSERVATION', by, reason);
    s.releaseBlockers = [];
    if (s.inspection.status !== 'passed' && s.inspection.status !== 'none') newInspectionRound(d, false);
  }
}

// ---------------------------------------------------------------------------------------
// Task outcomes
// ---------------------------------------------------------------------------------------
function applyInternal(d: Draft, e: Exclude<CaseEvent, MessageEvent>): void {
  if (e.type === 'tick') return;
  if (e.type === 'roomOffered') {
    // Woken by the waiting list: the reservation waiting for its recheck runs now (it finds the
    // room handed to the case). Anything else (already asking, or no longer waiting) ignores it.
    const t = d.s.tasks.find((x) => x.kind === 'reserveRoom' && x.status === 'pending');
    if (t && ms(t.dueAt) > d.now) {
      t.dueAt = iso(d.now);
      d.changed = true;
    }
    return;
  }
  const task = d.task(e.taskId);
  if (!task) return;
  if (e.type === 'taskStarted') {
    if (task.status !== 'pending') return;
    task.status = 'running';
    // The first attempt's start: an order whose answer was lost may have been taken then.
    task.startedAt ??= iso(d.now);
    task.attempts++;
    d.changed = true;
    return;
  }
  if (task.status !== 'running' && task.status !== 'pending') return;
  if (e.type === 'taskFailed') return onTaskFailed(d, task, e.error);
  onTaskSucceeded(d, task, e.result ?? { kind: 'none' });
}

function backoff(d: Draft, attempts: number, bounds = d.policy.taskRetry): number {
  return Math.min(bounds.maxMs, bounds.initialMs * 2 ** Math.max(0, attempts - 1));
}

/** Whether the case still needs what a task does (a case that began closing needs no room, no orders…). */
function stillWanted(s: CaseState, task: Task): boolean {
  switch (task.kind) {
    case 'reserveRoom':
      return !s.closing && !s.hospital && !s.room;
    case 'dispatchTransport':
    case 'checkIn':
      return !s.closing;
    case 'orderSample':
      return !s.closing && s.samples.some((x) => x.sampleId === task.subject && x.status === 'planned');
    case 'requestInspection':
      return !s.closing && task.subject === s.inspection.inspectionId && s.inspection.status === 'requesting';
    default:
      return true;
  }
}

/** Results that waited for their sample's order: counted now if it was ordered, refused if not. */
function unpark(d: Draft, sampleId: string): void {
  const waiting = d.s.parked.filter((p) => p.sampleId === sampleId);
  if (!waiting.length) return;
  d.s.parked = d.s.parked.filter((p) => p.sampleId !== sampleId);
  for (const p of waiting) onLabResult(d, p);
}

function onTaskFailed(d: Draft, task: Task, error: string): void {
  task.lastError = error;
  d.changed = true;
  // A result that waited for this order keeps waiting while the order is retried: the lab may have
  // the sample although its answer was lost. It is refused only when the order is abandoned.
  if (!stillWanted(d.s, task)) {
    task.status = 'dropped';
    d.closeEscalation(task.escalationId, 'not_needed', SYSTEM_ACTOR);
    if (task.kind === 'orderSample') unpark(d, task.subject!);
    return;
  }
  if (task.kind === 'notify') {
    // The escalation is on the list whatever the webhook does; a notice is retried, never escalated.
    if (task.attempts >= NOTIFY_ATTEMPTS) task.status = 'failed';
    else Object.assign(task, { status: 'pending', dueAt: iso(d.now + backoff(d, task.attempts)) });
    return;
  }
  task.status = 'pending';
  task.dueAt = iso(d.now + backoff(d, task.attempts));
  d.record('task_failed', SYSTEM_ACTOR, { task: task.kind, subject: task.subject ?? null, error, retryAt: task.dueAt });
  // One escalation per failing task, not one per retry; it closes when the retry succeeds.
  const open = d.escalation(task.escalationId);
  if (!open || open.status === 'closed') {
    task.escalationId = d.openEscalation('integration_failure', 'command_centre', `${task.kind} failed: ${error}`, {
      taskId: task.id,
    }).id;
  }
}

function completeTask(d: Draft, task: Task): void {
  task.status = 'done';
  d.changed = true;
  d.closeEscalation(task.escalationId, 'retry_succeeded', SYSTEM_ACTOR);
  // Done tasks are dropped from the state; the outcome lives in the sample, room or escalation.
  d.s.tasks = d.s.tasks.filter((t) => t.status === 'pending' || t.status === 'running' || t.status === 'failed');
}

function onTaskSucceeded(d: Draft, task: Task, result: TaskResult): void {
  const { s } = d;
  switch (task.kind) {
    case 'reserveRoom': {
      const room = result.kind === 'room' ? result.room : null;
      if (!room && (s.closing || s.hospital)) {
        // No longer wanted, and nothing to give back; but the attempt may have put the case on the
        // waiting list, which it leaves (a room handed to it meanwhile goes to the next case).
        if (d.ctx.roomQueue) {
          s.roomQueuedAt ??= iso(d.now);
          d.addTask('leaveRoomQueue', 'leaveRoomQueue', { closing: true });
        }
        break;
      }
      if (!room) {
        // No room free: not a failure. Escalate once, retry with backoff until one frees.
        d.closeEscalation(task.escalationId, 'retry_succeeded', SYSTEM_ACTOR);
        task.escalationId = undefined;
        if (!s.escalations.some((x) => x.kind === 'no_room' && x.status !== 'closed'))
          d.openEscalation('no_room', 'command_centre', `No free room for a ${s.colour} case`);
        if (d.ctx.roomQueue) {
          // On the district's waiting list: woken when a room is handed over; the recheck is a safety net.
          if (!s.roomQueuedAt) {
            s.roomQueuedAt = iso(d.now);
            d.record('room_queued', SYSTEM_ACTOR, { colour: s.colour });
          }
          Object.assign(task, { status: 'pending', dueAt: iso(d.now + d.policy.roomQueue.recheckMs) });
          d.changed = true;
          return;
        }
        const wait = Math.min(d.policy.roomRetry.maxMs, s.noRoomRetryMs ?? d.policy.roomRetry.initialMs);
        s.noRoomRetryMs = Math.min(d.policy.roomRetry.maxMs, wait * 2);
        Object.assign(task, { status: 'pending', dueAt: iso(d.now + wait) });
        d.changed = true;
        return;
      }
      completeTask(d, task);
      s.room = room;
      s.roomAssignedAt = iso(d.now);
      s.roomQueuedAt = undefined;
      d.record('room_assigned', SYSTEM_ACTOR, { hotelId: room.hotelId, roomId: room.roomId, roomNo: room.roomNo });
      for (const x of s.escalations.filter((x) => x.kind === 'no_room'))
        d.closeEscalation(x.id, 'room_assigned', SYSTEM_ACTOR);
      // A room that came back after the case began closing is given straight back.
      if (s.closing || s.hospital)
        d.addTask('releaseRoom', `releaseRoom:${room.roomId}`, { subject: room.roomId, closing: true });
      return;
    }
    case 'leaveRoomQueue':
      s.roomQueuedAt = undefined;
      d.record('room_queue_left', SYSTEM_ACTOR);
      break;
    case 'releaseRoom':
      s.roomReleased = true;
      d.record('room_released', SYSTEM_ACTOR, { roomId: task.subject ?? null });
      break;
    case 'dispatchTransport':
      s.dispatchId = result.kind === 'dispatch' ? result.dispatchId : undefined;
      s.dispatchedAt = iso(d.now);
      d.record('transport_dispatched', SYSTEM_ACTOR, { dispatchId: s.dispatchId ?? null });
      // Cancelled (or arrived) while the vehicle was being booked: the booking is cancelled.
      if ((s.closing && !s.arrivedAt) || s.hospital) addCancelTransport(d);
      break;
    case 'cancelTransport':
      d.record('transport_cancelled', SYSTEM_ACTOR, { dispatchId: task.subject ?? null });
      break;
    case 'checkIn':
      s.checkedIn = true;
      d.record('checked_in', SYSTEM_ACTOR, { roomId: s.room?.roomId ?? null });
      break;
    case 'orderSample': {
      const sample = d.sample(task.subject!);
      if (sample && (sample.status === 'planned' || sample.status === 'cancelled')) {
        const order: { labId: string; orderId?: string; orderedAt: string } =
          result.kind === 'order' ? result : { labId: 'unknown', orderedAt: iso(d.now) };
        sample.status = 'ordered';
        sample.cancelReason = undefined;
        // The lab's own time, bounded by when the order was placed and when its answer arrived.
        const placed = task.startedAt ? ms(task.startedAt) : d.now;
        const claimed = ms(order.orderedAt);
        const taken = Number.isNaN(claimed) ? d.now : Math.min(d.now, Math.max(placed, claimed));
        sample.order = {
          labId: order.labId,
          ...(order.orderId ? { orderId: order.orderId } : {}),
          takenAt: iso(taken),
        };
        d.touchSample(sample.sampleId);
        d.record('sample_ordered', SYSTEM_ACTOR, { sampleId: sample.sampleId, labId: order.labId });
      }
      completeTask(d, task);
      unpark(d, task.subject!);
      return;
    }
    case 'requestInspection':
      if (task.subject === s.inspection.inspectionId && s.inspection.status === 'requesting') {
        s.inspection.status = 'requested';
        d.touched.inspection = true;
        d.record('inspection_requested', SYSTEM_ACTOR, { inspectionId: s.inspection.inspectionId });
      }
      break;
    case 'dispatchHospital':
      if (s.hospital && result.kind === 'dispatch') s.hospital.dispatchId = result.dispatchId;
      if (s.closing?.awaitingDeparture) s.departureDeadline = iso(d.now + d.policy.departureDeadlineMs);
      d.record('hospital_transport_dispatched', SYSTEM_ACTOR, {});
      break;
    case 'checkOut':
      s.checkedIn = false;
      s.occupied = false;
      d.record('checked_out', SYSTEM_ACTOR, { roomId: task.subject ?? null, terminalDisinfection: !!task.terminal });
      break;
    case 'handOver':
      d.record('handed_over', SYSTEM_ACTOR, { certificateNo: s.closing?.certificateNo ?? null });
      break;
    case 'notify':
    case 'alertCommunity':
      break;
    case 'returnTransfer': {
      if (result.kind !== 'returned') return onTaskFailed(d, task, 'no case started');
      s.home!.returnCaseNo = result.caseNo;
      for (const x of s.escalations)
        if (x.kind === 'home_fever' && x.status !== 'closed')
          d.closeEscalation(x.id, 'returned_to_quarantine', SYSTEM_ACTOR);
      d.record('returned_to_quarantine', SYSTEM_ACTOR, { caseNo: result.caseNo });
      break;
    }
  }
  completeTask(d, task);
}

function waiveTask(d: Draft, task: Task, by: Actor): void {
  const { s } = d;
  task.status = 'waived';
  task.waivedBy = by;
  d.changed = true;
  d.record('task_waived', by, { task: task.kind, subject: task.subject ?? null });
  switch (task.kind) {
    case 'orderSample': {
      const sample = d.sample(task.subject!);
      if (sample?.status === 'planned') {
        sample.status = 'cancelled';
        sample.cancelReason = 'order waived';
        d.touchSample(sample.sampleId);
      }
      unpark(d, task.subject!);
      break;
    }
    case 'requestInspection':
      // The street office was reached another way: the result is awaited as if requested.
      if (task.subject === s.inspection.inspectionId && s.inspection.status === 'requesting') {
        s.inspection.status = 'requested';
        d.touched.inspection = true;
      }
      break;
    case 'dispatchTransport':
      s.dispatchedAt ??= iso(d.now);
      break;
    case 'checkIn':
      s.checkedIn = true;
      break;
    case 'checkOut':
      s.checkedIn = false;
      break;
    case 'releaseRoom':
      s.roomReleased = true;
      break;
    case 'dispatchHospital':
      // A vehicle arranged by phone: the departure is awaited, and escalates if it does not come.
      if (s.closing?.awaitingDeparture) s.departureDeadline = iso(d.now + d.policy.departureDeadlineMs);
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------------------
function startHospital(d: Draft, reason: 'positive_result' | 'antigen_positive', sampleId: string): void {
  if (d.s.hospital) return;
  d.s.hospital = { reason, sampleId };
  startClosing(d, 'HOSPITAL_TRANSFER', reason, SYSTEM_ACTOR);
}

function addCancelTransport(d: Draft): void {
  const { s } = d;
  if (s.dispatchId && !s.arrivedAt)
    d.addTask('cancelTransport', `cancelTransport:${s.dispatchId}`, { subject: s.dispatchId, closing: true });
}

function startClosing(d: Draft, target: Closing['target'], reason: string, by: Actor): void {
  const { s } = d;
  if (s.closing) return;
  s.closing = { target, reason, by, startedAt: iso(d.now) };
  d.setPhase(target, by, reason);
  // What the case no longer needs (room hunting, intake transport, check-in, orders, inspection):
  // the same judgement that drops a failed task once it is no longer wanted.
  d.dropTask((t) => !stillWanted(s, t));
  for (const x of s.samples) d.cancelSample(x, CLOSING_CANCEL_REASON);
  for (const x of s.escalations) {
    if (!ENDS_WITH_CASE.includes(x.kind)) continue;
    d.closeEscalation(x.id, target === 'RELEASED' && x.kind === 'release_blocked' ? 'released' : 'case_ended', by);
  }
  s.missedChains = [];
  s.currentSlot = undefined;
  s.lateArrival = undefined;
  s.releaseBlockers = [];
  addCancelTransport(d);
  const room = s.room;
  if (target === 'HOSPITAL_TRANSFER') {
    d.addTask('dispatchHospital', 'dispatchHospital', { closing: true });
    // In the room: it stays occupied until the person has left (reported), then terminal disinfection.
    if (s.occupied) s.closing.awaitingDeparture = true;
  } else if (target === 'RELEASED') {
    s.closing.certificateNo = `${s.caseNo}-R`;
    if (room && s.occupied) d.addTask('checkOut', `checkOut:${room.roomId}`, { subject: room.roomId, closing: true });
    d.addTask('handOver', 'handOver', { closing: true });
  } else if (room && s.occupied) {
    d.addTask('checkOut', `checkOut:${room.roomId}`, { subject: room.roomId, closing: true });
  }
  if (room && !s.occupied && !s.roomReleased)
    d.addTask('releaseRoom', `releaseRoom:${room.roomId}`, { subject: room.roomId, closing: true });
  // Off the waiting list, and a room it may have handed over meanwhile goes back to it.
  if (!room && s.roomQueuedAt) d.addTask('leaveRoomQueue', 'leaveRoomQueue', { closing: true });
}

function maybeEnd(d: Draft): void {
  const { s } = d;
  if (!s.closing || s.endedAt) return;
  if (s.closing.awaitingDeparture) return;
  if (s.tasks.some((t) => t.closing && (t.status === 'pending' || t.status === 'running'))) return;
  // Anything still on its way (a reservation, a vehicle booking…) may yet bring back something to undo.
  if (s.tasks.some((t) => t.status === 'running' && t.kind !== 'notify' && t.kind !== 'alertCommunity')) return;
  // Released with home days: the community's part comes before the end.
  if (s.closing.target === 'RELEASED' && (d.policy.homeMonitoringDays ?? 0) > 0 && !s.home?.doneAt) return;
  s.endedAt = iso(d.now);
  if (s.closing.target === 'HOSPITAL_TRANSFER') {
    for (const x of s.escalations.filter((x) => x.kind === 'positive_result' || x.kind === 'antigen_positive'))
      d.closeEscalation(x.id, 'transferred_to_hospital', SYSTEM_ACTOR);
  }
  d.record('case_ended', SYSTEM_ACTOR, { phase: s.phase, reason: s.closing.reason });
}

// ---------------------------------------------------------------------------------------
// Evaluate: what time and state now require. Idempotent for a given now.
// ---------------------------------------------------------------------------------------
function evaluate(d: Draft): void {
  const { s, policy, ctx } = d;
  if (s.closing) {
    lateDeparture(d);
    // Released with home days: the community's part starts at release (the person is going home).
    if (s.closing.target === 'RELEASED' && !s.home && (policy.homeMonitoringDays ?? 0) > 0) startHome(d);
    homeDays(d);
    maybeEnd(d);
    return;
  }
  if (!s.room) {
    if (!s.hospital) d.addTask('reserveRoom', 'reserveRoom');
  }
  if (s.room && !s.arrivedAt) {
    if (ctx.request.transport === 'vehicle' && !s.dispatchedAt) d.addTask('dispatchTransport', 'dispatchTransport');
    if (s.phase === 'REQUESTED') d.setPhase('ROOM_ASSIGNED');
    if (s.phase === 'ROOM_ASSIGNED' && (s.dispatchedAt || ctx.request.transport === 'self_drive'))
      d.setPhase('IN_TRANSIT');
    lateArrival(d);
  }
  if (s.room && s.arrivedAt && !s.occupied) intake(d);
  if (!ACTIVE.includes(s.phase)) return;

  const releaseDue = ms(s.releaseDue!);
  for (const x of s.samples) {
    if (x.status === 'planned' && ms(x.dueAt) <= d.now)
      d.addTask('orderSample', `orderSample:${x.sampleId}`, { subject: x.sampleId });
  }
  missedChecks(d);

  if (s.phase === 'OBSERVATION' && d.now >= releaseDue - policy.inspectionLeadMs) d.setPhase('RELEASE_PENDING');
  if (s.phase === 'RELEASE_PENDING' && s.inspection.status === 'none') requestInspection(d);
  if (s.phase !== 'RELEASE_PENDING') return;

  const unmet = unmetCriteria(policy, {
    now: d.now,
    releaseDue,
    samples: s.samples,
    escalations: s.escalations,
    inspection: s.inspection.status,
    checks: s.checks,
  });
  if (unmet.join() !== s.releaseBlockers.join()) {
    s.releaseBlockers = unmet;
    d.record('release_blockers', SYSTEM_ACTOR, { unmet });
  }
  if (unmet.length === 0) {
    // By event time a slot whose time to be judged has come is judged by a tick (at once, after
    // the messages in hand): release waits for it, so a missed slot is never released past.
    if (d.ctx.slotsByEventTime && !d.tick && slotAwaitingJudgement(s, policy, d.now)) return;
    // A second, independent check of the release criteria: if the two ever disagree, the case
    // is not released (the workflow task fails and retries, visibly) rather than released wrongly.
    const violations = releaseViolations(policy, s, d.now);
    if (violations.length) throw new Error(`release refused by the invariant check: ${violations.join('; ')}`);
    startClosing(d, 'RELEASED', 'criteria met', SYSTEM_ACTOR);
    if ((policy.homeMonitoringDays ?? 0) > 0) startHome(d);
    maybeEnd(d);
    return;
  }
  // Held only for want of negatives, with nothing taken or planned that could supply them:
  // plan one more sample, far enough after the last for the pair rule.
  if (
    (unmet.includes('not_enough_negatives') || unmet.includes('negatives_too_close')) &&
    !unmet.includes('result_pending') &&
    !unmet.includes('sample_not_taken') &&
    !unmet.includes('positive_result')
  ) {
    const last = Math.max(0, ...s.samples.filter((x) => x.order).map((x) => ms(x.order!.takenAt)));
    const extra = d.addSample('release_check', Math.max(d.now, last + policy.release.minApartMs));
    if (ms(extra.dueAt) <= d.now)
      d.addTask('orderSample', `orderSample:${extra.sampleId}`, { subject: extra.sampleId });
  }
  if (
    !unmet.includes('end_date_not_reached') &&
    d.now >= releaseDue + policy.releaseBlockedEscalateAfterMs &&
    !s.escalations.some((x) => x.kind === 'release_blocked' && x.status !== 'closed')
  ) {
    d.openEscalation('release_blocked', 'command_centre', `Release held: ${unmet.join(', ')}`);
  }
}

function intake(d: Draft): void {
  const { s, policy, ctx } = d;
  if (s.hospital || s.closing) return;
  const arrivedAt = ms(s.arrivedAt!);
  if (!s.colourFixedBy) {
    const c = classifyColour(ctx.request.person, policy, arrivedAt);
    if (c.colour !== s.colour) d.record('colour_classified', SYSTEM_ACTOR, { colour: c.colour });
    s.colour = c.colour;
    s.colourReasons = c.reasons;
  }
  s.occupied = true;
  s.stayStart = s.arrivedAt;
  s.releaseDue = iso(releaseDueAt(policy, arrivedAt, s.stayAdjustDays));
  d.addTask('checkIn', `checkIn:${s.room!.roomId}`, { subject: s.room!.roomId });
  replanSamples(d);
  // Slots start when the person is in the room: someone who waited at the door for a room is
  // not charged with checks they could not have had.
  s.currentSlot = undefined;
  advanceSlot(d, Math.max(arrivedAt, d.now) - 1);
  d.record('intake', SYSTEM_ACTOR, { roomId: s.room!.roomId, releaseDue: s.releaseDue });
  d.setPhase('OBSERVATION');
}

/**
 * Plans the policy's samples for the stay as it now stands (see samplingSlots). `catchUp`: a
 * day already past is planned at once (intake, a changed stay); a directive does not catch up
 * (what was taken counts, and the release rule plans what is still missing).
 */
function replanSamples(d: Draft, catchUp = true, cancelReason = 'stay shortened'): void {
  const { s, policy } = d;
  const stayStart = ms(s.stayStart!);
  const releaseDue = ms(s.releaseDue!);
  const wanted = samplingSlots(policy, stayStart, releaseDue, s.stayAdjustDays);
  const margin = policyDayMs(policy) / 2;
  for (const w of wanted) {
    const existing = s.samples.filter((x) => x.slot === w.slot && x.status !== 'cancelled').pop();
    if (existing?.status === 'planned') {
      // A new sampling type (a directive) applies to samples not yet on their way.
      const retype = existing.type !== policy.sampling.type && !d.liveTask('orderSample', existing.sampleId);
      if (existing.dueAt !== iso(w.dueAt) || existing.day !== w.day || retype) {
        existing.dueAt = iso(w.dueAt);
        existing.day = w.day;
        if (retype) existing.type = policy.sampling.type;
        d.touchSample(existing.sampleId);
        d.record('sample_rescheduled', SYSTEM_ACTOR, { sampleId: existing.sampleId, day: w.day });
      }
      continue;
    }
    // Taken already: an end-anchored slot that moved well past it gets a new sample (an extension).
    if (existing && (!existing.order || w.dueAt <= ms(existing.order.takenAt) + margin)) continue;
    if (!catchUp && w.dueAt < d.now) continue;
    d.addSample('scheduled', Math.max(w.dueAt, d.now), { day: w.day, anchor: w.anchor, slot: w.slot });
  }
  const wantedSlots = new Set(wanted.map((w) => w.slot));
  for (const x of s.samples) {
    if (x.reason === 'scheduled' && x.status === 'planned' && x.slot && !wantedSlots.has(x.slot))
      d.cancelSample(x, cancelReason);
  }
}

function advanceSlot(d: Draft, after: number): void {
  const { s, policy } = d;
  // Checks continue past the due date while release is held (failed home, pending result): a
  // policy day ahead (by event time: of the slot left, if later than now, so that a check taken
  // early in its window still finds tomorrow's slot with one check time a day).
  const until = d.ctx.slotsByEventTime
    ? Math.max(ms(s.releaseDue!), Math.max(d.now, after) + policyDayMs(policy) + 1)
    : Math.max(ms(s.releaseDue!), d.now + policyDayMs(policy));
  const next = nextCheckSlot(policy, ms(s.stayStart!), after + 1, until);
  s.currentSlot = next === undefined ? undefined : iso(next);
}

function missedChecks(d: Draft): void {
  const { s, policy } = d;
  // By event time, only a tick judges slots (CaseContext.slotsByEventTime): a message taken in
  // late must not judge a slot that a check after it in the same task was sent in time for.
  if (d.ctx.slotsByEventTime && !d.tick) return;
  judgeMissed(d, d.now);
  for (const chain of s.missedChains) {
    if (d.ctx.foldMissedChecks) {
      climbFolded(d, chain);
      continue;
    }
    for (;;) {
      const next = policy.missedCheckSteps[chain.step + 1];
      if (!next || d.now < ms(chain.slotAt) + policy.checkWindowAfterMs + next.afterMs) break;
      chain.step++;
      const esc = d.escalation(chain.escalationId);
      if (esc && esc.status === 'open')
        d.raiseEscalation(esc, next.level, `Health check due ${chain.slotAt} still missing`);
    }
  }
}

/** How long after its slot a check slot is judged missed: the window, then the first step's wait. */
export function missedAfterMs(policy: Pick<CasePolicy, 'checkWindowAfterMs' | 'missedCheckSteps'>): number {
  return policy.checkWindowAfterMs + (policy.missedCheckSteps[0]?.afterMs ?? 0);
}

/** The watched slot's time to be judged has come (by event time, the next tick judges it). */
function slotAwaitingJudgement(s: CaseState, policy: CasePolicy, now: number): boolean {
  const firstStepMs = missedAfterMs(policy);
  return !!s.currentSlot && now >= ms(s.currentSlot) + firstStepMs;
}

/**
 * A tick now would move this chain (climbFolded's or the unfolded loop's rules): by event time
 * chains climb only on ticks, so the case asks for one at once.
 */
function climbDue(s: CaseState, policy: CasePolicy, ctx: CaseContext, chain: MissedChain, now: number): boolean {
  const steps = policy.missedCheckSteps;
  const since = ms(chain.slotAt) + policy.checkWindowAfterMs;
  if (!ctx.foldMissedChecks) {
    const next = steps[chain.step + 1];
    return !!next && now >= since + next.afterMs;
  }
  const esc = s.escalations.find((e) => e.id === chain.escalationId);
  if (!esc || esc.status !== 'open') return false;
  let target = -1;
  for (let i = 0; i < steps.length; i++) if (now >= since + steps[i]!.afterMs) target = i;
  if (target < 0 || target < chain.step) return false;
  const level = steps[target]!.level;
  if (target === chain.step && level === esc.level) return false;
  if ((chain.levels ?? [esc.level]).includes(level)) return target > chain.step;
  return true;
}

/** The watched slots whose time to be judged had come by `asOf` and got no check: missed. */
function judgeMissed(d: Draft, asOf: number): void {
  const { s, policy } = d;
  const firstStepMs = missedAfterMs(policy);
  let slot = s.currentSlot ? ms(s.currentSlot) : undefined;
  while (slot !== undefined && asOf >= slot + firstStepMs) {
    const open = d.ctx.foldMissedChecks ? openMissedChain(d) : undefined;
    if (open) {
      // The person's chain is still open: this slot is one more in it, not a new escalation.
      const esc = d.escalation(open.escalationId)!;
      open.missed = (open.missed ?? 1) + 1;
      d.record('check_missed', SYSTEM_ACTOR, { escalationId: esc.id, slotAt: iso(slot), missed: open.missed });
      // Each further policy day of slots missed (by the check times in force now), whoever holds
      // it now hears it again: reminders numbered by the chain, so no number is ever used twice.
      esc.reason = foldedReason(open);
      d.touchEscalation(esc.id);
      const perDay = Math.max(1, policy.checkTimes.length);
      if (open.missed - (open.remindedAt ?? 1) >= perDay) {
        open.reminders = (open.reminders ?? 0) + 1;
        open.remindedAt = open.missed;
        d.remind(esc, open.reminders);
      }
    } else {
      const first = policy.missedCheckSteps[0];
      const esc = d.openEscalation('missed_check', first?.level ?? 'nurse', `Health check due ${iso(slot)} missed`);
      s.missedChains.push({
        escalationId: esc.id,
        slotAt: iso(slot),
        step: 0,
        ...(d.ctx.foldMissedChecks ? { missed: 1, levels: [esc.level] } : {}),
      });
    }
    advanceSlot(d, slot);
    slot = s.currentSlot ? ms(s.currentSlot) : undefined;
  }
}

/**
 * A folded chain climbs to the last step whose time has passed under the rules in force now: a
 * directive that changed the steps while the chain was open (fewer steps, other levels) moves it
 * to where those rules put it, never back down. Skipped steps are one notice, at the level reached.
 */
function climbFolded(d: Draft, chain: MissedChain): void {
  const { policy } = d;
  const esc = d.escalation(chain.escalationId);
  if (!esc || esc.status !== 'open') return;
  const steps = policy.missedCheckSteps;
  const since = ms(chain.slotAt) + policy.checkWindowAfterMs;
  let target = -1;
  for (let i = 0; i < steps.length; i++) if (d.now >= since + steps[i]!.afterMs) target = i;
  if (target < 0 || target < chain.step) return;
  const level = steps[target]!.level;
  if (target === chain.step && level === esc.level) return;
  const held = chain.levels ?? [esc.level];
  if (held.includes(level)) {
    // A level it held before (steps a directive reordered, or repeated): whoever that is was told
    // once already; the chain moves on without going back down to them.
    if (target > chain.step) {
      chain.step = target;
      d.changed = true;
    }
    return;
  }
  chain.step = target;
  chain.levels = [...held, level];
  const reason = (chain.missed ?? 1) > 1 ? foldedReason(chain) : `Health check due ${chain.slotAt} still missing`;
  d.raiseEscalation(esc, level, reason);
}

function foldedReason(chain: MissedChain): string {
  return `${chain.missed ?? 1} health checks missed since ${chain.slotAt}`;
}

/** The person's missed-check chain whose escalation is still open (folded chains: at most one). */
function openMissedChain(d: Draft): MissedChain | undefined {
  return d.s.missedChains.find((c) => d.escalation(c.escalationId)?.status === 'open');
}

function arrivalDeadline(s: CaseState, ctx: CaseContext, policy: CasePolicy): number | undefined {
  if (!s.room || s.arrivedAt || s.closing) return undefined;
  const from = Math.max(
    s.dispatchedAt ? ms(s.dispatchedAt) : ms(s.roomAssignedAt ?? s.requestedAt),
    ctx.request.expectedArrivalAt ? ms(ctx.request.expectedArrivalAt) || 0 : 0,
  );
  return from + policy.arrivalDeadlineMs;
}

function lateArrival(d: Draft): void {
  const { s, policy } = d;
  const deadline = arrivalDeadline(s, d.ctx, policy);
  if (deadline === undefined || d.now < deadline) return;
  if (!s.lateArrival) {
    const esc = d.openEscalation('late_arrival', 'point_leader', 'Person has not arrived by the deadline');
    s.lateArrival = { escalationId: esc.id, nextAt: iso(d.now + policy.lateArrivalRepeatMs) };
    return;
  }
  if (d.now >= Math.max(deadline, ms(s.lateArrival.nextAt))) {
    const esc = d.escalation(s.lateArrival.escalationId);
    if (esc && esc.status === 'open') d.raiseEscalation(esc, 'command_centre', 'Person still has not arrived');
    s.lateArrival.nextAt = iso(d.now + policy.lateArrivalRepeatMs);
    d.changed = true;
  }
}

function lateDeparture(d: Draft): void {
  const { s } = d;
  if (!s.closing?.awaitingDeparture || !s.departureDeadline || d.now < ms(s.departureDeadline)) return;
  if (!s.escalations.some((x) => x.kind === 'late_departure' && x.status !== 'closed'))
    d.openEscalation(
      'late_departure',
      'point_leader',
      'Hospital transfer: nobody has reported the person leaving the room',
    );
}

function requestInspection(d: Draft): void {
  const { s } = d;
  s.inspection.status = 'requesting';
  s.inspection.requestedAt = iso(d.now);
  d.touched.inspection = true;
  d.addTask('requestInspection', `requestInspection:${s.inspection.inspectionId}`, {
    subject: s.inspection.inspectionId,
  });
}

/** A new address (or a stay moved back into observation) starts a new inspection round. */
function newInspectionRound(d: Draft, requestNow = true): void {
  const { s } = d;
  const old = s.inspection.inspectionId;
  d.dropTask((t) => t.kind === 'requestInspection' && t.subject === old);
  const round = s.inspection.round + 1;
  s.counters.inspections = round;
  s.inspection = { inspectionId: `${s.caseNo}-I${round}`, round, status: 'none' };
  d.touched.inspection = true;
  if (requestNow && s.phase === 'RELEASE_PENDING') requestInspection(d);
}

/**
 * A directive's dry run for one case: what applying `policy` now would do, computed by the same
 * decider the case runs (nothing is kept). Ok with `applied: false` when the case would skip it.
 */
export function previewPolicy(
  state: CaseState,
  ctx: CaseContext,
  e: Omit<Extract<MessageEvent, { type: 'applyPolicy' }>, 'type' | 'key'>,
  now: number,
): Reply {
  const event: MessageEvent = { ...e, type: 'applyPolicy' };
  return validate(state, event, ctx, now) ?? decide(state, event, ctx, now).reply!;
}

// ---------------------------------------------------------------------------------------
// For the workflow: which tasks to run, when to wake, whether the case is over.
// ---------------------------------------------------------------------------------------
export function dueTasks(s: CaseState, now: number): Task[] {
  const running = (kind: TaskKind) => s.tasks.some((t) => t.kind === kind && t.status === 'running');
  return s.tasks.filter((t) => {
    if (t.status !== 'pending' || ms(t.dueAt) > now) return false;
    // The room's own order: no check-out or release while its reservation or check-in is in flight.
    if ((t.kind === 'checkOut' || t.kind === 'releaseRoom') && (running('checkIn') || running('reserveRoom')))
      return false;
    // Leaving the waiting list after any reservation in flight, which could put the case back on it.
    if (t.kind === 'leaveRoomQueue' && running('reserveRoom')) return false;
    return true;
  });
}

/** The next instant after `now` at which time alone changes something; undefined when only a message can. */
export function nextWakeAt(s: CaseState, ctx: CaseContext, now: number): number | undefined {
  const policy = policyOf(s, ctx);
  const due: number[] = [];
  for (const t of s.tasks) if (t.status === 'pending') due.push(ms(t.dueAt));
  if (s.closing) {
    if (s.closing.awaitingDeparture && s.departureDeadline) due.push(ms(s.departureDeadline));
    if (s.home && !s.home.doneAt) {
      const dayMs = policyDayMs(policy);
      const start = ms(s.home.startedAt);
      due.push(start + (Math.floor((now - start) / dayMs) + 1) * dayMs, ms(s.home.until));
    }
    if (s.endedAt) due.push(ms(s.endedAt) + policy.lateResultWindowMs);
  } else {
    const dl = arrivalDeadline(s, ctx, policy);
    if (dl !== undefined) due.push(dl);
    if (dl !== undefined && s.lateArrival) due.push(Math.max(dl, ms(s.lateArrival.nextAt)));
    if (ACTIVE.includes(s.phase) && s.releaseDue) {
      const releaseDue = ms(s.releaseDue);
      due.push(releaseDue - policy.inspectionLeadMs, releaseDue, releaseDue + policy.releaseBlockedEscalateAfterMs);
      // The observation rule stops holding when the latest check without fever grows too old.
      if ((policy.release.afebrileCheckWithinMs ?? 0) > 0) due.push(afebrileCheckExpiry(policy, s.checks) + 1);
      for (const x of s.samples) {
        if (x.status !== 'planned') continue;
        const ordering = s.tasks.some(
          (t) =>
            t.kind === 'orderSample' && t.subject === x.sampleId && (t.status === 'pending' || t.status === 'running'),
        );
        // A planned sample past due with no order on its way is due now (a safety net: never sleep on it).
        due.push(ordering ? ms(x.dueAt) : Math.max(ms(x.dueAt), now + 1));
      }
      const firstStepMs = missedAfterMs(policy);
      // By event time a slot is judged only by a tick: one whose time came while a message was
      // taken in is judged at the next moment (never slept through).
      if (s.currentSlot)
        due.push(
          ctx.slotsByEventTime ? Math.max(ms(s.currentSlot) + firstStepMs, now + 1) : ms(s.currentSlot) + firstStepMs,
        );
      for (const chain of s.missedChains) {
        if (ctx.slotsByEventTime && climbDue(s, policy, ctx, chain, now)) due.push(now + 1);
        if (ctx.foldMissedChecks) {
          // Every step still ahead under the rules in force now (climbFolded picks the level).
          for (const step of policy.missedCheckSteps.slice(chain.step))
            due.push(ms(chain.slotAt) + policy.checkWindowAfterMs + step.afterMs);
          continue;
        }
        const next = policy.missedCheckSteps[chain.step + 1];
        if (next) due.push(ms(chain.slotAt) + policy.checkWindowAfterMs + next.afterMs);
      }
    }
  }
  // Thresholds already passed were dealt with when they passed (evaluate is idempotent).
  const finite = due.filter((t) => Number.isFinite(t) && t > now);
  return finite.length ? Math.min(...finite) : undefined;
}

/**
 * The workflow may complete: the case ended, its late-result window passed, nothing is left
 * to run, and nothing that needs a person is still open (it stays listening until then).
 */
export function isComplete(s: CaseState, ctx: CaseContext, now: number): boolean {
  if (!s.endedAt) return false;
  if (now < ms(s.endedAt) + policyOf(s, ctx).lateResultWindowMs) return false;
  if (s.tasks.some((t) => t.status === 'pending' || t.status === 'running')) return false;
  if (s.parked.length) return false;
  return !s.escalations.some((e) => e.status !== 'closed' && e.severity !== 'info');
}
