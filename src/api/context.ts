import type { Config } from '../config';
import type { Db } from '../db';
import type { HotelService } from '../integrations/hotel';
import type { PolicyCache } from '../policies/store';
import type { Logger } from '../log';
import type { KeyResolver, RateLimiter } from './auth';
import type { DependencyMonitor } from './dependencies';
import type { ApiMetrics } from './metrics';
import type { CaseOps } from './temporal-ops';
import type { Client, Connection } from '@temporalio/client';

/** Everything a route needs, built once per app by createApp. */
export interface ApiContext {
  config: Config;
  db: Db;
  log: Logger;
  now: () => Date;
  temporal: { client: Client; connection: Connection };
  ops: CaseOps;
  /** Breakers for Temporal, the database and the worker, fed by a probe (GET /readyz shows them). */
  deps: DependencyMonitor;
  /** Hotels and rooms (inventory in our own database). */
  hotels: HotelService;
  /** Each district's current policy for new transfers (cached a few seconds; see src/policies/store.ts). */
  policies: PolicyCache;
  metrics: ApiMetrics;
  keys: KeyResolver;
  limiter: RateLimiter;
  hmacKey: Buffer;
  adminToken?: string;
}
