/**
 * The bare baseline: the least a Temporal workflow can be. `benchEmpty` returns at once (what
 * an intake is measured against); `benchTarget` stays open, counts signals and answers an
 * update and a query (what lab results and health checks are measured against). No codec,
 * no activities, no read model: the cost of Temporal itself on this machine.
 */
import { condition, defineQuery, defineSignal, defineUpdate, setHandler } from '@temporalio/workflow';

export const bumpSignal = defineSignal<[{ id: string }]>('bump');
export const checkUpdate = defineUpdate<{ n: number }, [{ id: string; temperatureC: number }]>('check');
export const countsQuery = defineQuery<{ signals: number; updates: number }>('counts');
export const finishSignal = defineSignal('finish');

export async function benchEmpty(): Promise<void> {
  // nothing: a start, one workflow task, done
}

export async function benchTarget(): Promise<void> {
  let signals = 0;
  let updates = 0;
  let done = false;
  setHandler(bumpSignal, () => {
    signals++;
  });
  setHandler(checkUpdate, () => ({ n: ++updates }));
  setHandler(countsQuery, () => ({ signals, updates }));
  setHandler(finishSignal, () => {
    done = true;
  });
  await condition(() => done);
}
