import { ErrorCode } from '../activities/types';
import type { Logger } from '../log';
import { postJson, type HttpTarget } from './http';
import { AnswerCache } from './ids';
import { keyFor, type CallbackPoster, type CallbackTarget, type SimulatorScheduler } from './simulator';

export interface InspectionRequest {
  /** `<workflowId>:<step>` */
  idempotencyKey: string;
  caseNo: string;
  inspectionId: string;
  district: string;
  street: string;
  /** PII: sent to the community system only, never logged. */
  address: string;
}

export interface HandOverRequest {
  idempotencyKey: string;
  caseNo: string;
  district: string;
  street: string;
  releasedAt: string;
  certificateNo: string;
}

/** A positive result for someone the community now looks after (released home, or cancelled). */
export interface CommunityAlert {
  idempotencyKey: string;
  caseNo: string;
  district: string;
  street: string;
  escalationId: string;
  kind: string;
  reason: string;
}

/**
 * The street office / community system: inspects a home for single occupancy (the answer
 * comes back through POST /api/v1/cases/{caseNo}/address-inspections) and takes over a
 * released person for home isolation.
 */
export interface CommunityService {
  requestInspection(req: InspectionRequest): Promise<void>;
  handOver(req: HandOverRequest): Promise<void>;
  /** Tells the street office a person who has left quarantine needs its action now. */
  alert(req: CommunityAlert): Promise<void>;
}

/** A real community system: POST {COMMUNITY_URL}/inspections and /handovers; 422 = address it cannot inspect. */
export class CommunityHttpClient implements CommunityService {
  constructor(private readonly target: HttpTarget) {}

  async requestInspection(req: InspectionRequest): Promise<void> {
    const { idempotencyKey, ...body } = req;
    await postJson(this.target, 'inspections', body, { idempotencyKey, unprocessableAs: ErrorCode.InvalidAddress });
  }

  async handOver(req: HandOverRequest): Promise<void> {
    const { idempotencyKey, ...body } = req;
    await postJson(this.target, 'handovers', body, { idempotencyKey });
  }

  async alert(req: CommunityAlert): Promise<void> {
    const { idempotencyKey, ...body } = req;
    await postJson(this.target, 'alerts', body, { idempotencyKey });
  }
}

export interface InspectionFixture {
  singleOccupancy: boolean;
  note?: string;
}

export interface CommunitySimulatorOptions {
  delayMs: number;
  /** Addresses containing this (case-insensitive) are not single-occupancy. */
  failMarker: string;
  /** Exact address → answer, checked before the marker rule (drills and tests). */
  fixtures?: Record<string, InspectionFixture>;
  scheduler: SimulatorScheduler;
  log: Logger;
  callback?: { target: CallbackTarget; poster: CallbackPoster };
}

export class CommunitySimulator implements CommunityService {
  private readonly requested = new AnswerCache<true>();
  constructor(private readonly opts: CommunitySimulatorOptions) {}

  /** The simulated inspector's verdict: fixture first, then the marker rule. */
  inspect(address: string): InspectionFixture {
    const fixture = this.opts.fixtures?.[address];
    if (fixture) return fixture;
    const marker = this.opts.failMarker.trim().toLowerCase();
    if (marker && address.toLowerCase().includes(marker)) {
      return { singleOccupancy: false, note: 'Shared dwelling: not one person per unit (simulated inspection).' };
    }
    return { singleOccupancy: true };
  }

  async requestInspection(req: InspectionRequest): Promise<void> {
    if (this.requested.get(req.idempotencyKey)) return;
    this.requested.set(req.idempotencyKey, true);
    const cb = this.opts.callback;
    if (cb) {
      const verdict = this.inspect(req.address);
      this.opts.scheduler.after(`community:${req.inspectionId}`, this.opts.delayMs, async () =>
        cb.poster.post(
          'community',
          await keyFor(cb.target.keys.community, req.district),
          `api/v1/cases/${encodeURIComponent(req.caseNo)}/address-inspections`,
          {
            inspectionId: req.inspectionId,
            singleOccupancy: verdict.singleOccupancy,
            inspector: 'community-simulator',
            at: new Date().toISOString(),
            ...(verdict.note ? { note: verdict.note } : {}),
          },
        ),
      );
    }
    this.opts.log.debug('community simulator inspection', { caseNo: req.caseNo, inspectionId: req.inspectionId });
  }

  async handOver(req: HandOverRequest): Promise<void> {
    this.opts.log.info('community simulator hand-over', { caseNo: req.caseNo, certificateNo: req.certificateNo });
  }

  /** Alerts received, by idempotency key: tests and drills read them. */
  readonly alerts = new Map<string, Omit<CommunityAlert, 'idempotencyKey'>>();

  async alert(req: CommunityAlert): Promise<void> {
    const { idempotencyKey, ...alert } = req;
    this.alerts.set(idempotencyKey, alert);
    this.opts.log.info('community simulator alert', { caseNo: req.caseNo, escalationId: req.escalationId });
  }
}
