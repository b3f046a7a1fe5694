import type { CheckSchedule } from '../domain/rounds';
import type { Actor, Colour, Escalation, HealthCheck, Phase, RoomAssignment, Sample } from '../domain/types';

/**
 * The contract between the case workflow and the outside world. The workflow imports this
 * file as types only; src/activities/index.ts builds the implementation with
 * createActivities(deps). Every activity is idempotent, keyed by workflow id + step.
 */

export interface ReserveRoomInput {
  workflowId: string;
  caseNo: string;
  colour: Colour;
  district: string;
  /** Wait on the district's waiting list when no room is free (cases with the list). */
  queue?: { requestedAt: string; colourFirst: boolean };
}

export interface RoomRef {
  workflowId: string;
  caseNo: string;
  roomId: string;
}

export interface DispatchInput {
  workflowId: string;
  caseNo: string;
  /** Idempotency step, e.g. "intake" or "hospital". */
  step: string;
  purpose: 'intake' | 'hospital';
  hotelId: string;
  roomNo?: string;
  /** The case's district (v2 cases send it; for v1 cases the activity reads it from the read model). */
  district?: string;
  /** PII: goes to the transport system only, never into logs. */
  pickupAddress?: string;
}

export interface OrderSampleInput {
  workflowId: string;
  caseNo: string;
  sampleId: string;
  type: string;
  reason: string;
  hotelId?: string;
}

export interface InspectionRequestInput {
  workflowId: string;
  caseNo: string;
  inspectionId: string;
  district: string;
  street: string;
  /** PII: the home address to inspect; kept in address_inspections for the community. */
  address: string;
}

export interface HandOverInput {
  workflowId: string;
  caseNo: string;
  district: string;
  street: string;
  releasedAt: string;
  certificateNo: string;
}

export interface AlertCommunityInput {
  workflowId: string;
  caseNo: string;
  district: string;
  street: string;
  escalationId: string;
  kind: string;
  reason: string;
}

export interface NotifyInput {
  workflowId: string;
  caseNo: string;
  hotelId?: string;
  escalation: Escalation;
  /** A reminder at the escalation's current level (1, 2, …): a notice of its own, not a retry of the last. */
  repeat?: number;
}

export interface CaseEventRecord {
  seq: number;
  actor: Actor;
  kind: string;
  payload: Record<string, unknown>;
  at: string;
}

/** The read-model row of a case, as the workflow sees it. */
export interface CaseRow {
  caseNo: string;
  workflowId: string;
  requestId: string;
  district: string;
  street: string;
  displayName: string;
  phase: Phase;
  colour?: Colour;
  policyName: string;
  hotelId?: string;
  roomId?: string;
  requestedAt: string;
  arrivedAt?: string;
  stayStart?: string;
  releaseDue?: string;
  nextCheckDue?: string;
  /**
   * The check schedule of the rules the case is judged by, while it watches a slot (drizzle/0009):
   * the nurses' rounds list the slots after the watched one from it. Cases of v1 write none.
   */
  checkSchedule?: CheckSchedule;
  pendingResults: number;
  openEscalations: number;
  openRedEscalations: number;
  inspectionStatus: string;
  endedAt?: string;
  stateVersion: number;
}

/** A sample as the read model keeps it; v2 cases add the sample's state and the lab's order id. */
export type SampleRecord = Omit<Sample, 'result'> & {
  result: string;
  status?: string;
  orderId?: string;
};

/** An escalation as the read model keeps it; v2 cases add why and by whom it closed. */
export type EscalationRecord = Escalation & {
  closedReason?: string;
  closedBy?: Actor;
  note?: string;
  sampleId?: string;
};

export interface RecordCaseInput {
  row: CaseRow;
  events: CaseEventRecord[];
  /**
   * The last event-log sequence number the state holds (v2). A write at a state version another
   * write already reached replaces that one's events up to it and removes any past it: a write
   * made inside a workflow task that then never completed (a worker killed) is repaired by the
   * task's retry, which reaches the same version with the true content.
   */
  lastSeq?: number;
  /** Only what changed since the last write. */
  samples: SampleRecord[];
  checks: HealthCheck[];
  escalations: EscalationRecord[];
  inspection?: {
    inspectionId: string;
    status: string;
    address?: string;
    requestedAt?: string;
    resultAt?: string;
    inspector?: string;
    note?: string;
  };
  /**
   * caseWorkflowV5: the task that made the write (its run, then its history length). Such writes
   * go in the order of their tasks (drizzle/0008_task_write_fence.sql).
   */
  fence?: number;
  /**
   * caseWorkflowV5: every sample, check and escalation id the case has, on a write that repairs
   * what a task that never completed may have written (the first write of a worker that took the
   * case up afresh, and every activity write): rows of the case not listed are removed.
   */
  repair?: { samples: string[]; checks: string[]; escalations: string[] };
  /**
   * Set by the worker, never by the case: true on a write it makes inside a workflow task
   * (src/activities/task-writes.ts), false on the `recordCase` activity's (which the task that
   * scheduled it had completed). An in-task repair does not replace an activity write of its own
   * task (drizzle/0011_task_write_source.sql). Absent (a worker of the build before): 0009's rules.
   */
  inTask?: boolean;
}

export interface CaseActivities {
  /** A room by policy and colour, or null when none is free (the workflow waits and retries). */
  reserveRoom(input: ReserveRoomInput): Promise<RoomAssignment | null>;
  /** Reserved room back to free (cancelled before check-in); the room goes to whoever waits. */
  releaseRoom(input: RoomRef): Promise<void>;
  /** Off the waiting list (the case ended while waiting); a room handed to it meanwhile is passed on. */
  leaveRoomQueue(input: { workflowId: string; caseNo: string }): Promise<void>;
  checkIn(input: RoomRef): Promise<void>;
  /** Occupied → awaiting disinfection; terminal after a positive case. */
  checkOut(input: RoomRef & { terminalDisinfection: boolean }): Promise<void>;
  dispatchTransport(input: DispatchInput): Promise<{ dispatchId: string }>;
  cancelTransport(input: { workflowId: string; caseNo: string; dispatchId: string }): Promise<void>;
  orderSample(input: OrderSampleInput): Promise<{ labId: string; orderedAt: string; orderId?: string }>;
  requestInspection(input: InspectionRequestInput): Promise<void>;
  handOverToCommunity(input: HandOverInput): Promise<void>;
  notifyEscalation(input: NotifyInput): Promise<void>;
  /** A positive result for someone no longer here (released, cancelled): the community must act. */
  alertCommunity(input: AlertCommunityInput): Promise<void>;
  recordCase(input: RecordCaseInput): Promise<void>;
  /** A directive's batch: the policy sent to each case (an update keyed by the directive), outcomes recorded. */
  applyDirectiveBatch(input: DirectiveBatchInput): Promise<DirectiveBatchResult>;
  /**
   * Home monitoring: a fever at home sends the person back through a transfer, as a new case
   * (requestId `<original>:return`, so a retry starts nothing twice). Returns its case number.
   */
  startReturnTransfer(input: {
    workflowId: string;
    caseNo: string;
    request: import('../domain/types').TransferRequest;
    /** PII: where the person is now (pickup and the new case's home). */
    homeAddress: string;
    policy: import('../domain/policy').Policy;
  }): Promise<{ caseNo: string }>;
  /** The directive's end (completed or cancelled), written to its row. */
  finishDirective(input: { directiveId: string; status: 'completed' | 'cancelled' }): Promise<void>;
}

export interface DirectiveBatchInput {
  directiveId: string;
  issuedAt: string;
  policy: import('../domain/policy').Policy;
  reason: string;
  by: Actor;
  caseNos: string[];
  /** Cases of the batch worked on at once. */
  concurrency?: number;
}

export type DirectiveOutcome = 'applied' | 'skipped' | 'failed';
export interface DirectiveBatchResult {
  applied: number;
  skipped: number;
  failed: number;
}

/** ApplicationFailure types raised by activities; permanent ones are nonRetryable. */
export enum ErrorCode {
  UnknownHotel = 'UnknownHotel',
  UnknownRoom = 'UnknownRoom',
  InvalidAddress = 'InvalidAddress',
  RoomStateConflict = 'RoomStateConflict',
  IntegrationRejected = 'IntegrationRejected',
  IntegrationUnavailable = 'IntegrationUnavailable',
}
