/**
 * A world around the pure decider: the clock, the people who send messages and the systems
 * that run tasks, all driven by plain "intents" so that fast-check can generate and shrink
 * them. Every intent is interpreted against the current state (pick the n-th sample, the n-th
 * task…), so any sequence is meaningful and a failing one shrinks to a short story.
 */
import { decide, decideQueued, dueTasks, initialState, isComplete, nextWakeAt } from '../../src/domain/case/decide';
import { invariantViolations } from '../../src/domain/case/invariants';
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
} from '../../src/domain/case/model';
import { drillPolicy, type Policy } from '../../src/domain/policy';
import type { Actor, TransferRequest } from '../../src/domain/types';

export const nurse: Actor = { id: 'k-med', role: 'medical', name: 'nurse' };
export const hotel: Actor = { id: 'k-hotel', role: 'hotel', name: 'hotel' };
export const driver: Actor = { id: 'k-drv', role: 'transport', name: 'driver' };
export const supervisor: Actor = { id: 'k-sup', role: 'supervisor', name: 'supervisor' };
export const community: Actor = { id: 'k-com', role: 'community', name: 'community' };
export const labActor = (labId: string): Actor => ({ id: `k-${labId}`, role: 'lab', name: labId });

export const T0 = Date.parse('2026-03-01T00:00:00.000Z');
export const DAY = 10_000;

/** A short stay for generated runs: 4 days of 10 s, two checks a day, samples on days 1–3. */
export function shortPolicy(overrides: Partial<Policy> = {}): Policy {
  const base = drillPolicy(DAY);
  return {
    ...base,
    name: 'prop',
    stayDays: 4,
    checkTimes: ['08:00', '16:00'],
    sampling: { days: [1, 2, 3], type: 'PCR', time: '09:00' },
    release: { ...base.release, minApartMs: DAY / 2 },
    inspectionLeadMs: DAY,
    ...overrides,
  };
}

export function request(overrides: Partial<TransferRequest> = {}): TransferRequest {
  return {
    requestId: 'req-1',
    caseNo: 'C1',
    district: 'Xigu',
    street: 'Fuli',
    requestedBy: community,
    requestedAt: new Date(T0).toISOString(),
    person: { name: '张三', idNumber: '620102198001011234', phone: '13800138000', birthDate: '1980-01-01' },
    homeAddress: 'home 1',
    transport: 'vehicle',
    reason: 'close_contact',
    ...overrides,
  };
}

export type Intent =
  | { k: 'wait'; ms: number }
  /**
   * The case's worker away for `ms`: checks taken meanwhile (at these fractions of the time, in
   * order) reach the case late, all at once, then its timer's tick.
   */
  | { k: 'late'; ms: number; takenAt: number[]; queued: boolean }
  | { k: 'drive' }
  | { k: 'start'; pick: number }
  | { k: 'succeed'; pick: number; variant: number }
  | { k: 'fail'; pick: number }
  | { k: 'arrival'; offsetMs: number; antigen?: 'negative' | 'positive'; by: 'hotel' | 'driver' | 'nurse' }
  | { k: 'departure' }
  | {
      k: 'lab';
      pick: number;
      result: 'negative' | 'positive';
      wrongLab: boolean;
      typo: boolean;
      /** Sent as the answered first result (the API saw none); it may have been overtaken since. */
      first?: boolean;
    }
  | { k: 'answerAll'; result: 'negative' | 'positive' }
  | { k: 'correct'; pick: number }
  | { k: 'door' }
  /** The district's waiting list woke the case (a room was handed to it, or a stray wake-up). */
  | { k: 'roomOffered' }
  | { k: 'inspection'; pass: boolean; stale: boolean }
  | {
      k: 'check';
      temperatureC?: number;
      symptoms: boolean;
      offsetMs: number;
      reuse: boolean;
      /** How it came: as the update, queued (no worker answered), or both (the update landed after all). */
      via?: 'update' | 'queued' | 'both' | 'queuedFirst';
    }
  | { k: 'stay'; days: number }
  | { k: 'colour' }
  | { k: 'address' }
  | { k: 'cancel' }
  | { k: 'ack'; pick: number }
  | { k: 'resolve'; pick: number }
  | { k: 'repeat' }
  /** The state through JSON, as continue-as-new carries it. */
  | { k: 'json' }
  /** A stay shortened below the time already spent. */
  | { k: 'stayShort' }
  /** Home monitoring: the community's check-in (any time: refused unless the case is at home). */
  | { k: 'homeCheckIn'; temperatureC: number; offsetMs: number; reuse: boolean }
  /**
   * A directive: a new policy (stay, sampling days, negatives, observation rule, colour rule)
   * for the case from now on; `again` repeats the last directive id (a fan-out retry).
   */
  | {
      k: 'directive';
      stayDays: number;
      days: number[];
      negatives: number;
      afebrile: boolean;
      yellowAge: number;
      again: boolean;
    };

export interface Step {
  intent: Intent;
  event?: CaseEvent;
  reply?: Reply;
  duplicate?: boolean;
  violations: string[];
  phase: string;
}

const pickOf = <T>(xs: readonly T[], pick: number): T | undefined =>
  xs.length ? xs[Math.min(xs.length - 1, Math.floor(pick * xs.length))] : undefined;

export class World {
  now = T0;
  state: CaseState;
  readonly ctx: CaseContext;
  readonly steps: Step[] = [];
  /** Every change record the decisions wrote (what the event log gets), in order. */
  readonly records: ChangeRecord[] = [];
  /** Every task the decisions asked for, in order (done ones leave the state). */
  readonly tasksSeen: Task[] = [];
  readonly seen = new Set<string>();
  private lastMessage?: CaseEvent;
  private seq = 0;
  private directives = 0;

  constructor(
    readonly policy: Policy = shortPolicy(),
    req: TransferRequest = request(),
    roomQueue = false,
    foldMissedChecks = false,
    slotsByEventTime = false,
  ) {
    this.ctx = { policy, request: req, roomQueue, foldMissedChecks, slotsByEventTime };
    const d = initialState(this.ctx, req.homeAddress, req.requestedBy, this.now);
    this.state = d.state;
    this.check(undefined, d);
  }

  /** Applies one event, checks every invariant on the step, and remembers what happened. */
  send(event: CaseEvent, intent: Intent = { k: 'drive' }, queued = false): Decision {
    const prev = this.state;
    const d = queued
      ? decideQueued(prev, event as MessageEvent, this.ctx, this.now)
      : decide(prev, event, this.ctx, this.now);
    this.state = d.state;
    const step: Step = { intent, event, reply: d.reply, duplicate: d.duplicate, violations: [], phase: d.state.phase };
    this.steps.push(step);
    step.violations = this.check(prev, d);
    if ('by' in event) this.lastMessage = event;
    this.records.push(...d.records);
    this.tasksSeen.push(...d.commands);
    this.seen.add(`phase:${d.state.phase}`);
    if (d.state.policy) this.seen.add(`phase:${d.state.phase}:directive`);
    for (const r of d.records) this.seen.add(r.kind);
    return d;
  }

  private check(prev: CaseState | undefined, d: Decision): string[] {
    const v = invariantViolations(this.policy, prev, d.state, this.now, this.ctx);
    // A result sent as a sample's first never changes a result the case already holds: it was
    // overtaken by a later delivery (perhaps the lab's correction), which it must not undo.
    const e = this.steps[this.steps.length - 1]?.event;
    if (prev && e?.type === 'labResult' && e.first) {
      const before = prev.samples.find((x) => x.sampleId === e.sampleId);
      const after = d.state.samples.find((x) => x.sampleId === e.sampleId);
      if (before?.result && after?.result !== before.result)
        v.push(`${e.sampleId}: a result sent as the first changed the result the case held`);
    }
    // A decision that changed nothing must say so, and never touch the state it was given.
    if (prev && !d.changed && d.state !== prev && JSON.stringify(d.state) !== JSON.stringify(prev))
      v.push('unchanged decision returned a different state');
    if (v.length) throw new InvariantError(v, this.steps);
    return v;
  }

  private key(): string {
    return `key-${++this.seq}`;
  }

  /** Runs what is due now: starts every due task and answers it as a healthy system would. */
  runDueTasks(variant = 0.5): void {
    for (const t of dueTasks(this.state, this.now)) {
      this.send({ type: 'taskStarted', taskId: t.id });
      this.send({ type: 'taskSucceeded', taskId: t.id, result: this.resultFor(t.kind, t.id, variant) });
    }
  }

  resultFor(kind: string, taskId: string, variant: number): TaskResult {
    switch (kind) {
      case 'reserveRoom':
        return variant < 0.15
          ? { kind: 'room', room: null }
          : { kind: 'room', room: { hotelId: 'H1', roomId: 'H1-101', roomNo: '101', floor: 1 } };
      case 'dispatchTransport':
      case 'dispatchHospital':
        return { kind: 'dispatch', dispatchId: `D-${taskId}` };
      case 'returnTransfer':
        return { kind: 'returned', caseNo: 'QCRETURN0001' };
      case 'orderSample':
        // Sometimes the lab claims a time far from the truth; the case bounds it.
        return {
          kind: 'order',
          labId: variant < 0.8 ? 'LAB1' : 'LAB2',
          orderId: `O-${taskId}`,
          orderedAt: new Date(this.now + (variant < 0.1 ? -50 * DAY : variant > 0.95 ? 50 * DAY : 0)).toISOString(),
        };
      default:
        return { kind: 'none' };
    }
  }

  /** Moves the clock to the next moment time alone matters (bounded), then runs what is due. */
  drive(): void {
    const next = nextWakeAt(this.state, this.ctx, this.now);
    const target = next === undefined ? this.now + DAY / 4 : Math.min(Math.max(next, this.now), this.now + 2 * DAY);
    this.now = Math.max(this.now, target);
    this.send({ type: 'tick' });
    this.runDueTasks();
  }

  /**
   * Nothing is slept through: a tick just before the next wake-up the case asked for (or 40 days
   * on, when it asked for none) must change nothing; and a case that may complete has nothing
   * a person still has to do. Checked after every intent.
   */
  checkLiveness(): void {
    const s = this.state;
    if (isComplete(s, this.ctx, this.now)) {
      const waiting = s.escalations.filter((e) => e.status !== 'closed' && e.severity !== 'info');
      if (waiting.length)
        throw new InvariantError([`complete with ${waiting.map((e) => e.kind)} unresolved`], this.steps);
      if (s.parked.length) throw new InvariantError(['complete with results still waiting'], this.steps);
    }
    const next = nextWakeAt(s, this.ctx, this.now);
    const probe = next === undefined ? this.now + 40 * DAY : next - 1;
    if (probe <= this.now) return;
    const d = decide(s, { type: 'tick' }, this.ctx, probe);
    const done = [
      ...d.records.filter((r) => r.kind !== 'release_blockers').map((r) => r.kind),
      ...d.commands.map((c) => c.kind),
    ];
    if (done.length)
      throw new InvariantError(
        [
          `asleep until ${next === undefined ? 'a message' : `+${next - this.now} ms`}, but at +${probe - this.now} ms a tick does ${done.join(', ')}`,
        ],
        this.steps,
      );
  }

  /** A calm spell: time passes, systems answer, labs report negatives, the street inspects, people respond. */
  settle(): void {
    this.drive();
    const s = this.state;
    if (s.samples.some((x) => x.status === 'ordered')) this.apply({ k: 'answerAll', result: 'negative' });
    if (s.inspection.status === 'requested' || s.inspection.status === 'requesting')
      this.apply({ k: 'inspection', pass: true, stale: false });
    if (s.closing?.awaitingDeparture) this.apply({ k: 'departure' });
    // The nurse comes by: release waiting for a check without fever gets one.
    if (this.state.releaseBlockers.includes('no_recent_afebrile_check'))
      this.apply({ k: 'check', temperatureC: 36.6, symptoms: false, offsetMs: 0, reuse: false });
    const red = this.state.escalations.findIndex((e) => e.status !== 'closed' && e.severity === 'red');
    if (red >= 0) this.apply({ k: 'resolve', pick: red / this.state.escalations.length });
    if (this.state.room && !this.state.arrivedAt && !this.state.closing)
      this.apply({ k: 'arrival', offsetMs: 0, by: 'hotel' });
    // At home, the street's worker calls in.
    // (Now and then with a fever, which sends the person back.)
    if (this.state.phase === 'HOME_MONITORING')
      this.apply({
        k: 'homeCheckIn',
        temperatureC: this.steps.length % 9 === 0 ? 38.6 : 36.5,
        offsetMs: 0,
        reuse: false,
      });
  }

  apply(intent: Intent): void {
    const s = this.state;
    const running = s.tasks.filter((t) => t.status === 'running');
    switch (intent.k) {
      case 'wait':
        this.now += intent.ms;
        this.send({ type: 'tick' }, intent);
        return;
      case 'late': {
        const from = this.now;
        this.now += intent.ms;
        for (const f of [...intent.takenAt].sort((a, b) => a - b))
          this.send(
            {
              type: 'healthCheck',
              checkId: `chk-${++this.seq}`,
              takenAt: new Date(from + Math.floor(f * intent.ms)).toISOString(),
              temperatureC: 36.5,
              symptoms: [],
              by: nurse,
              key: this.key(),
            },
            intent,
            intent.queued,
          );
        this.send({ type: 'tick' }, intent);
        return;
      }
      case 'drive':
        this.drive();
        return;
      case 'start': {
        const t = pickOf(dueTasks(s, this.now), intent.pick);
        if (t) this.send({ type: 'taskStarted', taskId: t.id }, intent);
        return;
      }
      case 'succeed':
      case 'fail': {
        // A running task answers; with none running, a due one is started and answers at once.
        let t = pickOf(running, intent.pick);
        if (!t) {
          t = pickOf(dueTasks(s, this.now), intent.pick);
          if (!t) return;
          this.send({ type: 'taskStarted', taskId: t.id }, intent);
        }
        if (intent.k === 'fail') this.send({ type: 'taskFailed', taskId: t.id, error: 'IntegrationRejected' }, intent);
        else
          this.send(
            { type: 'taskSucceeded', taskId: t.id, result: this.resultFor(t.kind, t.id, intent.variant) },
            intent,
          );
        return;
      }
      case 'arrival': {
        const by = intent.by === 'hotel' ? hotel : intent.by === 'driver' ? driver : nurse;
        const ev: CaseEvent = {
          type: 'arrival',
          at: new Date(this.now + intent.offsetMs).toISOString(),
          by,
          key: this.key(),
        };
        if (intent.antigen) Object.assign(ev, { antigen: intent.antigen });
        this.send(ev, intent);
        return;
      }
      case 'departure':
        this.send({ type: 'departure', at: new Date(this.now).toISOString(), by: hotel, key: this.key() }, intent);
        return;
      case 'lab': {
        const x = pickOf(s.samples, intent.pick);
        const labId = x?.order?.labId ?? 'LAB1';
        const useLab = intent.wrongLab ? (labId === 'LAB1' ? 'LAB2' : 'LAB1') : labId;
        this.send(
          {
            type: 'labResult',
            sampleId: intent.typo || !x ? `${s.caseNo}-S${s.counters.samples + 1}` : x.sampleId,
            result: intent.result,
            labId: useLab,
            reportedAt: new Date(this.now - 3 * DAY).toISOString(),
            by: labActor(useLab),
            key: this.key(),
            ...(intent.first ? { first: true } : {}),
          },
          intent,
        );
        return;
      }
      case 'answerAll':
        for (const x of s.samples.filter((x) => x.status === 'ordered')) {
          this.send(
            {
              type: 'labResult',
              sampleId: x.sampleId,
              result: intent.result,
              labId: x.order!.labId,
              reportedAt: new Date(this.now).toISOString(),
              by: labActor(x.order!.labId),
            },
            intent,
          );
        }
        return;
      case 'correct': {
        // The lab changes its mind about a result it gave.
        const x = pickOf(
          s.samples.filter((x) => x.result && x.order?.labId !== 'point-of-care'),
          intent.pick,
        );
        if (!x) return;
        this.send(
          {
            type: 'labResult',
            sampleId: x.sampleId,
            result: x.result === 'negative' ? 'positive' : 'negative',
            labId: x.order!.labId,
            reportedAt: new Date(this.now).toISOString(),
            by: labActor(x.order!.labId),
            key: this.key(),
          },
          intent,
        );
        return;
      }
      case 'door':
        this.send({ type: 'doorAlarm', at: new Date(this.now).toISOString(), by: hotel, key: this.key() }, intent);
        return;
      case 'roomOffered':
        this.send({ type: 'roomOffered' }, intent);
        this.runDueTasks();
        return;
      case 'inspection': {
        const id = intent.stale ? `${s.caseNo}-I${Math.max(1, s.inspection.round - 1)}` : s.inspection.inspectionId;
        this.send(
          {
            type: 'inspectionResult',
            inspectionId: id,
            singleOccupancy: intent.pass,
            at: new Date(this.now).toISOString(),
            inspector: 'Li',
            by: community,
            key: this.key(),
          },
          intent,
        );
        return;
      }
      case 'check': {
        const reuse = intent.reuse ? s.checks[s.checks.length - 1]?.checkId : undefined;
        const event: CaseEvent = {
          type: 'healthCheck',
          checkId: reuse ?? `chk-${++this.seq}`,
          takenAt: new Date(this.now + intent.offsetMs).toISOString(),
          ...(intent.temperatureC !== undefined ? { temperatureC: intent.temperatureC } : {}),
          symptoms: intent.symptoms ? ['cough'] : [],
          by: nurse,
          key: this.key(),
        };
        const via = intent.via ?? 'update';
        const order = via === 'both' ? [false, true] : via === 'queuedFirst' ? [true, false] : [via === 'queued'];
        const decisions: Decision[] = [];
        let escalationsAfterFirst = 0;
        for (const queued of order) {
          decisions.push(this.send(event, intent, queued));
          if (decisions.length === 1) escalationsAfterFirst = this.state.escalations.length;
        }
        const copies = this.state.checks.filter((c) => c.checkId === event.checkId).length;
        if (copies > 1) throw new InvariantError([`check ${event.checkId} recorded ${copies} times`], this.steps);
        if (decisions.length === 2) {
          // The second copy of one report (update and queued) changes nothing a person would see.
          if (this.state.escalations.length !== escalationsAfterFirst)
            throw new InvariantError(['the second copy of a check opened an escalation'], this.steps);
          if (decisions[1]!.records.some((r) => r.kind === 'health_check'))
            throw new InvariantError(['the second copy of a check was recorded as a check'], this.steps);
        }
        order.forEach((queued, i) => {
          const d = decisions[i]!;
          // A queued check the case refuses is on the record: its sender was told "queued" and nothing else.
          if (queued && d.reply && !d.reply.ok && !d.records.some((r) => r.kind === 'health_check_refused'))
            throw new InvariantError(['a queued check was refused without a record'], this.steps);
        });
        return;
      }
      case 'stay':
        this.send(
          { type: 'changeStay', days: intent.days, reason: 'directive', by: supervisor, key: this.key() },
          intent,
        );
        return;
      case 'colour':
        this.send(
          { type: 'changeColour', colour: 'red', reason: 'key attention', by: supervisor, key: this.key() },
          intent,
        );
        return;
      case 'address':
        this.send(
          { type: 'setAddress', address: `home ${++this.seq}`, reason: 'new home', by: supervisor, key: this.key() },
          intent,
        );
        return;
      case 'cancel':
        this.send({ type: 'cancel', reason: 'sent home by directive', by: supervisor, key: this.key() }, intent);
        return;
      case 'ack': {
        const e = pickOf(s.escalations, intent.pick);
        if (e) this.send({ type: 'ackEscalation', escalationId: e.id, by: nurse, key: this.key() }, intent);
        return;
      }
      case 'resolve': {
        const e = pickOf(s.escalations, intent.pick);
        if (e)
          this.send(
            {
              type: 'resolveEscalation',
              escalationId: e.id,
              note: 'dealt with by phone',
              by: supervisor,
              key: this.key(),
            },
            intent,
          );
        return;
      }
      case 'json':
        this.state = JSON.parse(JSON.stringify(this.state)) as CaseState;
        return;
      case 'stayShort':
        this.apply({ k: 'stay', days: -(this.policy.stayDays - 1) });
        return;
      case 'homeCheckIn': {
        const reuse = intent.reuse ? s.checks.filter((c) => c.home).pop()?.checkId : undefined;
        this.send(
          {
            type: 'homeCheckIn',
            checkInId: reuse ?? `home-${++this.seq}`,
            takenAt: new Date(this.now + intent.offsetMs).toISOString(),
            temperatureC: intent.temperatureC,
            symptoms: [],
            by: community,
            key: this.key(),
          },
          intent,
        );
        return;
      }
      case 'directive': {
        const id = intent.again && this.directives > 0 ? `D${this.directives}` : `D${++this.directives}`;
        const current = this.state.policy ?? this.policy;
        const policy: Policy = {
          ...current,
          name: 'directive',
          version: this.directives + 1,
          stayDays: intent.stayDays,
          sampling: { ...current.sampling, days: intent.days },
          release: {
            ...current.release,
            requiredNegatives: intent.negatives,
            afebrileCheckWithinMs: intent.afebrile ? DAY : 0,
          },
          colour: { ...current.colour, yellowAgeAtLeast: intent.yellowAge },
        };
        this.send(
          {
            type: 'applyPolicy',
            directiveId: id,
            // Issued in order (a repeat keeps its time); a stale one is an older id resent.
            issuedAt: new Date(T0 + Number(id.slice(1))).toISOString(),
            policy,
            reason: 'new protocol',
            by: supervisor,
          },
          intent,
        );
        return;
      }
      case 'repeat': {
        // A client retrying after a timeout: the same message with the same key.
        if (!this.lastMessage) return;
        const before = this.state;
        const d = this.send(this.lastMessage, intent);
        const key = 'key' in this.lastMessage ? this.lastMessage.key : undefined;
        if (key && before.keys[key] && d.changed)
          throw new InvariantError(['a repeated message (same key) changed the case again'], this.steps);
        if (d.changed === false && d.state !== before && JSON.stringify(d.state) !== JSON.stringify(before))
          throw new InvariantError(['a repeat changed the state without saying so'], this.steps);
        return;
      }
    }
  }
}

export class InvariantError extends Error {
  constructor(
    readonly violations: string[],
    readonly steps: Step[],
  ) {
    super(
      `invariant broken: ${violations.join('; ')}\n` +
        steps
          .slice(-12)
          .map(
            (s) =>
              `  ${JSON.stringify(s.intent)} → ${JSON.stringify(s.event)} → ${s.phase} ${s.reply && !s.reply.ok ? s.reply.message : ''}`,
          )
          .join('\n'),
    );
  }
}
