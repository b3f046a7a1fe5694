import crypto from 'node:crypto';

import { asc, desc, eq } from 'drizzle-orm';

import type { Db } from '../db';
import { apiKeys } from '../db/schema';
import type { Role } from '../domain/types';

export interface NewKey {
  name: string;
  role: Role;
  district?: string;
  street?: string;
  orgId?: string;
  ratePerMinute?: number;
}

export interface KeyIdentity {
  id: string;
  name: string;
  role: Role;
  district?: string;
  street?: string;
  orgId?: string;
  ratePerMinute?: number;
}

/** Keys are `sd_<id>_<secret>`; only a SHA-256 of the whole key is stored. */
export const hashKey = (key: string): string => crypto.createHash('sha256').update(key).digest('hex');

export async function createApiKey(db: Db, input: NewKey): Promise<{ identity: KeyIdentity; key: string }> {
  const id = crypto.randomBytes(6).toString('hex');
  const secret = crypto.randomBytes(24).toString('base64url');
  const key = `sd_${id}_${secret}`;
  await db.insert(apiKeys).values({
    id,
    name: input.name,
    role: input.role,
    district: input.district ?? null,
    street: input.street ?? null,
    orgId: input.orgId ?? null,
    keyHash: hashKey(key),
    prefix: key.slice(0, 10),
    ratePerMinute: input.ratePerMinute ?? null,
  });
  return { identity: { id, ...input }, key };
}

export async function findKey(db: Db, key: string): Promise<KeyIdentity | undefined> {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(eq(apiKeys.keyHash, hashKey(key)))
    .limit(1);
  const row = rows[0];
  return row && !row.revokedAt ? identityOf(row) : undefined;
}

/** The identity a stored key stands for. */
function identityOf(row: typeof apiKeys.$inferSelect): KeyIdentity {
  return {
    id: row.id,
    name: row.name,
    role: row.role as Role,
    district: row.district ?? undefined,
    street: row.street ?? undefined,
    orgId: row.orgId ?? undefined,
    ratePerMinute: row.ratePerMinute ?? undefined,
  };
}

export async function revokeKey(db: Db, id: string): Promise<boolean> {
  const rows = await db.update(apiKeys).set({ revokedAt: new Date() }).where(eq(apiKeys.id, id)).returning();
  return rows.length > 0;
}

export interface KeyRecord extends KeyIdentity {
  prefix: string;
  createdAt: Date;
  revokedAt?: Date;
}

/** A key as the API and `npm run keys` show it: JSON-ready, nulls for what is unset. */
export const keyView = (k: KeyRecord) => ({
  id: k.id,
  name: k.name,
  role: k.role,
  district: k.district ?? null,
  street: k.street ?? null,
  orgId: k.orgId ?? null,
  prefix: k.prefix,
  ratePerMinute: k.ratePerMinute ?? null,
  createdAt: k.createdAt.toISOString(),
  revokedAt: k.revokedAt ? k.revokedAt.toISOString() : null,
});
export type KeyView = ReturnType<typeof keyView>;

/** Every key without its hash, newest first: what `npm run keys -- list` shows. */
export async function listKeys(db: Db): Promise<KeyRecord[]> {
  const rows = await db.select().from(apiKeys).orderBy(desc(apiKeys.createdAt), asc(apiKeys.id));
  return rows.map((row) => ({
    ...identityOf(row),
    prefix: row.prefix,
    createdAt: row.createdAt,
    revokedAt: row.revokedAt ?? undefined,
  }));
}

/** A key by its id, with its stored hash; undefined when unknown or revoked. */
export async function findKeyById(db: Db, id: string): Promise<{ identity: KeyIdentity; keyHash: string } | undefined> {
  const rows = await db.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1);
  const row = rows[0];
  if (!row || row.revokedAt) return undefined;
  return { keyHash: row.keyHash, identity: identityOf(row) };
}
