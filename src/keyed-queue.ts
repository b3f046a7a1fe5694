/**
 * Runs calls with the same key one after another, in the order they came (calls with other keys
 * run beside them). In-process only: across processes Postgres's locks still decide, so this
 * only spaces calls out, and a call that has not settled after `holdMs` (a connection hung
 * where no timeout reaches it) stops holding the others up.
 */
export function keyedQueue(holdMs = 15_000): <T>(key: string, fn: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<void>>();
  return async (key, fn) => {
    const before = tails.get(key);
    let done!: () => void;
    const tail = new Promise<void>((resolve) => (done = resolve));
    const mine = before ? before.then(() => tail) : tail;
    tails.set(key, mine);
    let hold: NodeJS.Timeout | undefined;
    try {
      if (before) await before;
      hold = setTimeout(done, holdMs);
      hold.unref();
      return await fn();
    } finally {
      clearTimeout(hold);
      done();
      if (tails.get(key) === mine) tails.delete(key);
    }
  };
}
