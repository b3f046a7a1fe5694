import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { createLogger } from '../../src/log';
import {
  defaultDrillOptions,
  runDrill,
  startDrillSystem,
  type DrillOptions,
  type DrillSystem,
} from '../../scripts/drill';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { testNamespace, testTemporalAddress, uniqueQueue } from '../support/temporal';

/**
 * A small drill: a couple of dozen people through the whole system (API, worker, simulators
 * calling back) with a day of a few seconds. The drill itself checks the invariants; here we
 * also want real outcomes, not an empty run that trivially holds them.
 */
const options: DrillOptions = {
  ...defaultDrillOptions,
  people: 24,
  daySeconds: 4,
  arrivalDays: 0.5,
  positiveRate: 0.03,
  failShare: 0.2,
  missRate: 0.05,
  feverRate: 0.01,
  graceDays: 10,
  concurrency: 8,
  seed: 7,
};

describe('drill', () => {
  let database: TestDatabase;
  let sys: DrillSystem;
  let dataDir: string;

  beforeAll(async () => {
    database = await createTestDatabase('drill');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shaodian-drill-test-'));
    sys = await startDrillSystem(
      options,
      {
        DATA_DIR: dataDir,
        // Postgres when the suite has one; else the runtime's own embedded database in DATA_DIR.
        DATABASE_URL: database.url ?? '',
        TEMPORAL_ADDRESS: testTemporalAddress(),
        TEMPORAL_NAMESPACE: testNamespace(),
        TEMPORAL_TASK_QUEUE: uniqueQueue('drill'),
        LOG_LEVEL: 'silent',
      },
      createLogger('silent'),
      // As `npm run drill` runs it: the worker in a process of its own (scripts/drill-worker.ts).
      { workerProcess: !!database.url },
    );
  }, 120_000);

  afterAll(async () => {
    await sys?.stop();
    await database?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs a wave to the end and every invariant holds', async () => {
    const lines: string[] = [];
    const report = await runDrill(sys, options, (m) => lines.push(m));
    const context = `${JSON.stringify(report, null, 2)}\n${lines.join('\n')}`;

    // One comparison, so that whatever fails prints the drill's whole report and log with it.
    const failedInspections = report.escalationsByKind.failed_inspection ?? 0;
    const outcome = {
      violations: report.violations,
      everyoneFiled: report.filed === options.people,
      someoneReleased: report.released > 0,
      everyCaseAccountedFor:
        report.released + report.hospitalTransfers + report.cancelled + report.stillRunning === options.people,
      // Every home that failed its inspection was handled by the supervisor, and it shows.
      someInspectionFailed: failedInspections > 0,
      // (One the case closed before the supervisor acted on, or saw, needs no new address.)
      // Acted on by the supervisor, every one: changed, or refused because the case had closed, or
      // not confirmed by an API at its limit (logged by the drill).
      everyFailedHomeReplaced:
        report.failedInspectionsSeen > 0 &&
        report.addressChanged + report.addressRefused + report.addressUnanswered === report.failedInspectionsSeen,
      checksRecorded: report.checks.recorded > options.people * 10,
      roomsOccupied: report.peakOccupancy.rooms > 0,
      totalRooms: report.peakOccupancy.totalRooms,
      // Every ended case's read model was compared with its workflow at the same version; only a
      // case still running may have moved too fast to catch (a busy machine).
      trailingOnlyWhileRunning: report.readModelTrailing <= report.stillRunning,
      everyCaseCompared: report.readModelCompared + report.readModelTrailing === options.people,
      // With the worker apart, its process's CPU is counted under its own name each day.
      workerCounted: !sys.workerPid || report.days.every((d) => !d.cpu.byProcess || 'worker' in d.cpu.byProcess),
    };
    // When something is off, the drill's own summary first: CI shows the start of a failure, and
    // the whole report below is long.
    if (Object.values(outcome).some((v) => v === false) || report.violations.length)
      console.log(
        `drill summary: released ${report.released}, hospital ${report.hospitalTransfers}, cancelled ${report.cancelled}, ` +
          `still running ${report.stillRunning} ${JSON.stringify(report.held)}, wall ${report.wallSeconds} s\n` +
          lines
            .filter((l) => /^day |deadline|nothing moved|violat/.test(l))
            .slice(-20)
            .join('\n'),
      );
    expect({ outcome, context }).toEqual({
      outcome: {
        violations: [],
        everyoneFiled: true,
        someoneReleased: true,
        everyCaseAccountedFor: true,
        someInspectionFailed: true,
        everyFailedHomeReplaced: true,
        checksRecorded: true,
        roomsOccupied: true,
        totalRooms: 1583,
        trailingOnlyWhileRunning: true,
        everyCaseCompared: true,
        workerCounted: true,
      },
      context,
    });
  }, 600_000);
});
