/**
 * The drill's per-day figures: API calls per route (count, p50, p99, errors, queued), the
 * machine's and the drill process's CPU, and the worker's workflow-task latencies from the
 * SDK's Prometheus metrics (when the drill installed them). Labels are routes with ids
 * replaced, never case numbers.
 */
import fs from 'node:fs';
import os from 'node:os';

import { processStat, type ApiCall } from '../bench/lib';

export interface RouteDay {
  n: number;
  p50: number;
  p99: number;
  /** Answers that were not 2xx (409 races included) and calls that got no answer. */
  errors: number;
  /** 202 queued (a health check taken as a queued signal). */
  queued: number;
}

export interface DayStats {
  day: number;
  routes: Record<string, RouteDay>;
  cpu: {
    machinePct: number;
    processPct: number;
    /**
     * Of the machine, by process: temporal (the server), postgres, drill (this process: the API
     * and the actors, and the worker unless it runs apart), worker (when it runs in a process of
     * its own), other.
     */
    byProcess?: Record<string, number>;
  };
  /** Workflow-task latencies (ms) from the worker's metrics: waiting for a worker, and running. */
  worker?: { scheduleToStartP50: number; scheduleToStartP99: number; executionP50: number; executionP99: number };
}

export const quantile = (sorted: number[], q: number): number =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0;

/** The machine's CPU ticks (1/100 s) so far: busy (not idle, not waiting for I/O) and total. */
export function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** CPU ticks (user + system, 1/100 s) used so far by each group of processes (see DayStats.cpu). */
export function processTicks(named: ReadonlyMap<number, string> = new Map()): Map<string, number> | undefined {
  const out = new Map<string, number>();
  let dirs: string[];
  try {
    dirs = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const d of dirs) {
    const stat = processStat(d);
    if (!stat) continue; // gone meanwhile
    const { comm, ticks } = stat;
    const group =
      named.get(Number(d)) ??
      (Number(d) === process.pid
        ? 'drill'
        : comm.startsWith('temporal')
          ? 'temporal'
          : comm.startsWith('postgres')
            ? 'postgres'
            : 'other');
    out.set(group, (out.get(group) ?? 0) + ticks);
  }
  return out;
}

type Buckets = Map<number, number>;

/** Cumulative bucket counts of every histogram whose name contains `name`, summed over labels. */
export function histogramBuckets(text: string, name: string): Buckets {
  const out: Buckets = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.includes(name) || !line.includes('_bucket{')) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!le || !Number.isFinite(value)) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    out.set(bound, (out.get(bound) ?? 0) + value);
  }
  return out;
}

/** The q-quantile of what was observed between two scrapes (the bucket's upper bound). */
export function bucketQuantile(now: Buckets, before: Buckets | undefined, q: number): number {
  const bounds = [...now.keys()].sort((a, b) => a - b);
  const delta = bounds.map((b) => (now.get(b) ?? 0) - (before?.get(b) ?? 0));
  const total = delta[delta.length - 1] ?? 0;
  if (total <= 0) return 0;
  for (let i = 0; i < bounds.length; i++) {
    if (delta[i]! >= q * total) return Number.isFinite(bounds[i]!) ? bounds[i]! : (bounds[i - 1] ?? 0);
  }
  return 0;
}

export class DayRecorder {
  private calls: ApiCall[] = [];
  private day = 0;
  private ticks = machineTicks();
  private cpu = process.cpuUsage();
  private procs: Map<string, number> | undefined;
  private wall = Date.now();
  private histos: { s2s?: Buckets; exec?: Buckets } = {};
  readonly days: DayStats[] = [];

  /** `named`: processes counted apart from the rest, by pid (the drill's own worker). */
  constructor(
    private readonly metricsUrl?: string,
    private readonly named: ReadonlyMap<number, string> = new Map(),
  ) {
    this.procs = processTicks(named);
  }

  record(call: ApiCall): void {
    this.calls.push(call);
  }

  /** Closes the day: figures for the calls made since the last close. */
  async closeDay(): Promise<DayStats> {
    const calls = this.calls;
    this.calls = [];
    const byRoute = new Map<string, ApiCall[]>();
    for (const c of calls) {
      const k = `${c.method} ${c.route}`;
      const list = byRoute.get(k) ?? [];
      list.push(c);
      byRoute.set(k, list);
    }
    const routes: Record<string, RouteDay> = {};
    for (const [k, list] of [...byRoute].sort((a, b) => b[1].length - a[1].length)) {
      const ms = list.map((c) => c.ms).sort((a, b) => a - b);
      routes[k] = {
        n: list.length,
        p50: quantile(ms, 0.5),
        p99: quantile(ms, 0.99),
        errors: list.filter((c) => c.status < 200 || c.status >= 300).length,
        queued: list.filter((c) => c.outcome === 'queued').length,
      };
    }
    const ticks = machineTicks();
    const machinePct =
      ticks && this.ticks && ticks.total > this.ticks.total
        ? Math.round((100 * (ticks.busy - this.ticks.busy)) / (ticks.total - this.ticks.total))
        : 0;
    const cpu = process.cpuUsage();
    const wallUs = (Date.now() - this.wall) * 1000;
    const usedUs = cpu.user - this.cpu.user + (cpu.system - this.cpu.system);
    // Of the whole machine, like machinePct.
    const processPct = wallUs > 0 ? Math.round((100 * usedUs) / wallUs / os.cpus().length) : 0;
    const procs = processTicks(this.named);
    let byProcess: Record<string, number> | undefined;
    if (procs && this.procs && wallUs > 0) {
      byProcess = {};
      for (const g of ['temporal', 'postgres', 'drill', ...new Set(this.named.values()), 'other']) {
        // Ticks are 1/100 s; a process that ended meanwhile takes its ticks with it (never below 0).
        const used = Math.max(0, (procs.get(g) ?? 0) - (this.procs.get(g) ?? 0)) * 10_000;
        byProcess[g] = Math.round((100 * used) / wallUs / os.cpus().length);
      }
    }
    this.procs = procs;
    this.ticks = ticks;
    this.cpu = cpu;
    this.wall = Date.now();
    const stats: DayStats = {
      day: this.day++,
      routes,
      cpu: { machinePct, processPct, ...(byProcess ? { byProcess } : {}) },
    };
    const worker = await this.workerLatency();
    if (worker) stats.worker = worker;
    this.days.push(stats);
    return stats;
  }

  private async workerLatency(): Promise<DayStats['worker'] | undefined> {
    if (!this.metricsUrl) return undefined;
    let text: string;
    try {
      const res = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(2000) });
      text = await res.text();
    } catch {
      return undefined;
    }
    const s2s = histogramBuckets(text, 'workflow_task_schedule_to_start_latency');
    const exec = histogramBuckets(text, 'workflow_task_execution_latency');
    const before = this.histos;
    this.histos = { s2s, exec };
    if (!s2s.size && !exec.size) return undefined;
    return {
      scheduleToStartP50: bucketQuantile(s2s, before.s2s, 0.5),
      scheduleToStartP99: bucketQuantile(s2s, before.s2s, 0.99),
      executionP50: bucketQuantile(exec, before.exec, 0.5),
      executionP99: bucketQuantile(exec, before.exec, 0.99),
    };
  }
}

/** One line per day for the drill's log. */
export function formatDay(d: DayStats): string {
  const routes = Object.entries(d.routes)
    .map(
      ([k, r]) =>
        `${k} ${r.n} (p50 ${r.p50} ms, p99 ${r.p99} ms${r.errors ? `, ${r.errors} not 2xx` : ''}${r.queued ? `, ${r.queued} queued` : ''})`,
    )
    .join('; ');
  const w = d.worker
    ? `; workflow tasks: wait p50/p99 ${d.worker.scheduleToStartP50}/${d.worker.scheduleToStartP99} ms, run ${d.worker.executionP50}/${d.worker.executionP99} ms`
    : '';
  const by = d.cpu.byProcess
    ? ` (${Object.entries(d.cpu.byProcess)
        .map(([k, v]) => `${k} ${v}%`)
        .join(', ')})`
    : `, drill process ${d.cpu.processPct}%`;
  return `day ${d.day}: CPU machine ${d.cpu.machinePct}%${by}${w}; ${routes || 'no API calls'}`;
}
