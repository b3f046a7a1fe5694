import type { CaseRow } from '../../src/activities/types';

/** A read-model row of a newly requested case at `stateVersion`, for tests and probes of the write. */
export function caseRowFixture(caseNo: string, stateVersion: number, patch: Partial<CaseRow> = {}): CaseRow {
  return {
    caseNo,
    workflowId: `case-${caseNo}`,
    requestId: `req-${caseNo}`,
    district: 'Xigu',
    street: 'Fulilu',
    displayName: '张*明',
    phase: 'REQUESTED',
    policyName: 'standard',
    requestedAt: '2024-03-01T00:00:00.000Z',
    pendingResults: 0,
    openEscalations: 0,
    openRedEscalations: 0,
    inspectionStatus: 'none',
    stateVersion,
    ...patch,
  };
}
