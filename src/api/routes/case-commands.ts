import crypto from 'node:crypto';

import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';

import type { Role } from '../../domain/types';
import {
  arrivalSignal,
  cancelUpdate,
  changeColourUpdate,
  changeStayUpdate,
  departureSignal,
  doorAlarmSignal,
  healthCheckUpdate,
  inspectionResultSignal,
  setAddressUpdate,
} from '../../workflows/messages';
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
  IdempotencyHeader,
  InspectionBody,
  SignalAccepted,
  UpdateAnswer,
} from '../schemas';
import { HttpProblem, validationProblem } from '../problem';
import { ANTIGEN_REPORTERS } from '../../domain/case/rules';
import { authorizeCase } from '../scope';
import { temporalProblem } from '../temporal-ops';

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

/** The caller's Idempotency-Key: a retry with the same key gets the first answer and changes nothing twice. */
function idempotencyKey(req: { get(name: string): string | undefined }): string | undefined {
  const k = req.get('idempotency-key');
  if (k === undefined) return undefined;
  // The same schema the OpenAPI document shows.
  if (!IdempotencyHeader.shape['Idempotency-Key'].safeParse(k).success)
    throw validationProblem([
      { in: 'header', path: 'Idempotency-Key', message: 'up to 128 letters, digits and . _ : -' },
    ]);
  return k;
}

async function sendSignal<T>(app: ApiContext, key: ApiKey, caseNo: string, def: SignalDefinition<[T]>, input: T) {
  await authorizeCase(app, key, caseNo, def.name === 'arrival' ? 'arrival' : 'act');
  try {
    await app.ops.signal(caseNo, def, input);
  } catch (err) {
    throw temporalProblem(err, caseNo) ?? err;
  }
}

async function sendUpdate<R, T>(app: ApiContext, key: ApiKey, caseNo: string, def: UpdateDefinition<R, [T]>, input: T) {
  await authorizeCase(app, key, caseNo, 'act');
  try {
    return await app.ops.update(caseNo, def, input);
  } catch (err) {
    throw temporalProblem(err, caseNo) ?? err;
  }
}

const signalResponses = {
  202: {
    description: 'Recorded in the case history (the workflow acts on it even if no worker runs now)',
    schema: SignalAccepted,
  },
  404: { description: 'No such case', contentType: 'application/problem+json' },
  409: { description: 'The case is closed', contentType: 'application/problem+json' },
};
const updateResponses = {
  200: { description: 'The workflow accepted the command; its answer', schema: UpdateAnswer },
  404: { description: 'No such case', contentType: 'application/problem+json' },
  409: { description: 'The workflow rejected the command; `detail` says why', contentType: 'application/problem+json' },
  422: {
    description: 'The workflow judged the input invalid; `detail` says why',
    contentType: 'application/problem+json',
  },
  504: {
    description: 'No worker answered in time: the outcome is unknown; retry with the same Idempotency-Key',
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
  toInput(app: ApiContext, key: ApiKey, body: B, idempotencyKey?: string): T;
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
      const idem = idempotencyKey(req);
      const input = { ...opts.toInput(app, key!, body as B, idem), ...(idem ? { key: idem } : {}) };
      await sendSignal(app, key!, params.caseNo, opts.signal, input);
      res.status(202).json({ caseNo: params.caseNo, accepted: true });
    },
  });
}

function updateRoute<B extends object, R, T>(opts: {
  path: string;
  operationId: string;
  summary: string;
  roles: Role[];
  tags: string[];
  body: import('zod').ZodType<B>;
  toInput(app: ApiContext, key: ApiKey, body: B, idempotencyKey?: string): T;
  update: UpdateDefinition<R, [T]>;
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
      const idem = idempotencyKey(req);
      const input = { ...opts.toInput(app, key!, body as B, idem), ...(idem ? { key: idem } : {}) };
      const result = await sendUpdate(app, key!, params.caseNo, opts.update, input);
      res.status(200).json({ caseNo: params.caseNo, result: result ?? {} });
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
  updateRoute({
    path: '/api/v1/cases/:caseNo/health-checks',
    operationId: 'recordHealthCheck',
    summary: 'Record a health check (temperature, symptoms); answers fever, escalations, next due',
    roles: ['medical', 'hotel', 'admin'],
    tags: caseTag,
    body: HealthCheckBody,
    update: healthCheckUpdate,
    toInput: (app, key, b, idem) => ({
      // Without the caller's id a retry is recognised by its Idempotency-Key; without either, a
      // fresh id at least keeps one check one record.
      checkId: b.checkId ?? (idem ? `chk-${idem}` : `chk-${crypto.randomUUID()}`),
      takenAt: boundedTime(app, 'takenAt', b.takenAt),
      ...(b.temperatureC !== undefined ? { temperatureC: b.temperatureC } : {}),
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
