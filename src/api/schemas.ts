import { z } from 'zod';

import { CaseViewSchema } from './case-view-schema';

import {
  COLOURS,
  PHASES,
  ROLES,
  type EscalationKind,
  type EscalationLevel,
  type Person,
  type TransferRequest,
} from '../domain/types';

/**
 * Every request body, query and response of the API as zod: the routes parse with these,
 * the OpenAPI document is generated from them, and the inferred request types are checked
 * against the domain types the workflow receives (bottom of this file). `.meta({ id })`
 * names a component in the document.
 */

const isoDateTime = z.iso.datetime({ offset: true }).meta({ example: '2022-04-01T08:30:00+08:00' });
const ident = (max = 64) =>
  z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'letters, digits and . _ : - only')
    .max(max);
const text = (max: number) => z.string().trim().min(1, 'must not be empty').max(max);

export const CaseNoParam = z.object({
  caseNo: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'not a case number')
    .meta({ description: 'Case number, e.g. QCABCDE23456', example: 'QCABCDE23456' }),
});
export const EscalationIdParam = z.object({ id: ident(128).meta({ description: 'Escalation id' }) });
export const KeyIdParam = z.object({ id: ident(64).meta({ description: 'API key id' }) });

// ---- transfers ----
export const PersonSchema = z
  .strictObject({
    name: text(100),
    idNumber: z.string().regex(/^[A-Za-z0-9-]{4,32}$/, 'must be 4-32 letters, digits or -'),
    phone: z.string().regex(/^\+?[0-9][0-9 -]{4,19}$/, 'must be a phone number'),
    birthDate: z.iso
      .date()
      .refine((d) => d >= '1900-01-01' && d <= new Date().toISOString().slice(0, 10), 'must be a past date'),
    sex: z.enum(['male', 'female', 'other']).optional(),
    disabled: z.boolean().optional(),
    pregnant: z.boolean().optional(),
    chronicConditions: z
      .array(text(64))
      .max(20)
      .optional()
      .meta({ example: ['hypertension'] }),
    keyAttention: z.boolean().optional(),
  })
  .meta({ id: 'Person', description: 'PII: encrypted in Temporal, never logged; masked in the read model.' });

export const TransferBody = z
  .strictObject({
    requestId: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{5,127}$/, 'must be 6-128 letters, digits or . _ : - (use a UUID)')
      .meta({ description: 'Idempotency key chosen by the caller; the case number is derived from it.' }),
    district: text(64),
    street: text(64),
    person: PersonSchema,
    homeAddress: text(500),
    pickupAddress: text(500).optional(),
    transport: z.enum(['vehicle', 'self_drive']),
    reason: z.enum(['close_contact', 'secondary_contact', 'risk_area_return', 'other']),
    expectedArrivalAt: isoDateTime.optional(),
    policyName: z.string().min(1).max(64).optional().meta({
      description:
        "A built-in policy by name (e.g. drill); when absent, the district's current policy version (GET /api/v1/districts/{district}/policies).",
    }),
    note: text(1000).optional(),
  })
  .superRefine((b, ctx) => {
    if (b.transport === 'vehicle' && !b.pickupAddress) {
      ctx.addIssue({ code: 'custom', path: ['pickupAddress'], message: 'required when transport is vehicle' });
    }
  })
  .meta({ id: 'TransferRequest' });
export type TransferBody = z.infer<typeof TransferBody>;

export const TransferAccepted = z
  .object({
    caseNo: z.string(),
    workflowId: z.string(),
    status: z.string().meta({ description: 'Workflow execution status, e.g. RUNNING' }),
  })
  .meta({ id: 'TransferAccepted' });

// ---- case commands ----
export const ArrivalBody = z
  .strictObject({
    at: isoDateTime.optional().meta({ description: 'Defaults to now' }),
    antigen: z.enum(['negative', 'positive']).optional(),
  })
  .meta({ id: 'Arrival' });

export const DepartureBody = z
  .strictObject({ at: isoDateTime.optional().meta({ description: 'Defaults to now' }) })
  .meta({ id: 'Departure' });

export const DoorAlarmBody = z
  .strictObject({ at: isoDateTime.optional(), sensorId: ident(64).optional() })
  .meta({ id: 'DoorAlarm' });

export const HealthCheckBody = z
  .strictObject({
    checkId: ident(64)
      .optional()
      .meta({ description: 'Your id for this check; a retry with it is not recorded twice' }),
    takenAt: isoDateTime.optional(),
    temperatureC: z.number().min(30).max(45).optional(),
    symptoms: z.array(text(64)).max(20).optional(),
  })
  .refine((b) => b.temperatureC !== undefined || b.symptoms !== undefined, {
    message: 'a temperature or a list of symptoms (may be empty) is required',
    path: ['temperatureC'],
  })
  .meta({ id: 'HealthCheck' });

export const HomeCheckInBody = z
  .strictObject({
    checkInId: ident(64)
      .optional()
      .meta({ description: 'Your id for this check-in; a retry with it is not recorded twice' }),
    takenAt: isoDateTime.optional(),
    temperatureC: z.number().min(30).max(45).meta({ description: 'Measured at home (required)' }),
    symptoms: z.array(text(64)).max(20).optional(),
  })
  .meta({ id: 'HomeCheckIn' });

export const InspectionBody = z
  .strictObject({
    inspectionId: ident(128),
    singleOccupancy: z.boolean(),
    inspector: text(100),
    at: isoDateTime.optional(),
    note: text(1000).optional(),
  })
  .meta({ id: 'AddressInspectionResult' });

export const LabResultItem = z
  .strictObject({
    sampleId: ident(128),
    result: z.enum(['negative', 'positive']),
    reportedAt: isoDateTime.optional(),
  })
  .meta({ id: 'LabResult' });
export const LabBatch = z
  .strictObject({ results: z.array(LabResultItem).min(1).max(1000) })
  .meta({ id: 'LabResultBatch' });
export const LabBody = z.union([LabResultItem, LabBatch]);

export const LabAnswerStatus = z.enum([
  'applied',
  'corrected',
  'duplicate',
  'unknown_sample',
  'not_ordered',
  'forbidden',
  'case_closed',
  'unavailable',
  'conflicting',
]);
export const LabAnswer = z
  .object({
    sampleId: z.string(),
    status: LabAnswerStatus,
    caseNo: z.string().optional(),
    detail: z.string().optional(),
  })
  .meta({ id: 'LabResultAnswer' });
export const LabBatchAnswer = z
  .object({ results: z.array(LabAnswer), counts: z.record(z.string(), z.number().int()) })
  .meta({ id: 'LabResultBatchAnswer' });

export const AckBody = z.strictObject({ note: text(1000).optional() }).meta({ id: 'EscalationAck' });
export const ResolveBody = z
  .strictObject({ note: text(1000).meta({ description: 'How it was resolved: the reason it closes' }) })
  .meta({ id: 'EscalationResolve' });

const reason = text(500);
export const ExtendBody = z
  .strictObject({
    days: z
      .number()
      .int()
      .min(-30)
      .max(60)
      .refine((d) => d !== 0, 'must not be 0')
      .meta({ description: 'Days to add (negative to shorten)' }),
    reason,
  })
  .meta({ id: 'ChangeStay' });
export const ColourBody = z.strictObject({ colour: z.enum(COLOURS), reason }).meta({ id: 'ChangeColour' });
export const AddressBody = z.strictObject({ address: text(500), reason }).meta({ id: 'SetAddress' });
export const CancelBody = z.strictObject({ reason }).meta({ id: 'Cancel' });

export const IdempotencyHeader = z.object({
  'Idempotency-Key': z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/)
    .optional()
    .meta({
      description:
        'Your id for this command: a retry with the same key gets the first answer and changes nothing twice ' +
        '(a key reused for a different command is refused with 409)',
    }),
});

export const SignalAccepted = z
  .object({
    caseNo: z.string(),
    accepted: z.literal(true),
    status: z.literal('queued').meta({
      description:
        'queued: durably in the case history; the case acts on it when its worker runs it (within a second ' +
        'while workers run; when a worker returns after an outage). Applied once, whatever is retried.',
    }),
    checkId: z.string().optional().meta({ description: 'Health checks: the id the check is recorded under' }),
    idempotencyKey: z
      .string()
      .optional()
      .meta({ description: 'The key the report is kept under (yours, or one made for it): retry with it' }),
    detail: z.string().optional().meta({ description: 'Why it was queued rather than applied at once' }),
  })
  .meta({ id: 'SignalAccepted', description: 'Accepted: the message is durably recorded in the case history.' });
export const UpdateAnswer = z
  .object({
    caseNo: z.string(),
    status: z.literal('applied').meta({ description: "applied: the case's worker took it; `result` is its answer" }),
    result: z.record(z.string(), z.unknown()),
    idempotencyKey: z
      .string()
      .optional()
      .meta({ description: 'The key the command is kept under (yours, or one made for it)' }),
  })
  .meta({ id: 'UpdateAnswer', description: "The workflow's answer" });

// ---- supervisor reads ----
export const CaseListQuery = z.strictObject({
  phase: z.enum(PHASES).optional(),
  colour: z.enum(COLOURS).optional(),
  hotelId: ident(64).optional(),
  street: text(64).optional(),
  releaseDueBefore: isoDateTime.optional(),
  hasOpenEscalations: z.enum(['true', 'false']).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,128}$/, 'not a cursor')
    .optional()
    .meta({ description: 'nextCursor of the previous page' }),
});

export const CaseSummary = z
  .object({
    caseNo: z.string(),
    workflowId: z.string(),
    district: z.string(),
    street: z.string(),
    displayName: z.string().nullable(),
    phase: z.enum(PHASES),
    colour: z.enum(COLOURS).nullable(),
    policyName: z.string(),
    hotelId: z.string().nullable(),
    roomId: z.string().nullable(),
    roomNo: z.string().nullable(),
    requestedAt: z.string(),
    arrivedAt: z.string().nullable(),
    stayStart: z.string().nullable(),
    releaseDue: z.string().nullable(),
    nextCheckDue: z.string().nullable(),
    pendingResults: z.number().int(),
    openEscalations: z.number().int(),
    openRedEscalations: z.number().int(),
    inspectionStatus: z.string(),
    endedAt: z.string().nullable(),
    updatedAt: z.string(),
  })
  .meta({ id: 'CaseSummary' });
export type CaseSummary = z.infer<typeof CaseSummary>;

export const CasePage = z
  .object({ items: z.array(CaseSummary), nextCursor: z.string().nullable() })
  .meta({ id: 'CasePage' });

export const CaseDetail = z
  .object({
    caseNo: z.string(),
    source: z.enum(['workflow', 'read-model']),
    warning: z.string().optional(),
    summary: CaseSummary.nullable(),
    state: CaseViewSchema.nullable().meta({
      description: 'The live case from its workflow (source "workflow"); null from the read model',
    }),
    escalations: z.array(z.looseObject({ id: z.string() })).optional(),
    roomWait: z
      .object({ place: z.number().int().min(1), since: isoDateTime, district: z.string() })
      .nullable()
      .optional()
      .meta({ description: "Waiting for a room: the case's place on its district's list (1 = next) and since when" }),
  })
  .meta({ id: 'CaseDetail' });

export const RoomQueueQuery = z.strictObject({
  district: z.string().min(1).max(100).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export const RoomQueue = z
  .object({
    district: z.string(),
    length: z.number().int().meta({ description: 'Cases waiting in the district' }),
    oldestSince: isoDateTime.nullable().meta({ description: 'When the longest-waiting case joined the list' }),
    entries: z.array(
      z.object({
        caseNo: z.string(),
        colour: z.string(),
        requestedAt: isoDateTime,
        since: isoDateTime,
        place: z.number().int().min(1),
      }),
    ),
  })
  .meta({ id: 'RoomQueue' });

export const HotelVacancy = z
  .object({
    id: z.string(),
    name: z.string(),
    district: z.string(),
    street: z.string().nullable(),
    active: z.boolean(),
    total: z.number().int(),
    free: z.number().int(),
    reserved: z.number().int(),
    occupied: z.number().int(),
    awaitingDisinfection: z.number().int(),
    outOfService: z.number().int(),
  })
  .meta({ id: 'HotelVacancy' });
export const HotelList = z.object({ items: z.array(HotelVacancy) }).meta({ id: 'HotelList' });

export const ESCALATION_KINDS = [
  'no_room',
  'late_arrival',
  'missed_check',
  'fever',
  'symptom',
  'door_alarm',
  'positive_result',
  'antigen_positive',
  'unknown_sample',
  'failed_inspection',
  'release_blocked',
  'integration_failure',
  'late_departure',
  'result_corrected',
  'late_result',
  'unexpected_result',
  'missed_home_check',
  'home_fever',
] as const satisfies readonly EscalationKind[];
export const ESCALATION_LEVELS = [
  'reminder',
  'nurse',
  'point_leader',
  'doctor',
  'command_centre',
  'community',
] as const satisfies readonly EscalationLevel[];

/** Filters shared by the escalation list and its summary. */
const escalationFilters = {
  status: z.enum(['open', 'acked']).default('open'),
  kind: z.enum(ESCALATION_KINDS).optional(),
  level: z.enum(ESCALATION_LEVELS).optional(),
  severity: z.enum(['info', 'amber', 'red']).optional(),
  hotelId: z.string().min(1).max(64).optional(),
  openedBefore: z.iso
    .datetime({ offset: true })
    .optional()
    .meta({ description: 'Only escalations opened before this instant (e.g. "older than 3 h")' }),
};
export const EscalationQuery = z.strictObject({
  ...escalationFilters,
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z
    .string()
    .max(200)
    .optional()
    .meta({ description: 'nextCursor of the previous page: the page after it, oldest first' }),
});
export const EscalationSummaryQuery = z.strictObject(escalationFilters);
export const EscalationRow = z
  .object({
    id: z.string(),
    caseNo: z.string(),
    hotelId: z.string().nullable(),
    district: z.string().nullable(),
    street: z.string().nullable(),
    displayName: z.string().nullable(),
    kind: z.string(),
    level: z.string(),
    severity: z.string(),
    reason: z.string(),
    status: z.string(),
    openedAt: z.string(),
    ackedAt: z.string().nullable(),
    ackedBy: z.string().nullable(),
  })
  .meta({ id: 'Escalation' });
export const EscalationList = z
  .object({
    items: z.array(EscalationRow),
    nextCursor: z.string().nullable().meta({ description: 'Pass as cursor for the next page; null on the last' }),
  })
  .meta({ id: 'EscalationList' });
export const EscalationGroup = z
  .object({
    kind: z.string(),
    level: z.string(),
    severity: z.string(),
    count: z.number().int(),
    oldestOpenedAt: z.string(),
    hotels: z.number().int().meta({ description: 'Distinct hotels among them (none counts as one)' }),
  })
  .meta({ id: 'EscalationGroup' });
export const EscalationSummary = z
  .object({
    total: z.number().int(),
    oldestOpenedAt: z.string().nullable(),
    groups: z.array(EscalationGroup).meta({ description: 'By kind, level and severity; red first, then the largest' }),
  })
  .meta({ id: 'EscalationSummary' });

export const ReleaseDue = z
  .object({
    caseNo: z.string(),
    displayName: z.string().nullable(),
    hotelId: z.string().nullable(),
    roomNo: z.string().nullable(),
    phase: z.enum(PHASES),
    colour: z.enum(COLOURS).nullable(),
    releaseDue: z.string(),
    inspectionStatus: z.string(),
    pendingResults: z.number().int(),
    openRedEscalations: z.number().int(),
  })
  .meta({ id: 'ReleaseDue' });

export const Summary = z
  .object({
    generatedAt: z.string(),
    timeZone: z.string(),
    district: z.string().nullable(),
    hotels: z.object({
      total: z.number().int(),
      free: z.number().int(),
      reserved: z.number().int(),
      occupied: z.number().int(),
      awaitingDisinfection: z.number().int(),
      outOfService: z.number().int(),
    }),
    phases: z.record(z.string(), z.number().int()),
    colours: z.record(z.string(), z.number().int()).meta({ description: 'Active (non-terminal) cases by colour' }),
    byPhaseColour: z.record(z.string(), z.record(z.string(), z.number().int())),
    activeCases: z.number().int(),
    openEscalations: z.object({
      total: z.number().int(),
      red: z.number().int(),
      oldestOpenedAt: z.string().nullable(),
    }),
    releasesDue: z.object({ today: z.array(ReleaseDue), tomorrow: z.array(ReleaseDue) }),
  })
  .meta({ id: 'Summary' });

// ---- hotels and rooms ----
export const HotelIdParam = z.object({ hotelId: ident(64).meta({ description: 'Hotel id', example: 'xigu-01' }) });
export const RoomIdParam = z.object({
  roomId: ident(160).meta({ description: 'Room id: `<hotelId>:<roomNo>`', example: 'xigu-01:305' }),
});

/** A command with nothing to say beyond its path: send `{}`. */
export const EmptyBody = z.strictObject({}).meta({ id: 'EmptyCommand' });
export const OutOfServiceBody = z
  .strictObject({ reason: text(500).meta({ example: 'water leak, plumber booked' }) })
  .meta({ id: 'OutOfService' });

export const AddedHotel = z
  .object({
    hotelId: z.string(),
    created: z.boolean().meta({ description: 'true: the hotel is new (201); false: it existed (200)' }),
    rooms: z.number().int().meta({ description: 'Rooms the hotel has now' }),
    added: z.number().int().meta({ description: 'Rooms this call created' }),
  })
  .meta({ id: 'AddedHotel' });

export const RoomStateEnum = z.enum(['free', 'reserved', 'occupied', 'awaiting_disinfection', 'out_of_service']);
export const RoomRow = z
  .object({
    id: z.string(),
    roomNo: z.string(),
    floor: z.number().int(),
    accessible: z.boolean(),
    state: RoomStateEnum,
    caseNo: z.string().nullable().meta({ description: 'The case holding the room (reserved or occupied)' }),
    disinfection: z
      .enum(['routine', 'terminal'])
      .nullable()
      .meta({ description: 'While awaiting disinfection: terminal after a positive case' }),
    outOfServiceReason: z.string().nullable(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Room' });
export const HotelRooms = z
  .object({
    hotelId: z.string(),
    name: z.string(),
    district: z.string(),
    street: z.string().nullable(),
    active: z.boolean(),
    counts: z.record(RoomStateEnum, z.number().int()).meta({ description: 'Rooms by state' }),
    items: z.array(RoomRow),
  })
  .meta({ id: 'HotelRooms' });
export const RoundsQuery = z.strictObject({
  from: isoDateTime.optional().meta({ description: 'Slots whose window is still open at this time; defaults to now' }),
  to: isoDateTime
    .optional()
    .meta({ description: 'Slots at or before this time; defaults to 24 hours after `from`, at most 7 days after it' }),
});
export const RoundSlotRow = z
  .object({
    caseNo: z.string(),
    roomId: z.string().nullable(),
    roomNo: z.string().nullable(),
    slotAt: z.string().meta({ description: 'When the check is due' }),
    windowOpensAt: z
      .string()
      .nullable()
      .meta({ description: 'A check taken from here on counts for this slot (null: a case started before rounds)' }),
    windowClosesAt: z
      .string()
      .nullable()
      .meta({ description: 'After this the slot is missed and the missed-check steps start' }),
    watched: z.boolean().meta({
      description: 'The slot the case watches now; the later ones of the same case follow it in order',
    }),
  })
  .meta({ id: 'RoundSlot' });
export const HotelRounds = z
  .object({
    hotelId: z.string(),
    from: z.string(),
    to: z.string(),
    cases: z.number().int().meta({ description: 'People in the hotel who owe checks' }),
    items: z.array(RoundSlotRow).meta({ description: 'By slot time, then room number; at most 8 slots per person' }),
  })
  .meta({ id: 'HotelRounds' });
export const RoomTransitionAnswer = z
  .object({
    roomId: z.string(),
    hotelId: z.string(),
    state: RoomStateEnum,
    changed: z.boolean().meta({ description: 'false: the room was already in that state (a retry)' }),
  })
  .meta({ id: 'RoomTransition' });

export const SeededDemo = z
  .object({ district: z.string(), hotels: z.number().int(), rooms: z.number().int(), added: z.number().int() })
  .meta({ id: 'SeededDemo' });

// ---- admin ----
export const KeyRole = z.enum(ROLES.filter((r) => r !== 'system') as [string, ...string[]]);
export const NewKeyBody = z
  .strictObject({
    name: text(100),
    role: KeyRole,
    district: text(64).optional(),
    street: text(64).optional(),
    orgId: ident(64).optional().meta({ description: 'Lab id for lab keys, hotel id for hotel and medical keys' }),
    ratePerMinute: z.number().int().min(1).max(1_000_000).optional(),
  })
  .superRefine((b, ctx) => {
    if (b.street && !b.district) ctx.addIssue({ code: 'custom', path: ['district'], message: 'required with street' });
    if (b.role === 'community' && !b.street) {
      ctx.addIssue({ code: 'custom', path: ['street'], message: 'community keys need a street (and district)' });
    }
  })
  .meta({ id: 'NewApiKey' });
export const KeyInfo = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.string(),
    district: z.string().nullable(),
    street: z.string().nullable(),
    orgId: z.string().nullable(),
    prefix: z.string(),
    ratePerMinute: z.number().int().nullable(),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })
  .meta({ id: 'ApiKey' });
export const CreatedKey = z
  .object({ key: z.string().meta({ description: 'Shown once; only its hash is stored' }), identity: KeyInfo })
  .meta({ id: 'CreatedApiKey' });
export const KeyList = z.object({ items: z.array(KeyInfo) }).meta({ id: 'ApiKeyList' });

// ---- ops ----
export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    errors: z
      .array(z.object({ in: z.enum(['body', 'query', 'params', 'header']), path: z.string(), message: z.string() }))
      .optional(),
  })
  .meta({ id: 'Problem' });
export const Readiness = z
  .object({
    status: z.enum(['ready', 'degraded', 'unavailable']).meta({
      description:
        'ready: all up. degraded: no worker is taking the cases (field reports are queued, commands answer 503). ' +
        'unavailable (503): Temporal or the database is down.',
    }),
    checks: z
      .record(
        z.string(),
        z.object({
          ok: z.boolean(),
          error: z.string().optional(),
          ms: z.number().optional(),
          since: z.string().optional().meta({ description: 'When it last went up or down' }),
          breakerOpen: z.boolean().optional().meta({
            description:
              'Known down: calls that need it are answered 503 at once. A single slow probe reports ok: false first; a second, or a refused connection, opens the breaker',
          }),
        }),
      )
      .meta({ description: 'temporal, database and worker, each with why it is down' }),
  })
  .meta({ id: 'Readiness' });

// ---- one contract, two sides: the bodies must produce the types the workflow receives ----
type Assignable<A, B> = [A] extends [B] ? true : false;
const personMatches: Assignable<z.infer<typeof PersonSchema>, Person> = true;
const transferMatches: Assignable<
  TransferBody & Pick<TransferRequest, 'caseNo' | 'requestedBy' | 'requestedAt'>,
  TransferRequest
> = true;
void personMatches;
void transferMatches;
