import crypto from 'node:crypto';

import type { WorkflowHandle } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import type { Worker, WorkerOptions } from '@temporalio/worker';

import { createActivities } from '../../src/activities';
import { loadConfig, type Config } from '../../src/config';
import { schema } from '../../src/db';
import { drillPolicy, type Policy } from '../../src/domain/policy';
import type { Actor, TransferRequest } from '../../src/domain/types';
import { createIntegrations } from '../../src/integrations';
import { createHotelService } from '../../src/integrations/hotel';
import { createLogger } from '../../src/log';
import { createWorker } from '../../src/worker';
import { ApplicationFailure } from '@temporalio/common';

import type { CaseActivities } from '../../src/activities/types';
import { caseStartSearchAttributes } from '../../src/temporal/search-attributes';
import {
  caseWorkflow,
  caseWorkflowV2,
  caseWorkflowV3,
  caseWorkflowV4,
  caseWorkflowV5,
  caseWorkflowV6,
} from '../../src/workflows';
import { stateQuery, type CaseInput, type CaseState } from '../../src/workflows/messages';
import { createTestDatabase, type TestDatabase } from './db';
import { connectTest, uniqueQueue } from './temporal';

export const supervisor: Actor = { id: 'k-sup', role: 'supervisor', name: 'Test supervisor' };
export const nurse: Actor = { id: 'k-med', role: 'medical', name: 'Test nurse' };
export const lab: Actor = { id: 'k-lab', role: 'lab', name: 'Test lab' };
export const hotelStaff: Actor = { id: 'k-hotel', role: 'hotel', name: 'Test hotel' };
export const community: Actor = { id: 'k-com', role: 'community', name: 'Test community' };

/**
 * A short policy for workflow tests: every duration is data, so a whole stay takes seconds.
 * By default: a day of 1.5 s, a 2-day stay, samples on days 1 and 2 at the start of the
 * day, no health-check times (tests that need them set them), inspection at arrival.
 */
export function testPolicy(overrides: Partial<Policy> = {}): Policy {
  const dayMs = 1500;
  const base = drillPolicy(dayMs);
  return {
    ...base,
    name: 'test',
    stayDays: 2,
    checkTimes: [],
    sampling: { days: [1, 2], type: 'PCR', time: '00:00' },
    // Half a day: the day-2 sample is one day after day 1, give or take scheduling jitter.
    // No check times here, so no observation rule: these tests are about the other rules (the
    // rule itself: test/unit/case-decider.directive.test.ts and test/api/directives.test.ts).
    release: { ...base.release, minApartMs: dayMs / 2, afebrileCheckWithinMs: 0 },
    inspectionLeadMs: 2 * dayMs,
    arrivalDeadlineMs: 60_000,
    roomRetry: { initialMs: 200, maxMs: 500 },
    releaseBlockedEscalateAfterMs: 60_000,
    ...overrides,
  };
}

export const PERSON = {
  name: '张三丰',
  idNumber: '620102198001011234',
  phone: '13800138000',
  birthDate: '1980-01-01',
};
export const HOME = '兰州市西固区福利路 88 号 3 单元 502';

/** Activities a test makes refuse (permanently) until it clears them. */
export type Faults = Partial<Record<keyof CaseActivities, (input: never) => boolean>>;

export interface Harness {
  faults: Faults;
  /**
   * A case on the decision core: caseWorkflowV3 by default (the type most recorded histories were
   * made on, and which still drains; it decides as v4 does, with the patches v4 has always on), or
   * caseWorkflowV6 (as the API starts new cases), caseWorkflowV5, caseWorkflowV4 or caseWorkflowV2 when asked.
   */
  startV2(
    opts?: Partial<TransferRequest> & {
      policy?: Policy;
      options?: CaseInput['options'];
      workflowType?: 'caseWorkflowV2' | 'caseWorkflowV3' | 'caseWorkflowV4' | 'caseWorkflowV5' | 'caseWorkflowV6';
      /** Another worker's task queue (a test's own worker); the harness's by default. */
      taskQueue?: string;
    },
  ): Promise<WorkflowHandle<typeof caseWorkflowV3>>;
  db: TestDatabase;
  config: Config;
  taskQueue: string;
  client: Awaited<ReturnType<typeof connectTest>>['client'];
  connection: Awaited<ReturnType<typeof connectTest>>['connection'];
  /** The worker side's connection, for a test's own worker. */
  nativeConnection: Awaited<ReturnType<typeof connectTest>>['nativeConnection'];
  hotel: ReturnType<typeof createHotelService>;
  codec: Awaited<ReturnType<typeof connectTest>>['codec'];
  start(
    opts?: Partial<TransferRequest> & { policy?: Policy; options?: CaseInput['options'] },
  ): Promise<WorkflowHandle<typeof caseWorkflow>>;
  state(h: WorkflowHandle): Promise<CaseState>;
  waitFor(h: WorkflowHandle, pred: (s: CaseState) => boolean, what: string, timeoutMs?: number): Promise<CaseState>;
  room(roomId: string): Promise<typeof schema.rooms.$inferSelect>;
  addHotel(rooms: number, id?: string): Promise<string>;
  /**
   * Stops this harness's worker (it finishes what it holds) and starts another on the same task
   * queue, with this build's workflow code or the one given: a deploy of a new worker build.
   */
  swapWorker(workflows?: WorkflowCode): Promise<void>;
  close(): Promise<void>;
}

/** Another build's workflow code, as createWorker's WORKFLOW_BUNDLE describes this one's. */
export type WorkflowCode = Pick<WorkerOptions, 'workflowsPath' | 'bundlerOptions'>;

export async function createHarness(
  label: string,
  env: Record<string, string> = {},
  opts: { workflows?: WorkflowCode } = {},
): Promise<Harness> {
  const db = await createTestDatabase(label);
  const t = await connectTest();
  const taskQueue = uniqueQueue(label);
  const config = loadConfig({
    TEMPORAL_TASK_QUEUE: taskQueue,
    LOG_LEVEL: 'warn',
    DATA_DIR: '/tmp/shaodian-unused',
    ...env,
  });
  const log = createLogger('warn');
  const integrations = createIntegrations(config, { db: db.db, log });
  const real = createActivities({ db: db.db, integrations, log });
  const faults: Faults = {};
  // Each activity can be made to refuse, as a remote system that answers 4xx would.
  const activities = Object.fromEntries(
    Object.entries(real).map(([name, fn]) => [
      name,
      async (input: never) => {
        const fault = faults[name as keyof CaseActivities];
        if (fault?.(input))
          throw ApplicationFailure.nonRetryable(`${name} refused (test fault)`, 'IntegrationRejected');
        return (fn as (i: never) => Promise<unknown>)(input);
      },
    ]),
  ) as unknown as CaseActivities;
  const startWorker = async (workflows?: WorkflowCode) => {
    const worker: Worker = await createWorker({
      connection: t.nativeConnection,
      config,
      codec: t.codec,
      activities,
      taskQueue,
      ...(workflows ? { overrides: workflows } : {}),
    });
    return { worker, running: worker.run() };
  };
  let current = await startWorker(opts.workflows);
  const hotel = createHotelService(db.db);

  const requestFor = (req: Partial<TransferRequest>): TransferRequest => {
    const caseNo = `T${crypto.randomBytes(5).toString('hex').toUpperCase()}`;
    return {
      requestId: `req-${caseNo}`,
      caseNo,
      district: 'Xigu',
      street: 'Fuli',
      requestedBy: community,
      requestedAt: new Date().toISOString(),
      person: PERSON,
      homeAddress: HOME,
      pickupAddress: '兰州市西固区 pickup 1 号',
      transport: 'vehicle',
      reason: 'close_contact',
      ...req,
    };
  };
  const harness: Harness = {
    faults,
    async startV2(opts = {}) {
      const { policy = testPolicy(), options, workflowType = 'caseWorkflowV3', taskQueue: queue, ...req } = opts;
      const request = requestFor(req);
      const type = { caseWorkflowV2, caseWorkflowV3, caseWorkflowV4, caseWorkflowV5, caseWorkflowV6 }[workflowType];
      return t.client.workflow.start(type, {
        taskQueue: queue ?? taskQueue,
        workflowId: `case-${request.caseNo}`,
        args: [{ request, policy, options }],
        // As the API starts a case (v3 skips the upsert its first task would make).
        typedSearchAttributes: caseStartSearchAttributes({ request, policy }),
      });
    },
    db,
    config,
    taskQueue,
    client: t.client,
    connection: t.connection,
    nativeConnection: t.nativeConnection,
    codec: t.codec,
    hotel,
    async start(opts = {}) {
      const { policy = testPolicy(), options, ...req } = opts;
      const request = requestFor(req);
      return t.client.workflow.start(caseWorkflow, {
        taskQueue,
        workflowId: `case-${request.caseNo}`,
        args: [{ request, policy, options }],
      });
    },
    state: (h) => h.query(stateQuery),
    async waitFor(h, pred, what, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: CaseState | undefined;
      while (Date.now() < deadline) {
        last = await h.query(stateQuery);
        if (pred(last)) return last;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(
        `timed out waiting for ${what}; last phase ${last?.phase}, state ${JSON.stringify(last).slice(0, 2000)}`,
      );
    },
    async room(roomId) {
      const rows = await db.db.select().from(schema.rooms).where(eq(schema.rooms.id, roomId));
      if (!rows[0]) throw new Error(`no room ${roomId}`);
      return rows[0];
    },
    async addHotel(rooms, id = `H${crypto.randomBytes(3).toString('hex')}`) {
      await hotel.addHotel({
        id,
        name: `Hotel ${id}`,
        district: 'Xigu',
        rooms: Array.from({ length: rooms }, (_, i) => ({ roomNo: String(101 + i), floor: 1, accessible: i === 0 })),
      });
      return id;
    },
    async swapWorker(workflows) {
      current.worker.shutdown();
      await current.running;
      current = await startWorker(workflows);
    },
    async close() {
      current.worker.shutdown();
      await current.running;
      await t.close();
      await db.drop();
    },
  };
  return harness;
}
