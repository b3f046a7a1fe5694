/**
 * The case's state, the events that can reach it and what the decider answers, as plain data.
 * No Temporal, no I/O: src/domain/case/decide.ts folds events into this state, the workflow
 * (src/workflows/case-v2.ts) feeds events in and runs the tasks the state asks for.
 */
import type {
  Actor,
  Colour,
  EscalationKind,
  EscalationLevel,
  Phase,
  RoomAssignment,
  SampleReason,
  Severity,
  TransferRequest,
} from '../types';

// ---------------------------------------------------------------------------------------
// Samples: planned → ordered → resulted → corrected, or cancelled.
// ---------------------------------------------------------------------------------------
export const SAMPLE_STATUSES = ['planned', 'ordered', 'resulted', 'corrected', 'cancelled'] as const;
export type SampleStatus = (typeof SAMPLE_STATUSES)[number];
export type LabOutcome = 'negative' | 'positive';

export interface SampleOrder {
  /** The lab the sample was ordered from: the only lab whose result counts. */
  labId: string;
  orderId?: string;
  /** When the sample was taken (the order time): release is timed by this, never by dueAt. */
  takenAt: string;
}

export interface SampleResultEntry {
  result: LabOutcome;
  labId: string;
  /** What the lab says; kept for the record, never used for timing. */
  reportedAt: string;
  /** When the case learned it. */
  receivedAt: string;
  by: Actor;
}

export interface CaseSample {
  sampleId: string;
  type: string;
  reason: SampleReason;
  /** Day of stay the plan put it on (scheduled samples). */
  day?: number;
  /** Scheduled samples counted from the end of the stay move with the release date. */
  anchor?: 'start' | 'end';
  /** The slot in the policy's plan it fills, e.g. "end:13"; a later extension can plan another. */
  slot?: string;
  /** When it is planned to be taken. Never counts as the time taken. */
  dueAt: string;
  status: SampleStatus;
  order?: SampleOrder;
  /** The current result (the latest correction wins). */
  result?: LabOutcome;
  /** Every result received, first to last. */
  results: SampleResultEntry[];
  cancelReason?: string;
}

// ---------------------------------------------------------------------------------------
// Escalations: open → acked → closed, or open → closed. Closed only for a true reason.
// ---------------------------------------------------------------------------------------
export type EscalationStatus = 'open' | 'acked' | 'closed';

export interface CaseEscalation {
  id: string;
  kind: EscalationKind;
  level: EscalationLevel;
  severity: Severity;
  reason: string;
  status: EscalationStatus;
  openedAt: string;
  ackedAt?: string;
  ackedBy?: Actor;
  closedAt?: string;
  closedReason?: CloseReason;
  closedBy?: Actor;
  note?: string;
  /** The task whose failure this reports (integration_failure). */
  taskId?: string;
  /** The sample it is about (results, corrections). */
  sampleId?: string;
  /** Notices sent so far (each level change is a new notice). */
  notices: number;
}

/** Why an escalation closed. `resolved` needs a person and a note; the others are facts. */
export type CloseReason =
  | 'resolved'
  | 'room_assigned'
  | 'arrived'
  | 'departed'
  | 'check_received'
  | 'retry_succeeded'
  | 'inspection_passed'
  | 'new_address'
  | 'released'
  | 'transferred_to_hospital'
  /** The failing task was dropped because the case no longer needs it (e.g. an order for a case that ended). */
  | 'not_needed'
  | 'case_ended'
  /** Home monitoring: a fever at home, and the person is back in a transfer (a new case). */
  | 'returned_to_quarantine';

// ---------------------------------------------------------------------------------------
// Tasks: the effects the case asks for. The workflow runs every due task as an activity and
// feeds its outcome back; the id is also the remote idempotency step.
// ---------------------------------------------------------------------------------------
export const TASK_KINDS = [
  'reserveRoom',
  'releaseRoom',
  'dispatchTransport',
  'cancelTransport',
  'checkIn',
  'orderSample',
  'requestInspection',
  'dispatchHospital',
  'checkOut',
  'handOver',
  'notify',
  'alertCommunity',
  'leaveRoomQueue',
  /** Home monitoring: a fever at home starts a new transfer for the person. */
  'returnTransfer',
] as const;
export type TaskKind = (typeof TASK_KINDS)[number];
export type TaskStatus = 'pending' | 'running' | 'done' | 'waived' | 'dropped' | 'failed';

export interface Task {
  id: string;
  kind: TaskKind;
  /** What it acts on: a sample id, inspection id, escalation id, room id, dispatch id. */
  subject?: string;
  /** checkOut: terminal disinfection after a positive case. */
  terminal?: boolean;
  status: TaskStatus;
  dueAt: string;
  /** When the running attempt began: bounds the times its outcome may claim. */
  startedAt?: string;
  attempts: number;
  lastError?: string;
  /** The open integration_failure escalation about this task, if any. */
  escalationId?: string;
  /** Part of closing the case: the case is not finished until it is done or waived. */
  closing?: boolean;
  /**
   * notify: a reminder at the escalation's current level (a folded missed-check chain, once a
   * policy day of further slots is missed), not a new level: its own notice, not a repeat of one.
   */
  repeat?: number;
  waivedBy?: Actor;
}

// ---------------------------------------------------------------------------------------
// The rest of the case.
// ---------------------------------------------------------------------------------------
export interface CaseCheck {
  checkId: string;
  takenAt: string;
  /** The slot it satisfied, if any. */
  dueAt?: string;
  temperatureC?: number;
  symptoms: string[];
  by: Actor;
  fever: boolean;
  escalationIds: string[];
  extraSampleId?: string;
  /** A check-in at home (home monitoring), by the community. */
  home?: boolean;
}

/** Home monitoring after release (policy.homeMonitoringDays): the community's daily check-ins. */
export interface HomeMonitoring {
  startedAt: string;
  until: string;
  days: number;
  /** Home days (1-based) with a check-in, and those that passed without one. */
  checkedDays: number[];
  missedDays: number[];
  /** Each missed day's escalation (a check-in answers those up to its own day). */
  missed?: { day: number; escalationId: string }[];
  doneAt?: string;
  outcome?: 'completed' | 'returned';
  /** A fever at home: the new case the person was transferred back under. */
  returnCaseNo?: string;
}

export type InspectionStatus = 'none' | 'requesting' | 'requested' | 'passed' | 'failed';

export interface CaseInspection {
  inspectionId: string;
  round: number;
  status: InspectionStatus;
  requestedAt?: string;
  resultAt?: string;
  inspector?: string;
  note?: string;
}

export interface RefusedMessage {
  kind: string;
  at: string;
  by: Actor;
  reason: string;
  sampleId?: string;
}

export interface MissedChain {
  escalationId: string;
  /** The first slot missed: the chain's steps are timed from it. */
  slotAt: string;
  step: number;
  /** Slots missed in a row while the chain was open, the first included (folded chains only). */
  missed?: number;
  /** Reminders sent so far, and `missed` when the last one (or the opening) went out (folded chains). */
  reminders?: number;
  remindedAt?: number;
  /** Levels this chain's escalation has held: a notice goes to each once (folded chains). */
  levels?: import('../types').EscalationLevel[];
}

export interface Closing {
  /** The phase the case ends in. */
  target: 'RELEASED' | 'HOSPITAL_TRANSFER' | 'CANCELLED';
  reason: string;
  by: Actor;
  startedAt: string;
  /** Hospital transfer: the person is in the room until someone reports the departure. */
  awaitingDeparture?: boolean;
  departedAt?: string;
  certificateNo?: string;
}

/** The answer a message got, kept under its idempotency key so a retry gets the same answer. */
export interface KeptAnswer {
  fingerprint: string;
  reply: Reply;
  /** When it was kept: keys are forgotten by age (never within a week), not only by count. */
  at?: string;
}

export type Reply = { ok: true; value: Record<string, unknown> } | { ok: false; code: RejectCode; message: string };

export type RejectCode = 'invalid' | 'conflict' | 'not_found';

/** The decider's whole state: everything a case needs to decide, carried across continue-as-new. */
export interface CaseState {
  schema: 2;
  caseNo: string;
  phase: Phase;
  colour: Colour;
  colourReasons: string[];
  colourFixedBy?: Actor;
  policyName: string;
  policyVersion: number;
  /**
   * The rules the case is judged by since a directive reached it (absent: the policy it started
   * with, from the workflow input). Carried across continue-as-new with the rest of the state.
   */
  policy?: import('../policy').Policy;
  /**
   * Directives this case answered, by id, with the answer: a repeat of one gets the same answer
   * and changes nothing. Kept with when the directive was issued: an older one arriving after a
   * newer one is skipped (`superseded`), never downgrading the case.
   */
  directives?: Record<string, { issuedAt: string; reply: Reply }>;
  /** When the directive whose policy the case now runs under was issued. */
  policyIssuedAt?: string;
  requestedAt: string;
  /** PII: the home address to inspect; never leaves the workflow except to the community. */
  homeAddress: string;
  room?: RoomAssignment;
  /** Whether the hotel system has the person checked in (inventory), and whether they are in the room. */
  checkedIn: boolean;
  occupied: boolean;
  roomReleased: boolean;
  dispatchId?: string;
  dispatchedAt?: string;
  roomAssignedAt?: string;
  arrivedAt?: string;
  stayStart?: string;
  releaseDue?: string;
  stayAdjustDays: number;
  samples: CaseSample[];
  checks: CaseCheck[];
  escalations: CaseEscalation[];
  inspection: CaseInspection;
  releaseBlockers: string[];
  /** The next health-check slot being watched, and the chains of missed ones. */
  currentSlot?: string;
  missedChains: MissedChain[];
  lateArrival?: { escalationId: string; nextAt: string };
  departureDeadline?: string;
  noRoomRetryMs?: number;
  /** When the case joined its district's waiting list for a room (cleared when it gets one). */
  roomQueuedAt?: string;
  hospital?: { reason: 'positive_result' | 'antigen_positive'; sampleId?: string; dispatchId?: string };
  closing?: Closing;
  /** After release, when the policy has home days. */
  home?: HomeMonitoring;
  endedAt?: string;
  tasks: Task[];
  /** Results that arrived while their sample's order was still on its way; applied when it lands. */
  parked: Extract<CaseEvent, { type: 'labResult' }>[];
  refused: RefusedMessage[];
  keys: Record<string, KeptAnswer>;
  /** Idempotency keys in arrival order, so the oldest can be forgotten. */
  keyOrder: string[];
  counters: { samples: number; escalations: number; inspections: number };
  /** Every change increments it; orders read-model writes. */
  version: number;
  /** The event-log sequence (continues across continue-as-new). */
  eventSeq: number;
}

// ---------------------------------------------------------------------------------------
// Events: messages from people and systems, timer ticks, task outcomes.
// ---------------------------------------------------------------------------------------
interface Msg {
  by: Actor;
  /** The caller's idempotency key: the same key gets the same answer and changes nothing twice. */
  key?: string;
}

export type CaseEvent =
  | { type: 'tick' }
  | ({ type: 'arrival'; at: string; antigen?: LabOutcome } & Msg)
  | ({ type: 'departure'; at: string } & Msg)
  | ({
      type: 'labResult';
      sampleId: string;
      result: LabOutcome;
      labId: string;
      reportedAt: string;
      /**
       * The API saw no result for the sample when it sent this one (the answered lab result): if
       * the case holds another by then, a later delivery overtook it and it is not a correction.
       */
      first?: boolean;
    } & Msg)
  | ({ type: 'doorAlarm'; at: string; sensorId?: string } & Msg)
  | ({
      type: 'inspectionResult';
      inspectionId: string;
      singleOccupancy: boolean;
      at: string;
      inspector: string;
      note?: string;
    } & Msg)
  | ({ type: 'healthCheck'; checkId: string; takenAt: string; temperatureC?: number; symptoms: string[] } & Msg)
  | ({ type: 'changeStay'; days: number; reason: string } & Msg)
  | ({ type: 'changeColour'; colour: Colour; reason: string } & Msg)
  | ({ type: 'setAddress'; address: string; reason: string } & Msg)
  | ({ type: 'cancel'; reason: string } & Msg)
  | ({ type: 'ackEscalation'; escalationId: string; note?: string } & Msg)
  | ({ type: 'resolveEscalation'; escalationId: string; note: string } & Msg)
  /** Home monitoring: the community's daily check-in with the person at home. */
  | ({ type: 'homeCheckIn'; checkInId: string; takenAt: string; temperatureC?: number; symptoms: string[] } & Msg)
  /** A directive: judge this case by `policy` from now on (src/workflows/directive.ts fans it out). */
  | ({
      type: 'applyPolicy';
      directiveId: string;
      /** When the directive was issued: directives apply in this order, whatever order they arrive in. */
      issuedAt: string;
      policy: import('../policy').Policy;
      reason: string;
    } & Msg)
  /** The waiting list handed the case a room: ask for it now. */
  | { type: 'roomOffered' }
  | { type: 'taskStarted'; taskId: string }
  | { type: 'taskSucceeded'; taskId: string; result?: TaskResult }
  | { type: 'taskFailed'; taskId: string; error: string };

export type MessageEvent = Exclude<
  CaseEvent,
  { type: 'tick' | 'roomOffered' | 'taskStarted' | 'taskSucceeded' | 'taskFailed' }
>;

export type TaskResult =
  | { kind: 'room'; room: RoomAssignment | null }
  | { kind: 'dispatch'; dispatchId: string }
  | { kind: 'order'; labId: string; orderId?: string; orderedAt: string }
  | { kind: 'returned'; caseNo: string }
  | { kind: 'none' };

/** One line of the case's change log: who changed what, and why. */
export interface ChangeRecord {
  seq: number;
  at: string;
  by: Actor;
  kind: string;
  payload: Record<string, unknown>;
  reason?: string;
}

/** What changed, so the read model writes only that. */
export interface Touched {
  samples: string[];
  escalations: string[];
  checks: string[];
  inspection: boolean;
}

export interface Decision {
  state: CaseState;
  /** The answer to a message (updates return it to the caller). */
  reply?: Reply;
  /** Whether the message was a repeat of one already applied (by key or natural id). */
  duplicate: boolean;
  /** Tasks this event made due (also in state.tasks, which the workflow runs). */
  commands: Task[];
  records: ChangeRecord[];
  touched: Touched;
  changed: boolean;
}

/** What the decider needs besides state and event: the rules and the case's fixed facts. */
export interface CaseContext {
  policy: import('../policy').Policy;
  /**
   * The district's waiting list for rooms (cases started on code that has it, `patched` in the
   * workflow): a case with no room joins the list and is woken when a room is handed to it,
   * instead of asking again and again.
   */
  roomQueue?: boolean;
  /**
   * One missed-check escalation per person at a time (cases started on code that has it,
   * `patched` in the workflow): a slot missed while the person's chain is still open adds to it
   * (its reason counts the slots, the event log records each one) instead of opening another
   * escalation with notices of its own.
   */
  foldMissedChecks?: boolean;
  /**
   * Slots judged by event time (cases started on code that has it, `patched` in the workflow).
   * Only a tick judges a watched slot missed, by the time it fires: a message the case takes in
   * late (its worker behind) does not judge the slots that passed while it waited in history,
   * so a check sent in time, in the same workflow task after it, still counts for its slot. A
   * check judges the slots that closed before it was taken, then counts for the slot whose
   * window it falls in (not for an earlier one still watched). And a case held past its release
   * due date plans its next slot a policy day past the slot it leaves, not past now, so one check
   * time a day goes on.
   */
  slotsByEventTime?: boolean;
  request: Pick<TransferRequest, 'caseNo' | 'transport' | 'expectedArrivalAt' | 'person' | 'requestedAt'>;
}
