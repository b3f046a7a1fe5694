/**
 * What must always hold for a case, checked after every decision (docs/ARCHITECTURE.md
 * "Invariants"). Written apart from the decider and more simply than it, so that one checks
 * the other: the property tests run these over generated event sequences, and the workflow
 * runs the release check before it lets anyone go.
 */
import { withCaseDefaults, type Policy } from '../policy';
import { TERMINAL_PHASES } from '../types';
import { CLOSE_REASONS, CLOSING_CANCEL_REASON } from './rules';
import type { CaseSample, CaseState } from './model';

const ms = (s: string): number => Date.parse(s);
const resulted = (x: CaseSample) => x.status === 'resulted' || x.status === 'corrected';

/**
 * Why releasing this case now would be wrong; empty when release is safe. Independent of
 * rules.ts: it asks whether N negatives of the policy's type, taken at least minApart apart, exist
 * with nothing positive, pending or planned — not how the decider chains them.
 */
export function releaseViolations(policy: Policy, s: CaseState, now: number): string[] {
  // Judged by the rules the case runs under: a directive's, once one reached it.
  const p = withCaseDefaults(s.policy ?? policy);
  const out: string[] = [];
  if (!s.releaseDue || now < ms(s.releaseDue)) out.push('end date not reached');
  if (s.samples.some((x) => x.status === 'ordered')) out.push('a result is pending');
  if (s.samples.some((x) => x.status === 'planned')) out.push('a planned sample was not taken');
  if (s.samples.some((x) => resulted(x) && x.result === 'positive')) out.push('a positive result');
  const negatives = s.samples
    .filter((x) => resulted(x) && x.type === p.sampling.type && x.result === 'negative')
    .map((x) => ms(x.order!.takenAt))
    .sort((a, b) => b - a);
  // Greedy from the latest is optimal for "N points pairwise at least minApart apart".
  let count = 0;
  let last = Infinity;
  for (const t of negatives) {
    if (last - t >= p.release.minApartMs) {
      count++;
      last = t;
    }
  }
  if (count < p.release.requiredNegatives) out.push(`only ${count} negatives far enough apart`);
  const latest = s.samples
    .filter((x) => resulted(x) && x.type === p.sampling.type)
    .sort((a, b) => ms(b.order!.takenAt) - ms(a.order!.takenAt))[0];
  if (p.release.requiredNegatives > 0 && latest?.result !== 'negative') out.push('the latest sample is not negative');
  if (s.escalations.some((e) => e.status !== 'closed' && p.release.blockingSeverities.includes(e.severity)))
    out.push('an unresolved blocking escalation');
  if (s.inspection.status !== 'passed') out.push('the address is not approved');
  if (s.inspection.inspectionId !== `${s.caseNo}-I${s.inspection.round}`) out.push('the inspection is not current');
  const within = p.release.afebrileCheckWithinMs ?? 0;
  if (within > 0) {
    // The latest measured temperature, and only that: no fever (as judged when taken), recent enough.
    // (Two at the same instant: the one recorded last.)
    const measured = s.checks.filter((c) => c.temperatureC !== undefined);
    const latest = measured.reduce<(typeof measured)[number] | undefined>(
      (a, c) => (!a || ms(c.takenAt) >= ms(a.takenAt) ? c : a),
      undefined,
    );
    if (!latest || latest.fever || now - ms(latest.takenAt) > within)
      out.push('no recent temperature below the fever threshold');
  }
  return out;
}

/** Everything that must hold of one state, and of the step from `prev` to `next`. */
export function invariantViolations(
  policy: Policy,
  prev: CaseState | undefined,
  next: CaseState,
  now: number,
  opts: { foldMissedChecks?: boolean; slotsByEventTime?: boolean } = {},
): string[] {
  const out: string[] = [];
  const v = (cond: boolean, msg: string) => {
    if (!cond) out.push(msg);
  };

  // Released only when every criterion held at the moment of release.
  if (next.closing?.target === 'RELEASED' && prev && prev.closing?.target !== 'RELEASED') {
    // Judged on the state at the moment of release: closing then cancels what was still planned.
    // (A sample the same step cancelled for another reason, a directive's rules that no longer
    // want it, was not required at release.)
    const wasPlanned = new Set(prev.samples.filter((x) => x.status === 'planned').map((x) => x.sampleId));
    const atRelease: CaseState = {
      ...next,
      samples: next.samples.map((x) =>
        wasPlanned.has(x.sampleId) && x.status === 'cancelled' && x.cancelReason === CLOSING_CANCEL_REASON
          ? { ...x, status: 'planned' }
          : x,
      ),
    };
    for (const why of releaseViolations(policy, atRelease, now)) out.push(`released although ${why}`);
  }

  for (const x of next.samples) {
    // No result counted for a sample that was never ordered; results only from the ordering lab.
    if (x.status === 'planned' || x.status === 'cancelled')
      v(!x.result && x.results.length === 0, `${x.sampleId}: result on an unordered sample`);
    if (resulted(x)) {
      v(!!x.order, `${x.sampleId}: resulted without an order`);
      v(
        x.results.length >= 1 && x.results[x.results.length - 1]!.result === x.result,
        `${x.sampleId}: result not recorded`,
      );
      v(
        x.results.every((r) => r.labId === x.order?.labId),
        `${x.sampleId}: a result from a lab it was not ordered from`,
      );
      v(x.status === 'corrected' || x.results.length === 1, `${x.sampleId}: several results but not corrected`);
    }
    if (x.status === 'ordered') v(!!x.order && x.results.length === 0, `${x.sampleId}: ordered with a result`);
    // Every positive reaches someone: the hospital, or a red escalation about that sample.
    if (resulted(x) && x.results.some((r) => r.result === 'positive')) {
      const hospital = next.hospital !== undefined || next.closing?.target === 'HOSPITAL_TRANSFER';
      const red = next.escalations.some((e) => e.sampleId === x.sampleId && e.severity === 'red');
      v(hospital || red, `${x.sampleId}: positive result reached nobody`);
    }
  }

  for (const e of next.escalations) {
    if (e.status === 'closed') {
      v(!!e.closedReason && !!e.closedBy && !!e.closedAt, `${e.id}: closed without a reason and an actor`);
      if (e.closedReason === 'resolved')
        v(e.closedBy?.role !== 'system' && !!e.note?.trim(), `${e.id}: resolved by nobody or without a note`);
      else v(CLOSE_REASONS[e.kind].includes(e.closedReason!), `${e.id}: ${e.kind} closed for ${e.closedReason}`);
    }
    // A fact given as the reason must be true.
    const fact: Partial<Record<string, boolean>> = {
      room_assigned: !!next.room,
      arrived: !!next.arrivedAt,
      departed: !!next.closing?.departedAt,
      check_received: next.checks.some((c) => c.by.id === e.closedBy?.id),
      released: next.closing?.target === 'RELEASED',
      transferred_to_hospital: next.closing?.target === 'HOSPITAL_TRANSFER' && !!next.endedAt,
      case_ended: !!next.closing,
      new_address: next.inspection.round > 1,
      returned_to_quarantine: !!next.home?.returnCaseNo,
      retry_succeeded:
        !!e.taskId && !next.tasks.some((t) => t.id === e.taskId && t.status === 'pending' && t.escalationId === e.id),
    };
    if (e.status === 'closed' && e.closedReason && e.closedReason in fact)
      v(fact[e.closedReason] === true, `${e.id}: closed as ${e.closedReason}, which is not true`);
    const before = prev?.escalations.find((x) => x.id === e.id);
    if (before?.status === 'closed') v(e.status === 'closed', `${e.id}: reopened`);
    if (before?.status === 'acked') v(e.status !== 'open', `${e.id}: un-acknowledged`);
  }
  if (prev)
    v(
      prev.escalations.every((e) => next.escalations.some((x) => x.id === e.id)),
      'an escalation vanished',
    );

  // One missed-check escalation per person at a time (when missed checks fold): a nurse sees one
  // alert counting the slots, not one per slot.
  if (opts.foldMissedChecks)
    v(
      next.escalations.filter((e) => e.kind === 'missed_check' && e.status === 'open').length <= 1,
      'more than one open missed-check escalation',
    );

  // A check counts for the slot whose window holds the time it was taken (judged by event time):
  // not for an earlier slot still watched, nor for one whose time to be judged had passed.
  if (opts.slotsByEventTime && prev) {
    const rules = next.policy ?? policy;
    const firstStepMs = rules.checkWindowAfterMs + (rules.missedCheckSteps[0]?.afterMs ?? 0);
    for (const c of next.checks) {
      if (!c.dueAt || prev.checks.some((p) => p.checkId === c.checkId)) continue;
      const slot = Date.parse(c.dueAt);
      const taken = Date.parse(c.takenAt);
      // A device clock ahead of the case's (within the allowed skew): judged by the case's clock.
      v(
        taken >= slot - rules.checkWindowBeforeMs && Math.min(taken, now) < slot + firstStepMs,
        `check ${c.checkId} taken at ${c.takenAt} counted for the slot of ${c.dueAt}`,
      );
    }
  }

  // One escalation per failing task, not one per retry.
  const perTask = new Map<string, number>();
  for (const e of next.escalations)
    if (e.kind === 'integration_failure' && e.status !== 'closed' && e.taskId)
      perTask.set(e.taskId, (perTask.get(e.taskId) ?? 0) + 1);
  for (const [task, n] of perTask) v(n <= 1, `${task}: ${n} open integration failures`);

  // The room stays occupied while the person is in it.
  if (next.closing?.awaitingDeparture)
    v(
      !next.tasks.some((t) => (t.kind === 'checkOut' || t.kind === 'releaseRoom') && t.status !== 'dropped'),
      'room handed back while the person is still in it',
    );

  // Terminal phase if and only if closing; an ended case has nothing of its closing left undone.
  v(TERMINAL_PHASES.includes(next.phase) === !!next.closing, `phase ${next.phase} disagrees with closing`);
  if (next.phase === 'HOSPITAL_TRANSFER') v(!!next.hospital, 'hospital transfer without a reason');
  if (next.endedAt) {
    v(!next.closing?.awaitingDeparture, 'ended while awaiting departure');
    v(
      !next.tasks.some((t) => t.closing && (t.status === 'pending' || t.status === 'running')),
      'ended with closing steps undone',
    );
  }
  if (prev?.endedAt) v(next.endedAt === prev.endedAt, 'end time changed');

  // The waiting list: a case holding a room is not on it; a case closing without a room leaves it
  // (giving back a room handed over meanwhile) before it may end.
  if (next.roomQueuedAt) v(!next.room, 'on the waiting list while holding a room');
  if (next.closing && next.roomQueuedAt)
    v(
      next.tasks.some((t) => t.kind === 'leaveRoomQueue' && t.status !== 'dropped' && t.status !== 'waived'),
      'closing on the waiting list without leaving it',
    );
  if (next.endedAt) v(!next.roomQueuedAt, 'ended while on the waiting list');

  // Times reported from outside are bounded by the case's own clock.
  if (next.arrivedAt) {
    v(ms(next.arrivedAt) >= ms(next.requestedAt), 'arrived before the request');
    if (!prev?.arrivedAt) v(ms(next.arrivedAt) <= now, 'arrival in the future');
  }
  if (prev) v(next.eventSeq >= prev.eventSeq && next.version >= prev.version, 'sequence went backwards');
  return out;
}
