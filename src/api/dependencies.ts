import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { within } from '../deadline';

import type { Logger } from '../log';
import { HttpProblem } from './problem';

/** What the API needs to answer: the cluster, the read model, and a worker to run the cases. */
export type DependencyName = 'temporal' | 'database' | 'worker';

export interface DependencyState {
  up: boolean;
  /** When it last changed (ISO). */
  since: string;
  /** Why it is down: the probe's or the failed call's words, never a URL or a credential. */
  reason?: string;
  /** How long the last probe took. */
  ms?: number;
  /** The breaker is open: calls that need it are answered 503 at once (a failed probe alone may not open it). */
  breakerOpen: boolean;
}

/**
 * One dependency's breaker. Open means "known down": calls that need it are answered 503 at
 * once instead of each waiting out its own timeout. It opens on a failed probe or on a call
 * that failed for want of it, and closes only on a successful probe.
 */
export class Breaker {
  private openedAt: number | undefined;
  private changedAt: number;
  private why: string | undefined;
  lastProbeMs: number | undefined;
  /** The last probe failed, though not yet enough to open the breaker: readiness says so at once. */
  probeError: string | undefined;

  constructor(
    readonly name: DependencyName,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.changedAt = now();
  }

  get isOpen(): boolean {
    return this.openedAt !== undefined;
  }

  /** When it opened (ms), while open. */
  get openSince(): number | undefined {
    return this.openedAt;
  }

  trip(reason: string): void {
    const clean = scrub(reason);
    if (this.openedAt === undefined) {
      this.openedAt = this.changedAt = this.now();
      this.log.warn('dependency down: answering 503 at once for calls that need it', {
        dependency: this.name,
        reason: clean,
      });
    }
    this.why = clean;
  }

  reset(): void {
    if (this.openedAt === undefined) return;
    this.log.info('dependency back', { dependency: this.name, downForMs: this.now() - this.openedAt });
    this.openedAt = undefined;
    this.why = undefined;
    this.changedAt = this.now();
  }

  state(): DependencyState {
    const reason = this.why ?? this.probeError;
    return {
      up: !this.isOpen && !this.probeError,
      breakerOpen: this.isOpen,
      since: new Date(this.changedAt).toISOString(),
      ...(reason ? { reason } : {}),
      ...(this.lastProbeMs !== undefined ? { ms: this.lastProbeMs } : {}),
    };
  }
}

/** Connection strings can carry credentials: the first line only, and no URLs. */
export function scrub(message: string): string {
  return message
    .split('\n')[0]!
    .replace(/\w+:\/\/\S+/g, '<url>')
    .slice(0, 300);
}

const WHAT: Record<DependencyName, string> = {
  temporal: 'Temporal is unreachable',
  database: 'The database is unavailable',
  worker: 'No worker is running the cases',
};

/** A 503 that names the dependency; the client retries after Retry-After. */
export function dependencyDown(name: DependencyName, detail?: string, retryAfterS = 5): HttpProblem {
  return new HttpProblem(
    503,
    detail ?? `${WHAT[name]}; retry later`,
    { slug: `${name}-unavailable`, dependency: name },
    { 'Retry-After': String(retryAfterS) },
  );
}

export interface DependencyMonitorOptions {
  connection: Connection;
  namespace: string;
  taskQueue: string;
  /** Pings the database without the breaker's gate (the probe must reach it while open). */
  pingDatabase: () => Promise<void>;
  intervalMs: number;
  /** Workflow tasks waiting longer than this on the task queue mean no worker is taking them. */
  workerStallMs: number;
  /**
   * How long ago a worker of the task queue last said it was there (src/worker-liveness.ts), or
   * undefined when none ever has. Read through the database's gate: a database known down gives
   * no word, and the task queue's figures judge alone.
   */
  workerBeatAgeMs?: () => Promise<number | undefined>;
  /** A beat at most this old says a worker is there (API_WORKER_LIVENESS_MS). */
  workerLivenessMs?: number;
  log: Logger;
  now?: () => number;
}

export interface DependencyMonitor {
  readonly temporal: Breaker;
  readonly database: Breaker;
  readonly worker: Breaker;
  /** Throws the 503 at once when the dependency is known down. */
  require(name: DependencyName): void;
  /** Whether it is known down now (and, while it is, probes again when a probe is due). */
  isDown(name: DependencyName): boolean;
  /** A call failed in a way that suggests the dependency is down: probe now rather than at the next tick. */
  /**
   * `workflowId`: for the worker, the case whose update went unanswered. While the worker is
   * marked down on that account (not for work left waiting), each probe has the last few such
   * cases asked a query in the background: an answer proves a worker runs them, and it is back.
   */
  suspect(name: DependencyName, reason: string, workflowId?: string): void;
  /**
   * How long workflow tasks have been waiting on the worker's task queue at the last probe (0
   * when none wait): a worker that is there but behind. Reports that would wait longer than the
   * API waits for an answer go straight to the queue instead of being sent twice.
   */
  workerBehindMs(): number;
  /**
   * Whether a worker is known to be there, however far behind: it polled its task queue before
   * each of the last two probes, or it beat within API_WORKER_LIVENESS_MS.
   */
  workerPolling(): boolean;
  /** Probes everything now (readiness) and returns the states. */
  probe(): Promise<Record<DependencyName, DependencyState>>;
  snapshot(): Record<DependencyName, DependencyState>;
  start(): void;
  /** Stops probing; resolves once a probe under way has ended (close the connection after this). */
  stop(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 1000;
/** The database's ping may be slow on a loaded machine without the database being down. */
const DB_PROBE_TIMEOUT_MS = 2000;

/**
 * A refused or reset connection is a dependency that is down; a slow answer may be a busy
 * machine. A slow answer opens the breaker only when the next probe is slow too, so a loaded
 * host does not turn every call into a 503.
 */
const definite = (message: string) =>
  /ECONNREFUSED|ECONNRESET|CONNECTION_CLOSED|UNAVAILABLE|EHOSTUNREACH|ENOTFOUND/i.test(message);

export { within };

const msOf = (d: { seconds?: unknown; nanos?: unknown } | null | undefined): number =>
  d ? Number(d.seconds ?? 0) * 1000 + Math.floor(Number(d.nanos ?? 0) / 1e6) : 0;

/** How long the unanswered cases' queries may take (a live worker answers from its cache). */
const CASE_QUERY_TIMEOUT_MS = 1000;

/**
 * Probes Temporal, the database and the worker every `intervalMs` and keeps one breaker each.
 *
 * The worker has no address to ping. It counts as down when workflow tasks wait on its task
 * queue longer than `workerStallMs` and no worker kept polling over the last probes (nobody
 * takes them; a worker that polls but is behind is slow, not gone), or when an update found no worker to
 * answer it (the command routes trip it); it counts as back when a worker has polled since it
 * was marked down and nothing is left waiting that long.
 */
export function createDependencyMonitor(opts: DependencyMonitorOptions): DependencyMonitor {
  const now = opts.now ?? Date.now;
  const log = opts.log.child({ component: 'dependencies' });
  const temporalB = new Breaker('temporal', now, log);
  const databaseB = new Breaker('database', now, log);
  const workerB = new Breaker('worker', now, log);
  const breakers = { temporal: temporalB, database: databaseB, worker: workerB };
  let timer: NodeJS.Timeout | undefined;
  let lastProbeAt = 0;
  // The worker's polls are timed by the cluster's clock, so "a poll since it went down" is judged
  // against the newest poll seen before it went down (same clock), not against ours.
  let lastSeenPoll = 0;
  let lastJudgedAt = -Infinity;
  let pollMark = 0;
  let behindMs = 0;
  let polledLately = false;
  let pollStreak = 0;
  /** A worker beat lately (true), none did (false), or no word (no beats, the read failed). */
  let workerAlive: boolean | undefined;
  /** The last beat age read, and when (our clock): a read still under way is not doubled. */
  let beatRead: { ageMs: number | undefined; at: number } | undefined;
  let reading: Promise<void> | undefined;
  /** Down because work waited: back when the work is taken (only a worker takes it). */
  let stalled = false;
  /**
   * Down because these cases' updates went unanswered (the last few): back when one of them
   * answers a query. Asked in the background, never holding a probe, one round at a time; the
   * query is the SDK's built-in metadata query, which every workflow of every version answers
   * (the stack-trace query does not while the worker's stack traces are off).
   */
  const unansweredCases: string[] = [];
  let asking = false;
  /** The worker is back: the breaker closes, and what marked it down is forgotten. */
  const workerBack = () => {
    workerB.reset();
    stalled = false;
    unansweredCases.length = 0;
  };
  const askUnansweredCases = (): void => {
    if (asking || !unansweredCases.length) return;
    asking = true;
    const asked = [...unansweredCases];
    void Promise.all(
      asked.map(async (workflowId) => {
        try {
          await opts.connection.withDeadline(Date.now() + CASE_QUERY_TIMEOUT_MS, () =>
            opts.connection.workflowService.queryWorkflow({
              namespace: opts.namespace,
              execution: { workflowId },
              query: { queryType: '__temporal_workflow_metadata' },
            }),
          );
          return true;
        } catch {
          return false;
        }
      }),
    )
      .then((answers) => {
        // Marked down because a case did not answer, and one does now: a worker runs them. (A
        // worker whose poll on the shared queue is parked, its cases in its cache, polls nothing
        // new for up to a minute; this is how it is seen to be there.)
        if (answers.some(Boolean) && workerB.isOpen && !stalled) workerBack();
      })
      .finally(() => {
        asking = false;
      });
  };

  const tripWorker = (reason: string) => {
    if (!workerB.isOpen) pollMark = lastSeenPoll;
    workerB.trip(reason);
  };
  let running: Promise<Record<DependencyName, DependencyState>> | undefined;

  const softFailures = { temporal: 0, database: 0 };
  function failed(b: Breaker, name: 'temporal' | 'database', err: unknown, surelyDown = false) {
    const message = err instanceof Error ? err.message : String(err);
    b.probeError = scrub(message);
    if (surelyDown || definite(message) || ++softFailures[name] >= 2) b.trip(message);
  }
  /**
   * The SDK retries a refused connection until the deadline, so a cluster that is gone looks
   * like a slow one; the gRPC channel knows better (TRANSIENT_FAILURE: it cannot connect).
   */
  const channelCannotConnect = (): boolean => {
    try {
      const client = (
        opts.connection as unknown as { client?: { getChannel(): { getConnectivityState(c: boolean): number } } }
      ).client;
      return client?.getChannel().getConnectivityState(false) === 3;
    } catch {
      return false;
    }
  };

  async function probeTemporal(): Promise<void> {
    const t0 = now();
    try {
      // The call itself is awaited, not raced: the SDK retries UNAVAILABLE on a timer until the
      // deadline, and a connection closed under a pending retry throws from that timer. The
      // deadline bounds it (plus one backoff step).
      await opts.connection.withDeadline(Date.now() + PROBE_TIMEOUT_MS, () =>
        opts.connection.workflowService.describeNamespace({ namespace: opts.namespace }),
      );
      temporalB.reset();
      temporalB.probeError = undefined;
      softFailures.temporal = 0;
    } catch (err) {
      failed(temporalB, 'temporal', err, channelCannotConnect());
    } finally {
      temporalB.lastProbeMs = now() - t0;
    }
  }

  async function probeDatabase(): Promise<void> {
    const t0 = now();
    try {
      await within(DB_PROBE_TIMEOUT_MS, 'database', opts.pingDatabase);
      databaseB.reset();
      databaseB.probeError = undefined;
      softFailures.database = 0;
    } catch (err) {
      failed(databaseB, 'database', err);
    } finally {
      databaseB.lastProbeMs = now() - t0;
    }
  }

  /**
   * The workers' own word, read beside the other probes; a probe waits at most a probe's time for
   * it. One read at a time: while one is under way (a busy pool), the last age read counts, aged
   * by the time since; a read that failed is no word.
   */
  async function readLiveness(): Promise<void> {
    const read = opts.workerBeatAgeMs;
    if (!read) return;
    reading ??= (async () => {
      try {
        beatRead = { ageMs: await read(), at: now() };
      } catch {
        beatRead = undefined;
      } finally {
        reading = undefined;
      }
    })();
    const under = reading;
    await within(PROBE_TIMEOUT_MS, 'worker liveness', () => under).catch(() => undefined);
    const age = beatRead?.ageMs === undefined ? undefined : beatRead.ageMs + (now() - beatRead.at);
    workerAlive = age === undefined ? undefined : age <= (opts.workerLivenessMs ?? 3000);
  }

  async function probeWorker(): Promise<void> {
    if (temporalB.isOpen) {
      // Nothing can be said about the worker while the cluster is away; it is not the worker's fault.
      return;
    }
    const t0 = now();
    try {
      const r = await opts.connection.withDeadline(Date.now() + PROBE_TIMEOUT_MS, () =>
        opts.connection.workflowService.describeTaskQueue({
          namespace: opts.namespace,
          taskQueue: { name: opts.taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
          reportStats: true,
        }),
      );
      const lastPoll = Math.max(0, ...(r.pollers ?? []).map((p) => msOf(p.lastAccessTime)));
      const backlogAge = msOf(r.stats?.approximateBacklogAge);
      const backlog = Number(r.stats?.approximateBacklogCount ?? 0);
      behindMs = backlog > 0 ? backlogAge : 0;
      // A worker that polled since the last probe is there, however far behind (a wave, a busy
      // host): its commands are sent and wait their turn. Only work waiting while nobody polls
      // says the worker is gone.
      // Two probes in a row: a worker that stopped leaves one last poll behind it. A probe that
      // comes hard on the heels of another (one asked for by a timed-out call) proves nothing
      // either way about polls: it leaves the streak as it is.
      // ("Hard on the heels" counts from the last probe that judged, so a stream of quick probes,
      // one per timed-out call, cannot keep a stopped worker's streak alive.)
      const t = now();
      if (lastSeenPoll > 0 && lastPoll > lastSeenPoll) {
        pollStreak++;
        lastJudgedAt = t;
      } else if (t - lastJudgedAt >= opts.intervalMs / 2) {
        pollStreak = 0;
        lastJudgedAt = t;
      }
      // Or the worker's own word, beaten within the liveness time: a worker running flat out polls
      // its shared queue too seldom for two probes in a row to see it, and is not gone.
      const polling = pollStreak >= 2 || workerAlive === true;
      polledLately = polling;
      if (backlog > 0 && backlogAge > opts.workerStallMs && !polling) {
        tripWorker(
          lastPoll === 0
            ? `no worker has polled the task queue; work has waited ${Math.round(backlogAge / 1000)} s`
            : `workflow tasks have waited ${Math.round(backlogAge / 1000)} s for a worker`,
        );
        stalled = true;
      } else if (workerB.isOpen && (stalled || lastPoll > pollMark || workerAlive === true)) {
        // The waiting work was taken, a worker has polled since no worker answered, or one says
        // it is there.
        workerBack();
      } else if (workerB.isOpen && !stalled) askUnansweredCases();
      lastSeenPoll = Math.max(lastSeenPoll, lastPoll);
    } catch (err) {
      // The cluster answered the namespace but not this (a saturated server): nothing new from
      // the task queue; the worker's own word still counts.
      log.debug('worker probe failed', { err });
      polledLately = pollStreak >= 2 || workerAlive === true;
      if (workerAlive === true && workerB.isOpen) workerBack();
    } finally {
      workerB.lastProbeMs = now() - t0;
    }
  }

  const snapshot = () => ({
    temporal: temporalB.state(),
    database: databaseB.state(),
    worker: workerB.state(),
  });

  function probe(): Promise<Record<DependencyName, DependencyState>> {
    running ??= (async () => {
      lastProbeAt = now();
      try {
        await Promise.all([probeTemporal(), probeDatabase(), readLiveness()]);
        await probeWorker();
        return snapshot();
      } finally {
        lastProbeAt = now();
        running = undefined;
      }
    })();
    return running;
  }

  function isDown(name: DependencyName): boolean {
    const b = breakers[name];
    // Without the background loop (tests, or between ticks) an open breaker probes on use.
    if (b.isOpen && !running && now() - lastProbeAt >= opts.intervalMs) void probe();
    return b.isOpen;
  }

  return {
    ...breakers,
    isDown,
    require(name) {
      const b = breakers[name];
      if (isDown(name))
        throw dependencyDown(name, `${WHAT[name]} (${b.state().reason ?? 'probe failed'}); retry later`);
    },
    suspect(name, reason, workflowId) {
      // The worker is judged by its task queue, the others by a probe: a slow call alone proves nothing.
      if (name === 'worker') {
        tripWorker(reason);
        if (workflowId && !unansweredCases.includes(workflowId)) {
          unansweredCases.push(workflowId);
          if (unansweredCases.length > 4) unansweredCases.shift();
        }
      }
      void probe();
    },
    workerBehindMs: () => behindMs,
    workerPolling: () => polledLately,
    probe,
    snapshot,
    start() {
      if (timer) return;
      void probe();
      timer = setInterval(() => void probe(), opts.intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}
