import type { Policy } from './policy';
import { ageOn } from './schedule';
import type { Colour, Person } from './types';

export interface ColourDecision {
  colour: Colour;
  reasons: string[];
}

/**
 * Colour classification (DOMAIN.md "Colour classification"): red needs focused attention
 * (listed chronic disease, key-attention flag); yellow for the elderly, children, disabled
 * and pregnant people; green otherwise. Red wins over yellow. Reasons are codes, not PII.
 */
export function classifyColour(person: Person, policy: Policy, on: number): ColourDecision {
  const rules = policy.colour;
  const red: string[] = [];
  const yellow: string[] = [];
  const conditions = (person.chronicConditions ?? []).map((c) => c.trim().toLowerCase());
  for (const c of conditions) if (rules.redConditions.includes(c)) red.push(`condition:${c}`);
  if (rules.redIfKeyAttention && person.keyAttention) red.push('key_attention');
  const age = ageOn(person.birthDate, on);
  if (age >= rules.yellowAgeAtLeast) yellow.push(`age>=${rules.yellowAgeAtLeast}`);
  if (age < rules.yellowAgeBelow) yellow.push(`age<${rules.yellowAgeBelow}`);
  if (rules.yellowIfDisabled && person.disabled) yellow.push('disabled');
  if (rules.yellowIfPregnant && person.pregnant) yellow.push('pregnant');
  if (red.length) return { colour: 'red', reasons: [...red, ...yellow] };
  if (yellow.length) return { colour: 'yellow', reasons: yellow };
  return { colour: 'green', reasons: [] };
}

/**
 * The colour a case starts with (initialState), and its start's search attribute: the person
 * classified on the day the transfer was requested (`now` if that date does not parse).
 */
export function colourOnRequest(
  request: { person: Person; requestedAt: string },
  policy: Policy,
  now: number,
): ColourDecision {
  return classifyColour(request.person, policy, Date.parse(request.requestedAt) || now);
}
