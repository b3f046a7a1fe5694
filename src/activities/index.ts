import { and, eq, gt, sql, type SQL } from 'drizzle-orm';
import { createDirectiveActivities, createReturnTransferActivity } from './directives';
import type { PgColumn } from 'drizzle-orm/pg-core';

import type { Db } from '../db';
import { within } from '../deadline';
import { addressInspections, caseEvents, cases, escalations, healthChecks, samples } from '../db/schema';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

import type { Integrations } from '../integrations';
import type { Handoff } from '../integrations/hotel';
import { isDecisionCoreType, roomOfferedSignal, type DecisionCoreType } from '../workflows/messages';
import type { Logger } from '../log';
import { once } from './effects';
import type { CaseActivities, CaseRow, RecordCaseInput } from './types';

export type { CaseActivities } from './types';
export { ErrorCode } from './types';

export interface ActivityDeps {
  db: Db;
  integrations: Pick<Integrations, 'hotel' | 'lab' | 'community' | 'transport' | 'notify'>;
  log: Logger;
  /** Wakes a case the waiting list handed a room to; default: a signal through the activity's own client. */
  wake?: (workflowId: string) => Promise<void>;
  /** The workflow type a return transfer starts (CASE_WORKFLOW_TYPE); default caseWorkflowV3. */
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
 * caseWorkflowV2 or caseWorkflowV3): only those have a path to fall back on. v1's local writes retry as before.
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
        const r = await sys.hotel.reserveInQueue({ ...input, ...input.queue });
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
    ...createReturnTransferActivity(deps.caseWorkflowType ?? 'caseWorkflowV3'),

    async recordCase(input) {
      let fresh: boolean;
      if (inV2WorkflowTask()) fresh = await writeInTask(input);
      else {
        fresh = await recordCase(db, input);
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

/** Sample states in the order they move through (cancelled may still become ordered). */
const SAMPLE_RANK = sql.raw(`array['planned','cancelled','ordered','resulted','corrected']::text[]`);

/** `excluded.<column>`: the value the insert proposed, for ON CONFLICT DO UPDATE. */
const excluded = (col: PgColumn): SQL => sql.raw(`excluded."${col.name}"`);
const date = (iso: string | undefined): Date | null => (iso ? new Date(iso) : null);

function caseValues(row: CaseRow) {
  return {
    caseNo: row.caseNo,
    workflowId: row.workflowId,
    requestId: row.requestId,
    district: row.district,
    street: row.street,
    displayName: row.displayName,
    phase: row.phase,
    colour: row.colour ?? null,
    policyName: row.policyName,
    hotelId: row.hotelId ?? null,
    roomId: row.roomId ?? null,
    requestedAt: new Date(row.requestedAt),
    arrivedAt: date(row.arrivedAt),
    stayStart: date(row.stayStart),
    releaseDue: date(row.releaseDue),
    nextCheckDue: date(row.nextCheckDue),
    pendingResults: row.pendingResults,
    openEscalations: row.openEscalations,
    openRedEscalations: row.openRedEscalations,
    inspectionStatus: row.inspectionStatus,
    endedAt: date(row.endedAt),
    stateVersion: row.stateVersion,
  };
}

/**
 * Writes the read model and the event log in one transaction. The cases row never moves back (a
 * late retry of an older write changes nothing); a write at the version the row holds replaces it,
 * so the last write at a version wins: a write made inside a workflow task that never completed
 * (the worker killed after the write, before the task completed) is replaced by the retried task's
 * write, which reaches the same version with the true content (times, ids). Events go by (case,
 * seq): the newest write replaces those it carries and, with `lastSeq`, removes any past it (a
 * phantom's); an older write only adds missing ones. Detail rows are overwritten only by the newest
 * write and otherwise only filled in where missing. Returns whether this write was the newest.
 */
export async function recordCase(db: Db, input: RecordCaseInput): Promise<boolean> {
  const { row } = input;
  return db.transaction(async (tx) => {
    const values = caseValues(row);
    const set = Object.fromEntries(
      Object.keys(values)
        .filter((k) => k !== 'caseNo')
        .map((k) => [k, excluded(cases[k as keyof typeof values])]),
    );
    // The row lock taken here also serialises concurrent writes for the same case.
    const applied = await tx
      .insert(cases)
      .values(values)
      .onConflictDoUpdate({
        target: cases.caseNo,
        set: { ...set, updatedAt: sql`now()` },
        setWhere: sql`${cases.stateVersion} <= ${excluded(cases.stateVersion)}`,
      })
      .returning({ v: cases.stateVersion });
    const fresh = applied.length > 0;

    if (input.events.length > 0) {
      const q = tx.insert(caseEvents).values(
        input.events.map((e) => ({
          caseNo: row.caseNo,
          seq: e.seq,
          actor: e.actor.id,
          actorRole: e.actor.role,
          actorName: e.actor.name ?? null,
          kind: e.kind,
          payload: e.payload,
          at: new Date(e.at),
        })),
      );
      await (fresh
        ? q.onConflictDoUpdate({
            target: [caseEvents.caseNo, caseEvents.seq],
            set: {
              actor: excluded(caseEvents.actor),
              actorRole: excluded(caseEvents.actorRole),
              actorName: excluded(caseEvents.actorName),
              kind: excluded(caseEvents.kind),
              payload: excluded(caseEvents.payload),
              at: excluded(caseEvents.at),
            },
          })
        : q.onConflictDoNothing({ target: [caseEvents.caseNo, caseEvents.seq] }));
    }
    if (fresh && input.lastSeq !== undefined)
      await tx.delete(caseEvents).where(and(eq(caseEvents.caseNo, row.caseNo), gt(caseEvents.seq, input.lastSeq)));

    if (input.samples.length > 0) {
      const q = tx.insert(samples).values(
        input.samples.map((s) => ({
          sampleId: s.sampleId,
          caseNo: row.caseNo,
          type: s.type,
          reason: s.reason,
          labId: s.labId ?? null,
          dueAt: new Date(s.dueAt),
          orderedAt: date(s.orderedAt),
          result: s.result,
          resultAt: date(s.resultAt),
          status: s.status ?? null,
          orderId: s.orderId ?? null,
        })),
      );
      await (fresh
        ? q.onConflictDoUpdate({
            target: samples.sampleId,
            set: {
              type: excluded(samples.type),
              reason: excluded(samples.reason),
              // orderSample may have stored the lab's id before the workflow heard of it.
              labId: sql`coalesce(${excluded(samples.labId)}, ${samples.labId})`,
              dueAt: excluded(samples.dueAt),
              orderedAt: sql`coalesce(${excluded(samples.orderedAt)}, ${samples.orderedAt})`,
              result: excluded(samples.result),
              resultAt: excluded(samples.resultAt),
              // A sample's state only moves forward: the orderSample activity may have written
              // 'ordered' before the workflow's own write of the still-planned sample lands.
              status: sql`case when ${samples.status} is null or array_position(${SAMPLE_RANK}, ${excluded(samples.status)}) >= array_position(${SAMPLE_RANK}, ${samples.status}) then ${excluded(samples.status)} else ${samples.status} end`,
              orderId: sql`coalesce(${excluded(samples.orderId)}, ${samples.orderId})`,
            },
          })
        : q.onConflictDoNothing());
    }

    if (input.checks.length > 0) {
      // A health check never changes once taken: insert-if-missing is enough.
      await tx
        .insert(healthChecks)
        .values(
          input.checks.map((c) => ({
            id: c.checkId,
            caseNo: row.caseNo,
            dueAt: date(c.dueAt),
            takenAt: new Date(c.takenAt),
            temperatureC: c.temperatureC === undefined ? null : c.temperatureC.toFixed(1),
            symptoms: c.symptoms,
            recordedBy: c.by.id,
          })),
        )
        .onConflictDoNothing({ target: [healthChecks.caseNo, healthChecks.id] });
    }

    if (input.escalations.length > 0) {
      const q = tx.insert(escalations).values(
        input.escalations.map((e) => ({
          id: e.id,
          caseNo: row.caseNo,
          hotelId: row.hotelId ?? null,
          kind: e.kind,
          level: e.level,
          severity: e.severity,
          reason: e.reason,
          status: e.status,
          openedAt: new Date(e.openedAt),
          ackedAt: date(e.ackedAt),
          ackedBy: e.ackedBy?.id ?? null,
          closedAt: date(e.closedAt),
          closedReason: e.closedReason ?? null,
          closedBy: e.closedBy?.id ?? null,
          note: e.note ?? null,
          sampleId: e.sampleId ?? null,
        })),
      );
      await (fresh
        ? q.onConflictDoUpdate({
            target: escalations.id,
            set: {
              level: excluded(escalations.level),
              severity: excluded(escalations.severity),
              reason: excluded(escalations.reason),
              status: excluded(escalations.status),
              ackedAt: excluded(escalations.ackedAt),
              ackedBy: excluded(escalations.ackedBy),
              closedAt: excluded(escalations.closedAt),
              closedReason: excluded(escalations.closedReason),
              closedBy: excluded(escalations.closedBy),
              note: excluded(escalations.note),
              sampleId: sql`coalesce(${escalations.sampleId}, ${excluded(escalations.sampleId)})`,
              hotelId: sql`coalesce(${escalations.hotelId}, ${excluded(escalations.hotelId)})`,
            },
          })
        : q.onConflictDoNothing());
    }

    const ins = input.inspection;
    if (ins && ins.status !== 'none') {
      const q = tx.insert(addressInspections).values({
        id: ins.inspectionId,
        caseNo: row.caseNo,
        street: row.street,
        // requestInspection stores the address; the workflow need not repeat PII here.
        address: ins.address ?? '',
        status: ins.status,
        requestedAt: date(ins.requestedAt) ?? new Date(),
        resultAt: date(ins.resultAt),
        inspector: ins.inspector ?? null,
        note: ins.note ?? null,
      });
      await (fresh
        ? q.onConflictDoUpdate({
            target: addressInspections.id,
            set: {
              status: excluded(addressInspections.status),
              resultAt: excluded(addressInspections.resultAt),
              inspector: excluded(addressInspections.inspector),
              note: excluded(addressInspections.note),
              address: sql`coalesce(nullif(${excluded(addressInspections.address)}, ''), ${addressInspections.address})`,
            },
          })
        : q.onConflictDoNothing());
    }
    return fresh;
  });
}
