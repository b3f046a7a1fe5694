import { keyedQueue } from '../../src/keyed-queue';

/** The in-process queue in front of the district's room allocation (src/integrations/hotel.ts). */
test('calls with one key run one at a time in the order they came; other keys run beside them; a failure does not stop the line', async () => {
  const run = keyedQueue();
  const log: string[] = [];
  let inA = 0;
  let mostInA = 0;
  const gate = () => new Promise<void>((r) => setTimeout(r, 5));
  const a = (n: number, fail = false) =>
    run('a', async () => {
      mostInA = Math.max(mostInA, ++inA);
      log.push(`a${n} start`);
      await gate();
      log.push(`a${n} end`);
      inA--;
      if (fail) throw new Error(`a${n} failed`);
      return n;
    });
  const b = run('b', async () => {
    log.push('b start');
    await gate();
    log.push('b end');
    return 'b';
  });
  const results = await Promise.allSettled([a(1), a(2, true), a(3), b]);
  expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
    1,
    'a2 failed',
    3,
    'b',
  ]);
  expect(mostInA).toBe(1);
  expect(log.filter((l) => l.startsWith('a'))).toEqual([
    'a1 start',
    'a1 end',
    'a2 start',
    'a2 end',
    'a3 start',
    'a3 end',
  ]);
  // b started while a1 ran, not after the a's.
  expect(log.indexOf('b start')).toBeLessThan(log.indexOf('a1 end'));
  // Nothing is left behind: a new call on the same key runs at once.
  expect(await run('a', async () => 'again')).toBe('again');
});

test('a call that never settles holds the others up only for holdMs (Postgres locks still order the real work)', async () => {
  const run = keyedQueue(50);
  const hung = run('a', () => new Promise<never>(() => undefined));
  let hungSettled = false;
  void hung.finally(() => (hungSettled = true));
  const next = await run('a', async () => 'next');
  expect(next).toBe('next');
  expect(hungSettled).toBe(false);
});
