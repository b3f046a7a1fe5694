import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';

import type { Role } from '../../domain/types';
import {
  arrivalSignal,
  cancelUpdate,
  changeColourUpdate,
  changeStayUpdate,
  departureSignal,
  doorAlarmSignal,
  healthCheckSignal,
  healthCheckUpdate,
  homeCheckInUpdate,
  inspectionResultSignal,
  scopedHealthCheckUpdate,
  setAddressUpdate,
} from '../../workflows/messages';
import { keyScopeOf } from '../../domain/jurisdiction';
import { actorOf, type ApiKey } from '../auth';
import type { ApiContext } from '../context';
import { defineRoute, type AnyRoute } from '../router';
import {
  AddressBody,
  ArrivalBody,
  CancelBody,
  CaseNoParam,
  ColourBody,
  DepartureBody,
  DoorAlarmBody,
  ExtendBody,
  HealthCheckBody,
  HomeCheckInBody,
  IdempotencyHeader,
  InspectionBody,
  SignalAccepted,
  UpdateAnswer,
} from '../schemas';
import { commandKey, sendCommand, sendReport, sendReportWithAnswer } from '../commands';
import { HttpProblem, validationProblem } from '../problem';
import { ANTIGEN_REPORTERS } from '../../domain/case/rules';
import { authorizeCase, boundToNoHotel, requireStreetForCommunity } from '../scope';
import { isScopedCheckType } from '../../workflows/case-types';

/**
 * Keys refused a case's health checks lately, per API: their next checks to that case go the
 * API's own way (a read, no update) for REFUSED_SCOPE_MS, so a misconfigured tablet of another
 * hotel cannot keep costing the case's worker a workflow task per check. Routing only: the API's
 * check judges them as it always did, and a check it lets through forgets the entry. Bounded;
 * the oldest is forgotten first.
 */
const refusedScopes = new WeakMap<ApiContext, Map<string, number>>();
const REFUSED_SCOPES_KEPT = 10_000;
const REFUSED_SCOPE_MS = 10 * 60_000;
function refusedScopesOf(app: ApiContext): Map<string, number> {
  let seen = refusedScopes.get(app);
  if (!seen) refusedScopes.set(app, (seen = new Map()));
  return seen;
}
const refusedLately = (app: ApiContext, id: string): boolean => {
  const until = refusedScopesOf(app).get(id);
  return until !== undefined && until > Date.now();
};
function rememberRefusal(app: ApiContext, id: string): void {
  const seen = refusedScopesOf(app);
  seen.delete(id);
  seen.set(id, Date.now() + REFUSED_SCOPE_MS);
  if (seen.size > REFUSED_SCOPES_KEPT) seen.delete(seen.keys().next().value!);
}

/** How far a reported time may lie ahead of ours (device clocks drift), and behind it. */
const MAX_AHEAD_MS = 5 * 60_000;
const MAX_BEHIND_MS = 24 * 3_600_000;

/** A reported time within bounds, or a field error: a back-dated arrival would bring release forward. */
function boundedTime(app: ApiContext, field: string, value: string | undefined): string {
  const now = app.now().getTime();
  if (value === undefined) return new Date(now).toISOString();
  const t = Date.parse(value);
  if (t > now + MAX_AHEAD_MS) throw validationProblem([{ in: 'body', path: field, message: 'is in the future' }]);
  if (t < now - MAX_BEHIND_MS)
    throw validationProblem([{ in: 'body', path: field, message: 'is more than 24 hours ago' }]);
  return value;
}

const signalResponses = {
  202: {
    description:
      'Queued: recorded in the case history (durable even while no worker runs); the case acts on it when its worker runs it',
    schema: SignalAccepted,
  },
  404: { description: 'No such case', contentType: 'application/problem+json' },
  409: { description: 'The case is closed', contentType: 'application/problem+json' },
  504: {
    description: 'Temporal did not confirm in time: the outcome is unknown; retry with the same Idempotency-Key',
    contentType: 'application/problem+json',
  },
};
/** The answers of any command sent to a case's workflow that say it was not sent, or may have landed. */
export const commandOutcomeResponses = {
  503: {
    description:
      'A dependency is known to be down (`dependency`: temporal, database or worker): the command was not sent; retry after Retry-After',
    contentType: 'application/problem+json',
  },
  504: {
    description:
      'No worker answered in time: the outcome is unknown (it may still be applied); retry with the same Idempotency-Key (also in the answer)',
    contentType: 'application/problem+json',
  },
} as const;
const updateResponses = {
  200: { description: "Applied: the case's worker took the command; its answer", schema: UpdateAnswer },
  404: { description: 'No such case', contentType: 'application/problem+json' },
  409: { description: 'The workflow rejected the command; `detail` says why', contentType: 'application/problem+json' },
  422: {
    description: 'The workflow judged the input invalid; `detail` says why',
    contentType: 'application/problem+json',
  },
  ...commandOutcomeResponses,
};
const reportResponses = {
  ...updateResponses,
  200: {
    description: "Applied: the case's worker recorded the check; its answer (fever, escalations, next due)",
    schema: UpdateAnswer,
  },
  202: {
    description:
      'Queued: no worker answered in time, so the check is kept in the case history and applied when a worker runs ' +
      '(fever escalation included). Applied once, even if the unanswered attempt also lands.',
    schema: SignalAccepted,
  },
  503: {
    description: 'Temporal or the database is known to be down: the check was not sent; retry after Retry-After',
    contentType: 'application/problem+json',
  },
};

const caseTag = ['case commands'];
const supervisorTag = ['supervisor'];

function signalRoute<B extends object, T>(opts: {
  path: string;
  operationId: string;
  summary: string;
  roles: Role[];
  body: import('zod').ZodType<B>;
  toInput(app: ApiContext, key: ApiKey, body: B): T;
  signal: SignalDefinition<[T]>;
}): AnyRoute {
  return defineRoute({
    method: 'post',
    path: opts.path,
    operationId: opts.operationId,
    summary: opts.summary,
    tags: caseTag,
    access: { kind: 'key', roles: opts.roles },
    params: CaseNoParam,
    body: opts.body,
    requestHeaders: IdempotencyHeader,
    responses: signalResponses,
    async handler({ app, key, params, body, req, res }) {
      const { key: idem, supplied } = commandKey(req);
      if (supplied) res.setHeader('Idempotency-Key', idem);
      // A field report keeps the caller's key only: the case knows repeats of a report by its content.
      const input = { ...opts.toInput(app, key!, body as B), ...(supplied ? { key: idem } : {}) };
      await authorizeCase(app, key!, params.caseNo, opts.signal.name === 'arrival' ? 'arrival' : 'act');
      await sendReport(app, params.caseNo, opts.signal, input);
      res.status(202).json({
        caseNo: params.caseNo,
        accepted: true,
        status: 'queued',
        ...(supplied ? { idempotencyKey: idem } : {}),
      });
    },
  });
}

function updateRoute<B extends object, R, T extends object>(opts: {
  path: string;
  operationId: string;
  summary: string;
  roles: Role[];
  tags: string[];
  body: import('zod').ZodType<B>;
  toInput(app: ApiContext, key: ApiKey, body: B, idempotencyKey: string): T;
  update: UpdateDefinition<R, [T]>;
  /** A check of the key beyond its role (e.g. a community key must be bound to a street). */
  guard?: (key: ApiKey) => void;
}): AnyRoute {
  return defineRoute({
    method: 'post',
    path: opts.path,
    operationId: opts.operationId,
    summary: opts.summary,
    tags: opts.tags,
    access: { kind: 'key', roles: opts.roles },
    params: CaseNoParam,
    body: opts.body,
    requestHeaders: IdempotencyHeader,
    responses: updateResponses,
    async handler({ app, key, params, body, req, res }) {
      const { key: idem } = commandKey(req);
      // Before anything is awaited: whatever answers this request (even the deadline) names the key.
      res.setHeader('Idempotency-Key', idem);
      const input = { ...opts.toInput(app, key!, body as B, idem), key: idem };
      opts.guard?.(key!);
      await authorizeCase(app, key!, params.caseNo);
      const result = await sendCommand(app, params.caseNo, opts.update, input, idem);
      res.setHeader('Idempotency-Key', idem);
      res.status(200).json({ caseNo: params.caseNo, status: 'applied', result: result ?? {}, idempotencyKey: idem });
    },
  });
}

const at = (app: ApiContext, v?: string) => v ?? app.now().toISOString();

export const caseCommandRoutes: AnyRoute[] = [
  signalRoute({
    path: '/api/v1/cases/:caseNo/arrival',
    operationId: 'recordArrival',
    summary: 'The person arrived at the hotel (optionally with a rapid antigen result)',
    roles: ['hotel', 'transport', 'admin'],
    body: ArrivalBody,
    signal: arrivalSignal,
    toInput: (app, key, b) => {
      // A rapid test at the door is a medical result: hotel and medical staff give it, a driver does not.
      if (b.antigen && !ANTIGEN_REPORTERS.includes(key.role))
        throw new HttpProblem(403, `A ${key.role} key cannot report an antigen result`, { slug: 'antigen-role' });
      return { at: boundedTime(app, 'at', b.at), ...(b.antigen ? { antigen: b.antigen } : {}), by: actorOf(key) };
    },
  }),
  signalRoute({
    path: '/api/v1/cases/:caseNo/departure',
    operationId: 'recordDeparture',
    summary: 'Hospital transfer: the person has left the room (only then is the room disinfected and freed)',
    roles: ['hotel', 'transport', 'medical', 'admin'],
    body: DepartureBody,
    signal: departureSignal,
    toInput: (app, key, b) => ({ at: boundedTime(app, 'at', b.at), by: actorOf(key) }),
  }),
  signalRoute({
    path: '/api/v1/cases/:caseNo/door-alarms',
    operationId: 'recordDoorAlarm',
    summary: "A door sensor fired for the case's room",
    roles: ['hotel', 'admin'],
    body: DoorAlarmBody,
    signal: doorAlarmSignal,
    toInput: (app, key, b) => ({
      at: at(app, b.at),
      ...(b.sensorId ? { sensorId: b.sensorId } : {}),
      by: actorOf(key),
    }),
  }),
  signalRoute({
    path: '/api/v1/cases/:caseNo/address-inspections',
    operationId: 'recordAddressInspection',
    summary: 'The community inspected the home address: single occupancy or not',
    roles: ['community', 'admin'],
    body: InspectionBody,
    signal: inspectionResultSignal,
    toInput: (app, key, b) => ({
      inspectionId: b.inspectionId,
      singleOccupancy: b.singleOccupancy,
      inspector: b.inspector,
      at: at(app, b.at),
      ...(b.note ? { note: b.note } : {}),
      by: actorOf(key),
    }),
  }),
  defineRoute({
    method: 'post',
    path: '/api/v1/cases/:caseNo/health-checks',
    operationId: 'recordHealthCheck',
    summary: 'Record a health check (temperature, symptoms); applied at once, or queued while no worker runs',
    description:
      'With a worker running: 200, applied, with the answer (fever, escalations opened, next check due). ' +
      'With none (or none answering within API_REPORT_WAIT_MS, or, while the worker is behind, within about its ' +
      'backlog, up to API_REPORT_MAX_WAIT_MS; at once while the database is known away, since the answer would wait on ' +
      'the read-model write): 202, queued: the check is in the case history ' +
      'and is applied when a worker runs it, fever escalation included; a check the case then refuses is ' +
      'recorded as `health_check_refused`. The same Idempotency-Key or checkId is one check, however often sent.',
    tags: caseTag,
    access: { kind: 'key', roles: ['medical', 'hotel', 'admin'] },
    params: CaseNoParam,
    body: HealthCheckBody,
    requestHeaders: IdempotencyHeader,
    responses: reportResponses,
    async handler({ app, key, params, body, req, res }) {
      const b = body as import('zod').infer<typeof HealthCheckBody>;
      const { key: idem } = commandKey(req);
      // Before anything is awaited: whatever answers this request (even the deadline) names the key.
      res.setHeader('Idempotency-Key', idem);
      const input = {
        // Without the caller's id, the key (theirs, or one made here) names the check: a retry
        // with it, and a queued copy of it, are the same check.
        checkId: b.checkId ?? `chk-${idem}`,
        takenAt: boundedTime(app, 'takenAt', b.takenAt),
        ...(b.temperatureC !== undefined ? { temperatureC: b.temperatureC } : {}),
        symptoms: b.symptoms ?? [],
        by: actorOf(key!),
        key: idem,
      };
      // v5 and v6 cases judge the caller's scope themselves (nothing read first). The API's own
      // check instead: a case known to be of another type, a key refused this case lately, and a
      // hotel or medical key bound to no hotel (refused as before, after the case is looked up).
      const type = app.ops.knownType(params.caseNo);
      const scopeId = `${key!.id}:${params.caseNo}`;
      const scoped =
        app.config.API_SCOPED_CHECKS &&
        (type === undefined || isScopedCheckType(type)) &&
        !boundToNoHotel(key!) &&
        !refusedLately(app, scopeId)
          ? { update: scopedHealthCheckUpdate, input: { ...input, caller: keyScopeOf(key!) } }
          : undefined;
      const outcome = await sendReportWithAnswer(
        app,
        params.caseNo,
        {
          update: healthCheckUpdate,
          queued: healthCheckSignal,
          scoped,
          async authorize() {
            const scope = await authorizeCase(app, key!, params.caseNo);
            // With the read model's version, the case hands us its read-model write in the answer
            // (src/api/answer-writes.ts); without one (the row not read), it writes it itself.
            return scope.readModelVersion === undefined || !app.config.API_ANSWER_WRITES
              ? input
              : { ...input, readModel: { version: scope.readModelVersion } };
          },
        },
        idem,
      ).catch((err: unknown) => {
        if (err instanceof HttpProblem && err.status === 403) rememberRefusal(app, scopeId);
        throw err;
      });
      if (!scoped) refusedScopesOf(app).delete(scopeId);
      res.setHeader('Idempotency-Key', idem);
      if (outcome.status === 'applied') {
        res
          .status(200)
          .json({ caseNo: params.caseNo, status: 'applied', result: outcome.result ?? {}, idempotencyKey: idem });
        return;
      }
      res.status(202).json({
        caseNo: params.caseNo,
        accepted: true,
        status: 'queued',
        checkId: input.checkId,
        idempotencyKey: idem,
        detail: `Queued, not yet applied: ${outcome.reason}. It is kept in the case history and applied when a worker runs.`,
      });
    },
  }),
  updateRoute({
    path: '/api/v1/cases/:caseNo/home-check-ins',
    operationId: 'homeCheckIn',
    summary: "Home monitoring: the street's daily check-in with a released person (temperature, symptoms)",
    roles: ['community', 'admin'],
    tags: caseTag,
    body: HomeCheckInBody,
    update: homeCheckInUpdate,
    // The street's own community worker: a community key bound to no street checks in nobody.
    guard: requireStreetForCommunity,
    // Without the caller's id, the key (theirs, or one made here) names the check-in.
    toInput: (app, key, b, idem) => ({
      checkInId: b.checkInId ?? `home-${idem}`,
      takenAt: boundedTime(app, 'takenAt', b.takenAt),
      temperatureC: b.temperatureC,
      symptoms: b.symptoms ?? [],
      by: actorOf(key),
    }),
  }),
  updateRoute({
    path: '/api/v1/cases/:caseNo/extend',
    operationId: 'changeStay',
    summary: 'Extend (or shorten, with negative days) the stay',
    roles: ['supervisor', 'admin'],
    tags: supervisorTag,
    body: ExtendBody,
    update: changeStayUpdate,
    toInput: (_app, key, b) => ({ days: b.days, reason: b.reason, by: actorOf(key) }),
  }),
  updateRoute({
    path: '/api/v1/cases/:caseNo/colour',
    operationId: 'changeColour',
    summary: "Change the case's colour",
    roles: ['supervisor', 'admin'],
    tags: supervisorTag,
    body: ColourBody,
    update: changeColourUpdate,
    toInput: (_app, key, b) => ({ colour: b.colour, reason: b.reason, by: actorOf(key) }),
  }),
  updateRoute({
    path: '/api/v1/cases/:caseNo/address',
    operationId: 'setAddress',
    summary: 'Set another release address (inspected again)',
    roles: ['supervisor', 'admin'],
    tags: supervisorTag,
    body: AddressBody,
    update: setAddressUpdate,
    toInput: (_app, key, b) => ({ address: b.address, reason: b.reason, by: actorOf(key) }),
  }),
  updateRoute({
    path: '/api/v1/cases/:caseNo/cancel',
    operationId: 'cancelCase',
    summary: 'Cancel the case (before or during the stay)',
    roles: ['supervisor', 'admin'],
    tags: supervisorTag,
    body: CancelBody,
    update: cancelUpdate,
    toInput: (_app, key, b) => ({ reason: b.reason, by: actorOf(key) }),
  }),
];
