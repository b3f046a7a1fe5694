import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { PayloadCodec } from '@temporalio/common';

import type { CaseActivities } from './activities/types';
import type { Config } from './config';

export interface CreateWorkerOptions {
  connection: NativeConnection;
  config: Config;
  codec: PayloadCodec;
  activities: CaseActivities;
  /** Tests give each file its own task queue. */
  taskQueue?: string;
  overrides?: Partial<WorkerOptions>;
}

/** The case worker: workflows from src/workflows, activities built by the caller. */
export async function createWorker(opts: CreateWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.config.TEMPORAL_NAMESPACE,
    taskQueue: opts.taskQueue ?? opts.config.TEMPORAL_TASK_QUEUE,
    workflowsPath: require.resolve('./workflows'),
    activities: opts.activities,
    dataConverter: { payloadCodecs: [opts.codec] },
    maxConcurrentActivityTaskExecutions: opts.config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: opts.config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    ...(opts.config.WORKER_MAX_CACHED_WORKFLOWS ? { maxCachedWorkflows: opts.config.WORKER_MAX_CACHED_WORKFLOWS } : {}),
    shutdownGraceTime: '20s',
    ...opts.overrides,
  });
}

if (require.main === module) {
  void import('./runtime').then(({ runMain }) => runMain({ worker: true, api: false }));
}
