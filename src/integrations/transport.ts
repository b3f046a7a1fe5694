import { z } from 'zod';

import type { Logger } from '../log';
import { rejected } from './errors';
import { postJson, type HttpTarget } from './http';
import { AnswerCache, stableId } from './ids';
import { keyFor, type CallbackPoster, type CallbackTarget, type SimulatorScheduler } from './simulator';

export interface DispatchRequest {
  /** `<workflowId>:<step>` */
  idempotencyKey: string;
  caseNo: string;
  purpose: 'intake' | 'hospital';
  hotelId: string;
  roomNo?: string;
  /** The case's district (the simulator calls back with that district's key). */
  district: string;
  /** PII: sent to the transport system only, never logged. */
  pickupAddress?: string;
}

export interface CancelRequest {
  idempotencyKey: string;
  caseNo: string;
  dispatchId: string;
}

/** Transfer vehicles: dispatch and cancel; arrival comes back through POST /api/v1/cases/{caseNo}/arrival. */
export interface TransportService {
  dispatch(req: DispatchRequest): Promise<{ dispatchId: string }>;
  cancel(req: CancelRequest): Promise<void>;
}

const dispatchSchema = z.object({ dispatchId: z.string().min(1) });

/** A real dispatch system: POST {TRANSPORT_URL}/dispatches → `{ dispatchId }`; POST /dispatches/{id}/cancel. */
export class TransportHttpClient implements TransportService {
  constructor(private readonly target: HttpTarget) {}

  async dispatch(req: DispatchRequest): Promise<{ dispatchId: string }> {
    const { idempotencyKey, ...body } = req;
    const res = dispatchSchema.safeParse(await postJson(this.target, 'dispatches', body, { idempotencyKey }));
    if (!res.success) throw rejected(this.target.system, 'dispatch accepted without a dispatchId');
    return { dispatchId: res.data.dispatchId };
  }

  async cancel(req: CancelRequest): Promise<void> {
    await postJson(
      this.target,
      `dispatches/${encodeURIComponent(req.dispatchId)}/cancel`,
      { caseNo: req.caseNo },
      { idempotencyKey: req.idempotencyKey },
    );
  }
}

export interface TransportSimulatorOptions {
  delayMs: number;
  scheduler: SimulatorScheduler;
  log: Logger;
  callback?: { target: CallbackTarget; poster: CallbackPoster };
}

/** Drives to the hotel and, for an intake, reports the arrival after `delayMs`. */
export class TransportSimulator implements TransportService {
  private readonly dispatches = new AnswerCache<string>();
  constructor(private readonly opts: TransportSimulatorOptions) {}

  async dispatch(req: DispatchRequest): Promise<{ dispatchId: string }> {
    const known = this.dispatches.get(req.idempotencyKey);
    if (known) return { dispatchId: known };
    const dispatchId = stableId('simtr', req.idempotencyKey);
    this.dispatches.set(req.idempotencyKey, dispatchId);
    const cb = this.opts.callback;
    // A hospital transfer ends the case; nobody waits for that vehicle's arrival.
    if (cb && req.purpose === 'intake') {
      this.opts.scheduler.after(`transport:${dispatchId}`, this.opts.delayMs, async () =>
        cb.poster.post(
          'transport',
          await keyFor(cb.target.keys.transport, req.district),
          `api/v1/cases/${encodeURIComponent(req.caseNo)}/arrival`,
          {
            at: new Date().toISOString(),
          },
        ),
      );
    }
    this.opts.log.debug('transport simulator dispatch', { caseNo: req.caseNo, dispatchId, purpose: req.purpose });
    return { dispatchId };
  }

  async cancel(req: CancelRequest): Promise<void> {
    this.opts.scheduler.cancel(`transport:${req.dispatchId}`);
  }
}
