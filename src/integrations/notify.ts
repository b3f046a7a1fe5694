import { eq } from 'drizzle-orm';

import type { Db } from '../db';
import { escalations } from '../db/schema';
import type { Escalation } from '../domain/types';
import type { Logger } from '../log';
import { postJson, type HttpTarget } from './http';

export interface EscalationNotice {
  /** `<workflowId>:<step>` */
  idempotencyKey: string;
  caseNo: string;
  hotelId?: string;
  escalation: Escalation;
}

/** Puts an escalation in front of people: the escalation list always, a webhook when configured. */
export interface NotifyService {
  notify(notice: EscalationNotice): Promise<{ webhook: boolean }>;
}

export interface EscalationNotifierOptions {
  db: Db;
  log: Logger;
  /** NOTIFY_WEBHOOK_URL; unset means the escalation list is the only channel. */
  webhook?: HttpTarget;
}

export class EscalationNotifier implements NotifyService {
  constructor(private readonly opts: EscalationNotifierOptions) {}

  async notify(notice: EscalationNotice): Promise<{ webhook: boolean }> {
    const { db, webhook, log } = this.opts;
    const e = notice.escalation;
    // The list first, so the command centre sees the escalation even while the webhook is down.
    // The workflow's record (recordCase) owns the row's content; here only insert-if-missing.
    await db
      .insert(escalations)
      .values({
        id: e.id,
        caseNo: notice.caseNo,
        hotelId: notice.hotelId ?? null,
        kind: e.kind,
        level: e.level,
        severity: e.severity,
        reason: e.reason,
        status: e.status,
        openedAt: new Date(e.openedAt),
      })
      .onConflictDoNothing({ target: escalations.id });
    if (webhook) {
      await postJson(
        webhook,
        '',
        {
          escalationId: e.id,
          caseNo: notice.caseNo,
          hotelId: notice.hotelId,
          kind: e.kind,
          level: e.level,
          severity: e.severity,
          reason: e.reason,
          openedAt: e.openedAt,
        },
        { idempotencyKey: notice.idempotencyKey },
      );
    }
    await db.update(escalations).set({ notifiedAt: new Date() }).where(eq(escalations.id, e.id));
    log.info('escalation notified', { caseNo: notice.caseNo, escalationId: e.id, level: e.level, webhook: !!webhook });
    return { webhook: !!webhook };
  }
}
