/**
 * Domain types shared by workflows, activities and the API. Pure TypeScript: no runtime
 * imports, so workflow code can use them freely. The API's zod schemas (src/api/schemas.ts)
 * are checked against these types at compile time.
 */

export const PHASES = [
  'REQUESTED',
  'ROOM_ASSIGNED',
  'IN_TRANSIT',
  'OBSERVATION',
  'RELEASE_PENDING',
  'RELEASED',
  'HOSPITAL_TRANSFER',
  'CANCELLED',
  /** Released from the hotel, in the community's care for the policy's home-monitoring days. */
  'HOME_MONITORING',
  /** Home monitoring over (its days done, or the person sent back through a transfer). */
  'HOME_MONITORING_DONE',
] as const;
export type Phase = (typeof PHASES)[number];
/** The hotel stay is over (the case is closing or closed): no hotel command applies any more. */
export const TERMINAL_PHASES: readonly Phase[] = [
  'RELEASED',
  'HOSPITAL_TRANSFER',
  'CANCELLED',
  'HOME_MONITORING',
  'HOME_MONITORING_DONE',
];
/** Released from the hotel: released, and then perhaps at home. */
export const RELEASED_PHASES: readonly Phase[] = ['RELEASED', 'HOME_MONITORING', 'HOME_MONITORING_DONE'];

export const COLOURS = ['green', 'yellow', 'red'] as const;
export type Colour = (typeof COLOURS)[number];

export const ROLES = ['community', 'hotel', 'transport', 'medical', 'lab', 'supervisor', 'admin', 'system'] as const;
export type Role = (typeof ROLES)[number];

/** Who did something: an API key's id and role (never a person's PII). */
export interface Actor {
  id: string;
  role: Role;
  name?: string;
}

export const SYSTEM_ACTOR: Actor = { id: 'workflow', role: 'system', name: 'Shaodian' };

export interface Person {
  name: string;
  idNumber: string;
  phone: string;
  /** YYYY-MM-DD */
  birthDate: string;
  sex?: 'male' | 'female' | 'other';
  disabled?: boolean;
  pregnant?: boolean;
  /** e.g. hypertension, heart_disease, diabetes */
  chronicConditions?: string[];
  /** A supervisor's or community's "key attention" flag. */
  keyAttention?: boolean;
}

export type TransferReason = 'close_contact' | 'secondary_contact' | 'risk_area_return' | 'other';

export interface TransferRequest {
  /** The caller's idempotency key. */
  requestId: string;
  caseNo: string;
  district: string;
  street: string;
  requestedBy: Actor;
  requestedAt: string;
  person: Person;
  /** Where the person will go on release; inspected for single occupancy. */
  homeAddress: string;
  /** Where transport picks the person up; absent for self-drive. */
  pickupAddress?: string;
  transport: 'vehicle' | 'self_drive';
  reason: TransferReason;
  /** When the person is expected (self-drive, or a journey already under way). */
  expectedArrivalAt?: string;
  policyName?: string;
  note?: string;
}

export type SampleResult = 'pending' | 'negative' | 'positive';
export type SampleReason = 'scheduled' | 'fever' | 'symptom' | 'antigen' | 'supervisor' | 'release_check';

export interface Sample {
  sampleId: string;
  type: string;
  reason: SampleReason;
  /** Day of stay (1 = arrival day) for scheduled samples. */
  day?: number;
  dueAt: string;
  orderedAt?: string;
  labId?: string;
  result: SampleResult;
  resultAt?: string;
}

export type EscalationKind =
  | 'no_room'
  | 'late_arrival'
  | 'missed_check'
  | 'fever'
  | 'symptom'
  | 'door_alarm'
  | 'positive_result'
  | 'antigen_positive'
  | 'unknown_sample'
  | 'failed_inspection'
  | 'release_blocked'
  | 'integration_failure'
  /** Hospital transfer: nobody reported the person leaving the room. */
  | 'late_departure'
  /** A lab changed a result it had already given. */
  | 'result_corrected'
  /** A positive result after the case ended (released, cancelled): the person is no longer here. */
  | 'late_result'
  /** A result the case could not take (sample never ordered, or ordered from another lab). */
  | 'unexpected_result'
  /** Home monitoring: a day passed without a check-in. */
  | 'missed_home_check'
  /** Home monitoring: a fever or symptom at home; the person goes back through a transfer. */
  | 'home_fever';

export type EscalationLevel = 'reminder' | 'nurse' | 'point_leader' | 'doctor' | 'command_centre' | 'community';
export type Severity = 'info' | 'amber' | 'red';

export interface Escalation {
  id: string;
  kind: EscalationKind;
  level: EscalationLevel;
  severity: Severity;
  reason: string;
  status: 'open' | 'acked' | 'closed';
  openedAt: string;
  ackedAt?: string;
  ackedBy?: Actor;
  closedAt?: string;
  closedReason?: string;
}

export interface HealthCheck {
  checkId: string;
  takenAt: string;
  /** The slot it satisfied, if any. */
  dueAt?: string;
  temperatureC?: number;
  symptoms: string[];
  by: Actor;
}

export type InspectionStatus = 'none' | 'requested' | 'passed' | 'failed';

export interface Inspection {
  inspectionId: string;
  /** Increments with each address a supervisor sets. */
  round: number;
  status: InspectionStatus;
  requestedAt?: string;
  resultAt?: string;
  inspector?: string;
  note?: string;
}

export interface RoomAssignment {
  hotelId: string;
  roomId: string;
  roomNo: string;
  floor: number;
}

export interface ChangeRecord {
  at: string;
  by: Actor;
  kind: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

/** A name for the dashboard without identifying the person: 张三丰 → 张*丰, Jane Doe → J******e. */
export function maskName(name: string): string {
  const chars = Array.from(name.trim());
  if (chars.length <= 1) return '*';
  if (chars.length === 2) return `${chars[0]}*`;
  return `${chars[0]}${'*'.repeat(chars.length - 2)}${chars[chars.length - 1]}`;
}
