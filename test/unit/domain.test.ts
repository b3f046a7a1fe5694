import { classifyColour } from '../../src/domain/colour';
import { drillPolicy, standardPolicy } from '../../src/domain/policy';
import { unmetReleaseCriteria } from '../../src/domain/release';
import {
  ageOn,
  clockAt,
  dayStart,
  nextCheckSlot,
  releaseDueAt,
  samplingPlan,
  zoneOffsetMs,
} from '../../src/domain/schedule';
import { maskName, type Escalation, type Sample } from '../../src/domain/types';

const std = standardPolicy('Asia/Shanghai');
const on = Date.parse('2022-03-10T00:00:00Z');
const base = { name: 'x', idNumber: 'x', phone: 'x', birthDate: '1980-05-01' };

describe('colour classification', () => {
  test.each([
    [{ ...base }, 'green'],
    [{ ...base, birthDate: '1957-03-10' }, 'yellow'], // 65 today
    [{ ...base, birthDate: '1957-03-11' }, 'green'], // 64 until tomorrow
    [{ ...base, birthDate: '2008-03-11' }, 'yellow'], // 13
    [{ ...base, birthDate: '2008-03-10' }, 'green'], // 14 today
    [{ ...base, disabled: true }, 'yellow'],
    [{ ...base, pregnant: true }, 'yellow'],
    [{ ...base, chronicConditions: ['Hypertension'] }, 'red'],
    [{ ...base, chronicConditions: ['diabetes'] }, 'green'],
    [{ ...base, keyAttention: true }, 'red'],
    [{ ...base, birthDate: '1940-01-01', chronicConditions: ['heart_disease'] }, 'red'],
  ])('%o → %s', (person, colour) => {
    expect(classifyColour(person, std, on).colour).toBe(colour);
  });

  test('reasons are codes, and red keeps the yellow reasons too', () => {
    const d = classifyColour({ ...base, birthDate: '1940-01-01', chronicConditions: ['heart_disease'] }, std, on);
    expect(d.reasons).toEqual(['condition:heart_disease', 'age>=65']);
  });
});

describe('schedule maths', () => {
  // 2022-03-10 21:30 in Shanghai (UTC+8) = 13:30Z
  const arrival = Date.parse('2022-03-10T13:30:00Z');

  test('calendar days start at local midnight in the policy time zone', () => {
    expect(zoneOffsetMs('Asia/Shanghai', arrival)).toBe(8 * 3600_000);
    expect(new Date(dayStart(std, arrival, 1)).toISOString()).toBe('2022-03-09T16:00:00.000Z');
    expect(new Date(dayStart(std, arrival, 2)).toISOString()).toBe('2022-03-10T16:00:00.000Z');
  });

  test('checks at 08:00 and 16:00 local; the first after a late arrival is next morning', () => {
    const release = releaseDueAt(std, arrival);
    const first = nextCheckSlot(std, arrival, arrival, release)!;
    expect(new Date(first).toISOString()).toBe('2022-03-11T00:00:00.000Z'); // 08:00 Shanghai
    const second = nextCheckSlot(std, arrival, first + 1, release)!;
    expect(new Date(second).toISOString()).toBe('2022-03-11T08:00:00.000Z'); // 16:00 Shanghai
    expect(nextCheckSlot(std, arrival, release, release)).toBeUndefined();
  });

  test('release is due stay days after arrival, moved by extensions', () => {
    expect(releaseDueAt(std, arrival) - arrival).toBe(14 * 86_400_000);
    expect(releaseDueAt(std, arrival, 2) - arrival).toBe(16 * 86_400_000);
    expect(releaseDueAt(std, arrival, -7) - arrival).toBe(7 * 86_400_000);
  });

  test('sampling days 1, 4, 7, 13 at 09:00; a day-1 time already past is taken at arrival', () => {
    const plan = samplingPlan(std, arrival, releaseDueAt(std, arrival));
    expect(plan.map((p) => p.day)).toEqual([1, 4, 7, 13]);
    expect(plan[0]!.dueAt).toBe(arrival);
    expect(new Date(plan[1]!.dueAt).toISOString()).toBe('2022-03-13T01:00:00.000Z');
  });

  test('a drill day scales every clock time', () => {
    const drill = drillPolicy(24_000); // one hour = 1 s
    expect(clockAt(drill, 1000, '08:00')).toBe(1000 + 8000);
    expect(releaseDueAt(drill, 0)).toBe(14 * 24_000);
    expect(drill.release.minApartMs).toBe(24_000);
    expect(drill.checkWindowAfterMs).toBe(1000);
  });

  test('age on a date', () => {
    expect(ageOn('2000-02-29', Date.parse('2022-02-28T00:00:00Z'))).toBe(21);
    expect(ageOn('2000-02-29', Date.parse('2022-03-01T00:00:00Z'))).toBe(22);
  });
});

describe('release criteria', () => {
  const day = 86_400_000;
  const t0 = Date.parse('2022-03-01T00:00:00Z');
  const sample = (n: number, at: number, result: Sample['result']): Sample => ({
    sampleId: `S${n}`,
    type: 'PCR',
    reason: 'scheduled',
    dueAt: new Date(at).toISOString(),
    orderedAt: new Date(at).toISOString(),
    result,
  });
  const good = {
    now: t0 + 14 * day,
    releaseDue: t0 + 14 * day,
    samples: [sample(1, t0, 'negative'), sample(2, t0 + 7 * day, 'negative'), sample(3, t0 + 13 * day, 'negative')],
    escalations: [] as Escalation[],
    inspection: 'passed' as const,
  };

  test('all criteria hold', () => {
    expect(unmetReleaseCriteria(std, good)).toEqual([]);
  });

  test('each criterion, alone', () => {
    expect(unmetReleaseCriteria(std, { ...good, now: good.releaseDue - 1 })).toEqual(['end_date_not_reached']);
    expect(unmetReleaseCriteria(std, { ...good, inspection: 'failed' })).toEqual(['address_not_approved']);
    expect(
      unmetReleaseCriteria(std, { ...good, samples: [...good.samples, sample(4, t0 + 13.5 * day, 'pending')] }),
    ).toEqual(['result_pending']);
    expect(
      unmetReleaseCriteria(std, {
        ...good,
        samples: [sample(1, t0, 'negative'), sample(2, t0 + 0.5 * day, 'negative')],
      }),
    ).toEqual(['negatives_too_close']);
    expect(unmetReleaseCriteria(std, { ...good, samples: [sample(1, t0, 'negative')] })).toEqual([
      'not_enough_negatives',
    ]);
    const red: Escalation = {
      id: 'E1',
      kind: 'fever',
      level: 'doctor',
      severity: 'red',
      reason: 'x',
      status: 'open',
      openedAt: '',
    };
    expect(unmetReleaseCriteria(std, { ...good, escalations: [red] })).toEqual(['open_blocking_escalation']);
    expect(unmetReleaseCriteria(std, { ...good, escalations: [{ ...red, severity: 'amber' }] })).toEqual([]);
  });

  test('a positive anywhere blocks, and the last two must be negative', () => {
    const samples = [
      sample(1, t0, 'negative'),
      sample(2, t0 + 7 * day, 'positive'),
      sample(3, t0 + 13 * day, 'negative'),
    ];
    expect(unmetReleaseCriteria(std, { ...good, samples })).toEqual(['positive_result', 'not_enough_negatives']);
  });

  test('an extra negative a few hours after the last scheduled one does not spoil the pair', () => {
    const samples = [...good.samples, { ...sample(4, t0 + 13.3 * day, 'negative'), reason: 'fever' as const }];
    expect(unmetReleaseCriteria(std, { ...good, now: t0 + 14 * day, samples })).toEqual([]);
  });

  test('two negatives too close with nothing earlier: too close, not too few', () => {
    const samples = [sample(1, t0, 'negative'), sample(2, t0 + 0.2 * day, 'negative')];
    expect(unmetReleaseCriteria(std, { ...good, samples })).toEqual(['negatives_too_close']);
  });

  test('planned samples not yet taken neither count nor block', () => {
    const planned: Sample = {
      sampleId: 'P',
      type: 'PCR',
      reason: 'scheduled',
      dueAt: new Date(t0).toISOString(),
      result: 'pending',
    };
    expect(unmetReleaseCriteria(std, { ...good, samples: [...good.samples, planned] })).toEqual([]);
  });
});

test('names are masked for the dashboard', () => {
  expect(maskName('张三丰')).toBe('张*丰');
  expect(maskName('李四')).toBe('李*');
  expect(maskName('Jane Doe')).toBe('J******e');
  expect(maskName('X')).toBe('*');
});
