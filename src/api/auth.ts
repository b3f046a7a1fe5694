import crypto from 'node:crypto';

import { findKey, hashKey, type KeyIdentity } from '../auth/keys';
import type { Db } from '../db';
import type { Actor, Role } from '../domain/types';
import { within } from './dependencies';
import { HttpProblem } from './problem';

/** A key identity as the routes see it. */
export type ApiKey = KeyIdentity;

export const actorOf = (key: ApiKey): Actor => ({ id: key.id, role: key.role, name: key.name });

/** How long a cached identity may stand in for the database while it is down. */
const STALE_WHILE_DOWN_MS = 60 * 60_000;
/** Unknown keys are remembered briefly so a bad client cannot hammer the database. */
const NEGATIVE_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

interface Entry {
  identity: ApiKey | null;
  at: number;
}

export interface KeyResolver {
  /** The identity for an `Authorization` header; throws 401 or (database down, key unseen) 503. */
  authenticate(header: string | undefined): Promise<ApiKey>;
  /** Forget a key at once (revocation in this process). */
  forget(keyId: string): void;
}

/**
 * Keys are looked up by hash and cached: a key seen recently keeps working while Postgres is
 * down, so filing a transfer (which needs only Temporal) survives a database outage.
 */
export function createKeyResolver(
  db: Db,
  ttlMs: number,
  now: () => number = Date.now,
  /** A lookup that hangs (database partitioned) gives up after this and counts as "store unavailable". */
  lookupTimeoutMs = 1500,
  /** The database is known down: a key seen before answers at once instead of waiting on a lookup. */
  dbDown: () => boolean = () => false,
): KeyResolver {
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<ApiKey | null>>();

  const remember = (hash: string, identity: ApiKey | null) => {
    cache.delete(hash);
    cache.set(hash, { identity, at: now() });
    if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  };

  const lookup = (key: string, hash: string): Promise<ApiKey | null> => {
    let p = inflight.get(hash);
    if (!p) {
      p = findKey(db, key)
        .then((identity) => {
          remember(hash, identity ?? null);
          return identity ?? null;
        })
        .finally(() => inflight.delete(hash));
      inflight.set(hash, p);
    }
    return p;
  };

  return {
    async authenticate(header) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
      if (!m) {
        throw new HttpProblem(
          401,
          'An API key is required: Authorization: Bearer <key>',
          {},
          { 'WWW-Authenticate': 'Bearer' },
        );
      }
      const key = m[1]!;
      if (!/^sd_[0-9a-f]{12}_[A-Za-z0-9_-]{16,64}$/.test(key)) {
        throw new HttpProblem(
          401,
          'Unknown or revoked API key',
          {},
          { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
        );
      }
      const hash = hashKey(key);
      const cached = cache.get(hash);
      const age = cached ? now() - cached.at : Infinity;
      let identity: ApiKey | null;
      if (cached && age < (cached.identity ? ttlMs : Math.min(ttlMs, NEGATIVE_TTL_MS))) {
        identity = cached.identity;
      } else if (cached?.identity && age < STALE_WHILE_DOWN_MS && dbDown()) {
        identity = cached.identity;
      } else {
        try {
          identity = await within(lookupTimeoutMs, 'key store', () => lookup(key, hash));
        } catch {
          if (cached?.identity && age < STALE_WHILE_DOWN_MS) {
            identity = cached.identity;
          } else {
            throw new HttpProblem(
              503,
              'The key store (database) is unavailable and this key was not seen recently; try again shortly',
              { slug: 'database-unavailable', dependency: 'database' },
              { 'Retry-After': '5' },
            );
          }
        }
      }
      if (!identity) {
        throw new HttpProblem(
          401,
          'Unknown or revoked API key',
          {},
          { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
        );
      }
      return identity;
    },
    forget(keyId) {
      for (const [hash, e] of cache) if (e.identity?.id === keyId) cache.delete(hash);
    },
  };
}

export function requireRole(key: ApiKey, roles: readonly Role[]): void {
  if (!roles.includes(key.role)) {
    throw new HttpProblem(403, `This call needs one of the roles: ${roles.join(', ')}`);
  }
}

/** Constant-time comparison of the runtime's admin token. */
export function adminTokenMatches(expected: string | undefined, given: string | undefined): boolean {
  if (!expected || !given) return false;
  const a = crypto.createHash('sha256').update(expected).digest();
  const b = crypto.createHash('sha256').update(given).digest();
  return crypto.timingSafeEqual(a, b);
}

// ---- per-key rate limit ----
export interface RateLimiter {
  /** Takes a token; returns the seconds to wait when there is none. */
  take(keyId: string, perMinute: number): { ok: true } | { ok: false; retryAfterS: number };
}

/** In-memory token bucket per key: bursts up to a minute's allowance, refilled continuously. */
export function createRateLimiter(now: () => number = Date.now): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number; rate: number }>();
  let lastSweep = now();
  return {
    take(keyId, perMinute) {
      const t = now();
      if (t - lastSweep > 60_000) {
        // Idle buckets are full anyway: dropping them loses nothing.
        for (const [id, b] of buckets) if (t - b.at > 120_000) buckets.delete(id);
        lastSweep = t;
      }
      let b = buckets.get(keyId);
      if (!b || b.rate !== perMinute) {
        b = { tokens: perMinute, at: t, rate: perMinute };
        buckets.set(keyId, b);
      }
      b.tokens = Math.min(perMinute, b.tokens + ((t - b.at) * perMinute) / 60_000);
      b.at = t;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterS: Math.max(1, Math.ceil(((1 - b.tokens) * 60) / perMinute)) };
    },
  };
}
