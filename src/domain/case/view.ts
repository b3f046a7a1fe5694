/**
 * What a case shows to the people who read it (the `view` query, GET /api/v1/cases/{id}): the
 * state without PII (no address, no person) and without the decider's bookkeeping, plus what
 * holds release right now and which closing steps are still undone.
 */
import { withCaseDefaults } from '../policy';
import type { Actor, Colour, Phase, RoomAssignment } from '../types';
import type {
  CaseContext,
  CaseEscalation,
  CaseState,
  ChangeRecord,
  HomeMonitoring,
  InspectionStatus,
  SampleStatus,
  TaskKind,
  TaskStatus,
} from './model';
import { unmetCriteria } from './rules';

export interface SampleView {
  sampleId: string;
  type: string;
  reason: string;
  day?: number;
  dueAt: string;
  status: SampleStatus;
  labId?: string;
  orderId?: string;
  takenAt?: string;
  result?: 'negative' | 'positive';
  results: { result: 'negative' | 'positive'; labId: string; reportedAt: string; receivedAt: string }[];
  cancelReason?: string;
}

export interface CaseView {
  schema: 2;
  caseNo: string;
  phase: Phase;
  colour: Colour;
  colourReasons: string[];
  policy: { name: string; version: number };
  room?: RoomAssignment;
  requestedAt: string;
  dispatchedAt?: string;
  arrivedAt?: string;
  stayStart?: string;
  releaseDue?: string;
  stayAdjustDays: number;
  nextCheckDue?: string;
  samples: SampleView[];
  checks: {
    checkId: string;
    takenAt: string;
    dueAt?: string;
    temperatureC?: number;
    symptoms: string[];
    fever: boolean;
    by: Actor;
  }[];
  escalations: Omit<CaseEscalation, 'notices'>[];
  inspection: {
    inspectionId: string;
    round: number;
    status: InspectionStatus;
    requestedAt?: string;
    resultAt?: string;
  };
  /** What holds release now (only while release is pending). */
  releaseBlockers: string[];
  closing?: {
    target: Phase;
    reason: string;
    startedAt: string;
    awaitingDeparture: boolean;
    departedAt?: string;
    certificateNo?: string;
    /** Closing steps not done yet: the case is not finished until they are done or waived. */
    unfinished: { kind: TaskKind; status: TaskStatus; attempts: number; lastError?: string; escalationId?: string }[];
  };
  /** Home monitoring after release (policies with home days). */
  home?: HomeMonitoring;
  endedAt?: string;
  /** Messages the case received but could not apply, newest last. */
  refused: { kind: string; at: string; reason: string; sampleId?: string; by: Actor }[];
  history: ChangeRecord[];
  version: number;
}

export function caseView(s: CaseState, ctx: CaseContext, now: number, history: ChangeRecord[] = []): CaseView {
  const policy = withCaseDefaults(s.policy ?? ctx.policy);
  const blockers =
    s.phase === 'RELEASE_PENDING' && s.releaseDue && !s.closing
      ? unmetCriteria(policy, {
          now,
          releaseDue: Date.parse(s.releaseDue),
          samples: s.samples,
          escalations: s.escalations,
          inspection: s.inspection.status,
          checks: s.checks,
        })
      : [];
  return {
    schema: 2,
    caseNo: s.caseNo,
    phase: s.phase,
    colour: s.colour,
    colourReasons: s.colourReasons,
    policy: { name: s.policyName, version: s.policyVersion },
    ...(s.room ? { room: s.room } : {}),
    requestedAt: s.requestedAt,
    ...opt('dispatchedAt', s.dispatchedAt),
    ...opt('arrivedAt', s.arrivedAt),
    ...opt('stayStart', s.stayStart),
    ...opt('releaseDue', s.releaseDue),
    stayAdjustDays: s.stayAdjustDays,
    ...opt('nextCheckDue', s.closing ? undefined : s.currentSlot),
    samples: s.samples.map((x) => ({
      sampleId: x.sampleId,
      type: x.type,
      reason: x.reason,
      ...(x.day !== undefined ? { day: x.day } : {}),
      dueAt: x.dueAt,
      status: x.status,
      ...opt('labId', x.order?.labId),
      ...opt('orderId', x.order?.orderId),
      ...opt('takenAt', x.order?.takenAt),
      ...opt('result', x.result),
      results: x.results.map((r) => ({
        result: r.result,
        labId: r.labId,
        reportedAt: r.reportedAt,
        receivedAt: r.receivedAt,
      })),
      ...opt('cancelReason', x.cancelReason),
    })),
    checks: s.checks.map((c) => ({
      checkId: c.checkId,
      takenAt: c.takenAt,
      ...opt('dueAt', c.dueAt),
      ...(c.temperatureC !== undefined ? { temperatureC: c.temperatureC } : {}),
      symptoms: c.symptoms,
      fever: c.fever,
      by: c.by,
    })),
    escalations: s.escalations.map(({ notices: _n, ...e }) => e),
    inspection: {
      inspectionId: s.inspection.inspectionId,
      round: s.inspection.round,
      status: s.inspection.status,
      ...opt('requestedAt', s.inspection.requestedAt),
      ...opt('resultAt', s.inspection.resultAt),
    },
    releaseBlockers: blockers,
    ...(s.closing
      ? {
          closing: {
            target: s.closing.target,
            reason: s.closing.reason,
            startedAt: s.closing.startedAt,
            awaitingDeparture: !!s.closing.awaitingDeparture,
            ...opt('departedAt', s.closing.departedAt),
            ...opt('certificateNo', s.closing.certificateNo),
            unfinished: s.tasks
              .filter((t) => t.closing && (t.status === 'pending' || t.status === 'running'))
              .map((t) => ({
                kind: t.kind,
                status: t.status,
                attempts: t.attempts,
                ...opt('lastError', t.lastError),
                ...opt('escalationId', t.escalationId),
              })),
          },
        }
      : {}),
    ...(s.home
      ? { home: { ...s.home, checkedDays: [...s.home.checkedDays], missedDays: [...s.home.missedDays] } }
      : {}),
    ...opt('endedAt', s.endedAt),
    refused: s.refused.slice(-20),
    history,
    version: s.version,
  };
}

function opt<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [k in K]?: V };
}
