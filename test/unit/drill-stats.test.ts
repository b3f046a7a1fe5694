/**
 * The drill's per-day CPU split (scripts/drill-stats.ts): this process counts as `drill`, and the
 * CPU it burns shows there, not under the server's or Postgres's names.
 */
import { formatDay, processTicks } from '../../scripts/drill-stats';

test('CPU this process burns is counted under drill', () => {
  const before = processTicks()!;
  expect(before.get('drill')).toBeGreaterThan(0);
  const until = Date.now() + 400;
  let x = 0;
  while (Date.now() < until) x += Math.sqrt(x + 1);
  expect(x).toBeGreaterThan(0);
  const after = processTicks()!;
  // 400 ms of one core is 40 ticks; a loaded machine may give this process less of it.
  expect(after.get('drill')! - before.get('drill')!).toBeGreaterThanOrEqual(10);
  for (const g of after.keys()) expect(['temporal', 'postgres', 'drill', 'other']).toContain(g);
});

test('a process named by pid is counted under its name, not under drill', () => {
  const named = new Map([[process.pid, 'worker']]);
  const before = processTicks(named)!;
  const until = Date.now() + 400;
  let x = 0;
  while (Date.now() < until) x += Math.sqrt(x + 1);
  expect(x).toBeGreaterThan(0);
  const after = processTicks(named)!;
  expect(after.get('worker')! - before.get('worker')!).toBeGreaterThanOrEqual(10);
  expect(after.has('drill')).toBe(false);
});

test('a day line names each group of processes', () => {
  const line = formatDay({
    day: 3,
    routes: {},
    cpu: { machinePct: 97, processPct: 30, byProcess: { temporal: 45, postgres: 12, drill: 30, other: 10 } },
  });
  expect(line).toBe('day 3: CPU machine 97% (temporal 45%, postgres 12%, drill 30%, other 10%); no API calls');
});
