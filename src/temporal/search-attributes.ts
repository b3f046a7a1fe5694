import { defineSearchAttributeKey, type SearchAttributePair } from '@temporalio/common';

import { colourOnRequest } from '../domain/colour';
import { withCaseDefaults, type Policy } from '../domain/policy';
import type { Person } from '../domain/types';

/**
 * Search attributes of a case workflow. None carries PII: phase, colour, hotel id,
 * release due date and a count. The dev server registers them at start; a real cluster
 * needs `temporal operator search-attribute create` once (docs/OPERATIONS.md).
 */
export const CasePhaseKey = defineSearchAttributeKey('CasePhase', 'KEYWORD');
export const CaseColourKey = defineSearchAttributeKey('CaseColour', 'KEYWORD');
export const HotelIdKey = defineSearchAttributeKey('HotelId', 'KEYWORD');
export const ReleaseDueKey = defineSearchAttributeKey('ReleaseDue', 'DATETIME');
export const OpenEscalationsKey = defineSearchAttributeKey('OpenEscalations', 'INT');

export const searchAttributeKeys = [CasePhaseKey, CaseColourKey, HotelIdKey, ReleaseDueKey, OpenEscalationsKey];

/**
 * What a new case's first workflow task would set, for its start: its phase, its colour as
 * initialState gives it (colourOnRequest, with the same policy defaults), no escalation open.
 * A v3 case does not upsert what its start already set.
 */
export function caseStartSearchAttributes(input: {
  request: { person: Person; requestedAt: string };
  policy: Policy;
}): SearchAttributePair[] {
  const colour = colourOnRequest(input.request, withCaseDefaults(input.policy), Date.now()).colour;
  return [
    { key: CasePhaseKey, value: 'REQUESTED' },
    { key: CaseColourKey, value: colour },
    { key: OpenEscalationsKey, value: 0 },
  ];
}

/** `--search-attribute Name=Type` arguments for `temporal server start-dev`. */
export const devServerSearchAttributeArgs = (): string[] =>
  searchAttributeKeys.flatMap((k) => ['--search-attribute', `${k.name}=${cliType(k.type)}`]);

function cliType(t: string): string {
  switch (t) {
    case 'KEYWORD':
      return 'Keyword';
    case 'DATETIME':
      return 'Datetime';
    case 'INT':
      return 'Int';
    case 'TEXT':
      return 'Text';
    case 'BOOL':
      return 'Bool';
    case 'DOUBLE':
      return 'Double';
    default:
      return 'Keyword';
  }
}
