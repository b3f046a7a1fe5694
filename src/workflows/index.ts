/**
 * The workflow types this worker runs. New cases start caseWorkflowV6 (CASE_WORKFLOW_TYPE);
 * caseWorkflowV5, caseWorkflowV4, caseWorkflowV3, caseWorkflowV2 and caseWorkflow (v1) stay registered (their changes since only
 * behind `patched`) until every case started under them has ended (docs/OPERATIONS.md).
 */
export { caseWorkflow } from './case';
export { caseWorkflowV2, caseWorkflowV3, caseWorkflowV4, caseWorkflowV5, caseWorkflowV6 } from './case-v2';
export { directiveWorkflow } from './directive';
