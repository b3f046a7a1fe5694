import crypto from 'node:crypto';

import { findKeyById, hashKey, type KeyIdentity } from '../auth/keys';
import type { ApiContext } from './context';
import { within } from './dependencies';
import { HttpProblem } from './problem';

/**
 * The codec's browser session: the `sd_codec` cookie holds a signed, expiring token that names a
 * key, never the key itself. A stolen cookie opens /codec only, for at most its lifetime, and
 * stops working the moment its key is revoked (every use looks the key up). The signature covers
 * the key's stored hash, so a token cannot outlive a key replaced under the same id.
 *
 * Token: `cs1.<keyId>.<expiresAt unix s>.<HMAC-SHA256 base64url>`, keyed by a key derived from
 * the deployment's API HMAC key (shared by every API process, so any API accepts any session).
 */
const VERSION = 'cs1';
const TOKEN = /^cs1\.([0-9a-f]{12})\.(\d{10})\.([A-Za-z0-9_-]{43})$/;

const sessionKey = (hmacKey: Buffer): Buffer =>
  Buffer.from(crypto.hkdfSync('sha256', hmacKey, '', 'shaodian/codec-session', 32));

const mac = (hmacKey: Buffer, keyId: string, exp: number, keyHash: string): string =>
  crypto.createHmac('sha256', sessionKey(hmacKey)).update(`${VERSION}|${keyId}|${exp}|${keyHash}`).digest('base64url');

export function issueCodecSession(hmacKey: Buffer, keyId: string, rawKey: string, expiresAt: Date): string {
  const exp = Math.floor(expiresAt.getTime() / 1000);
  return `${VERSION}.${keyId}.${exp}.${mac(hmacKey, keyId, exp, hashKey(rawKey))}`;
}

const refused = (detail: string) =>
  new HttpProblem(401, detail, {}, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });

/** The key a session token stands for; 401 when forged, expired or its key revoked; 503 when the store is down. */
export async function verifyCodecSession(ctx: ApiContext, token: string): Promise<KeyIdentity> {
  const m = TOKEN.exec(token);
  if (!m) throw refused('The codec session is not valid: sign in again at /codec');
  const [, keyId, expS, sig] = m as unknown as [string, string, string, string];
  const exp = Number(expS);
  if (exp * 1000 <= ctx.now().getTime()) throw refused('The codec session has expired: sign in again at /codec');
  let found: Awaited<ReturnType<typeof findKeyById>>;
  try {
    found = await within(1500, 'key store', () => findKeyById(ctx.db, keyId));
  } catch {
    throw new HttpProblem(
      503,
      'The key store (database) is unavailable; try again shortly',
      { slug: 'database-unavailable', dependency: 'database' },
      { 'Retry-After': '5' },
    );
  }
  const expected = found ? mac(ctx.hmacKey, keyId, exp, found.keyHash) : mac(ctx.hmacKey, keyId, exp, '');
  const ok = crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
  if (!found || !ok) throw refused('The codec session is not valid: sign in again at /codec');
  return found.identity;
}
