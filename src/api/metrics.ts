import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The API's Prometheus metrics, in a registry of its own (one per app, so tests can build
 * many apps). Labels are route patterns, message names and outcomes: never a case number,
 * key id, name or any other value a caller supplied.
 */
export interface ApiMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  latency: Histogram<'method' | 'route' | 'status'>;
  workflowStarts: Counter<'outcome'>;
  signals: Counter<'signal' | 'outcome'>;
  updates: Counter<'update' | 'outcome'>;
  queries: Counter<'outcome'>;
  errors: Counter<'kind'>;
  labResults: Counter<'status'>;
  answeredWrites: Counter<'outcome'>;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): ApiMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'shaodian_api_' });
  return {
    registry,
    requests: new Counter({
      name: 'shaodian_http_requests_total',
      help: 'HTTP requests by route pattern and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'shaodian_http_request_duration_seconds',
      help: 'HTTP request latency by route pattern',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    workflowStarts: new Counter({
      name: 'shaodian_workflow_starts_total',
      help: 'Case workflow starts by outcome (started_or_existing, conflict, error)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    signals: new Counter({
      name: 'shaodian_workflow_signals_total',
      help: 'Signals sent to case workflows',
      labelNames: ['signal', 'outcome'],
      registers: [registry],
    }),
    updates: new Counter({
      name: 'shaodian_workflow_updates_total',
      help: 'Updates sent to case workflows',
      labelNames: ['update', 'outcome'],
      registers: [registry],
    }),
    queries: new Counter({
      name: 'shaodian_workflow_queries_total',
      help: 'State queries, answered by a worker or fallen back to the read model',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    errors: new Counter({
      name: 'shaodian_api_errors_total',
      help: 'Errors answered by the API, by kind',
      labelNames: ['kind'],
      registers: [registry],
    }),
    labResults: new Counter({
      name: 'shaodian_lab_results_total',
      help: 'Lab results received, by answer',
      labelNames: ['status'],
      registers: [registry],
    }),
    answeredWrites: new Counter({
      name: 'shaodian_answered_writes_total',
      help: "Read-model writes carried by a case's answer: written by the API, handed back to the case (the write failed), or owed (not even handed back; the case's next write carries it)",
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}
