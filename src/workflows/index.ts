/**
 * The workflow types this worker runs. New cases start caseWorkflowV3 (CASE_WORKFLOW_TYPE);
 * caseWorkflowV2 and caseWorkflow (v1) stay registered, unchanged, until every case started under
 * them has ended (docs/OPERATIONS.md).
 */
export { caseWorkflow } from './case';
export { caseWorkflowV2, caseWorkflowV3 } from './case-v2';
export { directiveWorkflow } from './directive';
