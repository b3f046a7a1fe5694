import crypto from 'node:crypto';

/** A short id derived from an idempotency key: a retried request gets the same id back. */
export const stableId = (prefix: string, idempotencyKey: string): string =>
  `${prefix}-${crypto.createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 16)}`;

/**
 * What a simulator already answered, by idempotency key, so that a retried request is
 * answered the same way. Bounded: a long drill must not grow memory without end.
 */
export class AnswerCache<T> {
  private readonly map = new Map<string, T>();
  constructor(private readonly capacity = 10_000) {}

  get(key: string): T | undefined {
    return this.map.get(key);
  }

  set(key: string, value: T): void {
    this.map.set(key, value);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }
}
