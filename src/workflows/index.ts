/**
 * The workflow types this worker runs. New cases start caseWorkflowV2; caseWorkflow (v1) stays
 * registered, unchanged, until every case started under it has ended (docs/OPERATIONS.md).
 */
export { caseWorkflow } from './case';
export { caseWorkflowV2 } from './case-v2';
export { directiveWorkflow } from './directive';
