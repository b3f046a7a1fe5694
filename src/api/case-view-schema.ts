import { z } from 'zod';

import { SAMPLE_STATUSES, TASK_KINDS } from '../domain/case/model';
import type { CaseView } from '../domain/case/view';
import { COLOURS, PHASES, ROLES } from '../domain/types';

/**
 * The case as GET /api/v1/cases/{id} returns it (`state`, source "workflow"): the OpenAPI form
 * of src/domain/case/view.ts, checked against that type at compile time below, so a lab or a
 * street office can code against it.
 */
const Actor = z.object({ id: z.string(), role: z.enum(ROLES), name: z.string().optional() }).meta({ id: 'Actor' });
const Outcome = z.enum(['negative', 'positive']);

const SampleView = z
  .object({
    sampleId: z.string(),
    type: z.string().meta({ description: 'PCR, antigen, …' }),
    reason: z.string().meta({ description: 'scheduled, fever, symptom, antigen, supervisor, release_check' }),
    day: z.number().int().optional().meta({ description: 'Day of stay the plan put it on' }),
    dueAt: z.string().meta({ description: 'When it is planned to be taken; never counts as the time taken' }),
    status: z.enum(SAMPLE_STATUSES).meta({
      description:
        'planned → ordered → resulted → corrected, or cancelled. Only an ordered sample takes a result, ' +
        'only from the lab it was ordered from (labId).',
    }),
    labId: z.string().optional(),
    orderId: z.string().optional(),
    takenAt: z.string().optional().meta({ description: 'When it was taken (the order): release is timed by this' }),
    result: Outcome.optional().meta({ description: 'The current result (the latest correction)' }),
    results: z.array(z.object({ result: Outcome, labId: z.string(), reportedAt: z.string(), receivedAt: z.string() })),
    cancelReason: z.string().optional(),
  })
  .meta({ id: 'CaseSample' });

const EscalationView = z
  .object({
    id: z.string(),
    kind: z.string(),
    level: z.enum(['reminder', 'nurse', 'point_leader', 'doctor', 'command_centre', 'community']),
    severity: z.enum(['info', 'amber', 'red']),
    reason: z.string(),
    status: z.enum(['open', 'acked', 'closed']),
    openedAt: z.string(),
    ackedAt: z.string().optional(),
    ackedBy: Actor.optional(),
    closedAt: z.string().optional(),
    closedReason: z
      .string()
      .optional()
      .meta({
        description:
          'resolved (by a person, with a note), room_assigned, arrived, departed, check_received, retry_succeeded, ' +
          'not_needed, inspection_passed, new_address, released, transferred_to_hospital, case_ended',
      }),
    closedBy: Actor.optional(),
    note: z.string().optional(),
    taskId: z.string().optional(),
    sampleId: z.string().optional(),
  })
  .meta({ id: 'CaseEscalation' });

export const CaseViewSchema = z
  .object({
    schema: z.literal(2),
    caseNo: z.string(),
    phase: z.enum(PHASES),
    colour: z.enum(COLOURS),
    colourReasons: z.array(z.string()),
    policy: z.object({ name: z.string(), version: z.number().int() }),
    room: z.object({ hotelId: z.string(), roomId: z.string(), roomNo: z.string(), floor: z.number().int() }).optional(),
    requestedAt: z.string(),
    dispatchedAt: z.string().optional(),
    arrivedAt: z.string().optional(),
    stayStart: z.string().optional(),
    releaseDue: z.string().optional(),
    stayAdjustDays: z.number().int(),
    nextCheckDue: z.string().optional().meta({ description: 'The next health-check slot being watched' }),
    samples: z.array(SampleView),
    checks: z.array(
      z.object({
        checkId: z.string(),
        takenAt: z.string(),
        dueAt: z.string().optional(),
        temperatureC: z.number().optional(),
        symptoms: z.array(z.string()),
        fever: z.boolean(),
        by: Actor,
      }),
    ),
    escalations: z.array(EscalationView),
    inspection: z.object({
      inspectionId: z.string(),
      round: z.number().int(),
      status: z.enum(['none', 'requesting', 'requested', 'passed', 'failed']),
      requestedAt: z.string().optional(),
      resultAt: z.string().optional(),
    }),
    releaseBlockers: z.array(z.string()).meta({
      description:
        'What holds release now (RELEASE_PENDING): end_date_not_reached, result_pending, sample_not_taken, ' +
        'positive_result, not_enough_negatives, negatives_too_close, open_blocking_escalation, address_not_approved',
    }),
    closing: z
      .object({
        target: z.enum(PHASES),
        reason: z.string(),
        startedAt: z.string(),
        awaitingDeparture: z.boolean(),
        departedAt: z.string().optional(),
        certificateNo: z.string().optional(),
        unfinished: z
          .array(
            z.object({
              kind: z.enum(TASK_KINDS),
              status: z.enum(['pending', 'running', 'done', 'waived', 'dropped', 'failed']),
              attempts: z.number().int(),
              lastError: z.string().optional(),
              escalationId: z.string().optional(),
            }),
          )
          .meta({ description: 'Closing steps not done yet: the case has not ended until they are done or waived' }),
      })
      .optional(),
    home: z
      .object({
        startedAt: z.string(),
        until: z.string(),
        days: z.number().int(),
        checkedDays: z.array(z.number().int()),
        missedDays: z.array(z.number().int()),
        doneAt: z.string().optional(),
        outcome: z.enum(['completed', 'returned']).optional(),
        returnCaseNo: z
          .string()
          .optional()
          .meta({ description: 'A fever at home: the new case the person was transferred back under' }),
      })
      .optional()
      .meta({ description: "Home monitoring after release: the street's community checks in once a day" }),
    endedAt: z.string().optional(),
    refused: z.array(
      z.object({ kind: z.string(), at: z.string(), reason: z.string(), sampleId: z.string().optional(), by: Actor }),
    ),
    history: z.array(
      z.object({
        seq: z.number().int(),
        at: z.string(),
        by: Actor,
        kind: z.string(),
        payload: z.record(z.string(), z.unknown()),
        reason: z.string().optional(),
      }),
    ),
    version: z.number().int(),
  })
  .meta({ id: 'CaseView', description: 'A case as its workflow holds it, without PII' });

// The schema and the type it documents must not drift apart.
type Schema = z.infer<typeof CaseViewSchema>;
const _fromView = (v: CaseView): Schema => v;
void _fromView;
