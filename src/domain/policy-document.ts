import { z } from 'zod';

import type { Policy } from './policy';
import type { EscalationKind, EscalationLevel, Severity } from './types';

/**
 * A policy as a command-centre supervisor sends it to create a new version: every field of
 * `Policy` except `version` (the server assigns it). Field checks are in the schema; the checks
 * that compare fields with each other are `policyProblems`, run by the schema once every field
 * is valid. The descriptions end up in the OpenAPI document, so they are written for the
 * supervisor who fills the form, not for the developer.
 *
 * Not for workflow code (zod): the API parses a document and hands the workflow a `Policy`.
 */

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MIN = 60_000;
const MAX_DURATION_MS = 400 * DAY;

// ---- the closed lists, checked against the domain types at compile time ----

const KINDS = {
  no_room: true,
  late_arrival: true,
  missed_check: true,
  fever: true,
  symptom: true,
  door_alarm: true,
  positive_result: true,
  antigen_positive: true,
  unknown_sample: true,
  failed_inspection: true,
  release_blocked: true,
  integration_failure: true,
  late_departure: true,
  result_corrected: true,
  late_result: true,
  unexpected_result: true,
  missed_home_check: true,
  home_fever: true,
} as const satisfies Record<EscalationKind, true>;
const LEVELS = {
  reminder: true,
  nurse: true,
  point_leader: true,
  doctor: true,
  command_centre: true,
  community: true,
} as const satisfies Record<EscalationLevel, true>;
const SEVERITY_SET = { info: true, amber: true, red: true } as const satisfies Record<Severity, true>;

type NonEmpty<T> = readonly [T, ...T[]];
/** Every escalation kind (a kind added to `EscalationKind` and not here fails to compile). */
export const ALL_ESCALATION_KINDS = Object.keys(KINDS) as unknown as NonEmpty<EscalationKind>;
/** Every escalation level, in the order a chain usually climbs. */
export const ALL_ESCALATION_LEVELS = Object.keys(LEVELS) as unknown as NonEmpty<EscalationLevel>;
/** Every severity, mildest first. */
export const ALL_SEVERITIES = Object.keys(SEVERITY_SET) as unknown as NonEmpty<Severity>;

// ---- building blocks ----

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;
const clockTime = z.string().regex(HHMM, 'must be HH:MM');

const duration = (description: string, min = 0) =>
  z
    .number()
    .int('must be a whole number of milliseconds')
    .min(min, min === 0 ? 'must not be negative' : `must be at least ${min} ms`)
    .max(MAX_DURATION_MS, 'must be at most 400 days')
    .meta({ description: `${description} In milliseconds.` });

const label = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(max)
    .refine((s) => s.trim() === s, 'must not start or end with a space');

const severityValue = z.enum(ALL_SEVERITIES, {
  error: (iss) =>
    iss.input === undefined ? 'required: every escalation kind needs a severity' : 'must be info, amber or red',
});
const levelValue = z.enum(ALL_ESCALATION_LEVELS, {
  error: () => `must be one of ${ALL_ESCALATION_LEVELS.join(', ')}`,
});

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const retryBounds = (what: string) =>
  z
    .strictObject({
      initialMs: duration('The first wait before trying again; each further wait doubles it.', 1),
      maxMs: duration('The longest wait between two tries: the doubling stops here.', 1),
    })
    .meta({ description: what });

// ---- the document ----

const CalendarClock = z
  .strictObject({
    kind: z.literal('calendar'),
    timeZone: z
      .string()
      .min(1)
      .max(64)
      .refine(isTimeZone, 'not a known time zone (use an IANA name such as Asia/Shanghai)')
      .meta({ description: 'IANA time zone the days and clock times are read in.', example: 'Asia/Shanghai' }),
  })
  .meta({
    description:
      'Real days: a day is a local calendar day in timeZone (day 1 is the day of arrival) and check and ' +
      'sampling times are wall-clock times there.',
  });
const CompressedClock = z
  .strictObject({
    kind: z.literal('compressed'),
    dayMs: z
      .number()
      .int('must be a whole number of milliseconds')
      .min(1000, 'must be at least 1000 ms')
      .max(DAY, 'must be at most 86400000 ms (one day)')
      .meta({ description: 'How long one policy day lasts, in milliseconds.', example: 10_000 }),
  })
  .meta({
    description:
      'For drills and training: a day lasts dayMs from the moment of arrival and clock times scale with it ' +
      '(with dayMs 10000, 12:00 is 5 s into the day). Every other duration in the policy is taken as given, ' +
      'so scale them to the shorter day yourself.',
  });

const fields = {
  name: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/,
      'must be 1-64 letters, digits or . _ + - (starting with a letter or digit)',
    )
    .meta({
      description: 'The policy name cases are started with (e.g. "standard"). Each save makes a new version of it.',
      example: 'standard',
    }),
  clock: z
    .discriminatedUnion('kind', [CalendarClock, CompressedClock])
    .meta({ description: 'How days are counted: real calendar days, or a compressed day for drills.' }),
  stayDays: z
    .number()
    .int('must be a whole number of days')
    .min(1)
    .max(60)
    .meta({ description: 'Length of the stay in days; release is due this many days after arrival.', example: 14 }),
  checkTimes: z
    .array(clockTime)
    .min(1, 'at least one check time is required')
    .max(24)
    .refine((ts) => new Set(ts).size === ts.length, 'must not repeat a time')
    .meta({
      description:
        'Local clock times (HH:MM, 24-hour) at which a health check (temperature, symptoms) is due each day.',
      example: ['08:00', '16:00'],
    }),
  checkWindowBeforeMs: duration(
    'The check window opens this long before each check time: a check taken inside the window counts for ' +
      'that check time, an earlier one does not.',
  ),
  checkWindowAfterMs: duration(
    'The check window closes this long after each check time. When it closes without a check, the check is ' +
      'missed and the missed-check steps start. Before + after must be shorter than the gap between two check times.',
  ),
  missedCheckSteps: z
    .array(
      z.strictObject({
        level: levelValue.meta({ description: 'Who is alerted at this step.' }),
        afterMs: duration('When this step fires, counted from the moment the check window closed.'),
      }),
    )
    .max(10)
    .superRefine((steps, ctx) => {
      steps.forEach((s, i) => {
        const prev = steps[i - 1];
        if (prev && s.afterMs < prev.afterMs)
          ctx.addIssue({
            code: 'custom',
            path: [i, 'afterMs'],
            message: `must not be earlier than the step before it (${prev.afterMs} ms)`,
          });
      });
    })
    .meta({
      description:
        'What happens when a check is missed: the first step opens a missed-check escalation at its level, and ' +
        'each later step raises the same escalation to its level while the check is still missing. Steps are in ' +
        'order; afterMs must not go down. Empty: a nurse is alerted as soon as the window closes.',
    }),
  feverThresholdC: z.number().min(36).max(40).meta({
    description: 'A temperature at or above this (°C) is a fever: red escalation and an extra sample.',
    example: 37.3,
  }),
  sampling: z
    .strictObject({
      days: z
        .array(z.number().int('must be a whole day number').min(1, 'day 1 is the day of arrival'))
        .max(60)
        .refine((ds) => new Set(ds).size === ds.length, 'must not repeat a day')
        .meta({
          description:
            'Days of the stay on which a scheduled sample is taken (1 = day of arrival). The last ' +
            'release.requiredNegatives of them are counted back from the release date, so they move when a stay ' +
            'is extended.',
          example: [1, 4, 7, 13],
        }),
      type: label(32).meta({
        description: 'Sample type of the scheduled samples, as the lab knows it.',
        example: 'PCR',
      }),
      time: clockTime.meta({
        description: 'Local clock time (HH:MM) the scheduled samples are due.',
        example: '09:00',
      }),
    })
    .meta({ description: 'The scheduled samples of the stay.' }),
  extraSampleType: label(32).meta({
    description: 'Sample type ordered at once on a fever or a reported symptom.',
    example: 'PCR',
  }),
  release: z
    .strictObject({
      requiredNegatives: z
        .number()
        .int()
        .min(0)
        .max(5)
        .meta({
          description:
            'How many negative results of the scheduled sample type release needs, the latest sample included. ' +
            '0: none.',
          example: 2,
        }),
      minApartMs: duration(
        'The required negatives must have been taken at least this far apart. Must be shorter than the stay.',
      ),
      blockingSeverities: z
        .array(z.enum(ALL_SEVERITIES, { error: () => 'must be info, amber or red' }))
        .max(3)
        .meta({
          description: 'An escalation of one of these severities still open (not acknowledged) blocks release.',
          example: ['red'],
        }),
      afebrileCheckWithinMs: duration(
        'Release needs a health check without fever taken within this long before the moment of release. ' +
          'Absent or 0: no such rule.',
      ).optional(),
    })
    .meta({ description: 'What release needs.' }),
  colour: z
    .strictObject({
      yellowAgeAtLeast: z
        .number()
        .int()
        .min(0)
        .max(150)
        .meta({ description: 'People this age or older are yellow (150: nobody by age).', example: 65 }),
      yellowAgeBelow: z
        .number()
        .int()
        .min(0)
        .max(150)
        .meta({
          description:
            'People younger than this are yellow (0: nobody by age). The two age rules are separate: a person ' +
            'is yellow by age when either holds, so a value above yellowAgeAtLeast makes every age yellow.',
          example: 14,
        }),
      yellowIfDisabled: z.boolean().meta({ description: 'Disabled people are yellow.' }),
      yellowIfPregnant: z.boolean().meta({ description: 'Pregnant people are yellow.' }),
      redConditions: z
        .array(
          z
            .string()
            .min(1, 'must not be empty')
            .max(64)
            .refine(
              (c) => c === c.trim().toLowerCase(),
              'must be lower case without surrounding spaces (a person’s conditions are compared in lower case)',
            ),
        )
        .max(50)
        .meta({
          description: 'A person with one of these chronic conditions is red (lower case, as entered on intake).',
          example: ['hypertension', 'heart_disease'],
        }),
      redIfKeyAttention: z.boolean().meta({ description: 'People flagged "key attention" are red.' }),
    })
    .meta({
      description:
        'How a case is coloured on intake: red (focused attention) wins over yellow (elderly, children, ' +
        'disabled, pregnant), and green is everyone else. Red and yellow cases get rooms first.',
    }),
  severity: z
    .strictObject(
      Object.fromEntries(ALL_ESCALATION_KINDS.map((k) => [k, severityValue])) as Record<
        EscalationKind,
        typeof severityValue
      >,
    )
    .meta({
      description:
        'The severity (info, amber, red) of each kind of escalation: every kind must be listed. Severity decides ' +
        'what blocks release (release.blockingSeverities) and how the command centre sorts its work.',
    }),
  inspectionLeadMs: duration(
    'How long before the release date the home address inspection (single occupancy) is requested. ' +
      'Must be shorter than the stay.',
  ),
  arrivalDeadlineMs: duration(
    'After the person is sent (or the room assigned), how long until a missing arrival is escalated.',
  ),
  lateArrivalRepeatMs: duration(
    'While the person still has not arrived, the escalation is raised again this often.',
    1,
  ),
  roomRetry: retryBounds(
    'No free room (and no waiting list): how long to wait before looking for a room again. initialMs must not ' +
      'be above maxMs.',
  ),
  releaseBlockedEscalateAfterMs: duration(
    'How long release may wait on unmet criteria (results, inspection, open escalations) before the command ' +
      'centre is alerted.',
  ),
  taskRetry: retryBounds(
    'A failed outside task (sample order, inspection request, transport, check-out…) is tried again with a ' +
      'doubling wait between these bounds. initialMs must not be above maxMs. Absent: 1 min to 30 min, ' +
      'scaled to the policy day.',
  ).optional(),
  arrivalBackdateMaxMs: duration(
    'How far back an arrival time may be reported (late-night intake, paperwork later). Absent: one policy day.',
  ).optional(),
  clockSkewMs: duration(
    'How far in the future a reported time may be and still be accepted (device clocks drift). Real time, ' +
      'whatever the policy day. Absent: 5 minutes.',
  ).optional(),
  departureDeadlineMs: duration(
    'After the hospital vehicle is sent, how long until a missing departure is escalated. Absent: 2 hours, ' +
      'scaled to the policy day.',
  ).optional(),
  lateResultWindowMs: duration(
    'How long an ended case still takes late lab results and corrections. Absent: 7 policy days.',
  ).optional(),
  roomQueue: z
    .strictObject({
      recheckMs: duration(
        'A waiting case is woken when a room is handed to it; this is only a safety net: it also looks again ' +
          'this often.',
        1,
      ),
      colourFirst: z.boolean().meta({ description: 'Red and yellow cases get rooms before green ones.' }),
    })
    .optional()
    .meta({
      description:
        "The district's waiting list for rooms: a case without a room waits in line. Absent: recheck every " +
        '6 policy hours, colour first.',
    }),
  homeMonitoringDays: z
    .number()
    .int()
    .min(0)
    .max(30)
    .optional()
    .meta({
      description:
        'Days of home monitoring after release (e.g. 14 + 7): the case goes on in HOME_MONITORING, the ' +
        "street's community checks in daily (POST /cases/{caseNo}/home-check-ins), a day without a check-in " +
        'escalates to the community, a fever sends the person back through a transfer; it ends ' +
        'HOME_MONITORING_DONE. 0 or absent: the case ends at release.',
      example: 7,
    }),
};

/** A cross-field problem, with the dotted path of the field to change. */
export interface PolicyProblem {
  path: string;
  message: string;
}

/** The policy's parts `policyProblems` reads: a document, or a stored `Policy`. */
export type PolicyFields = Omit<Policy, 'version'>;

const dayLength = (p: PolicyFields): number => (p.clock.kind === 'compressed' ? p.clock.dayMs : DAY);

/** A duration for a message: "2 days", "90 min", "417 ms". */
export function formatMs(ms: number): string {
  const units: [number, string][] = [
    [DAY, 'days'],
    [HOUR, 'h'],
    [MIN, 'min'],
    [1000, 's'],
  ];
  for (const [size, unit] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit === 'days' && ms === DAY ? 'day' : unit}`;
  }
  return `${ms} ms`;
}

/** Offsets (ms from the start of a policy day) of the check times, sorted, the way schedule.ts places them. */
function checkOffsets(p: PolicyFields): { time: string; at: number }[] {
  const toMs = (hhmm: string) => {
    const minutes = Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
    return p.clock.kind === 'compressed' ? Math.round((minutes / 1440) * p.clock.dayMs) : minutes * MIN;
  };
  return p.checkTimes.map((time) => ({ time, at: toMs(time) })).sort((a, b) => a.at - b.at);
}

/**
 * The checks that compare fields with each other, on a policy whose fields are each valid.
 * Paths are dotted (`sampling.days.3`); empty when the policy holds together.
 */
export function policyProblems(p: PolicyFields): PolicyProblem[] {
  const out: PolicyProblem[] = [];
  const day = dayLength(p);
  const stayMs = p.stayDays * day;
  const stay = `the ${p.stayDays}-day stay`;

  p.sampling.days.forEach((d, i) => {
    if (d > p.stayDays) out.push({ path: `sampling.days.${i}`, message: `day ${d} is after ${stay}` });
  });

  const samplingDays = new Set(p.sampling.days.filter((d) => d <= p.stayDays)).size;
  if (p.release.requiredNegatives > samplingDays)
    out.push({
      path: 'release.requiredNegatives',
      message:
        `${p.release.requiredNegatives} negatives are required but only ${samplingDays} sampling ` +
        `day${samplingDays === 1 ? ' is' : 's are'} planned in the stay`,
    });

  if (p.release.minApartMs >= stayMs)
    out.push({
      path: 'release.minApartMs',
      message: `${formatMs(p.release.minApartMs)} is not shorter than ${stay} (${formatMs(stayMs)})`,
    });

  const slots = checkOffsets(p);
  const windowMs = p.checkWindowBeforeMs + p.checkWindowAfterMs;
  for (let i = 0; i < slots.length; i++) {
    const a = slots[i]!;
    const b = slots[(i + 1) % slots.length]!;
    const gap = i + 1 < slots.length ? b.at - a.at : day - a.at + b.at;
    if (windowMs >= gap) {
      const between =
        slots.length === 1
          ? `the daily check at ${a.time} repeats every ${formatMs(gap)}`
          : `checks ${a.time} and ${b.time} are ${formatMs(gap)} apart`;
      out.push({
        path: 'checkWindowAfterMs',
        message:
          `check windows overlap: ${formatMs(p.checkWindowBeforeMs)} before + ${formatMs(p.checkWindowAfterMs)} ` +
          `after is not shorter than the gap between checks (${between})`,
      });
      break;
    }
  }

  if (p.inspectionLeadMs >= stayMs)
    out.push({
      path: 'inspectionLeadMs',
      message: `${formatMs(p.inspectionLeadMs)} is not shorter than ${stay} (${formatMs(stayMs)})`,
    });

  for (const key of ['roomRetry', 'taskRetry'] as const) {
    const r = p[key];
    if (r && r.initialMs > r.maxMs)
      out.push({
        path: `${key}.initialMs`,
        message: `${formatMs(r.initialMs)} is above ${key}.maxMs (${formatMs(r.maxMs)})`,
      });
  }
  return out;
}

const toPath = (dotted: string): (string | number)[] => dotted.split('.').map((s) => (/^\d+$/.test(s) ? Number(s) : s));

export const PolicyDocument = z
  .strictObject(fields)
  .superRefine(
    (doc, ctx) => {
      for (const problem of policyProblems(doc))
        ctx.addIssue({ code: 'custom', path: toPath(problem.path), message: problem.message });
    },
    // Only on a document whose fields are each valid: a bad stayDays would otherwise also fail every
    // check measured against the stay.
    { when: (payload) => payload.issues.length === 0 },
  )
  .meta({
    id: 'PolicyDocument',
    description:
      'The rules a quarantine case is judged by: stay length, health-check times and windows, who is alerted ' +
      'when a check is missed, sampling days, release criteria, colour rules and escalation severities. Saving ' +
      'one makes a new version of the named policy (the server numbers it); cases keep the version they started ' +
      'under. Durations are whole milliseconds. Unknown fields (including "version") are refused.',
  });
export type PolicyDocumentInput = z.infer<typeof PolicyDocument>;

// ---- compile-time checks: a document plus a version is a Policy, and no Policy field is left out ----

const _isPolicy: (d: PolicyDocumentInput) => Policy = (d) => ({ ...d, version: 1 });
type Missing<A, B> = Exclude<keyof A, keyof B>;
type Doc = PolicyDocumentInput;
const _everyField: [
  | Missing<PolicyFields, Doc>
  | Missing<Policy['release'], Doc['release']>
  | Missing<Policy['colour'], Doc['colour']>
  | Missing<Policy['sampling'], Doc['sampling']>
  | Missing<NonNullable<Policy['roomQueue']>, NonNullable<Doc['roomQueue']>>
  | Missing<NonNullable<Policy['taskRetry']>, NonNullable<Doc['taskRetry']>>,
] extends [never]
  ? true
  : never = true;
void _isPolicy;
void _everyField;
