import { TERMINAL_PHASES, type Colour, type Phase } from '../../domain/types';
import { zoneOffsetMs } from '../../domain/schedule';
import type { cases } from '../../db/schema';
import type { ApiContext } from '../context';
import { HttpProblem } from '../problem';
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
