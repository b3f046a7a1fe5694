import { sql, type SQL } from 'drizzle-orm';
import { createDirectiveActivities, createReturnTransferActivity } from './directives';
import type { PgColumn } from 'drizzle-orm/pg-core';

import type { Db } from '../db';
import { within } from '../deadline';
import { addressInspections, cases, samples } from '../db/schema';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

import type { Integrations } from '../integrations';
import { rowsOf, type Handoff } from '../integrations/hotel';
import { isDecisionCoreType, roomOfferedSignal, type DecisionCoreType } from '../workflows/messages';
import type { Logger } from '../log';
import { once } from './effects';
import type { CaseActivities, RecordCaseInput } from './types';

export type { CaseActivities } from './types';
export { ErrorCode } from './types';

export interface ActivityDeps {
  db: Db;
  integrations: Pick<Integrations, 'hotel' | 'lab' | 'community' | 'transport' | 'notify'>;
  log: Logger;
  /** Wakes a case the waiting list handed a room to; default: a signal through the activity's own client. */
  wake?: (workflowId: string) => Promise<void>;
  /** The workflow type a return transfer starts (CASE_WORKFLOW_TYPE); default caseWorkflowV6. */
  caseWorkflowType?: DecisionCoreType;
}

/** The details the previous attempt of this activity heartbeated (none outside an activity). */
function attemptDetails<T>(): T | undefined {
  try {
    return Context.current().info.heartbeatDetails as T | undefined;
  } catch {
    return undefined;
  }
}

/** Records progress for the next attempt (a no-op outside an activity). */
function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // not running as an activity (a direct call in a test or a script)
  }
}

/**
 * When this attempt's work must be done by, less `marginMs` (epoch ms): the earlier of the
 * attempt's start-to-close and the activity's schedule-to-close. Undefined outside an activity.
 */
function attemptDeadline(marginMs: number): number | undefined {
  try {
    const { info } = Context.current();
    const ends = [
      info.startToCloseTimeoutMs ? Date.now() + info.startToCloseTimeoutMs : Infinity,
      info.scheduleToCloseTimeoutMs ? info.scheduledTimestampMs + info.scheduleToCloseTimeoutMs : Infinity,
    ];
    const end = Math.min(...ends);
    return Number.isFinite(end) ? end - marginMs : undefined;
  } catch {
    return undefined;
  }
}

/** The activity's own Temporal client (the worker's connection) sends the wake-up. */
const wakeFromActivity = async (workflowId: string): Promise<void> => {
  await Context.current().client.workflow.getHandle(workflowId).signal(roomOfferedSignal);
};

/**
 * Wakes every case a room was handed to. A wake-up that fails (Temporal away) is logged, not
 * retried here: the room is already the case's in the database, and the case's own recheck
 * (policy roomQueue.recheckMs) finds it.
 */
export async function wakeAll(
  handed: Handoff[],
  signal: (workflowId: string) => Promise<void>,
  log: Logger,
): Promise<void> {
  await Promise.all(
    handed.map((h) =>
      signal(h.workflowId).then(
        () => log.info('room handed to a waiting case', { caseNo: h.caseNo, roomId: h.room.roomId }),
        (err: unknown) =>
          log.warn('waking a case that got a room failed; its recheck will find the room', {
            caseNo: h.caseNo,
            roomId: h.room.roomId,
            error: (err as Error).name,
          }),
      ),
    ),
  );
}

/** The remote system's Idempotency-Key: the same workflow step always sends the same key. */
const idemKey = (workflowId: string, step: string) => `${workflowId}:${step}`;

/**
 * The case workflow's activities. Each is safe to run again: hotel transitions are
 * idempotent by the room's own state, remote calls are recorded per workflow id + step in
 * activity_effects (and carry an Idempotency-Key), and records upsert by natural keys.
 * Logs carry ids and counts only.
 */
/**
 * A read-model write inside a workflow task (a local activity, case-v2's LOCAL_RECORDS_PATCH) holds
 * that task, and with it the case's answer and its alerts: it gets LOCAL_WRITE_DEADLINE_MS. When
 * LOCAL_WRITE_FAILURES_AWAY of them in a row failed or hung with no write succeeding since (a
 * database away, not one slow under load), this worker's next ones fail at once for
 * LOCAL_WRITE_COOLDOWN_MS. Each case hands a failed batch to its activity path, which retries
 * until the database is back; a write that succeeds there ends the cooldown.
 * Since NO_LOCAL_RECORDS_PATCH (src/workflows/case-v2.ts) this build's workflow code asks for no
 * new local write; it runs one only on replay of a task an older worker started one in and never
 * completed (its marker missing). Kept, with its cooldown, until the builds before it are gone.
 */
export const LOCAL_WRITE_DEADLINE_MS = 1000;
export const LOCAL_WRITE_FAILURES_AWAY = 3;
export const LOCAL_WRITE_COOLDOWN_MS = 10_000;
/**
 * Whether this is a v2 case's write inside its workflow task (a local activity from
 * caseWorkflowV2 or caseWorkflowV3 before `no-local-records`; v4 never writes in the task): only
 * those have a path to fall back on. v1's local writes retry as before.
 */
function inV2WorkflowTask(): boolean {
  try {
    const { info } = Context.current();
    return info.isLocal && isDecisionCoreType(info.workflowType);
  } catch {
    return false; // called outside any activity
  }
}

export function createActivities(deps: ActivityDeps): CaseActivities {
  const { db, integrations: sys } = deps;
  const log = deps.log.child({ component: 'activities' });
  const wake = async (handed: Handoff[]) => {
    if (!handed.length) return;
    const signal = deps.wake ?? wakeFromActivity;
    await wakeAll(handed, signal, log);
  };
  const local = { failures: 0, lastFailureAt: -Infinity };
  const writeInTask = async (input: RecordCaseInput): Promise<boolean> => {
    if (local.failures >= LOCAL_WRITE_FAILURES_AWAY && Date.now() - local.lastFailureAt < LOCAL_WRITE_COOLDOWN_MS)
      throw ApplicationFailure.nonRetryable(
        'the read model failed moments ago: this write goes by the activity path',
        'ReadModelAway',
      );
    try {
      const fresh = await within(LOCAL_WRITE_DEADLINE_MS, 'read model', () => recordCase(db, input));
      local.failures = 0;
      return fresh;
    } catch (err) {
      local.failures++;
      local.lastFailureAt = Date.now();
      throw err;
    }
  };

  return {
    async reserveRoom(input) {
      let room;
      if (input.queue) {
        const r = await sys.hotel.reserveInQueue({ ...input, ...input.queue, notAfter: attemptDeadline(15_000) });
        room = r.room;
        await wake(r.handed);
      } else {
        room = await sys.hotel.reserve(input);
      }
      log.info(room ? 'room reserved' : input.queue ? 'no room free: on the waiting list' : 'no room free', {
        workflowId: input.workflowId,
        caseNo: input.caseNo,
        colour: input.colour,
        hotelId: room?.hotelId,
        roomId: room?.roomId,
      });
      return room;
    },

    async releaseRoom({ caseNo, roomId }) {
      const t = await sys.hotel.release({ caseNo, roomId });
      if (t.changed) log.info('room released', { caseNo, roomId, handedTo: t.handed?.length ?? 0 });
      await wake(t.handed ?? []);
    },

    async leaveRoomQueue({ caseNo }) {
      const r = await sys.hotel.leaveQueue({ caseNo });
      log.info('left the waiting list', { caseNo, left: r.left, freedRoomId: r.freedRoomId });
      await wake(r.handed);
    },

    async checkIn({ caseNo, roomId }) {
      const t = await sys.hotel.checkIn({ caseNo, roomId });
      if (t.changed) log.info('checked in', { caseNo, roomId });
    },

    async checkOut({ caseNo, roomId, terminalDisinfection }) {
      const t = await sys.hotel.checkOut({ caseNo, roomId, terminalDisinfection });
      if (t.changed) log.info('checked out', { caseNo, roomId, terminalDisinfection });
    },

    async dispatchTransport(input) {
      const step = `transport:${input.step}`;
      return once(db, input.workflowId, step, async () => {
        const district =
          input.district ??
          (
            await db
              .select({ d: cases.district })
              .from(cases)
              .where(sql`${cases.caseNo} = ${input.caseNo}`)
          )[0]?.d ??
          '';
        const r = await sys.transport.dispatch({
          idempotencyKey: idemKey(input.workflowId, step),
          caseNo: input.caseNo,
          district,
          purpose: input.purpose,
          hotelId: input.hotelId,
          roomNo: input.roomNo,
          pickupAddress: input.pickupAddress,
        });
        log.info('transport dispatched', { caseNo: input.caseNo, purpose: input.purpose, dispatchId: r.dispatchId });
        return { dispatchId: r.dispatchId };
      });
    },

    async cancelTransport({ workflowId, caseNo, dispatchId }) {
      const step = `transport-cancel:${dispatchId}`;
      await once(db, workflowId, step, async () => {
        await sys.transport.cancel({ idempotencyKey: idemKey(workflowId, step), caseNo, dispatchId });
        log.info('transport cancelled', { caseNo, dispatchId });
        return {};
      });
    },

    async orderSample(input) {
      // The sample row exists before the lab can possibly answer, so a result that arrives
      // faster than the next read-model write still finds its case.
      await db
        .insert(samples)
        .values({
          sampleId: input.sampleId,
          caseNo: input.caseNo,
          type: input.type,
          reason: input.reason,
          dueAt: new Date(),
        })
        .onConflictDoNothing({ target: samples.sampleId });
      const step = `sample:${input.sampleId}`;
      const receipt = await once(db, input.workflowId, step, () =>
        sys.lab.orderSample({
          idempotencyKey: idemKey(input.workflowId, step),
          sampleId: input.sampleId,
          caseNo: input.caseNo,
          type: input.type,
          reason: input.reason,
          hotelId: input.hotelId,
        }),
      );
      await db
        .update(samples)
        .set({
          labId: receipt.labId,
          orderedAt: new Date(receipt.orderedAt),
          orderId: receipt.orderId ?? null,
          status: 'ordered',
        })
        .where(sql`${samples.sampleId} = ${input.sampleId} and ${samples.labId} is null`);
      log.info('sample ordered', { caseNo: input.caseNo, sampleId: input.sampleId, labId: receipt.labId });
      return receipt;
    },

    async requestInspection(input) {
      // The community worker who inspects needs the address; it is kept here and nowhere else.
      await db
        .insert(addressInspections)
        .values({
          id: input.inspectionId,
          caseNo: input.caseNo,
          street: input.street,
          address: input.address,
          status: 'requested',
          requestedAt: new Date(),
        })
        // The case's own record may have written the row first, without the address (it does not
        // carry PII): the address is filled in then, and never overwritten once there.
        .onConflictDoUpdate({
          target: addressInspections.id,
          set: { address: excluded(addressInspections.address) },
          setWhere: sql`${addressInspections.address} = ''`,
        });
      const step = `inspection:${input.inspectionId}`;
      await once(db, input.workflowId, step, async () => {
        await sys.community.requestInspection({
          idempotencyKey: idemKey(input.workflowId, step),
          caseNo: input.caseNo,
          inspectionId: input.inspectionId,
          district: input.district,
          street: input.street,
          address: input.address,
        });
        log.info('inspection requested', { caseNo: input.caseNo, inspectionId: input.inspectionId });
        return {};
      });
    },

    async handOverToCommunity(input) {
      const step = `handover:${input.certificateNo}`;
      await once(db, input.workflowId, step, async () => {
        await sys.community.handOver({
          idempotencyKey: idemKey(input.workflowId, step),
          caseNo: input.caseNo,
          district: input.district,
          street: input.street,
          releasedAt: input.releasedAt,
          certificateNo: input.certificateNo,
        });
        log.info('handed over to community', { caseNo: input.caseNo });
        return {};
      });
    },

    async notifyEscalation(input) {
      // Each level of an escalation chain is a separate notice to a different person.
      const step = `notify:${input.escalation.id}:${input.escalation.level}${input.repeat ? `:again-${input.repeat}` : ''}`;
      // An alert must not wait for our database: the webhook carries the idempotency key. An
      // attempt that delivered it but could not write the list says so in its heartbeat, which
      // Temporal hands to the next attempt on whichever worker: that one writes the list only.
      const prior = attemptDetails<{ webhookDelivered?: boolean }>();
      await once(
        db,
        input.workflowId,
        step,
        () =>
          sys.notify.notify(
            {
              idempotencyKey: idemKey(input.workflowId, step),
              caseNo: input.caseNo,
              hotelId: input.hotelId,
              escalation: input.escalation,
            },
            {
              webhookDelivered: prior?.webhookDelivered === true,
              onWebhookDelivered: () => heartbeat({ webhookDelivered: true }),
            },
          ),
        { runWhileDatabaseDown: true },
      );
    },

    async alertCommunity(input) {
      const step = `alert:${input.escalationId}`;
      await once(db, input.workflowId, step, async () => {
        await sys.community.alert({
          idempotencyKey: idemKey(input.workflowId, step),
          caseNo: input.caseNo,
          district: input.district,
          street: input.street,
          escalationId: input.escalationId,
          kind: input.kind,
          reason: input.reason,
        });
        log.info('community alerted', { caseNo: input.caseNo, escalationId: input.escalationId });
        return {};
      });
    },

    ...createDirectiveActivities({ db, log: deps.log }),
    ...createReturnTransferActivity(deps.caseWorkflowType ?? 'caseWorkflowV6'),

    async recordCase(input) {
      let fresh: boolean;
      if (inV2WorkflowTask()) fresh = await writeInTask(input);
      else {
        // Made by activity unless the worker's sink says it is made in a task (which calls this
        // function directly where no batched writer is given): drizzle/0011.
        fresh = await recordCase(db, { ...input, inTask: input.inTask ?? false });
        local.failures = 0; // the database answers again: writes in tasks may go on
      }
      log.debug('case recorded', {
        caseNo: input.row.caseNo,
        version: input.row.stateVersion,
        applied: fresh,
        events: input.events.length,
      });
    },
  };
}

/** `excluded.<column>`: the value the insert proposed, for ON CONFLICT DO UPDATE. */
const excluded = (col: PgColumn): SQL => sql.raw(`excluded."${col.name}"`);

/** An instant as the database function reads it: ISO 8601 in UTC, or null when absent. */
const instant = (iso: string | undefined): string | null => (iso ? new Date(iso).toISOString() : null);

/**
 * The input of `shaodian_record_case` (drizzle/0007_record_case_function.sql): the write with every
 * key its column's name and every instant in UTC, so the database reads each value as the ORM's
 * statements wrote it (a temperature to one decimal as `toFixed` rounds it, a date-only string at
 * UTC midnight as `new Date` parses it).
 */
export function recordCasePayload(input: RecordCaseInput): Record<string, unknown> {
  const { row } = input;
  const ins = input.inspection;
  return {
    row: {
      case_no: row.caseNo,
      workflow_id: row.workflowId,
      request_id: row.requestId,
      district: row.district,
      street: row.street,
      display_name: row.displayName ?? null,
      phase: row.phase,
      colour: row.colour ?? null,
      policy_name: row.policyName,
      hotel_id: row.hotelId ?? null,
      room_id: row.roomId ?? null,
      requested_at: new Date(row.requestedAt).toISOString(),
      arrived_at: instant(row.arrivedAt),
      stay_start: instant(row.stayStart),
      release_due: instant(row.releaseDue),
      next_check_due: instant(row.nextCheckDue),
      check_schedule: row.checkSchedule ?? null,
      // A column with a default got it when the statements left the value out.
      pending_results: row.pendingResults ?? 0,
      open_escalations: row.openEscalations ?? 0,
      open_red_escalations: row.openRedEscalations ?? 0,
      inspection_status: row.inspectionStatus ?? 'none',
      ended_at: instant(row.endedAt),
      state_version: row.stateVersion ?? 0,
      written_fence: input.fence ?? null,
      written_in_task: input.inTask ?? null,
    },
    events: input.events.map((e) => ({
      seq: e.seq,
      actor: e.actor.id,
      actor_role: e.actor.role ?? null,
      actor_name: e.actor.name ?? null,
      kind: e.kind,
      payload: e.payload,
      at: new Date(e.at).toISOString(),
    })),
    last_seq: input.lastSeq ?? null,
    samples: input.samples.map((s) => ({
      sample_id: s.sampleId,
      type: s.type,
      reason: s.reason,
      lab_id: s.labId ?? null,
      due_at: new Date(s.dueAt).toISOString(),
      ordered_at: instant(s.orderedAt),
      result: s.result ?? 'pending',
      result_at: instant(s.resultAt),
      status: s.status ?? null,
      order_id: s.orderId ?? null,
    })),
    checks: input.checks.map((c) => ({
      id: c.checkId,
      due_at: instant(c.dueAt),
      taken_at: new Date(c.takenAt).toISOString(),
      temperature_c: c.temperatureC === undefined ? null : c.temperatureC.toFixed(1),
      symptoms: c.symptoms,
      recorded_by: c.by.id,
    })),
    escalations: input.escalations.map((e) => ({
      id: e.id,
      kind: e.kind,
      level: e.level,
      severity: e.severity,
      reason: e.reason,
      status: e.status ?? 'open',
      opened_at: new Date(e.openedAt).toISOString(),
      acked_at: instant(e.ackedAt),
      acked_by: e.ackedBy?.id ?? null,
      closed_at: instant(e.closedAt),
      closed_reason: e.closedReason ?? null,
      closed_by: e.closedBy?.id ?? null,
      note: e.note ?? null,
      sample_id: e.sampleId ?? null,
    })),
    inspection:
      ins && ins.status !== 'none'
        ? {
            id: ins.inspectionId,
            // requestInspection stores the address; the workflow need not repeat PII here.
            address: ins.address ?? '',
            status: ins.status ?? 'requested',
            requested_at: instant(ins.requestedAt) ?? new Date().toISOString(),
            result_at: instant(ins.resultAt),
            inspector: ins.inspector ?? null,
            note: ins.note ?? null,
          }
        : null,
    // Absent, not null, when there is none: the function tests for the key.
    ...(input.repair ? { repair: input.repair } : {}),
  };
}

/**
 * Writes the read model and the event log in one statement (the database function
 * `shaodian_record_case`, drizzle/0007_record_case_function.sql, replaced by
 * drizzle/0008_task_write_fence.sql for v5's fenced and repair writes; it carries the rules): one
 * round trip where the same write as a transaction of statements took five to seven. The cases
 * row never moves back (a late retry of an older write changes nothing); a write at the version
 * the row holds replaces it, so the last write at a version wins: a write made inside a workflow
 * task that never completed (the worker killed after the write, before the task completed) is
 * replaced by the retried task's write, which reaches the same version with the true content
 * (times, ids). Events go by (case, seq): the newest write replaces those it carries and, with
 * `lastSeq`, removes any past it (a phantom's); an older write only adds missing ones. Detail rows
 * are overwritten only by the newest write and otherwise only filled in where missing. Returns
 * whether this write was the newest.
 */
export async function recordCase(db: Db, input: RecordCaseInput): Promise<boolean> {
  let result: unknown;
  try {
    result = await db.execute(sql`select shaodian_record_case(${recordCaseJson(input)}::jsonb) as fresh`);
  } catch (err) {
    throw recordCaseError(err);
  }
  return rowsOf<{ fresh: boolean }>(result)[0]!.fresh === true;
}

/**
 * Many cases' writes in one statement (the API's writes from answers, src/api/answer-writes.ts):
 * `shaodian_record_case` for each, in the order given, in one round trip. Same rules as
 * `recordCase` per write; a later write of the same case in the list is applied after the earlier.
 * One that fails fails the statement, and with it the others: the caller then writes them one
 * at a time. Whether each was the newest, in order.
 */
export async function recordCases(db: Db, inputs: RecordCaseInput[]): Promise<boolean[]> {
  if (inputs.length === 1) return [await recordCase(db, inputs[0]!)];
  let result: unknown;
  try {
    result = await db.execute(
      sql`select shaodian_record_case(t.w) as fresh
          from jsonb_array_elements(${`[${inputs.map(recordCaseJson).join(',')}]`}::jsonb) with ordinality as t(w, n)
          order by t.n`,
    );
  } catch (err) {
    throw recordCaseError(err);
  }
  return rowsOf<{ fresh: boolean }>(result).map((r) => r.fresh === true);
}

/**
 * A `\udXXX` escape in JSON text that is not itself an escaped backslash followed by "udXXX"
 * (an even run of backslashes before it). JSON.stringify writes a whole surrogate pair as the
 * character and only a lone surrogate as this escape, so every match is a lone surrogate, in a
 * value or in a key.
 */
const LONE_SURROGATE_ESCAPE = /(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g;

/**
 * The write as JSON text. A lone surrogate (a name cut in half of a character, say) is written as
 * U+FFFD, as the driver wrote such text in a statement's parameter: Postgres refuses the escape
 * JSON.stringify writes for it in jsonb, which would fail every write of the case.
 */
export function recordCaseJson(input: RecordCaseInput): string {
  return JSON.stringify(recordCasePayload(input)).replace(LONE_SURROGATE_ESCAPE, '$1\\ufffd');
}

/**
 * The failure of a write, without the write: the ORM's error carries the query's parameters, here
 * the whole write (a home address in a v1 case's inspection), and an activity's failure goes into
 * the workflow's history and the worker's log. The database's own message and code stay, with the
 * table, column and constraint it names (identifiers, never values); its detail and context, which
 * may quote the data, do not.
 */
function recordCaseError(err: unknown): Error {
  const inner = (err as { cause?: unknown }).cause ?? err;
  const message = inner instanceof Error ? inner.message : String(inner);
  const f = inner as Record<string, unknown>;
  const named = (
    [
      ['table', f.table_name ?? f.table],
      ['column', f.column_name ?? f.column],
      ['constraint', f.constraint_name ?? f.constraint],
    ] as const
  )
    .filter(([, v]) => typeof v === 'string' && v !== '')
    .map(([k, v]) => `${k} ${String(v)}`);
  const code = f.code;
  return Object.assign(
    new Error(`read model write failed: ${message}${named.length ? ` (${named.join(', ')})` : ''}`),
    typeof code === 'string' ? { code } : {},
  );
}
