import type { EscalationKind, EscalationLevel, Severity } from './types';

/**
 * The rules a case is judged by, as data. A policy is recorded on each case at start, so a
 * case keeps the rules it started under unless a supervisor changes them for it. Every
 * duration is a number of milliseconds or a clock time scaled by the policy's day, so the
 * `drill` policy runs a 14-day stay in a few minutes with the same code.
 */
export interface Policy {
  name: string;
  version: number;
  /**
   * calendar: days are local calendar days in timeZone, clock times are wall-clock times.
   * compressed: a day lasts dayMs from the moment of arrival; clock times scale with it.
   */
  clock: { kind: 'calendar'; timeZone: string } | { kind: 'compressed'; dayMs: number };
  stayDays: number;
  /** Local clock times (HH:MM) at which health checks are due each day. */
  checkTimes: string[];
  /** A check counts for a slot from windowBeforeMs before it to windowAfterMs after it. */
  checkWindowBeforeMs: number;
  checkWindowAfterMs: number;
  /** Missed-check chain: each step fires afterMs after the window closed. */
  missedCheckSteps: { level: EscalationLevel; afterMs: number }[];
  feverThresholdC: number;
  sampling: { days: number[]; type: string; time: string };
  /** Extra sample type ordered on fever or a symptom. */
  extraSampleType: string;
  release: {
    requiredNegatives: number;
    minApartMs: number;
    /** Kinds whose open escalations block release. */
    blockingSeverities: Severity[];
    /**
     * Observation itself: release needs a recorded health check without fever taken within this
     * long before the moment of release (the built-in policies: one policy day). Absent or 0: off.
     * Added with policies as data; cases recorded before it have no such rule.
     */
    afebrileCheckWithinMs?: number;
  };
  colour: {
    yellowAgeAtLeast: number;
    yellowAgeBelow: number;
    yellowIfDisabled: boolean;
    yellowIfPregnant: boolean;
    redConditions: string[];
    redIfKeyAttention: boolean;
  };
  severity: Record<EscalationKind, Severity>;
  /** How long before the release date the home inspection is requested. */
  inspectionLeadMs: number;
  /** How long after dispatch the person must arrive before escalation. */
  arrivalDeadlineMs: number;
  /** After the deadline, further reminders at this interval while still waiting. */
  lateArrivalRepeatMs: number;
  /** No room: retry with exponential backoff between these bounds. */
  roomRetry: { initialMs: number; maxMs: number };
  /** How long release waits on missing criteria before escalating to the command centre. */
  releaseBlockedEscalateAfterMs: number;
  /**
   * Added with the v2 case workflow; optional so that policies recorded on running cases stay
   * valid. `withCaseDefaults` fills them in (scaled to the policy's day).
   */
  /** A failed activity (order, inspection request, dispatch, check-out…) is retried with backoff between these. */
  taskRetry?: { initialMs: number; maxMs: number };
  /** How far back an arrival time may be reported (late-night intake, formalities later). */
  arrivalBackdateMaxMs?: number;
  /** How far ahead of the case's clock a reported time may be (device clocks drift). */
  clockSkewMs?: number;
  /** After the hospital vehicle is dispatched, how long until a missing departure escalates. */
  departureDeadlineMs?: number;
  /** How long an ended case keeps listening for late lab results and corrections. */
  lateResultWindowMs?: number;
  /**
   * The district's waiting list for rooms. A case without a room waits on it and is woken when
   * a room is handed to it; `recheckMs` is only a safety net (a wake-up lost while Temporal was
   * away). `colourFirst`: red and yellow cases before green ones; otherwise by request time only.
   */
  roomQueue?: { recheckMs: number; colourFirst: boolean };
  /**
   * Days of home monitoring after release (the community's part, e.g. 14 + 7). 0 or absent: the
   * case ends at release.
   */
  homeMonitoringDays?: number;
}

const HOUR = 3_600_000;
const MIN = 60_000;
const DAY = 24 * HOUR;

const severity: Record<EscalationKind, Severity> = {
  no_room: 'amber',
  late_arrival: 'amber',
  missed_check: 'amber',
  fever: 'red',
  symptom: 'red',
  door_alarm: 'amber',
  positive_result: 'red',
  antigen_positive: 'red',
  unknown_sample: 'info',
  failed_inspection: 'amber',
  release_blocked: 'amber',
  integration_failure: 'amber',
  late_departure: 'amber',
  result_corrected: 'red',
  late_result: 'red',
  unexpected_result: 'info',
  missed_home_check: 'amber',
  home_fever: 'red',
};

export function standardPolicy(timeZone = 'Asia/Shanghai'): Policy {
  return {
    name: 'standard',
    version: 1,
    clock: { kind: 'calendar', timeZone },
    stayDays: 14,
    checkTimes: ['08:00', '16:00'],
    checkWindowBeforeMs: 1 * HOUR,
    checkWindowAfterMs: 1 * HOUR,
    missedCheckSteps: [
      { level: 'reminder', afterMs: 0 },
      { level: 'nurse', afterMs: 30 * MIN },
      { level: 'point_leader', afterMs: 90 * MIN },
    ],
    feverThresholdC: 37.3,
    sampling: { days: [1, 4, 7, 13], type: 'PCR', time: '09:00' },
    extraSampleType: 'PCR',
    release: { requiredNegatives: 2, minApartMs: 24 * HOUR, blockingSeverities: ['red'], afebrileCheckWithinMs: DAY },
    colour: {
      yellowAgeAtLeast: 65,
      yellowAgeBelow: 14,
      yellowIfDisabled: true,
      yellowIfPregnant: true,
      redConditions: ['hypertension', 'heart_disease'],
      redIfKeyAttention: true,
    },
    severity,
    inspectionLeadMs: 2 * DAY,
    arrivalDeadlineMs: 4 * HOUR,
    lateArrivalRepeatMs: 2 * HOUR,
    roomRetry: { initialMs: 1 * MIN, maxMs: 30 * MIN },
    releaseBlockedEscalateAfterMs: 4 * HOUR,
    taskRetry: { initialMs: 1 * MIN, maxMs: 30 * MIN },
    arrivalBackdateMaxMs: 24 * HOUR,
    clockSkewMs: 5 * MIN,
    departureDeadlineMs: 2 * HOUR,
    lateResultWindowMs: 7 * DAY,
    roomQueue: { recheckMs: 6 * HOUR, colourFirst: true },
  };
}

/**
 * The standard rules with a day of `dayMs`: every day-relative duration scales with it.
 * A 14-day stay with dayMs = 10 s takes 140 s.
 */
export function drillPolicy(dayMs = 10_000): Policy {
  const base = standardPolicy();
  const scale = (ms: number) => Math.max(1, Math.round((ms * dayMs) / DAY));
  return {
    ...base,
    name: 'drill',
    clock: { kind: 'compressed', dayMs },
    checkWindowBeforeMs: scale(base.checkWindowBeforeMs),
    checkWindowAfterMs: scale(base.checkWindowAfterMs),
    missedCheckSteps: base.missedCheckSteps.map((s) => ({ ...s, afterMs: scale(s.afterMs) })),
    release: {
      ...base.release,
      minApartMs: scale(base.release.minApartMs),
      afebrileCheckWithinMs: scale(base.release.afebrileCheckWithinMs!),
    },
    inspectionLeadMs: scale(base.inspectionLeadMs),
    arrivalDeadlineMs: scale(base.arrivalDeadlineMs),
    lateArrivalRepeatMs: scale(base.lateArrivalRepeatMs),
    roomRetry: { initialMs: scale(base.roomRetry.initialMs), maxMs: scale(base.roomRetry.maxMs) },
    releaseBlockedEscalateAfterMs: scale(base.releaseBlockedEscalateAfterMs),
    taskRetry: { initialMs: scale(base.taskRetry!.initialMs), maxMs: scale(base.taskRetry!.maxMs) },
    arrivalBackdateMaxMs: scale(base.arrivalBackdateMaxMs!),
    // Device clocks drift in real time, whatever the policy's day.
    clockSkewMs: base.clockSkewMs,
    departureDeadlineMs: scale(base.departureDeadlineMs!),
    lateResultWindowMs: scale(base.lateResultWindowMs!),
    roomQueue: { ...base.roomQueue!, recheckMs: scale(base.roomQueue!.recheckMs) },
  };
}

export type CasePolicy = Policy &
  Required<
    Pick<
      Policy,
      'taskRetry' | 'arrivalBackdateMaxMs' | 'clockSkewMs' | 'departureDeadlineMs' | 'lateResultWindowMs' | 'roomQueue'
    >
  >;

/**
 * A policy with the v2 fields filled in: a policy recorded before they existed gets the
 * standard values, scaled to its own day, and severities for escalation kinds it never knew.
 */
export function withCaseDefaults(p: Policy): CasePolicy {
  const scale = (ms: number) => Math.max(1, Math.round((ms * policyDayMs(p)) / DAY));
  return {
    ...p,
    severity: { ...severity, ...p.severity },
    taskRetry: p.taskRetry ?? { initialMs: scale(1 * MIN), maxMs: scale(30 * MIN) },
    arrivalBackdateMaxMs: p.arrivalBackdateMaxMs ?? scale(24 * HOUR),
    clockSkewMs: p.clockSkewMs ?? 5 * MIN,
    departureDeadlineMs: p.departureDeadlineMs ?? scale(2 * HOUR),
    lateResultWindowMs: p.lateResultWindowMs ?? scale(7 * DAY),
    roomQueue: p.roomQueue ?? { recheckMs: scale(6 * HOUR), colourFirst: true },
  };
}

export interface PolicyConfig {
  TIME_ZONE: string;
  DRILL_DAY_SECONDS: number;
  DEFAULT_POLICY: string;
}

/** The configured policies by name. */
export function policyCatalog(cfg: PolicyConfig): Record<string, Policy> {
  return {
    standard: standardPolicy(cfg.TIME_ZONE),
    drill: drillPolicy(cfg.DRILL_DAY_SECONDS * 1000),
  };
}

export function resolvePolicy(cfg: PolicyConfig, name?: string): Policy | undefined {
  return policyCatalog(cfg)[name ?? cfg.DEFAULT_POLICY];
}

export const policyDayMs = (p: Pick<Policy, 'clock'>): number => (p.clock.kind === 'compressed' ? p.clock.dayMs : DAY);
