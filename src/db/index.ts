import fs from 'node:fs';
import path from 'node:path';

import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';

import { pidAlive } from '../process-alive';
import * as schema from './schema';

export { schema };
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** A short description without credentials, for logs and the start banner. */
  where: string;
  /** A round trip that never passes the gate: the probe must reach a database the gate holds shut. */
  ping(): Promise<void>;
  /**
   * Every query first calls `check`, which may throw (the API's breaker: "known down, answer now").
   * Postgres only; the embedded database is in-process and has no outage of its own.
   */
  setGate(check: (() => void) | undefined): void;
  close(): Promise<void>;
}

export const MIGRATIONS_FOLDER = path.resolve(__dirname, '..', '..', 'drizzle');

export interface DatabaseOptions {
  databaseUrl?: string;
  dataDir: string;
  /** postgres.js pool size */
  max?: number;
  migrate?: boolean;
  /** Postgres: the server cancels a statement after this (a lock wait cannot hold a request for ever). */
  statementTimeoutMs?: number;
  /** Postgres: a connection attempt gives up after this. */
  connectTimeoutMs?: number;
}

/**
 * DATABASE_URL → postgres.js against that server; unset → PGlite (embedded Postgres)
 * persisted under DATA_DIR/pglite. Migrations in drizzle/ are applied by drizzle's
 * migrator in both cases, under an advisory lock so that many workers can start at once.
 */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const database = opts.databaseUrl ? await openPostgres(opts.databaseUrl, opts) : await openPglite(opts.dataDir);
  if (opts.migrate !== false) {
    try {
      await database.migrate();
    } catch (err) {
      await database.close();
      throw err;
    }
  }
  return database;
}

type Opened = Database & { migrate(): Promise<void> };

async function openPostgres(url: string, opts: DatabaseOptions): Promise<Opened> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  const client = postgres(url, {
    max: opts.max ?? 20,
    onnotice: () => undefined,
    connect_timeout: Math.max(1, Math.ceil((opts.connectTimeoutMs ?? 10_000) / 1000)),
    ...(opts.statementTimeoutMs ? { connection: { statement_timeout: opts.statementTimeoutMs } } : {}),
  });
  let gate: (() => void) | undefined;
  // drizzle runs every statement through `unsafe` (and transactions through `begin`): the gate
  // stands in front of both, so a breaker that knows the database is down answers at once.
  const gated = new Proxy(client, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if ((prop === 'unsafe' || prop === 'begin') && typeof v === 'function') {
        return (...args: unknown[]) => {
          gate?.();
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return v;
    },
  });
  const db = drizzle(gated, { schema });
  const u = new URL(url);
  return {
    db: db as unknown as Db,
    kind: 'postgres',
    where: `postgres://${u.host}${u.pathname}`,
    async ping() {
      await client`select 1`;
    },
    setGate(check) {
      gate = check;
    },
    async close() {
      await client.end({ timeout: 5 });
    },
    async migrate() {
      // A dedicated connection holds the advisory lock for the whole migration run.
      const lockClient = postgres(url, { max: 1, onnotice: () => undefined });
      try {
        await lockClient`select pg_advisory_lock(727274)`;
        await migrate(drizzle(lockClient), { migrationsFolder: MIGRATIONS_FOLDER });
        await lockClient`select pg_advisory_unlock(727274)`;
      } finally {
        await lockClient.end({ timeout: 5 });
      }
    },
  };
}

async function openPglite(dataDir: string): Promise<Opened> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  const dir = path.join(dataDir, 'pglite');
  fs.mkdirSync(dir, { recursive: true });
  const releaseLock = lockPglite(dir);
  let client: Awaited<ReturnType<typeof PGlite.create>>;
  try {
    client = await PGlite.create(dir);
  } catch (err) {
    releaseLock();
    throw err;
  }
  const db = drizzle(client, { schema });
  return {
    db: db as unknown as Db,
    kind: 'pglite',
    where: `pglite:${dir}`,
    async ping() {
      await client.query('select 1');
    },
    setGate() {
      // in-process: no outage to guard against
    },
    async close() {
      await client.close();
      releaseLock();
    },
    async migrate() {
      await migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
    },
  };
}

/**
 * PGlite has exactly one owner: a second process opening the same directory would corrupt it.
 * A lock file with our pid refuses a second opener while the first lives (a stale lock left
 * by a killed process is taken over).
 */
function lockPglite(dir: string): () => void {
  const lock = path.join(dir, '..', 'pglite.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(lock, 'utf8') === String(process.pid)) fs.rmSync(lock);
        } catch {
          // already gone
        }
      };
    } catch {
      const holder = Number(fs.readFileSync(lock, 'utf8'));
      if (holder && holder !== process.pid && pidAlive(holder)) {
        throw new Error(
          `The embedded database ${dir} is in use by process ${holder}. Only one process may own it: ` +
            'stop that process, go through its API (npm run keys / npm run seed do), or set DATABASE_URL.',
        );
      }
      fs.rmSync(lock, { force: true }); // stale: its owner is gone
    }
  }
  throw new Error(`could not lock ${dir}`);
}

export async function pingDb(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}
