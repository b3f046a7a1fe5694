/**
 * API keys: `npm run keys -- create --role lab --name "Lab 1" [--district D --street S --org LAB1 --rate 600]`,
 * `npm run keys -- list`, `npm run keys -- revoke <id>`. Add `--json` for machine-readable output.
 *
 * One process owns the embedded database (PGlite), so while `npm start` runs this script
 * asks the running API (DATA_DIR/runtime.json: its URL and admin token) instead of opening
 * the files; with DATABASE_URL, or with nothing running, it opens the database itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { createApiKey, keyView, listKeys, revokeKey, type KeyView } from '../src/auth/keys';
import { loadConfigOrExit, type Config } from '../src/config';
import { openDatabase } from '../src/db';
import { pidAlive } from '../src/process-alive';
import type { Role } from '../src/domain/types';
import { NewKeyBody } from '../src/api/schemas';

export interface RuntimeInfo {
  pid: number;
  apiUrl: string;
  adminToken: string;
}

/** How keys are reached: through the running system, or the database directly. */
interface KeyStore {
  via: string;
  create(input: unknown): Promise<{ key: string; identity: KeyView }>;
  list(): Promise<KeyView[]>;
  revoke(id: string): Promise<boolean>;
  close(): Promise<void>;
}

const USAGE = `usage:
  npm run keys -- create --role <community|hotel|transport|medical|lab|supervisor|admin> --name "Name"
                         [--district D] [--street S] [--org ORG_ID] [--rate PER_MINUTE] [--json]
  npm run keys -- list [--json]
  npm run keys -- revoke <id> [--json]`;

class UsageError extends Error {}

export function readRuntime(dataDir: string): RuntimeInfo | undefined {
  const file = path.join(dataDir, 'runtime.json');
  let info: RuntimeInfo;
  try {
    info = JSON.parse(fs.readFileSync(file, 'utf8')) as RuntimeInfo;
  } catch {
    return undefined;
  }
  if (!info?.pid || !info.apiUrl || !info.adminToken) return undefined;
  return pidAlive(info.pid) ? info : undefined;
}

function httpStore(rt: RuntimeInfo): KeyStore {
  const call = async (method: string, p: string, body?: unknown) => {
    let res: Response;
    try {
      res = await fetch(new URL(p, rt.apiUrl), {
        method,
        headers: { 'X-Admin-Token': rt.adminToken, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      throw new Error(
        `The running system (pid ${rt.pid}) owns the database but its API at ${rt.apiUrl} does not answer: ${(err as Error).message}`,
      );
    }
    const text = await res.text();
    const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    return { status: res.status, json };
  };
  const fail = (r: { status: number; json: Record<string, unknown> }): never => {
    const errors = (r.json.errors as { path: string; message: string }[] | undefined)?.map(
      (e) => `  ${e.path}: ${e.message}`,
    );
    throw new UsageError([`${r.status} ${String(r.json.detail ?? r.json.title ?? '')}`, ...(errors ?? [])].join('\n'));
  };
  return {
    via: `the running API at ${rt.apiUrl} (pid ${rt.pid})`,
    async create(input) {
      const r = await call('POST', '/api/v1/admin/keys', input);
      if (r.status !== 201) fail(r);
      return r.json as unknown as { key: string; identity: KeyView };
    },
    async list() {
      const r = await call('GET', '/api/v1/admin/keys');
      if (r.status !== 200) fail(r);
      return (r.json as { items: KeyView[] }).items;
    },
    async revoke(id) {
      const r = await call('DELETE', `/api/v1/admin/keys/${encodeURIComponent(id)}`);
      if (r.status === 404) return false;
      if (r.status !== 200) fail(r);
      return true;
    },
    async close() {},
  };
}

async function dbStore(config: Config): Promise<KeyStore> {
  let database;
  try {
    database = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.dataDir, max: 2 });
  } catch (err) {
    const hint = config.DATABASE_URL
      ? ''
      : '\nIf `npm start` is running with another DATA_DIR, run this with the same DATA_DIR so it can reach the running system.';
    throw new Error(`Cannot open the database: ${(err as Error).message}${hint}`);
  }
  return {
    via: database.where,
    async create(input) {
      const parsed = NewKeyBody.safeParse(input);
      if (!parsed.success) {
        throw new UsageError(parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n'));
      }
      const { identity, key } = await createApiKey(database.db, { ...parsed.data, role: parsed.data.role as Role });
      return { key, identity: keyView({ ...identity, prefix: key.slice(0, 10), createdAt: new Date() }) };
    },
    async list() {
      return (await listKeys(database.db)).map(keyView);
    },
    revoke: (id) => revokeKey(database.db, id),
    close: () => database.close(),
  };
}

export async function openKeyStore(config: Config): Promise<KeyStore> {
  // A shared Postgres takes any number of clients; only the embedded database has one owner.
  if (!config.DATABASE_URL) {
    const rt = readRuntime(config.dataDir);
    if (rt) return httpStore(rt);
  }
  return dbStore(config);
}

function describeKey(k: KeyView): string {
  const where = [k.district, k.street].filter(Boolean).join(' / ') || 'everywhere';
  const org = k.orgId ? ` org=${k.orgId}` : '';
  const rate = k.ratePerMinute ? ` rate=${k.ratePerMinute}/min` : '';
  const revoked = k.revokedAt ? ` REVOKED ${k.revokedAt}` : '';
  return `${k.id}  ${k.role.padEnd(10)} ${k.name}  [${where}]${org}${rate}${revoked}`;
}

export async function main(
  argv: string[],
  config: Config,
  out: (s: string) => void = console.log,
  note: (s: string) => void = console.error,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      name: { type: 'string' },
      district: { type: 'string' },
      street: { type: 'string' },
      org: { type: 'string' },
      rate: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    out(USAGE);
    return command ? 0 : 64;
  }
  if (!['create', 'list', 'revoke'].includes(command)) throw new UsageError(`unknown command ${command}\n${USAGE}`);
  if (command === 'revoke' && !rest[0]) throw new UsageError(`revoke needs a key id\n${USAGE}`);
  if (command === 'create' && (!values.role || !values.name))
    throw new UsageError(`create needs --role and --name\n${USAGE}`);

  const store = await openKeyStore(config);
  try {
    if (command === 'create') {
      const input = {
        name: values.name,
        role: values.role,
        ...(values.district ? { district: values.district } : {}),
        ...(values.street ? { street: values.street } : {}),
        ...(values.org ? { orgId: values.org } : {}),
        ...(values.rate ? { ratePerMinute: Number(values.rate) } : {}),
      };
      const { key, identity } = await store.create(input);
      if (values.json) out(JSON.stringify({ key, identity }));
      else {
        out(describeKey(identity));
        out('');
        out(`  ${key}`);
        out('');
        out('This key is shown once; only its hash is stored. Use it as: Authorization: Bearer <key>');
      }
    } else if (command === 'list') {
      const keys = await store.list();
      if (values.json) out(JSON.stringify({ items: keys }));
      else if (keys.length === 0) out('no keys');
      else for (const k of keys) out(describeKey(k));
    } else {
      const ok = await store.revoke(rest[0]!);
      if (values.json) out(JSON.stringify({ id: rest[0], revoked: ok }));
      else out(ok ? `revoked ${rest[0]}` : `no key ${rest[0]}`);
      if (!ok) return 1;
    }
    if (!values.json) note(`(via ${store.via})`);
    return 0;
  } finally {
    await store.close();
  }
}

if (require.main === module) {
  const config = loadConfigOrExit();
  main(process.argv.slice(2), config)
    .then((code) => process.exit(code))
    .catch((err: unknown) => {
      console.error(err instanceof UsageError ? err.message : `error: ${(err as Error).message}`);
      process.exit(err instanceof UsageError ? 64 : 1);
    });
}
