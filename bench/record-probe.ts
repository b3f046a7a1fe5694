import { recordCase } from '../src/activities';
import type { CaseRow, RecordCaseInput } from '../src/activities/types';
import { machineTicks, quantile } from '../scripts/drill-stats';
import { caseRowFixture } from '../test/support/case-row';
import { createTestDatabase } from '../test/support/db';

/**
 * The read-model write alone (`recordCase`, what every message costs a case), with no worker and
 * no Temporal: `cases` open cases on a fresh database of the real Postgres, then `rounds` health
 * checks for each (the row at the next version, one event, one check), `concurrency` at a time as
 * a busy worker's local activities run them. Prints the writes a second, the p50 and p99 of one
 * write, this process's CPU per write and the whole machine's (Postgres's share is most of the
 * rest), so two versions of the write compare on the same box.
 *
 *   node --import tsx bench/record-probe.ts [cases=500] [rounds=6] [concurrency=16]
 */
function row(caseNo: string, stateVersion: number): CaseRow {
  return caseRowFixture(caseNo, stateVersion, {
    phase: 'OBSERVATION',
    colour: 'green',
    hotelId: 'hotel-1',
    roomId: 'room-1',
    arrivedAt: '2024-03-01T02:00:00.000Z',
    stayStart: '2024-03-01T02:00:00.000Z',
    releaseDue: '2024-03-15T02:00:00.000Z',
    nextCheckDue: new Date(Date.UTC(2024, 2, 1, 8) + stateVersion * 43_200_000).toISOString(),
    inspectionStatus: 'passed',
  });
}

/** The machine's busy CPU time so far, in ms (0 where /proc/stat cannot be read). */
const machineBusyMs = (): number => (machineTicks()?.busy ?? 0) * 10;

function healthCheck(caseNo: string, v: number): RecordCaseInput {
  const at = new Date(Date.UTC(2024, 2, 1, 8) + v * 43_200_000).toISOString();
  return {
    row: row(caseNo, v),
    events: [
      {
        seq: v,
        actor: { id: 'key-nurse-1', role: 'medical', name: 'Ward 3 nurses' },
        kind: 'health_check',
        payload: { checkId: `slot-${v}`, temperatureC: 36.6 },
        at,
      },
    ],
    lastSeq: v,
    samples: [],
    checks: [
      {
        checkId: `slot-${v}`,
        dueAt: at,
        takenAt: at,
        temperatureC: 36.6,
        symptoms: [],
        by: { id: 'key-nurse-1', role: 'medical', name: 'Ward 3 nurses' },
      },
    ],
    escalations: [],
  };
}

async function main(): Promise<void> {
  const arg = (i: number, d: number): number => Number(process.argv[2 + i] ?? d);
  const [nCases, rounds, concurrency] = [arg(0, 500), arg(1, 6), arg(2, 16)];
  const tdb = await createTestDatabase('recordprobe');
  try {
    const caseNos = Array.from({ length: nCases }, (_, i) => `P${String(i).padStart(6, '0')}`);
    for (const c of caseNos)
      await recordCase(tdb.db, { row: row(c, 1), events: [], samples: [], checks: [], escalations: [] });
    for (let round = 0; round < rounds; round++) {
      const work = caseNos.map((c) => () => recordCase(tdb.db, healthCheck(c, round + 2)));
      const latencies: number[] = [];
      const cpu0 = process.cpuUsage();
      const busy0 = machineBusyMs();
      const t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < work.length) {
            const w = work[next++]!;
            const s = performance.now();
            if (!(await w())) throw new Error('a health check write was not the newest');
            latencies.push(performance.now() - s);
          }
        }),
      );
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const machine = machineBusyMs() - busy0;
      latencies.sort((a, b) => a - b);
      const q = (p: number) => quantile(latencies, p).toFixed(2);
      console.log(
        `round ${round}: ${work.length} writes in ${wall.toFixed(0)} ms, ${((work.length * 1000) / wall).toFixed(0)}/s; ` +
          `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms; this process ${(((cpu.user + cpu.system) / 1000 / work.length) * 1000).toFixed(0)} µs CPU a write, ` +
          `the machine ${((machine / work.length) * 1000).toFixed(0)} µs`,
      );
    }
  } finally {
    await tdb.drop();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
