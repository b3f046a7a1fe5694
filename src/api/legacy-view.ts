import type { CaseView } from '../domain/case/view';
import type { CaseState } from '../workflows/messages';

/**
 * A v1 case (caseWorkflow, draining) shown in the v2 view's shape, so that readers code against
 * one schema. v1 has no sample states: a sample with a result is `resulted`, an ordered one
 * `ordered`, the rest `planned`.
 */
export function legacyView(s: CaseState): CaseView {
  return {
    schema: 2,
    caseNo: s.caseNo,
    phase: s.phase,
    colour: s.colour ?? 'green',
    colourReasons: s.colourReasons,
    policy: { name: s.policyName, version: 1 },
    ...(s.room ? { room: s.room } : {}),
    requestedAt: s.requestedAt,
    ...(s.dispatchedAt ? { dispatchedAt: s.dispatchedAt } : {}),
    ...(s.arrivedAt ? { arrivedAt: s.arrivedAt } : {}),
    ...(s.stayStart ? { stayStart: s.stayStart } : {}),
    ...(s.releaseDue ? { releaseDue: s.releaseDue } : {}),
    stayAdjustDays: s.stayAdjustDays,
    ...(s.nextCheckDue ? { nextCheckDue: s.nextCheckDue } : {}),
    samples: s.samples.map((x) => ({
      sampleId: x.sampleId,
      type: x.type,
      reason: x.reason,
      ...(x.day !== undefined ? { day: x.day } : {}),
      dueAt: x.dueAt,
      status: x.result !== 'pending' ? 'resulted' : x.orderedAt ? 'ordered' : 'planned',
      ...(x.labId ? { labId: x.labId } : {}),
      ...(x.orderedAt ? { takenAt: x.orderedAt } : {}),
      ...(x.result !== 'pending' ? { result: x.result } : {}),
      results:
        x.result !== 'pending'
          ? [
              {
                result: x.result,
                labId: x.labId ?? 'unknown',
                reportedAt: x.resultAt ?? '',
                receivedAt: x.resultAt ?? '',
              },
            ]
          : [],
    })),
    checks: s.checks.map((c) => ({
      checkId: c.checkId,
      takenAt: c.takenAt,
      ...(c.dueAt ? { dueAt: c.dueAt } : {}),
      ...(c.temperatureC !== undefined ? { temperatureC: c.temperatureC } : {}),
      symptoms: c.symptoms,
      fever: false,
      by: c.by,
    })),
    // v1 closed escalations with reasons of its own (e.g. case_released); shown as they are.
    escalations: s.escalations as CaseView['escalations'],
    inspection: {
      inspectionId: s.inspection.inspectionId,
      round: s.inspection.round,
      status: s.inspection.status,
      ...(s.inspection.requestedAt ? { requestedAt: s.inspection.requestedAt } : {}),
      ...(s.inspection.resultAt ? { resultAt: s.inspection.resultAt } : {}),
    },
    releaseBlockers: s.releaseBlockers,
    ...(s.endedAt ? { endedAt: s.endedAt } : {}),
    refused: [],
    history: s.history.slice(-100).map((r, i) => ({
      seq: i + 1,
      at: r.at,
      by: r.by,
      kind: r.kind,
      payload: r.detail ?? {},
      ...(r.reason ? { reason: r.reason } : {}),
    })),
    version: s.version,
  };
}
