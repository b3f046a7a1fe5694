import { z } from 'zod';

import type { Logger } from '../log';
import { rejected } from './errors';
import { postJson, type HttpTarget } from './http';
import { AnswerCache } from './ids';
import type { CallbackPoster, CallbackTarget, SimulatorScheduler } from './simulator';

export interface LabOrder {
  /** `<workflowId>:<step>` */
  idempotencyKey: string;
  sampleId: string;
  caseNo: string;
  type: string;
  reason: string;
  hotelId?: string;
}

export interface LabOrderReceipt {
  labId: string;
  orderedAt: string;
  /** The lab's own reference for the order, when it gives one. */
  orderId?: string;
}

/** The testing lab: we order a sample; the result comes back later through POST /api/v1/lab/results. */
export interface LabService {
  orderSample(order: LabOrder): Promise<LabOrderReceipt>;
}

const receiptSchema = z.object({
  labId: z.string().min(1),
  orderedAt: z.string().optional(),
  orderId: z.string().max(128).optional(),
});

/** A real lab information system: POST {LAB_URL}/orders answers `{ labId, orderedAt? }`. */
export class LabHttpClient implements LabService {
  constructor(private readonly target: HttpTarget) {}

  async orderSample(order: LabOrder): Promise<LabOrderReceipt> {
    const body = await postJson(
      this.target,
      'orders',
      {
        sampleId: order.sampleId,
        caseNo: order.caseNo,
        type: order.type,
        reason: order.reason,
        hotelId: order.hotelId,
      },
      { idempotencyKey: order.idempotencyKey },
    );
    const parsed = receiptSchema.safeParse(body);
    if (!parsed.success) throw rejected(this.target.system, 'order accepted without a labId');
    return {
      labId: parsed.data.labId,
      orderedAt: parsed.data.orderedAt ?? new Date().toISOString(),
      ...(parsed.data.orderId ? { orderId: parsed.data.orderId } : {}),
    };
  }
}

export interface LabSimulatorOptions {
  delayMs: number;
  positiveRate: number;
  scheduler: SimulatorScheduler;
  log: Logger;
  /** Without it the simulator never reports, and tests deliver results by hand. */
  callback?: { target: CallbackTarget; poster: CallbackPoster };
  random?: () => number;
}

/** The simulated lab's id: samples it takes carry it, and its API key speaks for it (orgId). */
export const SIMULATED_LAB_ID = 'SIM-LAB';

/** Answers every order and, with a callback, reports a result after `delayMs` like a lab would. */
export class LabSimulator implements LabService {
  private readonly receipts = new AnswerCache<LabOrderReceipt>();
  constructor(private readonly opts: LabSimulatorOptions) {}

  async orderSample(order: LabOrder): Promise<LabOrderReceipt> {
    const known = this.receipts.get(order.idempotencyKey);
    if (known) return known;
    const receipt = { labId: SIMULATED_LAB_ID, orderedAt: new Date().toISOString(), orderId: `SIM-${order.sampleId}` };
    this.receipts.set(order.idempotencyKey, receipt);
    const cb = this.opts.callback;
    if (cb) {
      this.opts.scheduler.after(`lab:${order.sampleId}`, this.opts.delayMs, () => {
        const positive = (this.opts.random ?? Math.random)() < this.opts.positiveRate;
        const body = {
          results: [
            {
              sampleId: order.sampleId,
              result: positive ? 'positive' : 'negative',
              reportedAt: new Date().toISOString(),
            },
          ],
        };
        return cb.poster.post('lab', cb.target.keys.lab, 'api/v1/lab/results', body);
      });
    }
    this.opts.log.debug('lab simulator order', { sampleId: order.sampleId, caseNo: order.caseNo });
    return receipt;
  }
}
