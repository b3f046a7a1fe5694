import path from 'node:path';
import { z } from 'zod';

import { defaultUserCacheDir } from './temporal/cli';
import { DECISION_CORE_TYPES } from './workflows/case-types';

/**
 * The one place that reads the environment. Every other module receives a `Config`.
 * Parsing fails fast and names the offending variable, so a typo in a deployment
 * manifest stops the process at start rather than at 3 a.m.
 */
const port = z.coerce.number().int().min(0).max(65535);
const optionalUrl = z.url().optional();
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  PORT: port.default(3000),
  API_HOST: z.string().min(1).default('0.0.0.0'),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  /** When set, use that cluster and start no dev server. */
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d+$/, 'must be host:port')
    .optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('shaodian'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('quarantine-cases'),
  TEMPORAL_CLI_PATH: z.string().min(1).optional(),
  TEMPORAL_DEV_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_DEV_HEADLESS: bool.default(false),
  /** Base64 AES-256 key for the payload codec; a dev key is generated under DATA_DIR when unset. */
  CODEC_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
    .optional(),
  CODEC_KEY_ID: z.string().min(1).max(32).default('k1'),
  /** Earlier codec keys still accepted for decoding during a key roll: `id:base64,id:base64`. */
  CODEC_OLD_KEYS: z
    .string()
    .regex(/^([\w-]+:[A-Za-z0-9+/=]+)(,[\w-]+:[A-Za-z0-9+/=]+)*$/, 'must be id:base64[,id:base64...]')
    .optional(),
  /**
   * Browser origins (the Temporal UI's) allowed to call /codec/decode with the codec cookie,
   * comma-separated; the UI of `npm run cluster` and of the dev server are the defaults.
   */
  CODEC_CORS_ORIGINS: z
    .string()
    .regex(/^(https?:\/\/[^,/\s]+)(,https?:\/\/[^,/\s]+)*$/, 'must be origins: http(s)://host[:port][,...]')
    .default('http://127.0.0.1:8080,http://localhost:8080,http://127.0.0.1:8233,http://localhost:8233'),
  /** A font with Chinese for the release certificate (a .ttf, .otf or .ttc); default WenQuanYi Micro Hei. */
  CERTIFICATE_FONT: z.string().min(1).optional(),
  DEFAULT_POLICY: z.string().min(1).default('standard'),
  TIME_ZONE: z.string().min(1).default('Asia/Shanghai'),
  DRILL_DAY_SECONDS: z.coerce.number().positive().default(10),
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().positive().optional(),
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().positive().default(200),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: z.coerce.number().int().positive().default(100),
  /**
   * The share of the worker's workflow-task polls spent on the shared queue, where the first task
   * of every new case waits (the rest poll the worker's own sticky queue, where the tasks of the
   * cases in its cache come). The SDK's `nonStickyToStickyPollRatio`; unset keeps its 0.2.
   */
  WORKER_NON_STICKY_POLL_RATIO: z.coerce.number().positive().max(1).optional(),
  /**
   * The SDK's per-promise stack traces, which answer the `__stack_trace` query (the Temporal UI's
   * "Stack Trace" tab). Off by default: they cost about half of a cached case's memory
   * (scripts/patch-deps.mjs). Turn on to see where a stuck workflow waits.
   */
  WORKER_WORKFLOW_STACK_TRACES: bool.default(false),
  /** Integrations: a URL selects the real HTTP client, unset selects the simulator. */
  LAB_URL: optionalUrl,
  LAB_KEY: z.string().optional(),
  COMMUNITY_URL: optionalUrl,
  COMMUNITY_KEY: z.string().optional(),
  TRANSPORT_URL: optionalUrl,
  TRANSPORT_KEY: z.string().optional(),
  NOTIFY_WEBHOOK_URL: optionalUrl,
  HTTP_TIMEOUT_MS: z.coerce.number().int().positive().default(5000),
  /** Simulators call back through the public API at this base URL (defaults to this API). */
  SIMULATOR_CALLBACK_URL: optionalUrl,
  SIM_LAB_DELAY_MS: z.coerce.number().int().min(0).default(2000),
  SIM_LAB_POSITIVE_RATE: z.coerce.number().min(0).max(1).default(0),
  SIM_TRANSPORT_DELAY_MS: z.coerce.number().int().min(0).default(3000),
  SIM_COMMUNITY_DELAY_MS: z.coerce.number().int().min(0).default(1000),
  /** Addresses containing this marker fail the single-occupancy inspection in the simulator. */
  SIM_COMMUNITY_FAIL_MARKER: z.string().default('shared'),
  /** Demo hotels on an empty database: auto = only on the embedded database. */
  SEED_DEMO: z.enum(['auto', 'always', 'never']).default('auto'),
  API_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(6000),
  API_BODY_LIMIT: z.string().default('2mb'),
  /**
   * Base64 secret (>= 32 bytes) keying the HMAC of transfer bodies kept in the workflow memo.
   * Every API process must share it; unset → derived from CODEC_KEY, else a dev key in DATA_DIR.
   */
  API_HMAC_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length >= 32, 'must be at least 32 bytes, base64-encoded')
    .optional(),
  /** How long GET /cases/{caseNo} waits for a worker to answer the state query before using the read model. */
  API_QUERY_TIMEOUT_MS: z.coerce.number().int().positive().default(2000),
  /** How long one call to Temporal (start, signal, describe) may take before the API answers 503/504. */
  API_TEMPORAL_TIMEOUT_MS: z.coerce.number().int().positive().default(5000),
  /** How long a command (extend, colour, address, cancel, ack, resolve) waits for its worker's answer before 504 "outcome unknown". */
  API_UPDATE_WAIT_MS: z.coerce.number().int().positive().default(5000),
  /**
   * The workflow type new cases start: caseWorkflowV6; caseWorkflowV5 (or older) while workers of
   * a build without v6 still poll the task queue (a rolling upgrade, docs/OPERATIONS.md).
   */
  CASE_WORKFLOW_TYPE: z.enum(DECISION_CORE_TYPES).default('caseWorkflowV6'),
  /**
   * The read model written by the answer (docs/ARCHITECTURE.md): health checks are sent with the
   * read-model row's version, and the API makes the write the case's answer carries. Set false
   * while workers of a build before it still poll the task queue (a rolling upgrade,
   * docs/OPERATIONS.md): those would take the version for part of the check.
   */
  API_ANSWER_WRITES: bool.default(true),
  /**
   * A sample's first lab result as the recordLabResult update (answered with its read-model
   * write). False while workers of a build without that update may run cases: a case that took
   * one cannot be replayed by them (docs/OPERATIONS.md). Needs API_ANSWER_WRITES.
   */
  API_LAB_ANSWERED: bool.default(true),
  /**
   * A health check goes with the caller's scope as `recordHealthCheckInScope`: the case judges the
   * jurisdiction itself and the API reads nothing first (caseWorkflowV5/V6; other cases reject the
   * name and get the API's check and `recordHealthCheck`). False while workers of a build without
   * that update may run cases: a case that took one cannot be replayed by them (docs/OPERATIONS.md).
   */
  API_SCOPED_CHECKS: bool.default(true),
  /** How long a health check waits for its worker's answer before it is queued instead (202, applied when a worker runs). */
  API_REPORT_WAIT_MS: z.coerce.number().int().positive().default(1500),
  /**
   * The longest a field report (health check, a sample's first lab result) waits for its answer
   * while the worker is behind but polling: it waits about as long as the worker's tasks wait
   * (src/api/commands.ts reportWaitMs), up to this; a backlog older than this queues it at once.
   * Never more than API_REQUEST_TIMEOUT_MS less API_TEMPORAL_TIMEOUT_MS: the queued copy must still
   * be sent within the request's time.
   */
  API_REPORT_MAX_WAIT_MS: z.coerce.number().int().positive().default(10000),
  /** How often the API probes Temporal, the database and the worker's task queue (the breakers behind /readyz). */
  API_PROBE_INTERVAL_MS: z.coerce.number().int().positive().default(1000),
  /** Workflow tasks waiting longer than this for a worker mark the worker down (commands 503, reports queued). */
  API_WORKER_STALL_MS: z.coerce.number().int().positive().default(5000),
  /**
   * A worker that beat this recently (src/worker-liveness.ts) is there, however long its tasks
   * wait: it is not marked down for work left waiting or an unanswered command, so commands are
   * still sent to it. Keep it under API_WORKER_STALL_MS: a killed worker's last beat must have
   * gone stale before its stalled queue is judged.
   */
  API_WORKER_LIVENESS_MS: z.coerce.number().int().positive().default(3000),
  /** How often a worker tells the API (through the database) that it is there. */
  WORKER_LIVENESS_BEAT_MS: z.coerce.number().int().positive().default(1000),
  /** The last resort for a request stuck on a dependency that hangs rather than fails: 503 (reads) or 504 (writes). */
  API_REQUEST_TIMEOUT_MS: z.coerce.number().int().positive().default(15000),
  /** On SIGTERM the API stops accepting and answers what it has in flight for at most this long. */
  API_SHUTDOWN_GRACE_MS: z.coerce.number().int().positive().default(20000),
  /** Postgres: statements longer than this are cancelled by the server. */
  DB_STATEMENT_TIMEOUT_MS: z.coerce.number().int().positive().default(10000),
  /** Postgres: a connection attempt gives up after this. */
  DB_CONNECT_TIMEOUT_MS: z.coerce.number().int().positive().default(3000),
  /** API keys are cached this long; a cached key keeps working while the database is down. */
  API_KEY_CACHE_SECONDS: z.coerce.number().int().min(0).default(30),
  /** Signals sent in parallel for one lab batch. */
  API_LAB_BATCH_CONCURRENCY: z.coerce.number().int().positive().max(256).default(32),
});

export type Env = z.infer<typeof envSchema>;

export interface Config extends Env {
  dataDir: string;
  /** Per-user cache for the Temporal CLI, shared by every clone (~/.cache/shaodian/bin). */
  cliCacheDir: string;
  /** The process environment as seen at start, for child processes (PATH, HOME, GOPATH...). */
  processEnv: Record<string, string | undefined>;
}

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(
      'Invalid configuration:\n' +
        issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n') +
        '\nSee README.md "Configuration" for every variable.',
    );
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset" so that `FOO= npm start` behaves like not setting FOO.
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => k in envSchema.shape && v !== undefined && v !== ''),
  );
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => ({ variable: String(i.path[0] ?? '?'), message: i.message })));
  }
  // The worker's beat (src/worker-liveness.ts): a killed worker's last beat must be stale before
  // its stalled queue is judged, and a live worker must beat more than once per liveness time.
  const d = parsed.data;
  const order: { variable: string; message: string }[] = [];
  if (d.API_WORKER_LIVENESS_MS >= d.API_WORKER_STALL_MS)
    order.push({
      variable: 'API_WORKER_LIVENESS_MS',
      message: `must be under API_WORKER_STALL_MS (${d.API_WORKER_STALL_MS})`,
    });
  if (d.WORKER_LIVENESS_BEAT_MS * 2 > d.API_WORKER_LIVENESS_MS)
    order.push({
      variable: 'WORKER_LIVENESS_BEAT_MS',
      message: `must be at most half of API_WORKER_LIVENESS_MS (${d.API_WORKER_LIVENESS_MS})`,
    });
  if (order.length) throw new ConfigError(order);
  return {
    ...parsed.data,
    dataDir: path.resolve(parsed.data.DATA_DIR),
    cliCacheDir: defaultUserCacheDir(env.XDG_CACHE_HOME),
    processEnv: { ...env },
  };
}

/** For entrypoints: parse or print the problem and exit non-zero. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}
