import { sql } from 'drizzle-orm';
import type { CheckSchedule } from '../domain/rounds';
import {
  bigint,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/**
 * Postgres owns inventory (hotels, rooms), the read model supervisors list from, the
 * append-only event log, and API keys. Temporal owns case state; the read model follows it.
 * PII kept here is only what a user must see: a masked display name for the dashboard and
 * the address under inspection for the community worker who inspects it.
 */

export const roomState = pgEnum('room_state', [
  'free',
  'reserved',
  'occupied',
  'awaiting_disinfection',
  'out_of_service',
]);

export const hotels = pgTable('hotels', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  district: text('district').notNull(),
  street: text('street'),
  /** Floor of the medical station, when the hotel marks one: red cases go nearest to it. */
  medicalStationFloor: integer('medical_station_floor'),
  active: boolean('active').notNull().default(true),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

export const rooms = pgTable(
  'rooms',
  {
    id: text('id').primaryKey(),
    hotelId: text('hotel_id')
      .notNull()
      .references(() => hotels.id),
    roomNo: text('room_no').notNull(),
    floor: integer('floor').notNull(),
    accessible: boolean('accessible').notNull().default(false),
    state: roomState('state').notNull().default('free'),
    /** The case holding the room while reserved or occupied; cleared on check-out. */
    caseNo: text('case_no'),
    /** The case whose departure left the room awaiting disinfection. */
    lastCaseNo: text('last_case_no'),
    /** 'routine' or 'terminal' (after a positive case) while awaiting disinfection. */
    disinfection: text('disinfection'),
    outOfServiceReason: text('out_of_service_reason'),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('rooms_hotel_room_no').on(t.hotelId, t.roomNo),
    // One room per case, whatever the concurrency: the database refuses a second.
    uniqueIndex('rooms_one_per_case')
      .on(t.caseNo)
      .where(sql`${t.caseNo} is not null`),
    index('rooms_hotel_state').on(t.hotelId, t.state),
  ],
);

/**
 * The waiting list for rooms, per district: cases that asked for a room when none was free.
 * A freed room is handed to the first in order (priority, then the time the transfer was
 * requested, then arrival on the list) and that case alone is woken. No PII: case numbers only.
 */
export const roomWaits = pgTable(
  'room_waits',
  {
    caseNo: text('case_no').primaryKey(),
    workflowId: text('workflow_id').notNull(),
    district: text('district').notNull(),
    colour: text('colour').notNull(),
    /** 0 first: red and yellow cases when the policy puts them first, else every case 0. */
    priority: integer('priority').notNull(),
    requestedAt: timestamp('requested_at', { withTimezone: true }).notNull(),
    /** Breaks ties in arrival order on the list. */
    seq: bigserial('seq', { mode: 'number' }).notNull(),
    since: timestamp('since', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('room_waits_order').on(t.district, t.priority, t.requestedAt, t.seq)],
);

export const cases = pgTable(
  'cases',
  {
    caseNo: text('case_no').primaryKey(),
    workflowId: text('workflow_id').notNull(),
    requestId: text('request_id').notNull(),
    district: text('district').notNull(),
    street: text('street').notNull(),
    /** Masked for the dashboard (e.g. 张*明); the full name lives only in encrypted history. */
    displayName: text('display_name'),
    phase: text('phase').notNull(),
    colour: text('colour'),
    policyName: text('policy_name').notNull(),
    hotelId: text('hotel_id'),
    roomId: text('room_id'),
    requestedAt: timestamp('requested_at', { withTimezone: true }).notNull(),
    arrivedAt: timestamp('arrived_at', { withTimezone: true }),
    stayStart: timestamp('stay_start', { withTimezone: true }),
    releaseDue: timestamp('release_due', { withTimezone: true }),
    nextCheckDue: timestamp('next_check_due', { withTimezone: true }),
    /** The case's check schedule while it watches a slot, for the nurses' rounds (src/domain/rounds.ts). */
    checkSchedule: jsonb('check_schedule').$type<CheckSchedule>(),
    pendingResults: integer('pending_results').notNull().default(0),
    openEscalations: integer('open_escalations').notNull().default(0),
    openRedEscalations: integer('open_red_escalations').notNull().default(0),
    inspectionStatus: text('inspection_status').notNull().default('none'),
    endedAt: timestamp('ended_at', { withTimezone: true }),
    /** The workflow's change counter: a late, retried write never overwrites a newer one. */
    stateVersion: integer('state_version').notNull().default(0),
    /**
     * caseWorkflowV5's order of its writes made in workflow tasks: the run and the task's history
     * length (drizzle/0008: a write from a task that never completed is replaced by its retry's).
     */
    writtenFence: bigint('written_fence', { mode: 'number' }),
    /**
     * Whether the fenced write that made the row was made inside a workflow task (true) or by the
     * case's activity (false); null for writes without a fence (drizzle/0011).
     */
    writtenInTask: boolean('written_in_task'),
    /**
     * The row as the API's case summary (schemas CaseSummary), JSON text kept by a trigger on every
     * write (drizzle/0012): the supervisor list answers pages of it as they are, no formatting.
     */
    summaryJson: text('summary_json'),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('cases_request_id').on(t.requestId),
    index('cases_phase_colour').on(t.phase, t.colour, t.caseNo),
    index('cases_hotel').on(t.hotelId, t.caseNo),
    index('cases_release_due').on(t.releaseDue, t.caseNo),
    index('cases_open_escalations').on(t.openEscalations, t.caseNo),
    index('cases_street').on(t.district, t.street, t.caseNo),
    /** The rows whose list copy is still to be made (drizzle/0012; empty once the fill is done). */
    index('cases_summary_missing')
      .on(t.caseNo)
      .where(sql`summary_json is null`),
  ],
);

export const caseEvents = pgTable(
  'case_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    caseNo: text('case_no').notNull(),
    /** Per-case sequence assigned by the workflow: a retried write is a no-op. */
    seq: integer('seq').notNull(),
    /** The actor's id (an API key id or "workflow"); role and name beside it, never PII. */
    actor: text('actor').notNull(),
    actorRole: text('actor_role'),
    actorName: text('actor_name'),
    kind: text('kind').notNull(),
    payload: jsonb('payload').notNull().default({}),
    at: timestamp('at', { withTimezone: true }).notNull(),
    recordedAt: timestamp('recorded_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('case_events_case_seq').on(t.caseNo, t.seq),
    // The evening report counts missed check slots per day: those folded into an open escalation
    // are only here (the first of a run opens a missed_check escalation).
    index('case_events_check_missed_at')
      .on(t.at)
      .where(sql`${t.kind} = 'check_missed'`),
  ],
);

export const samples = pgTable(
  'samples',
  {
    sampleId: text('sample_id').primaryKey(),
    caseNo: text('case_no').notNull(),
    type: text('type').notNull(),
    reason: text('reason').notNull(),
    labId: text('lab_id'),
    dueAt: timestamp('due_at', { withTimezone: true }).notNull(),
    orderedAt: timestamp('ordered_at', { withTimezone: true }),
    result: text('result').notNull().default('pending'),
    resultAt: timestamp('result_at', { withTimezone: true }),
    /** v2 cases: planned, ordered, resulted, corrected or cancelled. Only an ordered sample takes a result. */
    status: text('status'),
    /** The lab's reference for the order. */
    orderId: text('order_id'),
  },
  (t) => [index('samples_case').on(t.caseNo), index('samples_lab').on(t.labId, t.sampleId)],
);

/** Every result a lab posted, including duplicates and results for unknown samples. */
export const labResults = pgTable(
  'lab_results',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    sampleId: text('sample_id').notNull(),
    caseNo: text('case_no'),
    labKeyId: text('lab_key_id'),
    result: text('result').notNull(),
    status: text('status').notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('lab_results_sample').on(t.sampleId)],
);

export const healthChecks = pgTable(
  'health_checks',
  {
    /** The caller's check id: unique within its case (tablets may reuse slot names such as "2022-04-02-am"). */
    id: text('id').notNull(),
    caseNo: text('case_no').notNull(),
    dueAt: timestamp('due_at', { withTimezone: true }),
    takenAt: timestamp('taken_at', { withTimezone: true }).notNull(),
    temperatureC: numeric('temperature_c', { precision: 4, scale: 1 }),
    symptoms: jsonb('symptoms').notNull().default([]),
    recordedBy: text('recorded_by').notNull(),
  },
  (t) => [primaryKey({ columns: [t.caseNo, t.id] }), index('health_checks_case').on(t.caseNo, t.takenAt)],
);

export const escalations = pgTable(
  'escalations',
  {
    id: text('id').primaryKey(),
    caseNo: text('case_no').notNull(),
    hotelId: text('hotel_id'),
    kind: text('kind').notNull(),
    level: text('level').notNull(),
    severity: text('severity').notNull(),
    reason: text('reason').notNull(),
    status: text('status').notNull().default('open'),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull(),
    ackedAt: timestamp('acked_at', { withTimezone: true }),
    ackedBy: text('acked_by'),
    closedAt: timestamp('closed_at', { withTimezone: true }),
    notifiedAt: timestamp('notified_at', { withTimezone: true }),
    /** Why it closed (a fact such as check_received, or `resolved` by a person) and who closed it. */
    closedReason: text('closed_reason'),
    closedBy: text('closed_by'),
    note: text('note'),
    /** The sample it is about (results, corrections). */
    sampleId: text('sample_id'),
  },
  (t) => [index('escalations_open').on(t.status, t.openedAt), index('escalations_case').on(t.caseNo)],
);

export const addressInspections = pgTable(
  'address_inspections',
  {
    id: text('id').primaryKey(),
    caseNo: text('case_no').notNull(),
    street: text('street').notNull(),
    address: text('address').notNull(),
    status: text('status').notNull().default('requested'),
    requestedAt: timestamp('requested_at', { withTimezone: true }).notNull(),
    resultAt: timestamp('result_at', { withTimezone: true }),
    inspector: text('inspector'),
    note: text('note'),
  },
  (t) => [index('address_inspections_case').on(t.caseNo)],
);

export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    role: text('role').notNull(),
    district: text('district'),
    street: text('street'),
    /** Labs and hotels: the lab or hotel the key speaks for. */
    orgId: text('org_id'),
    keyHash: text('key_hash').notNull(),
    prefix: text('prefix').notNull(),
    ratePerMinute: integer('rate_per_minute'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('api_keys_hash').on(t.keyHash)],
);

/** Idempotency records of side effects already performed by activities (workflow id + step). */
export const activityEffects = pgTable(
  'activity_effects',
  {
    workflowId: text('workflow_id').notNull(),
    step: text('step').notNull(),
    result: jsonb('result').notNull().default({}),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.workflowId, t.step] })],
);

/**
 * Each running worker process says it is there (src/worker-liveness.ts): one row per process,
 * its `seen_at` moved by the database's clock every WORKER_LIVENESS_BEAT_MS while its workflow
 * poller polls, the row deleted when it stops. The API reads it to tell a worker that is behind
 * (a wave: its tasks wait, it still beats) from one that is gone. No PII: a process id and a
 * random part.
 */
export const workerLiveness = pgTable(
  'worker_liveness',
  {
    workerId: text('worker_id').primaryKey(),
    namespace: text('namespace').notNull(),
    taskQueue: text('task_queue').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    seenAt: timestamp('seen_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('worker_liveness_queue_seen_idx').on(t.namespace, t.taskQueue, t.seenAt)],
);

/**
 * Every use of the payload codec endpoint (the Temporal UI decoding case payloads): who, when,
 * what and how many. Written before the answer: a decode that cannot be recorded is refused.
 * No PII: key ids and counts only, never a payload.
 */
export const codecAudit = pgTable(
  'codec_audit',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    keyId: text('key_id').notNull(),
    role: text('role').notNull(),
    operation: text('operation').notNull(),
    namespace: text('namespace'),
    payloads: integer('payloads').notNull(),
    /** The browser page that asked (the Temporal UI's origin), when one did. */
    origin: text('origin'),
  },
  (t) => [index('codec_audit_at').on(t.at), index('codec_audit_key').on(t.keyId, t.at)],
);

/**
 * Release certificates, issued once (on the first download) and never changed: every later
 * download prints the same basis and code. The verification code is not stored: it is an HMAC
 * of these columns, recomputed to check one. No PII: the name is only in the PDF.
 */
export const certificates = pgTable('certificates', {
  certificateNo: text('certificate_no').primaryKey(),
  caseNo: text('case_no').notNull(),
  releasedAt: timestamp('released_at', { withTimezone: true }).notNull(),
  stayStart: timestamp('stay_start', { withTimezone: true }),
  hotelName: text('hotel_name'),
  negatives: integer('negatives').notNull(),
  /** The negatives the release rested on, as printed: sample id, type, taken, resulted (ISO). */
  basis: jsonb('basis')
    .$type<{ sampleId: string; type: string; takenAt: string | null; resultAt: string | null }[]>()
    .notNull(),
  issuedAt: timestamp('issued_at', { withTimezone: true }).notNull().defaultNow(),
  downloads: integer('downloads').notNull().default(0),
});

/**
 * Policies as data (issue 12): immutable, numbered versions per district. The latest version is
 * the district's current one, which new transfers get; a case keeps the version it started
 * with until a directive gives it another. Version 1 of a district is seeded from the built-in
 * policy the first time the district's policy is read.
 */
export const policies = pgTable(
  'policies',
  {
    district: text('district').notNull(),
    version: integer('version').notNull(),
    name: text('name').notNull(),
    /** The whole policy (src/domain/policy.ts Policy), as validated when it was created. */
    body: jsonb('body').notNull(),
    note: text('note'),
    /** The API key that created it (id only); null for a seed. */
    createdBy: text('created_by'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.district, t.version] })],
);

/**
 * A directive: a policy version applied to the running cases of a district, by a Temporal
 * workflow of its own (src/workflows/directive.ts). The case list is fixed when it is issued.
 */
export const directives = pgTable(
  'directives',
  {
    id: text('id').primaryKey(),
    /** The caller's requestId: a retried POST finds the same directive. */
    requestId: text('request_id').notNull(),
    district: text('district').notNull(),
    policyVersion: integer('policy_version').notNull(),
    filter: jsonb('filter').notNull().default({}),
    reason: text('reason').notNull(),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    total: integer('total').notNull(),
    /** The cases chosen when it was issued: a retried POST starts the same fan-out. */
    caseNos: jsonb('case_nos').$type<string[]>().notNull(),
    /** Cases a second, and per batch. */
    ratePerSecond: integer('rate_per_second').notNull(),
    /** running, paused, cancelled, completed (written by the directive workflow). */
    status: text('status').notNull().default('running'),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('directives_request').on(t.requestId), index('directives_district').on(t.district, t.createdAt)],
);

/** What a directive did to each case: applied, or skipped with the reason. No PII. */
export const directiveCases = pgTable(
  'directive_cases',
  {
    directiveId: text('directive_id').notNull(),
    caseNo: text('case_no').notNull(),
    /** applied | skipped | failed */
    outcome: text('outcome').notNull(),
    reason: text('reason'),
    before: jsonb('before'),
    after: jsonb('after'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.directiveId, t.caseNo] })],
);
