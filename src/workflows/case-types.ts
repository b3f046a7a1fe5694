/**
 * The case workflow types that run the decision core (src/domain/case): v5, which new cases start,
 * and v4, v3 and v2, which drain. All answer the same messages the same way; only v1 (caseWorkflow) differs.
 * No imports: the configuration reads this list.
 */
export const DECISION_CORE_TYPES = [
  'caseWorkflowV6',
  'caseWorkflowV5',
  'caseWorkflowV4',
  'caseWorkflowV3',
  'caseWorkflowV2',
] as const;
export type DecisionCoreType = (typeof DECISION_CORE_TYPES)[number];
export const isDecisionCoreType = (type: string | null | undefined): type is DecisionCoreType =>
  (DECISION_CORE_TYPES as readonly (string | null | undefined)[]).includes(type);
/**
 * The types that judge a health check's jurisdiction themselves (`recordHealthCheckInScope`):
 * those that run `runCase` with v5 on, which hand no read-model write to the API.
 */
export const SCOPED_CHECK_TYPES: readonly DecisionCoreType[] = ['caseWorkflowV6', 'caseWorkflowV5'];
export const isScopedCheckType = (type: string | null | undefined): boolean =>
  (SCOPED_CHECK_TYPES as readonly (string | null | undefined)[]).includes(type);
