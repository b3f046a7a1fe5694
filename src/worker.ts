import fs from 'node:fs';
import path from 'node:path';

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

/**
 * How the workflow bundle is built; the replay tests build theirs the same way.
 *
 * The pure case core (src/domain: decide, model, rules, invariants, view, policy, schedule) is
 * preloaded: evaluated once per worker and shared by every cached case. Without this, the SDK's
 * reusable context evaluates each module again for each workflow, so every cached case held its
 * own copy of every function of the core, and V8 its own type feedback for each. These modules
 * keep no state at module scope (their few module-level Sets and arrays are read-only constants,
 * and the shared ones are frozen by the SDK), import nothing from @temporalio/workflow, and read
 * the clock only through their arguments, so sharing them changes no decision and no command.
 */
export const WORKFLOW_BUNDLE = {
  workflowsPath: require.resolve('./workflows'),
  bundlerOptions: {
    preloadModules: [
      require.resolve('./domain/case/decide'),
      require.resolve('./domain/case/view'),
      require.resolve('./domain/release'),
      require.resolve('./domain/types'),
    ],
  },
} satisfies Pick<WorkerOptions, 'workflowsPath' | 'bundlerOptions'>;

/**
 * Whether this install of the SDK has the switch for its workflow stack traces (the patch in
 * scripts/patch-deps.mjs, applied after every install). Without it the setting is ignored and
 * every cached case costs about twice the memory: the caller warns.
 */
export function stackTraceSwitchInstalled(): boolean {
  try {
    const file = path.join(path.dirname(require.resolve('@temporalio/worker')), 'workflow', 'vm-shared.js');
    return fs.readFileSync(file, 'utf8').includes('SHAODIAN_WORKFLOW_STACK_TRACES');
  } catch {
    return false;
  }
}

/** The case worker: workflows from src/workflows, activities built by the caller. */
export async function createWorker(opts: CreateWorkerOptions): Promise<Worker> {
  // Read by the workflow thread the SDK starts below (the patch in scripts/patch-deps.mjs).
  process.env.SHAODIAN_WORKFLOW_STACK_TRACES = opts.config.WORKER_WORKFLOW_STACK_TRACES ? 'on' : 'off';
  return Worker.create({
    connection: opts.connection,
    namespace: opts.config.TEMPORAL_NAMESPACE,
    taskQueue: opts.taskQueue ?? opts.config.TEMPORAL_TASK_QUEUE,
    ...WORKFLOW_BUNDLE,
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
