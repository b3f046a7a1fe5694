import { TERMINAL_PHASES, type Colour, type Phase } from '../../domain/types';
import { zoneOffsetMs } from '../../domain/schedule';
import type { cases } from '../../db/schema';
import type { ApiContext } from '../context';
import { HttpProblem, validationProblem } from '../problem';
import type { CaseSummary } from '../schemas';

export const iso = (d: Date | string | null | undefined): string | null =>
  d == null ? null : d instanceof Date ? d.toISOString() : new Date(d).toISOString();

/** The read model is down: the caller learns that, not a stack trace. */
export function dbProblem(app: ApiContext, err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err;
  app.log.warn('read model unavailable', { err });
  app.metrics.errors.inc({ kind: 'database' });
  app.deps.suspect('database', err instanceof Error ? err.message : String(err));
  return new HttpProblem(
    503,
    'The read model (database) is unavailable',
    { slug: 'database-unavailable', dependency: 'database' },
    { 'Retry-After': '5' },
  );
}

export function toSummary(r: typeof cases.$inferSelect & { roomNo?: string | null }): CaseSummary {
  return {
    caseNo: r.caseNo,
    workflowId: r.workflowId,
    district: r.district,
    street: r.street,
    displayName: r.displayName ?? null,
    phase: r.phase as Phase,
    colour: (r.colour as Colour | null) ?? null,
    policyName: r.policyName,
    hotelId: r.hotelId ?? null,
    roomId: r.roomId ?? null,
    roomNo: r.roomNo ?? null,
    requestedAt: iso(r.requestedAt)!,
    arrivedAt: iso(r.arrivedAt),
    stayStart: iso(r.stayStart),
    releaseDue: iso(r.releaseDue),
    nextCheckDue: iso(r.nextCheckDue),
    pendingResults: r.pendingResults,
    openEscalations: r.openEscalations,
    openRedEscalations: r.openRedEscalations,
    inspectionStatus: r.inspectionStatus,
    endedAt: iso(r.endedAt),
    updatedAt: iso(r.updatedAt)!,
  };
}

export const terminalPhases: string[] = [...TERMINAL_PHASES];

const DAY = 86_400_000;

/** YYYY-MM-DD of an instant in a time zone. */
export const localDate = (d: Date, timeZone: string): string =>
  new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);

/** Local midnight of the day containing `t` in `timeZone`, plus the next two midnights. */
export function localDays(timeZone: string, t: number): { today: number; tomorrow: number; dayAfter: number } {
  const offset = zoneOffsetMs(timeZone, t);
  const guess = Math.floor((t + offset) / DAY) * DAY - offset;
  // Re-read the offset at midnight itself: a DST change during the day moves midnight.
  const today = Math.floor((t + offset) / DAY) * DAY - zoneOffsetMs(timeZone, guess);
  const at = (days: number) => {
    const approx = today + days * DAY;
    return approx + (zoneOffsetMs(timeZone, today) - zoneOffsetMs(timeZone, approx));
  };
  return { today, tomorrow: at(1), dayAfter: at(2) };
}

/**
 * Keyset cursors for lists ordered by (a timestamp, an id): the timestamp as Postgres prints it
 * (microseconds kept, so rows of the same millisecond are neither repeated nor skipped) and the
 * id. A cursor is checked here, field by field, before it reaches SQL: a forged one is a 400,
 * never a database error.
 */
export function encodeKeysetCursor(at: string, id: string | number): string {
  return Buffer.from(JSON.stringify([at, id])).toString('base64url');
}

const PG_TIMESTAMPTZ = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?([+-])(\d{2})(?::(\d{2}))?$/;

/** A timestamptz as Postgres prints it (ISO DateStyle), with every field in range. */
export function isPgTimestamptz(s: string): boolean {
  const m = PG_TIMESTAMPTZ.exec(s);
  if (!m) return false;
  const [y, mo, d, h, mi, se, oh, om] = [m[1], m[2], m[3], m[4], m[5], m[6], m[9], m[10] ?? '0'].map(
    Number,
  ) as number[];
  const t = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, se!));
  return (
    t.getUTCFullYear() === y &&
    t.getUTCMonth() === mo! - 1 &&
    t.getUTCDate() === d &&
    t.getUTCHours() === h &&
    t.getUTCMinutes() === mi &&
    t.getUTCSeconds() === se &&
    oh! <= 15 &&
    om! < 60
  );
}

export function decodeKeysetCursor<I extends 'string' | 'number'>(
  cursor: string,
  idKind: I,
): { at: string; id: I extends 'string' ? string : number } {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && isPgTimestamptz(v[0])) {
      const id: unknown = v[1];
      const idOk =
        idKind === 'number'
          ? Number.isSafeInteger(id)
          : typeof id === 'string' && id.length <= 200 && /^[\w.:-]*$/.test(id);
      if (idOk) return { at: v[0], id: id as I extends 'string' ? string : number };
    }
  } catch {
    // fall through
  }
  throw validationProblem([
    { in: 'query', path: 'cursor', message: 'not a cursor from this list (pass nextCursor as it was)' },
  ]);
}
