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
    // Both channels at once, each on its own: the webhook must not wait for (or fail with) a
    // database that is down, and the list must not wait for a webhook that is. The activity
    // retries whatever failed; the webhook call carries an idempotency key, the list insert is
    // insert-if-missing (the workflow's record owns the row's content).
    const listed = db
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
    const posted = webhook
      ? postJson(
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
        )
      : Promise.resolve();
    const [list, hook] = await Promise.allSettled([listed, posted]);
    if (hook.status === 'rejected') throw hook.reason;
    if (list.status === 'rejected') throw list.reason;
    // Notified: on the list and through the webhook.
    await db.update(escalations).set({ notifiedAt: new Date() }).where(eq(escalations.id, e.id));
    log.info('escalation notified', { caseNo: notice.caseNo, escalationId: e.id, level: e.level, webhook: !!webhook });
    return { webhook: !!webhook };
  }
}
