import type { Role } from './types';

/**
 * Jurisdiction: which cases a key may act on. Pure (no I/O), so the API and the case workflow
 * judge it with the same code: the API from the read model, a caseWorkflowV5/V6 case from its
 * own facts when a health check comes with the caller's scope (`recordHealthCheckInScope`).
 */

/** What a jurisdiction check reads of a key: its role and where it is bound. No secret, no PII. */
export interface KeyScope {
  role: Role;
  district?: string;
  street?: string;
  /** The hotel (or lab, transport company) the key acts for. */
  orgId?: string;
}

/** Where a case belongs. */
export interface CaseWhere {
  district: string;
  street: string;
  /** The hotel of its room, once it has one. */
  hotelId?: string;
}

/** The scope of a key, and nothing else of it: what a case needs to judge the key (no secret, no PII). */
export const keyScopeOf = (key: KeyScope): KeyScope => ({
  role: key.role,
  ...(key.district ? { district: key.district } : {}),
  ...(key.street ? { street: key.street } : {}),
  ...(key.orgId ? { orgId: key.orgId } : {}),
});

/**
 * Whether this key may act on (or read) a case where it is. Hotel and medical staff act for
 * their own hotel only: a key of theirs bound to no hotel covers no case. The one exception is
 * an arrival at the door before any room is known (self-drive): any hotel of the district may
 * record it.
 */
export function keyCovers(key: KeyScope, scope: CaseWhere, purpose: 'act' | 'arrival' = 'act'): boolean {
  if (key.role === 'admin') return true;
  if (key.district && key.district !== scope.district) return false;
  if (key.street && key.street !== scope.street) return false;
  if (key.role === 'hotel' || key.role === 'medical') {
    if (!key.orgId) return false;
    if (purpose === 'arrival' && key.role === 'hotel' && !scope.hotelId) return true;
    return scope.hotelId === key.orgId;
  }
  return true;
}
