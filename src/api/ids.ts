import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import type { Config } from '../config';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The case number is a pure function of the caller's request id, so a retried transfer finds
 * the same workflow (`case-<caseNo>`) without asking Postgres: creation stays idempotent
 * while the database is down. Unkeyed on purpose: a rotated secret must never turn a retry
 * into a second case. 50 bits leave collisions far beyond any district's case count.
 */
export function caseNoFor(requestId: string): string {
  const digest = crypto.createHash('sha256').update(`shaodian/case/v1\n${requestId}`).digest();
  return `QC${base32(digest).slice(0, 10)}`;
}

export const workflowIdFor = (caseNo: string): string => `case-${caseNo}`;

/** JSON with object keys sorted, so equal bodies hash equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The transfer body is PII; the memo keeps only a keyed hash of it, enough to tell a retry
 * from a different request reusing the same id, useless for guessing a name or id number.
 */
export const bodyHash = (key: Buffer, body: unknown): string =>
  crypto.createHmac('sha256', key).update(canonicalJson(body)).digest('base64url');

/**
 * The HMAC key: API_HMAC_KEY; else derived from CODEC_KEY (which every process of a
 * deployment already shares); else a dev key created once under DATA_DIR, like the codec's.
 */
export function loadHmacKey(config: Pick<Config, 'API_HMAC_KEY' | 'CODEC_KEY' | 'dataDir'>): Buffer {
  if (config.API_HMAC_KEY) return Buffer.from(config.API_HMAC_KEY, 'base64');
  if (config.CODEC_KEY) {
    return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(config.CODEC_KEY, 'base64'), '', 'shaodian/api-hmac', 32));
  }
  const file = path.join(config.dataDir, 'api-hmac-dev.key');
  fs.mkdirSync(config.dataDir, { recursive: true });
  try {
    const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length >= 32) return key;
  } catch {
    // not there yet
  }
  const key = crypto.randomBytes(32);
  try {
    // 'wx': two processes starting together must not each keep a different key.
    fs.writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    return key;
  } catch {
    return Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  }
}
