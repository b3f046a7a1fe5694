import { ErrorCode } from '../activities/types';
import { rejected, unavailable } from './errors';

export interface HttpTarget {
  /** Name of the remote system, for error messages and logs. */
  system: string;
  baseUrl: string;
  /** Bearer key; omitted when the remote system needs none (e.g. a webhook). */
  key?: string;
  timeoutMs: number;
}

export interface PostOptions {
  /** `<workflowId>:<step>`: lets the remote system drop a retried request. */
  idempotencyKey: string;
  /** A 422 means this code instead of IntegrationRejected (e.g. InvalidAddress). */
  unprocessableAs?: ErrorCode;
}

/** `path` relative to `base`; an empty path is the base itself (a webhook URL as given). */
export const joinUrl = (base: string, path: string): string =>
  path ? `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}` : base;

/**
 * POST JSON to a real system and map every way it can fail onto a Temporal failure:
 * whatever may heal by itself (timeouts, network errors, 5xx, 408, 429) is retryable,
 * a request the system refused (other 4xx) is not, since sending it again cannot help.
 */
export async function postJson(target: HttpTarget, path: string, body: unknown, opts: PostOptions): Promise<unknown> {
  const url = joinUrl(target.baseUrl, path);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
    'idempotency-key': opts.idempotencyKey,
  };
  if (target.key) headers.authorization = `Bearer ${target.key}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(target.timeoutMs),
    });
  } catch (err) {
    const name = errorName(err);
    const detail = name === 'TimeoutError' ? `no answer within ${target.timeoutMs} ms` : `network error (${name})`;
    throw unavailable(target.system, detail);
  }
  const text = await readBody(res, target);
  if (res.ok) return text ? safeJson(text) : {};
  if (res.status >= 500 || res.status === 408 || res.status === 429) {
    throw unavailable(target.system, `HTTP ${res.status}`);
  }
  const code = res.status === 422 && opts.unprocessableAs ? opts.unprocessableAs : ErrorCode.IntegrationRejected;
  // The body is the remote system's own words; cut short so a large page never lands in history.
  throw rejected(target.system, `HTTP ${res.status} ${text.slice(0, 200)}`.trim(), code);
}

async function readBody(res: Response, target: HttpTarget): Promise<string> {
  try {
    return await res.text();
  } catch (err) {
    // The headers arrived but the body did not: the same as no answer.
    throw unavailable(target.system, `body not received (${errorName(err)})`);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return {};
  }
}

/**
 * fetch's errors (TimeoutError is a DOMException) may come from another realm, e.g. under
 * jest's VM, where `instanceof Error` is false: read the name by shape.
 */
function errorName(err: unknown): string {
  const name = (err as { name?: unknown } | null)?.name;
  const causeCode = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof causeCode === 'string' ? causeCode : typeof name === 'string' ? name : 'Error';
}
