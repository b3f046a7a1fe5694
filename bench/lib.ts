/**
 * Small helpers shared by the bench and the drill: a bounded-concurrency runner that times
 * each call, percentiles, a JSON HTTP client, child processes with an IPC "ask" and waiting.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import http from 'node:http';
import net from 'node:net';

export interface Timed {
  /** Wall time of the whole run, seconds. */
  seconds: number;
  /** Per-call latency, ms, successful calls only. */
  latencies: number[];
  ok: number;
  errors: number;
  /** A few error messages (ids and statuses only), for the report. */
  errorSamples: string[];
}

/** Runs fn over items with at most `concurrency` in flight; times each call. */
export async function timedPool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<Timed> {
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      const t0 = performance.now();
      try {
        await fn(items[i]!, i);
        latencies.push(performance.now() - t0);
      } catch (err) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push((err as Error).message.slice(0, 300));
      }
    }
  });
  await Promise.all(workers);
  return { seconds: (performance.now() - started) / 1000, latencies, ok: latencies.length, errors, errorSamples };
}

/** Runs fn over items with at most `limit` in flight, without timing. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export interface Summary {
  n: number;
  ok: number;
  errors: number;
  seconds: number;
  /** Successful calls per second over the run's wall time. */
  throughput: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

export function summarize(t: Timed, units = t.ok): Summary {
  const sorted = [...t.latencies].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  return {
    n: t.ok + t.errors,
    ok: t.ok,
    errors: t.errors,
    seconds: round(t.seconds, 3),
    throughput: round(units / t.seconds, 1),
    p50: round(percentile(sorted, 50), 2),
    p95: round(percentile(sorted, 95), 2),
    p99: round(percentile(sorted, 99), 2),
    mean: round(mean, 2),
  };
}

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** p50, p95 and p99 of a set of latencies (ms), rounded to `digits`. */
export function latencyStats(xs: readonly number[], digits = 2): { n: number; p50: number; p95: number; p99: number } {
  const sorted = [...xs].sort((a, b) => a - b);
  const pick = (p: number) => round(percentile(sorted, p), digits);
  return { n: sorted.length, p50: pick(50), p95: pick(95), p99: pick(99) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` returns true or the deadline passes; returns whether it did. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    // Problem documents carry no PII (titles, slugs, case numbers); cut short anyway.
    super(`${what} → HTTP ${status} ${body.slice(0, 200)}`);
  }
}

/**
 * A JSON client for the public API with one bearer key, on node:http with keep-alive: lighter
 * than fetch (about 1 ms a request here), so the client's own cost does not count against us.
 */
/** One API call as the client saw it (for the drill's per-day figures). */
export interface ApiCall {
  method: string;
  /** The route with ids replaced, e.g. POST /api/v1/cases/{caseNo}/health-checks. */
  route: string;
  status: number;
  ms: number;
  /** The answer's `status` field when it had one (applied, queued). */
  outcome?: string;
  at: number;
}

/** `/api/v1/cases/QC…/health-checks` → `/api/v1/cases/{id}/health-checks`: ids never reach a label. */
export function routeOf(path: string): string {
  const parts = path.split('?')[0]!.split('/');
  for (let i = 1; i < parts.length; i++) {
    if (['cases', 'escalations', 'rooms', 'hotels'].includes(parts[i - 1]!) && parts[i]) parts[i] = '{id}';
  }
  return parts.join('/');
}

export class ApiClient {
  private readonly url: URL;
  private static readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  /** Every call's route, status and time, when set (the drill sets it). */
  static onCall: ((call: ApiCall) => void) | undefined;

  constructor(
    readonly baseUrl: string,
    private readonly key: string,
  ) {
    this.url = new URL(baseUrl);
  }

  get<T>(path: string): Promise<T> {
    return this.send<T>('GET', path);
  }

  post<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.send<T>('POST', path, body, headers);
  }

  /**
   * A reused keep-alive socket the server has just closed fails with ECONNRESET / "socket
   * hang up"; every call the bench and the drill make is idempotent, so it is sent again, up to
   * three times (on a saturated box the server's keep-alive timer closes many idle sockets of the
   * pool at once, and the second try could take another of them: the 2,000-person drill lost
   * three health checks so).
   */
  private async send<T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sendOnce<T>(method, path, body, headers);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt >= 4 || (code !== 'ECONNRESET' && !/socket hang up/.test((err as Error).message))) throw err;
      }
    }
  }

  private sendOnce<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const t0 = Date.now();
    const note = (status: number, text: string) => {
      const hook = ApiClient.onCall;
      if (!hook) return;
      const outcome = /"status":"(applied|queued)"/.exec(text)?.[1];
      hook({ method, route: routeOf(path), status, ms: Date.now() - t0, at: t0, ...(outcome ? { outcome } : {}) });
    };
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          path,
          method,
          agent: ApiClient.agent,
          timeout: 60_000,
          headers: {
            ...headers,
            authorization: `Bearer ${this.key}`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            note(status, text);
            if (status < 200 || status >= 300) reject(new HttpError(status, text, `${method} ${path.split('?')[0]}`));
            else {
              try {
                resolve((text ? JSON.parse(text) : {}) as T);
              } catch (err) {
                reject(err as Error);
              }
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path.split('?')[0]} timed out`)));
      req.on('error', (err) => {
        note(0, '');
        reject(err);
      });
      req.end(payload);
    });
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A TypeScript child process (via tsx) spoken to over IPC: `ask` sends a message and awaits the reply. */
export interface Child {
  proc: ChildProcess;
  ready: Promise<Record<string, unknown>>;
  ask<T = Record<string, unknown>>(type: string, payload?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  stop(timeoutMs?: number): Promise<void>;
}

export function forkTs(
  file: string,
  opts: {
    args?: string[];
    env?: Record<string, string | undefined>;
    logFile?: number;
    gc?: boolean;
    /** More flags for the child's Node, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
    nodeArgs?: string[];
  },
): Child {
  const proc = fork(file, opts.args ?? [], {
    execArgv: ['--import', 'tsx', ...(opts.gc ? ['--expose-gc'] : []), ...(opts.nodeArgs ?? [])],
    env: opts.env as NodeJS.ProcessEnv,
    stdio:
      opts.logFile === undefined
        ? ['ignore', 'inherit', 'inherit', 'ipc']
        : ['ignore', opts.logFile, opts.logFile, 'ipc'],
  });
  let seq = 0;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exited = false;
  const exitedP = new Promise<void>((resolve) =>
    proc.once('exit', (code) => {
      exited = true;
      for (const w of waiting.values()) w.reject(new Error(`${file} exited (${code})`));
      waiting.clear();
      resolve();
    }),
  );
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.on('message', (m: { type?: string; id?: number; error?: string } & Record<string, unknown>) => {
      if (m.type === 'ready') resolve(m);
      else if (m.type === 'failed') reject(new Error(`${file} failed to start: ${m.error}`));
      else if (m.id !== undefined) {
        const w = waiting.get(m.id);
        waiting.delete(m.id);
        if (m.error) w?.reject(new Error(m.error));
        else w?.resolve(m);
      }
    });
    void exitedP.then(() => reject(new Error(`${file} exited before it was ready`)));
  });
  return {
    proc,
    ready,
    ask<T>(type: string, payload: Record<string, unknown> = {}, timeoutMs = 60_000) {
      const id = ++seq;
      return new Promise<T>((resolve, reject) => {
        if (exited) return reject(new Error(`${file} has exited`));
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`${file}: no answer to ${type} in ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        proc.send({ type, id, ...payload });
      });
    },
    async stop(timeoutMs = 60_000) {
      if (exited) return;
      try {
        proc.send({ type: 'stop' });
      } catch {
        proc.kill('SIGTERM');
      }
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      await exitedP;
      clearTimeout(timer);
    },
  };
}

/**
 * Child side: a CPU profile of this process's main thread between two asks (`profile-start`,
 * `profile-stop` with `file`), so a profile covers exactly the part of a run that is measured
 * (BENCH_PROFILE_DIR). Open it in Chrome's DevTools or read it with any .cpuprofile tool.
 */
export function profileHandlers(): Record<string, (m: Record<string, unknown>) => Promise<Record<string, unknown>>> {
  let session: Session | undefined;
  return {
    'profile-start': async () => {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
      return {};
    },
    'profile-stop': async (m) => {
      if (!session) throw new Error('no profile running');
      const { profile } = await session.post('Profiler.stop');
      fs.writeFileSync(String(m.file), JSON.stringify(profile));
      session.disconnect();
      session = undefined;
      return { file: m.file };
    },
  };
}

/**
 * A process's command name and the CPU it has used (user + system, its own, not its children's),
 * in the kernel's clock ticks, from /proc/PID/stat; undefined where that cannot be read (gone, or
 * not Linux). The name may hold spaces and parentheses: the fields are read after its last ")".
 */
export function processStat(pid: number | string): { comm: string; ticks: number } | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(')');
  // After the name: state is field 0, utime 11, stime 12.
  const f = stat.slice(close + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  return Number.isFinite(ticks) ? { comm: stat.slice(stat.indexOf('(') + 1, close), ticks } : undefined;
}

/** Child side: answer `ask` messages. */
export function serveIpc(
  handlers: Record<string, (m: Record<string, unknown>) => Promise<Record<string, unknown>>>,
): void {
  process.on('message', (m: { type: string; id?: number } & Record<string, unknown>) => {
    const h = handlers[m.type];
    if (!h) return;
    h(m).then(
      (r) => process.send?.({ id: m.id, ...r }),
      (err: unknown) => process.send?.({ id: m.id, error: (err as Error).message }),
    );
  });
}

/** Memory of this process, after a full GC when --expose-gc is on. */
export function memoryNow(): { rss: number; heapUsed: number; heapTotal: number; external: number; gc: boolean } {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, gc: !!g };
}

export const MiB = 1024 * 1024;
