import { defineSearchAttributeKey } from '@temporalio/common';

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
