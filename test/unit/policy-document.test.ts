import { drillPolicy, standardPolicy, type Policy } from '../../src/domain/policy';
import {
  ALL_ESCALATION_KINDS,
  ALL_ESCALATION_LEVELS,
  ALL_SEVERITIES,
  PolicyDocument,
  formatMs,
  policyProblems,
  type PolicyDocumentInput,
} from '../../src/domain/policy-document';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A built-in policy as a client would send it: everything but the version. */
function doc(p: Policy): PolicyDocumentInput {
  const { version: _version, ...rest } = p;
  return rest;
}
const std = () => doc(standardPolicy('Asia/Shanghai'));
const drill = () => doc(drillPolicy(10_000));

/** The field errors the API would report: one per issue, one per unknown key (as src/api/problem.ts does). */
function errors(input: unknown): { path: string; message: string }[] {
  const r = PolicyDocument.safeParse(input);
  if (r.success) return [];
  return r.error.issues.flatMap((i) => {
    const base = i.path.map(String);
    if (i.code === 'unrecognized_keys')
      return i.keys.map((k) => ({ path: [...base, k].join('.'), message: 'unknown field' }));
    return [{ path: base.join('.'), message: i.message }];
  });
}
const paths = (input: unknown) => errors(input).map((e) => e.path);

describe('PolicyDocument: the built-in policies', () => {
  test('the standard policy parses cleanly and unchanged', () => {
    const r = PolicyDocument.safeParse(std());
    expect(r.success && r.data).toEqual(std());
  });

  test('the drill policy parses cleanly and unchanged', () => {
    const r = PolicyDocument.safeParse(drill());
    expect(r.success && r.data).toEqual(drill());
  });

  test.each([1000, 60_000, DAY])('a drill with a %i ms day parses cleanly', (dayMs) => {
    expect(errors(doc(drillPolicy(dayMs)))).toEqual([]);
  });

  test('the optional fields may be left out', () => {
    const {
      taskRetry: _a,
      arrivalBackdateMaxMs: _b,
      clockSkewMs: _c,
      departureDeadlineMs: _d,
      lateResultWindowMs: _e,
      roomQueue: _f,
      homeMonitoringDays: _g,
      ...required
    } = std();
    const { afebrileCheckWithinMs: _h, ...release } = required.release;
    expect(errors({ ...required, release })).toEqual([]);
  });

  test('the closed lists are complete', () => {
    expect([...ALL_ESCALATION_KINDS].sort()).toEqual(Object.keys(std().severity).sort());
    expect(ALL_ESCALATION_LEVELS).toEqual([
      'reminder',
      'nurse',
      'point_leader',
      'doctor',
      'command_centre',
      'community',
    ]);
    expect(ALL_SEVERITIES).toEqual(['info', 'amber', 'red']);
  });
});

describe('PolicyDocument: field errors', () => {
  test('an unknown top-level field, the version included, is refused by name', () => {
    expect(errors({ ...std(), version: 2 })).toEqual([{ path: 'version', message: 'unknown field' }]);
    expect(errors({ ...std(), stayDay: 14 })).toEqual([{ path: 'stayDay', message: 'unknown field' }]);
  });

  test('an unknown severity value', () => {
    const p = std();
    expect(errors({ ...p, severity: { ...p.severity, fever: 'critical' } })).toEqual([
      { path: 'severity.fever', message: 'must be info, amber or red' },
    ]);
  });

  test('a missing severity kind', () => {
    const { late_result: _gone, ...severity } = std().severity;
    expect(errors({ ...std(), severity })).toEqual([
      { path: 'severity.late_result', message: 'required: every escalation kind needs a severity' },
    ]);
  });

  test('an unknown severity kind', () => {
    const p = std();
    expect(errors({ ...p, severity: { ...p.severity, fire: 'red' } })).toEqual([
      { path: 'severity.fire', message: 'unknown field' },
    ]);
  });

  test.each(['8:00', '24:00', '12:60', '12:00 '])('check time %j is not HH:MM', (t) => {
    expect(errors({ ...std(), checkTimes: ['08:00', t] })).toEqual([
      { path: 'checkTimes.1', message: 'must be HH:MM' },
    ]);
  });

  test('a repeated check time, and no check times at all', () => {
    expect(paths({ ...std(), checkTimes: ['08:00', '08:00'] })).toEqual(['checkTimes']);
    expect(errors({ ...std(), checkTimes: [] })).toEqual([
      { path: 'checkTimes', message: 'at least one check time is required' },
    ]);
  });

  test('an invalid time zone', () => {
    expect(errors({ ...std(), clock: { kind: 'calendar', timeZone: 'Asia/Atlantis' } })).toEqual([
      { path: 'clock.timeZone', message: 'not a known time zone (use an IANA name such as Asia/Shanghai)' },
    ]);
  });

  test('a compressed day out of bounds, and an unknown clock kind', () => {
    expect(paths({ ...drill(), clock: { kind: 'compressed', dayMs: 999 } })).toEqual(['clock.dayMs']);
    expect(paths({ ...drill(), clock: { kind: 'compressed', dayMs: DAY + 1 } })).toEqual(['clock.dayMs']);
    expect(paths({ ...std(), clock: { kind: 'lunar' } })).toEqual(['clock.kind']);
  });

  test('durations are whole, non-negative and bounded', () => {
    expect(errors({ ...std(), arrivalDeadlineMs: -1 })).toEqual([
      { path: 'arrivalDeadlineMs', message: 'must not be negative' },
    ]);
    expect(errors({ ...std(), inspectionLeadMs: 1.5 })).toEqual([
      { path: 'inspectionLeadMs', message: 'must be a whole number of milliseconds' },
    ]);
    expect(errors({ ...std(), lateResultWindowMs: 401 * DAY })).toEqual([
      { path: 'lateResultWindowMs', message: 'must be at most 400 days' },
    ]);
  });

  test('a retry or repeat interval of 0 would spin, so it must be at least 1 ms', () => {
    expect(paths({ ...std(), lateArrivalRepeatMs: 0 })).toEqual(['lateArrivalRepeatMs']);
    expect(paths({ ...std(), roomRetry: { initialMs: 0, maxMs: 0 } })).toEqual([
      'roomRetry.initialMs',
      'roomRetry.maxMs',
    ]);
    expect(paths({ ...std(), roomQueue: { recheckMs: 0, colourFirst: true } })).toEqual(['roomQueue.recheckMs']);
  });

  test('missed-check steps: known levels, afterMs not going down', () => {
    expect(errors({ ...std(), missedCheckSteps: [{ level: 'mayor', afterMs: 0 }] })).toEqual([
      {
        path: 'missedCheckSteps.0.level',
        message: 'must be one of reminder, nurse, point_leader, doctor, command_centre, community',
      },
    ]);
    expect(
      errors({
        ...std(),
        missedCheckSteps: [
          { level: 'nurse', afterMs: HOUR },
          { level: 'doctor', afterMs: HOUR },
          { level: 'command_centre', afterMs: 0 },
        ],
      }),
    ).toEqual([
      { path: 'missedCheckSteps.2.afterMs', message: 'must not be earlier than the step before it (3600000 ms)' },
    ]);
    expect(errors({ ...std(), missedCheckSteps: [] })).toEqual([]);
  });

  test('an unknown blocking severity', () => {
    const p = std();
    expect(errors({ ...p, release: { ...p.release, blockingSeverities: ['red', 'black'] } })).toEqual([
      { path: 'release.blockingSeverities.1', message: 'must be info, amber or red' },
    ]);
  });

  test('the other bounds', () => {
    const p = std();
    expect(paths({ ...p, name: 'standard v2' })).toEqual(['name']);
    expect(paths({ ...p, name: 'x'.repeat(65) })).toEqual(['name']);
    expect(paths({ ...p, stayDays: 61 })).toEqual(['stayDays']);
    expect(paths({ ...p, homeMonitoringDays: 31 })).toEqual(['homeMonitoringDays']);
    expect(paths({ ...p, feverThresholdC: 41 })).toEqual(['feverThresholdC']);
    expect(paths({ ...p, sampling: { ...p.sampling, days: [0, 4, 4] } })).toEqual(['sampling.days.0', 'sampling.days']);
    expect(paths({ ...p, sampling: { ...p.sampling, type: '', time: '9:00' } })).toEqual([
      'sampling.type',
      'sampling.time',
    ]);
    expect(paths({ ...p, extraSampleType: ' PCR' })).toEqual(['extraSampleType']);
    expect(paths({ ...p, release: { ...p.release, requiredNegatives: 6 } })).toEqual(['release.requiredNegatives']);
    expect(paths({ ...p, colour: { ...p.colour, yellowAgeAtLeast: 151 } })).toEqual(['colour.yellowAgeAtLeast']);
  });

  test('a red condition colour.ts could never match (it compares lower case) is refused', () => {
    const p = std();
    expect(paths({ ...p, colour: { ...p.colour, redConditions: ['Hypertension', 'diabetes '] } })).toEqual([
      'colour.redConditions.0',
      'colour.redConditions.1',
    ]);
  });

  test('yellowAgeBelow above yellowAgeAtLeast is allowed: two separate rules', () => {
    const p = std();
    expect(errors({ ...p, colour: { ...p.colour, yellowAgeAtLeast: 10, yellowAgeBelow: 20 } })).toEqual([]);
  });

  test('cross-field checks wait until every field is valid', () => {
    // stayDays 0 alone is reported, not every check measured against the stay as well.
    expect(paths({ ...std(), stayDays: 0 })).toEqual(['stayDays']);
  });
});

describe('PolicyDocument: cross-field checks (calendar days)', () => {
  test('a sampling day after the stay', () => {
    const p = std();
    expect(errors({ ...p, sampling: { ...p.sampling, days: [1, 4, 7, 13, 15] } })).toEqual([
      { path: 'sampling.days.4', message: 'day 15 is after the 14-day stay' },
    ]);
    // The last day of the stay is still in it.
    expect(errors({ ...p, sampling: { ...p.sampling, days: [1, 14] } })).toEqual([]);
  });

  test('release.minApartMs as long as the stay', () => {
    const p = std();
    expect(errors({ ...p, release: { ...p.release, minApartMs: 14 * DAY } })).toEqual([
      { path: 'release.minApartMs', message: '14 days is not shorter than the 14-day stay (14 days)' },
    ]);
    expect(errors({ ...p, release: { ...p.release, minApartMs: 14 * DAY - 1 } })).toEqual([]);
  });

  test('more required negatives than sampling days', () => {
    const p = std();
    expect(errors({ ...p, release: { ...p.release, requiredNegatives: 5 } })).toEqual([
      {
        path: 'release.requiredNegatives',
        message: '5 negatives are required but only 4 sampling days are planned in the stay',
      },
    ]);
  });

  test('overlapping check windows', () => {
    // 08:00 and 16:00 are 8 h apart: 1 h before + 7 h after reaches the next window.
    expect(errors({ ...std(), checkWindowAfterMs: 7 * HOUR })).toEqual([
      {
        path: 'checkWindowAfterMs',
        message:
          'check windows overlap: 1 h before + 7 h after is not shorter than the gap between checks ' +
          '(checks 08:00 and 16:00 are 8 h apart)',
      },
    ]);
    expect(errors({ ...std(), checkWindowAfterMs: 7 * HOUR - 1 })).toEqual([]);
  });

  test('overlapping check windows across midnight', () => {
    // 06:00 and 22:00: 16 h apart by day, but 8 h from 22:00 to the next morning.
    expect(paths({ ...std(), checkTimes: ['22:00', '06:00'], checkWindowAfterMs: 7 * HOUR })).toEqual([
      'checkWindowAfterMs',
    ]);
    expect(
      errors({ ...std(), checkTimes: ['12:00'], checkWindowBeforeMs: 12 * HOUR, checkWindowAfterMs: 12 * HOUR }),
    ).toEqual([
      {
        path: 'checkWindowAfterMs',
        message:
          'check windows overlap: 12 h before + 12 h after is not shorter than the gap between checks ' +
          '(the daily check at 12:00 repeats every 1 day)',
      },
    ]);
  });

  test('an inspection lead as long as the stay', () => {
    expect(paths({ ...std(), inspectionLeadMs: 14 * DAY })).toEqual(['inspectionLeadMs']);
  });

  test('retry bounds the wrong way round', () => {
    expect(errors({ ...std(), roomRetry: { initialMs: HOUR, maxMs: 60_000 } })).toEqual([
      { path: 'roomRetry.initialMs', message: '1 h is above roomRetry.maxMs (1 min)' },
    ]);
    expect(paths({ ...std(), taskRetry: { initialMs: 2, maxMs: 1 } })).toEqual(['taskRetry.initialMs']);
  });

  test('several problems are all reported', () => {
    const p = std();
    expect(
      paths({
        ...p,
        sampling: { ...p.sampling, days: [20] },
        release: { ...p.release, minApartMs: 20 * DAY },
        inspectionLeadMs: 20 * DAY,
      }),
    ).toEqual(['sampling.days.0', 'release.requiredNegatives', 'release.minApartMs', 'inspectionLeadMs']);
  });
});

describe('PolicyDocument: cross-field checks on a compressed clock scale with its day', () => {
  // drillPolicy(10_000): a day is 10 s, the stay 140 s; 08:00 and 16:00 are 3334 ms apart (rounded as
  // schedule.ts places them).
  test('release.minApartMs longer than a drill stay, which a calendar stay allows', () => {
    const p = drill();
    const release = { ...p.release, minApartMs: 150_000 };
    expect(errors({ ...p, release })).toEqual([
      { path: 'release.minApartMs', message: '150 s is not shorter than the 14-day stay (140 s)' },
    ]);
    expect(errors({ ...std(), release })).toEqual([]);
  });

  test('overlapping check windows on a drill day, which a calendar day allows', () => {
    const p = drill();
    expect(p.checkWindowBeforeMs).toBe(417);
    expect(errors({ ...p, checkWindowAfterMs: 3000 })).toEqual([
      {
        path: 'checkWindowAfterMs',
        message:
          'check windows overlap: 417 ms before + 3 s after is not shorter than the gap between checks ' +
          '(checks 08:00 and 16:00 are 3334 ms apart)',
      },
    ]);
    expect(errors({ ...p, checkWindowAfterMs: 2900 })).toEqual([]);
    expect(errors({ ...std(), checkWindowAfterMs: 3000 })).toEqual([]);
  });

  test('a sampling day after a drill stay, and an inspection lead as long as it', () => {
    const p = drill();
    expect(paths({ ...p, stayDays: 7, inspectionLeadMs: 70_000 })).toEqual(['sampling.days.3', 'inspectionLeadMs']);
  });
});

describe('policyProblems', () => {
  test('the built-in policies have none', () => {
    expect(policyProblems(standardPolicy())).toEqual([]);
    expect(policyProblems(drillPolicy(1000))).toEqual([]);
  });

  test('it is what the schema reports for a document with valid fields', () => {
    const p = { ...std(), inspectionLeadMs: 15 * DAY };
    expect(policyProblems(p)).toEqual(errors(p));
  });
});

test('formatMs', () => {
  expect([DAY, 2 * DAY, 90 * 60_000, 1000, 1500, 0].map(formatMs)).toEqual([
    '1 day',
    '2 days',
    '90 min',
    '1 s',
    '1500 ms',
    '0 ms',
  ]);
});
