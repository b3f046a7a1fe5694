import { eq, sql } from 'drizzle-orm';

import { cases } from '../db/schema';
import { keyCovers } from '../domain/jurisdiction';
import type { ApiKey } from './auth';
import type { ApiContext } from './context';
import { within } from './dependencies';
import { HttpProblem } from './problem';

/** The longest the jurisdiction check's read may take before the workflow's memo answers instead. */
export const SCOPE_DB_TIMEOUT_MS = 1500;
import { temporalProblem } from './temporal-ops';

/** Where a case belongs: what jurisdiction checks need. */
export interface CaseScope {
  caseNo: string;
  district: string;
  street: string;
  hotelId?: string;
  source: 'read-model' | 'workflow';
  /** The state version of the case's read-model row when it was read (absent when the row was not read). */
  readModelVersion?: number;
}

/**
 * The scope query, prepared once per database: every command and report on a case asks it, so it
 * is built and planned once, not on each call.
 */
function buildScopeStatement(db: ApiContext['db']) {
  return db
    .select({ district: cases.district, street: cases.street, hotelId: cases.hotelId, version: cases.stateVersion })
    .from(cases)
    .where(eq(cases.caseNo, sql.placeholder('caseNo')))
    .limit(1)
    .prepare('case_scope');
}
const scopeStatements = new WeakMap<ApiContext['db'], ReturnType<typeof buildScopeStatement>>();
function scopeStatement(app: ApiContext) {
  let stmt = scopeStatements.get(app.db);
  if (!stmt) scopeStatements.set(app.db, (stmt = buildScopeStatement(app.db)));
  return stmt;
}

/**
 * The read model answers first (cheap); the workflow's memo and search attributes answer when
 * the row is missing (provisional insert lost, read model behind) or the database is down,
 * so commands keep working through a database outage.
 */
export async function resolveCaseScope(app: ApiContext, caseNo: string): Promise<CaseScope> {
  let dbDown = false;
  try {
    // A database that hangs rather than fails must not hold a command: the workflow knows the scope too.
    const rows = await within(SCOPE_DB_TIMEOUT_MS, 'read model', () => scopeStatement(app).execute({ caseNo }));
    const row = rows[0];
    if (row)
      return {
        caseNo,
        district: row.district,
        street: row.street,
        hotelId: row.hotelId ?? undefined,
        source: 'read-model',
        readModelVersion: row.version,
      };
  } catch (err) {
    dbDown = true;
    if (!app.deps.database.isOpen) {
      app.log.warn('read model unavailable for case scope', { err });
      app.deps.suspect('database', err instanceof Error ? err.message : String(err));
    }
  }
  return scopeFromWorkflow(app, caseNo, dbDown);
}

async function scopeFromWorkflow(app: ApiContext, caseNo: string, dbDown: boolean): Promise<CaseScope> {
  let d;
  try {
    d = await app.ops.describe(caseNo);
  } catch (err) {
    throw temporalProblem(err, caseNo) ?? err;
  }
  if (!d || !d.memo) {
    if (!d && dbDown) throw new HttpProblem(503, 'Neither the read model nor Temporal could find the case right now');
    throw new HttpProblem(404, `No case ${caseNo}`);
  }
  return { caseNo, district: d.memo.district, street: d.memo.street, hotelId: d.hotelId, source: 'workflow' };
}

/** The same rule the case workflow judges with (src/domain/jurisdiction.ts). */
export { keyCovers };

/**
 * The case exists (else 404) and lies in the key's jurisdiction (else 403). Case numbers are
 * hashes of request ids, so answering 404 before 403 reveals nothing guessable.
 */
export async function authorizeCase(
  app: ApiContext,
  key: ApiKey,
  caseNo: string,
  purpose: 'act' | 'arrival' = 'act',
): Promise<CaseScope> {
  let scope = await resolveCaseScope(app, caseNo);
  requireHotelBinding(key);
  if (
    !keyCovers(key, scope, purpose) &&
    scope.source === 'read-model' &&
    key.orgId &&
    (key.role === 'hotel' || key.role === 'medical')
  ) {
    // The room may be newer than the read model: the workflow's HotelId attribute is fresher.
    try {
      const d = await app.ops.describe(caseNo);
      if (d?.hotelId) scope = { ...scope, hotelId: d.hotelId, source: 'workflow' };
    } catch {
      // keep the read model's answer
    }
  }
  if (!keyCovers(key, scope, purpose)) {
    // Refused only for want of a room: the case may yet get one at this key's hotel.
    const final = !(scope.hotelId === undefined && keyCovers(key, { ...scope, hotelId: key.orgId }, purpose));
    throw new JurisdictionProblem(caseNo, final);
  }
  return scope;
}

/**
 * The 403 of a key outside a case's jurisdiction. `final`: whether it holds whatever the case does
 * next. A case's district and street never change, and its hotel is set once, with its room; so
 * only a hotel or medical key refused while the case has no room yet may be covered later.
 */
export class JurisdictionProblem extends HttpProblem {
  constructor(
    caseNo: string,
    readonly final: boolean,
  ) {
    super(403, `Case ${caseNo} is outside this key's jurisdiction`, { slug: 'jurisdiction' });
  }
}

/**
 * Records that name a person's home (addresses, the certificate, the event log) are for the
 * community worker of that street: a community key bound to no street (the simulated street
 * office's, one per district) acts on cases but does not read them.
 */
export function requireStreetForCommunity(key: ApiKey): void {
  if (key.role === 'community' && !key.street) {
    throw new HttpProblem(
      403,
      'This community key is bound to no street: it reads the records of its own street only',
      {
        slug: 'jurisdiction',
      },
    );
  }
}

/** A hotel or medical key bound to no hotel: it covers no case. */
export const boundToNoHotel = (key: ApiKey): boolean => (key.role === 'hotel' || key.role === 'medical') && !key.orgId;

/** Hotel and medical keys act for, and see, their own hotel only: one bound to no hotel gets 403. */
export function requireHotelBinding(key: ApiKey): void {
  if (boundToNoHotel(key)) {
    throw new HttpProblem(403, 'This key is bound to no hotel: hotel and medical keys act for their own hotel only', {
      slug: 'jurisdiction',
    });
  }
}
