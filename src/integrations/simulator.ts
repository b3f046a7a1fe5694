import type { Logger } from '../log';
import { joinUrl } from './http';

/**
 * A simulator's API key: one key, or one per district (made when first needed), so that a
 * simulated street office or transport company acts only where a real one would.
 */
export type KeySource = string | ((district: string) => Promise<string>);

/** Where simulators call back: the public API, with the key a real system would hold. */
export interface CallbackTarget {
  baseUrl: string;
  keys: { lab: string; transport: KeySource; community: KeySource };
}

/** The key to call back with for a case in `district`. */
export async function keyFor(source: KeySource, district: string): Promise<string> {
  return typeof source === 'string' ? source : source(district);
}

/**
 * Simulator timers live in this process only: they are not durable, and a restart loses a
 * pending callback. That is acceptable for a simulator; a real system keeps its own queue,
 * and the workflow escalates a result or arrival that never comes.
 */
export class SimulatorScheduler {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  /** Runs `fn` after `ms`; a second call with the same key replaces nothing and returns false. */
  after(key: string, ms: number, fn: () => Promise<void>): boolean {
    if (this.closed || this.timers.has(key)) return false;
    const timer = setTimeout(() => {
      this.timers.delete(key);
      void fn();
    }, ms);
    this.timers.set(key, timer);
    return true;
  }

  cancel(key: string): boolean {
    const timer = this.timers.get(key);
    if (!timer) return false;
    clearTimeout(timer);
    this.timers.delete(key);
    return true;
  }

  get pending(): number {
    return this.timers.size;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}

export interface CallbackPosterOptions {
  target: CallbackTarget;
  scheduler: SimulatorScheduler;
  log: Logger;
  timeoutMs: number;
  /**
   * As a real lab or street office would: the API may be starting, or answering 503 while a
   * dependency is down, so the callback is tried again with backoff (capped at `maxBackoffMs`,
   * or the API's Retry-After when longer) for a few minutes before it is given up.
   */
  attempts?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** POSTs simulator results through the same public API a real lab, community or driver uses. */
export class CallbackPoster {
  private seq = 0;
  constructor(private readonly opts: CallbackPosterOptions) {}

  post(system: string, key: string, path: string, body: unknown): Promise<void> {
    return this.send(system, key, path, body, 1);
  }

  private async send(system: string, key: string, path: string, body: unknown, attempt: number): Promise<void> {
    const { target, log, timeoutMs } = this.opts;
    const attempts = this.opts.attempts ?? 12;
    let status = 0;
    let retryAfterMs = 0;
    try {
      const res = await fetch(joinUrl(target.baseUrl, path), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      retryAfterMs = 1000 * (Number(res.headers.get('retry-after')) || 0);
      await res.arrayBuffer();
      if (res.ok) {
        log.debug('simulator callback delivered', { system, status });
        return;
      }
    } catch {
      status = 0;
    }
    // 4xx other than rate limiting will not change on a retry: the API refused the callback.
    const retryable = status === 0 || status >= 500 || status === 429;
    if (!retryable || attempt >= attempts) {
      log.warn('simulator callback not delivered', { system, status, attempt });
      return;
    }
    const backoff = Math.min(this.opts.maxBackoffMs ?? 30_000, (this.opts.backoffMs ?? 500) * 2 ** (attempt - 1));
    const delay = Math.max(backoff, retryAfterMs);
    this.opts.scheduler.after(`retry:${++this.seq}`, delay, () => this.send(system, key, path, body, attempt + 1));
  }
}
