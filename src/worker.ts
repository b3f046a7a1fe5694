import fs from 'node:fs';
import path from 'node:path';

import { Client } from '@temporalio/client';
import { NativeConnection, Worker, type InjectedSinks, type WorkerOptions } from '@temporalio/worker';
import type { PayloadCodec } from '@temporalio/common';

import { taskWriteSinks } from './activities/task-writes';
import type { CaseActivities, RecordCaseInput } from './activities/types';
import type { Config } from './config';
import { createLogger, type Logger } from './log';
import { readModelBehindSignal } from './workflows/messages';
import type { ReadModelSinks } from './workflows/sinks';

export interface CreateWorkerOptions {
  connection: NativeConnection;
  config: Config;
  codec: PayloadCodec;
  activities: CaseActivities;
  /** Tests give each file its own task queue. */
  taskQueue?: string;
  /**
   * How the worker makes a v5 case's read-model write inside its workflow task
   * (src/activities/task-writes.ts): `npm start` batches them (src/activities/writer.ts); without
   * it, each goes through the activities' own `recordCase`, one at a time.
   */
  taskWrite?: (batch: RecordCaseInput, timeoutMs: number) => Promise<void>;
  log?: Logger;
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
 * The sinks for a replay worker (Worker.runReplayHistories), which never calls them: the SDK skips
 * every sink while replaying. Registered so that the calls a replayed case makes are not reported
 * as calls to a sink nobody registered. Never give these to a live worker: its v5 cases would lose
 * their read-model writes (createWorker registers the real ones).
 */
export const REPLAY_SINKS: InjectedSinks<ReadModelSinks> = {
  readModel: {
    write: {
      callDuringReplay: false,
      fn: () => {
        throw new Error('a replay worker made a read-model write');
      },
    },
  },
};

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
  // The worker's own client, on its connection, for the one thing it tells a case itself: that the
  // write of a task was not made.
  const client = new Client({
    connection: opts.connection,
    namespace: opts.config.TEMPORAL_NAMESPACE,
    dataConverter: { payloadCodecs: [opts.codec] },
  });
  const sinks = taskWriteSinks({
    write: opts.taskWrite ?? ((batch) => opts.activities.recordCase(batch)),
    report: (workflowId, runId, input) =>
      client.workflow.getHandle(workflowId, runId).signal(readModelBehindSignal, input),
    log: opts.log ?? createLogger('info'),
  });
  return Worker.create({
    connection: opts.connection,
    namespace: opts.config.TEMPORAL_NAMESPACE,
    taskQueue: opts.taskQueue ?? opts.config.TEMPORAL_TASK_QUEUE,
    ...WORKFLOW_BUNDLE,
    activities: opts.activities,
    sinks,
    dataConverter: { payloadCodecs: [opts.codec] },
    maxConcurrentActivityTaskExecutions: opts.config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: opts.config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    ...(opts.config.WORKER_MAX_CACHED_WORKFLOWS ? { maxCachedWorkflows: opts.config.WORKER_MAX_CACHED_WORKFLOWS } : {}),
    ...(opts.config.WORKER_NON_STICKY_POLL_RATIO
      ? { nonStickyToStickyPollRatio: opts.config.WORKER_NON_STICKY_POLL_RATIO }
      : {}),
    shutdownGraceTime: '20s',
    ...opts.overrides,
  });
}

if (require.main === module) {
  void import('./runtime').then(({ runMain }) => runMain({ worker: true, api: false }));
}
