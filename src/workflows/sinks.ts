import type { Sinks } from '@temporalio/workflow';

import type { RecordCaseInput } from '../activities/types';

/**
 * The read model written inside the workflow task (caseWorkflowV5): the case hands its write to the
 * worker through this sink, and the worker makes it before the task's completion goes to Temporal
 * (src/activities/task-writes.ts). `fence` is the workflow task's history length: a write the
 * worker could not make is reported back to the case with it (readModelBehindSignal), so the case
 * knows which write to make again. docs/ARCHITECTURE.md, "The read model written in the task".
 */
export interface ReadModelSinks extends Sinks {
  readModel: {
    write(batch: RecordCaseInput, fence: number): void;
  };
}
