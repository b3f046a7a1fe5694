import { eq } from 'drizzle-orm';

import type { Db } from '../db';
import { within } from '../deadline';
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
  notify(notice: EscalationNotice, progress?: NoticeProgress): Promise<{ webhook: boolean }>;
}

/**
 * What the activity knows beyond this process: an earlier attempt (perhaps on another worker,
 * told through Temporal's heartbeat details) already delivered the webhook; and how to tell the
 * next attempt that this one did.
 */
export interface NoticeProgress {
  webhookDelivered?: boolean;
  onWebhookDelivered?: () => void;
}

export interface EscalationNotifierOptions {
  db: Db;
  log: Logger;
  /** NOTIFY_WEBHOOK_URL; unset means the escalation list is the only channel. */
  webhook?: HttpTarget;
}

const LIST_WAIT_MS = 5000;

/** Idempotency keys this process has already delivered to the webhook (bounded). */
const MAX_REMEMBERED = 10_000;

export class EscalationNotifier implements NotifyService {
  private readonly delivered = new Set<string>();

  constructor(private readonly opts: EscalationNotifierOptions) {}

  async notify(notice: EscalationNotice, progress: NoticeProgress = {}): Promise<{ webhook: boolean }> {
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
    // A retry while the database is down (the list insert failed) does not post the same alert
    // again: not from this process (it remembers), not from another worker (the attempt that
    // delivered said so in its heartbeat). Past both, the repeat carries the same idempotency key.
    const posted =
      webhook && !progress.webhookDelivered && !this.delivered.has(notice.idempotencyKey)
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
          ).then(() => {
            progress.onWebhookDelivered?.();
            this.delivered.add(notice.idempotencyKey);
            if (this.delivered.size > MAX_REMEMBERED) this.delivered.delete(this.delivered.values().next().value!);
          })
        : Promise.resolve();
    // The list insert is bounded like the lookup: a database that hangs must not hold the
    // activity (and its retries) for the length of an outage; the retry writes it.
    const [list, hook] = await Promise.allSettled([
      within(LIST_WAIT_MS, 'escalation list', () => Promise.resolve(listed)),
      posted,
    ]);
    if (hook.status === 'rejected') throw hook.reason;
    if (list.status === 'rejected') throw list.reason;
    // Notified: on the list and through the webhook.
    await db.update(escalations).set({ notifiedAt: new Date() }).where(eq(escalations.id, e.id));
    log.info('escalation notified', { caseNo: notice.caseNo, escalationId: e.id, level: e.level, webhook: !!webhook });
    return { webhook: !!webhook };
  }
}
