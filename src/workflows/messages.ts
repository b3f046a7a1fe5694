import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

import type { RecordCaseInput } from '../activities/types';

import type { CaseState as DecidedState, ChangeRecord as CaseChange } from '../domain/case/model';
import type { CaseView } from '../domain/case/view';
import type { KeyScope } from '../domain/jurisdiction';
import type { Policy } from '../domain/policy';
import type {
  Actor,
  ChangeRecord,
  Colour,
  Escalation,
  HealthCheck,
  Inspection,
  Phase,
  RoomAssignment,
  Sample,
  TransferRequest,
} from '../domain/types';

/**
 * The case workflow's messages, beside the workflow that handles them.
 * Signals carry what must be accepted even while no worker runs; updates give a caller an
 * answer (validators reject bad input before it touches history); the query gives the
 * whole live state.
 */

export interface CaseInput {
  request: TransferRequest;
  policy: Policy;
  /** Present only when the workflow continues as new: the state it carries. */
  carried?: CaseState;
  /** Test and drill knobs; production leaves them unset. */
  options?: {
    /** Continue as new once history reaches this many events (Temporal's own suggestion applies anyway). */
    continueAsNewAtHistoryLength?: number;
  };
}

/** What the workflow returns when the case ends. */
export interface CaseOutcome {
  caseNo: string;
  phase: Phase;
  endedAt: string;
  reason?: string;
  certificateNo?: string;
  /** v2: the case's final view (its history list left out). */
  view?: import('../domain/case/view').CaseView;
}

// ---- signals ----
export interface ArrivalInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  at: string;
  by: Actor;
  /** Rapid antigen result at the door, when one was taken. */
  antigen?: 'negative' | 'positive';
}
export const arrivalSignal = defineSignal<[ArrivalInput]>('arrival');

export interface LabResultInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  sampleId: string;
  result: 'negative' | 'positive';
  labId: string;
  reportedAt: string;
  by: Actor;
  /**
   * Sent by the API with the update (recordLabResult): it saw no result for this sample when it
   * sent it. Should the case hold another result by the time the update is applied (a later
   * delivery overtook it), the result is put to the command centre, not taken as a correction.
   */
  first?: boolean;
  /** Sent by the API with the update: the read model's version, as for a health check (ANSWER_WRITES_PATCH). */
  readModel?: { version: number };
}
export const labResultSignal = defineSignal<[LabResultInput]>('labResult');
export interface LabResultReply {
  applied: boolean;
  /** applied, corrected, duplicate, parked, refused */
  status: string;
  reason?: string;
  /** For the API alone, never shown to the caller: the read-model write to make (ANSWER_WRITES_PATCH). */
  readModelWrite?: RecordCaseInput;
}
/**
 * A lab's first result for a sample, answered (v2 and later cases): the API waits for the case's
 * answer and makes its read-model write, so the lab's 200 means the result is in the read model.
 * When no worker answers in time the same result (same key) is sent as labResultSignal: the case
 * applies whichever copy comes first and answers the other as a duplicate.
 */
export const labResultUpdate = defineUpdate<LabResultReply, [LabResultInput]>('recordLabResult');

export interface DoorAlarmInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  at: string;
  sensorId?: string;
  by: Actor;
}
export const doorAlarmSignal = defineSignal<[DoorAlarmInput]>('doorAlarm');

export interface InspectionResultInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  inspectionId: string;
  singleOccupancy: boolean;
  at: string;
  inspector: string;
  note?: string;
  by: Actor;
}
export const inspectionResultSignal = defineSignal<[InspectionResultInput]>('inspectionResult');

// ---- updates ----
export interface HealthCheckInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  /** The caller's id for this check: a retry with the same id is answered, not recorded twice. */
  checkId: string;
  takenAt: string;
  temperatureC?: number;
  symptoms: string[];
  by: Actor;
  /**
   * Sent by the API (v2 and v3 cases, ANSWER_WRITES_PATCH): the version of the case's read-model
   * row when it looked, and its offer to make the read-model write the answer carries. Not part of
   * the check: a retry with another version is the same check.
   */
  readModel?: { version: number };
}
export interface HealthCheckResult {
  checkId: string;
  duplicate: boolean;
  fever: boolean;
  escalationIds: string[];
  extraSampleId?: string;
  nextCheckDue?: string;
  /** For the API alone, never shown to the caller: the read-model write to make (ANSWER_WRITES_PATCH). */
  readModelWrite?: RecordCaseInput;
}
export const healthCheckUpdate = defineUpdate<HealthCheckResult, [HealthCheckInput]>('recordHealthCheck');
/**
 * The same health check with the caller's scope (caseWorkflowV5 and V6, API_SCOPED_CHECKS): the
 * case judges the jurisdiction itself, from its own district, street and hotel, in the update's
 * validator, and refuses a key it does not cover (`Forbidden`, 403) before anything is recorded.
 * The API then reads nothing before it sends the check. Cases of other types, and workers of a
 * build without it, reject the name (no handler): the API falls back to its own check and
 * `recordHealthCheck`. No `readModel` (v5 and v6 write their read model in the task).
 */
export interface ScopedHealthCheckInput extends Omit<HealthCheckInput, 'readModel'> {
  caller: KeyScope;
}
export const scopedHealthCheckUpdate = defineUpdate<HealthCheckResult, [ScopedHealthCheckInput]>(
  'recordHealthCheckInScope',
);
/**
 * The same health check, queued (v2 cases): sent when no worker answers the update in time, with
 * the same key and check id, so that update and queued copy are one check whichever lands first.
 */
export const healthCheckSignal = defineSignal<[HealthCheckInput]>('healthCheck');
/**
 * A read-model write handed out by the case could not be made (the database failed or did not
 * answer in time): from the API, for a write handed to it in an answer (ANSWER_WRITES_PATCH); from
 * the worker, for a write made in the workflow task (caseWorkflowV5), with that task's `fence`
 * (src/workflows/sinks.ts). The case writes it by activity.
 */
export const readModelBehindSignal = defineSignal<[{ version: number; fence?: number }]>('readModelBehind');

export interface ChangeStayInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  /** Days to add (positive) or remove (negative). */
  days: number;
  reason: string;
  by: Actor;
}
export interface ChangeStayResult {
  releaseDue: string;
}
export const changeStayUpdate = defineUpdate<ChangeStayResult, [ChangeStayInput]>('changeStay');

export interface ChangeColourInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  colour: Colour;
  reason: string;
  by: Actor;
}
export const changeColourUpdate = defineUpdate<{ colour: Colour }, [ChangeColourInput]>('changeColour');

export interface SetAddressInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  address: string;
  reason: string;
  by: Actor;
}
export const setAddressUpdate = defineUpdate<{ inspectionId: string }, [SetAddressInput]>('setAddress');

export interface CancelInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  reason: string;
  by: Actor;
}
export const cancelUpdate = defineUpdate<{ phase: Phase }, [CancelInput]>('cancel');

export interface AckEscalationInput {
  /** The caller's idempotency key (v2 cases): a retry with the same key gets the first answer. */
  key?: string;
  escalationId: string;
  note?: string;
  by: Actor;
}
export const ackEscalationUpdate = defineUpdate<Escalation, [AckEscalationInput]>('ackEscalation');

// ---- added with the v2 case workflow (caseWorkflowV2; caseWorkflowV3 answers the same) ----
export interface DepartureInput {
  at: string;
  by: Actor;
  key?: string;
}
/** Hospital transfer: the person has left the room (the room is disinfected only after this). */
export const departureSignal = defineSignal<[DepartureInput]>('departure');

/**
 * Sent by whoever frees a room (a release, a disinfection, a room back in service, a new hotel)
 * to the waiting case the room was handed to: no payload, no PII; the case asks for its room.
 */
export const roomOfferedSignal = defineSignal('roomOffered');

export interface ResolveEscalationInput {
  escalationId: string;
  /** How it was resolved: required, it is the reason the escalation closes. */
  note: string;
  by: Actor;
  key?: string;
}
export const resolveEscalationUpdate = defineUpdate<Record<string, unknown>, [ResolveEscalationInput]>(
  'resolveEscalation',
);

// ---- added with directives (issue 12): handlers only, no change to what older cases replay ----
export interface ApplyPolicyInput {
  directiveId: string;
  /** When the directive was issued (a later-issued directive wins over an earlier one). */
  issuedAt: string;
  /** The whole policy version the case is judged by from now on. */
  policy: Policy;
  reason: string;
  by: Actor;
  key?: string;
}
/**
 * A directive reaches the case: `{ applied, skipped?, before, after, samplesPlanned,
 * samplesCancelled, released }` (src/domain/case/decide.ts onApplyPolicy).
 */
export const applyPolicyUpdate = defineUpdate<Record<string, unknown>, [ApplyPolicyInput]>('applyPolicy');
/** The directive's dry run for this case: the same answer, computed on a copy; nothing changes. */
export const previewPolicyQuery = defineQuery<
  { ok: true; value: Record<string, unknown> } | { ok: false; code: string; message: string },
  [Omit<ApplyPolicyInput, 'key'>]
>('previewPolicy');

export interface HomeCheckInInput {
  checkInId: string;
  takenAt: string;
  temperatureC?: number;
  symptoms: string[];
  by: Actor;
  key?: string;
}
/** Home monitoring: the community's daily check-in (`{ checkInId, day, fever, escalationIds, returning? }`). */
export const homeCheckInUpdate = defineUpdate<Record<string, unknown>, [HomeCheckInInput]>('homeCheckIn');

/** The case as people read it: no PII, typed (src/domain/case/view.ts). */
export const viewQuery = defineQuery<CaseView>('view');

export interface CaseInputV2 {
  request: TransferRequest;
  policy: Policy;
  /** Present only when the workflow continues as new. */
  carried?: {
    state: DecidedState;
    history: CaseChange[];
    unrecorded: CaseChange[];
    /**
     * Whether the run before folded missed checks: a case keeps the rule it started under across
     * continue-as-new (absent: a run from before the fold, which did not).
     */
    foldMissedChecks?: boolean;
    /** How many runs came before this one (v5 orders its writes by run, then task). */
    run?: number;
  };
  options?: CaseInput['options'];
}

// ---- query ----
export interface UnknownResult {
  sampleId: string;
  result: string;
  labId: string;
  at: string;
}

/** The whole live state of a case. Carried across continue-as-new. */
export interface CaseState {
  caseNo: string;
  phase: Phase;
  colour?: Colour;
  colourReasons: string[];
  policyName: string;
  room?: RoomAssignment;
  requestedAt: string;
  dispatchId?: string;
  dispatchedAt?: string;
  arrivedAt?: string;
  stayStart?: string;
  releaseDue?: string;
  stayAdjustDays: number;
  nextCheckDue?: string;
  samples: Sample[];
  unknownResults: UnknownResult[];
  checks: HealthCheck[];
  escalations: Escalation[];
  inspection: Inspection;
  /** Release is waiting on these criteria (codes). */
  releaseBlockers: string[];
  endedAt?: string;
  endReason?: string;
  history: ChangeRecord[];
  /** The health-check slot being watched (ISO), and the escalation chains of missed ones. */
  currentSlot?: string;
  missedChains: { escalationId: string; slotAt: string; step: number }[];
  /** Set when a supervisor fixed the colour: intake no longer reclassifies. */
  colourFixedBy?: Actor;
  /** Set when an inspection must be (re)requested by the main loop. */
  inspectionToRequest: boolean;
  releaseBlockedEscalated: boolean;
  hospital?: { reason: string; dispatchId?: string };
  cancelled?: { reason: string; by: Actor; at: string };
  duplicateResults: number;
  /** Continue-as-new generations so far. */
  generation: number;
  /** Set once release, hospital transfer or cancellation has begun: later commands are refused. */
  closing?: Phase;
  /** Increments with every change; orders read-model writes. */
  version: number;
  /** Events not yet written to the event log (sequence continues across continue-as-new). */
  eventSeq: number;
}
export const stateQuery = defineQuery<CaseState>('state');

export { DECISION_CORE_TYPES, isDecisionCoreType, type DecisionCoreType } from './case-types';
