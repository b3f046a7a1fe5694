import { and, desc, eq, sql } from 'drizzle-orm';

import type { Db } from '../db';
import { policies } from '../db/schema';
import { resolvePolicy, type Policy, type PolicyConfig } from '../domain/policy';

/**
 * Policies as data: immutable numbered versions per district (src/db/schema.ts `policies`).
 * The latest version is the district's current one. A district that never had one gets
 * version 1 seeded from the configured built-in policy (DEFAULT_POLICY) when first read.
 */
export interface PolicyVersion {
  district: string;
  version: number;
  name: string;
  policy: Policy;
  note: string | null;
  createdBy: string | null;
  createdAt: string;
}

type Row = typeof policies.$inferSelect;
const toVersion = (r: Row): PolicyVersion => ({
  district: r.district,
  version: r.version,
  name: r.name,
  // The stored body carries its own version number: the row's is the truth.
  policy: { ...(r.body as Policy), version: r.version },
  note: r.note,
  createdBy: r.createdBy,
  createdAt: r.createdAt.toISOString(),
});

export async function seedDistrict(db: Db, cfg: PolicyConfig, district: string): Promise<void> {
  const seed = resolvePolicy(cfg)!;
  await db
    .insert(policies)
    .values({
      district,
      version: 1,
      name: seed.name,
      body: { ...seed, version: 1 },
      note: `built-in ${seed.name} policy`,
    })
    .onConflictDoNothing();
}

export async function currentPolicy(db: Db, cfg: PolicyConfig, district: string): Promise<PolicyVersion> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const [row] = await db
      .select()
      .from(policies)
      .where(eq(policies.district, district))
      .orderBy(desc(policies.version))
      .limit(1);
    if (row) return toVersion(row);
    await seedDistrict(db, cfg, district);
  }
  throw new Error(`no policy for district ${district}`);
}

export async function listVersions(db: Db, cfg: PolicyConfig, district: string): Promise<PolicyVersion[]> {
  await currentPolicy(db, cfg, district);
  const rows = await db.select().from(policies).where(eq(policies.district, district)).orderBy(desc(policies.version));
  return rows.map(toVersion);
}

export async function getVersion(db: Db, district: string, version: number): Promise<PolicyVersion | undefined> {
  const [row] = await db
    .select()
    .from(policies)
    .where(and(eq(policies.district, district), eq(policies.version, version)))
    .limit(1);
  return row ? toVersion(row) : undefined;
}

/** Adds the next version; two supervisors at once each get their own number (the key decides). */
export async function createVersion(
  db: Db,
  cfg: PolicyConfig,
  district: string,
  body: Omit<Policy, 'version'>,
  createdBy: string,
  note: string | undefined,
): Promise<PolicyVersion> {
  await currentPolicy(db, cfg, district);
  for (let attempt = 0; ; attempt++) {
    const [{ next }] = (await db
      .select({ next: sql<number>`coalesce(max(${policies.version}), 0) + 1` })
      .from(policies)
      .where(eq(policies.district, district))) as [{ next: number }];
    const version = Number(next);
    const inserted = await db
      .insert(policies)
      .values({ district, version, name: body.name, body: { ...body, version }, note: note ?? null, createdBy })
      .onConflictDoNothing()
      .returning();
    if (inserted[0]) return toVersion(inserted[0]);
    if (attempt >= 5) throw new Error('could not number the new policy version');
  }
}

/**
 * The policy a new transfer gets, cached per district for a few seconds (an intake burst reads
 * it once), and the last one known kept for when the database cannot be reached: a transfer is
 * never refused for want of the policy table. Without any, the built-in policy (logged).
 */
export class PolicyCache {
  private readonly known = new Map<string, { at: number; v: PolicyVersion }>();
  constructor(
    private readonly db: Db,
    private readonly cfg: PolicyConfig,
    private readonly ttlMs = 5_000,
    private readonly timeoutMs = 1_000,
  ) {}

  invalidate(district: string): void {
    this.known.delete(district);
  }

  async current(
    district: string,
    now = Date.now(),
  ): Promise<{ policy: Policy; source: 'table' | 'cache' | 'built-in' }> {
    const hit = this.known.get(district);
    if (hit && now - hit.at < this.ttlMs) return { policy: hit.v.policy, source: 'cache' };
    let timer: NodeJS.Timeout | undefined;
    try {
      const v = await Promise.race([
        currentPolicy(this.db, this.cfg, district),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('policy lookup timed out')), this.timeoutMs);
        }),
      ]);
      this.known.set(district, { at: now, v });
      return { policy: v.policy, source: 'table' };
    } catch {
      if (hit) return { policy: hit.v.policy, source: 'cache' };
      return { policy: resolvePolicy(this.cfg)!, source: 'built-in' };
    } finally {
      clearTimeout(timer);
    }
  }
}
