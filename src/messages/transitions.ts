// A status change is one D1 batch: the conditional UPDATE (which also appends to the message's
// history) and its outbox event. The event is guarded by changes(), so a transition that does not
// apply (wrong current status: a duplicate, a cancel race, a status going backwards) writes nothing.
import { sql, type SQL } from "drizzle-orm";
import type { MessageStatus } from "../contracts/events.ts";
import { changes, runBatch } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { writeEvent } from "../outbox/write.ts";

export type Transition = {
  /** The message's id, or a scalar subquery that finds it (a receipt knows only the provider id). */
  messageId: string | SQL;
  from: readonly MessageStatus[];
  to: MessageStatus;
  at: number;
  attempt?: number;
  detail?: string;
  lastError?: string | null;
  providerMessageId?: string;
  /** Extra condition the UPDATE must meet (e.g. no older message waiting in the lane). */
  where?: SQL;
};

/** A sent message with no delivered/read receipt this long after it went is checked with Evolution. */
export const RECEIPT_CHECK_AFTER_MS = 10 * 60_000;

const stampColumn: Partial<Record<MessageStatus, string>> = {
  sent: "sent_at",
  delivered: "delivered_at",
  read: "read_at",
  failed: "failed_at",
  canceled: "canceled_at",
};

/** One history entry, as appended to messages.history. */
export function historyEntry(e: { status: string; at: number; attempt?: number | null; detail?: string | null }): SQL {
  return sql`json_object('status', ${e.status}, 'at', ${e.at}, 'attempt', ${e.attempt ?? null}, 'detail', ${e.detail ?? null})`;
}

/** A SET clause that appends an entry to the message's history (the row's own JSON array). */
export function appendHistory(e: Parameters<typeof historyEntry>[0]): SQL {
  return sql`history = json_insert(history, '$[#]', ${historyEntry(e)})`;
}

export function transitionStatements(t: Transition): SQL[] {
  const sets: SQL[] = [sql`status = ${t.to}`, sql`updated_at = ${t.at}`, appendHistory({ status: t.to, at: t.at, attempt: t.attempt, detail: t.detail })];
  const stamp = stampColumn[t.to];
  if (stamp) sets.push(sql`${sql.raw(stamp)} = COALESCE(${sql.raw(stamp)}, ${t.at})`);
  // A read receipt implies delivery even when DELIVERY_ACK never came.
  if (t.to === "read") sets.push(sql`delivered_at = COALESCE(delivered_at, ${t.at})`);
  if (t.to === "queued") sets.push(sql`ready_at = MAX(ready_at, ${t.at})`);
  // A sent message whose receipts never come is checked with Evolution later (sweep/receipts.ts).
  // Only channels with receipts: a Telegram message ends at `sent` (Telegram gives bots none).
  if (t.to === "sent") sets.push(sql`receipt_check_at = CASE WHEN channel = 'whatsapp' THEN ${t.at + RECEIPT_CHECK_AFTER_MS} END`, sql`receipt_checks = 0`);
  if (t.attempt !== undefined) sets.push(sql`attempts = ${t.attempt}`);
  if (t.lastError !== undefined) sets.push(sql`last_error = ${t.lastError}`);
  if (t.providerMessageId !== undefined) sets.push(sql`provider_message_id = ${t.providerMessageId}`);
  const from = sql.join(
    t.from.map((s) => sql`${s}`),
    sql`, `,
  );
  return [
    sql`UPDATE messages SET ${sql.join(sets, sql`, `)} WHERE id = ${t.messageId} AND status IN (${from}) AND ${t.where ?? sql`1`}`,
    outboxStatusEvent(t.messageId, t.at, t.attempt, sql`changes() > 0`),
  ];
}

// message.status event built from the row as it now stands, so it always matches what was stored.
export function outboxStatusEvent(messageId: string | SQL, at: number, attempt: number | undefined, guard: SQL = sql`1`): SQL {
  return writeEvent("message.status", {
    tenantId: sql`m.tenant_id`,
    occurredAt: at,
    data: {
      messageId: sql`m.id`,
      instance: sql`m.instance_name`,
      channel: sql`m.channel`,
      to: sql`m."to"`,
      status: sql`m.status`,
      attempt: attempt ?? null,
      error: sql`CASE WHEN m.status = 'failed' OR ${attempt ?? 0} > 0 THEN m.last_error END`,
      providerMessageId: sql`m.provider_message_id`,
      metadata: sql`json(m.metadata)`,
    },
    callbackUrl: sql`COALESCE(m.callback_url, t.callback_url)`,
    source: sql`FROM messages m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = ${messageId} AND ${guard}`,
  });
}

// Runs one transition; true when it applied.
export async function applyTransition(db: Db, t: Transition): Promise<boolean> {
  const [update] = await runBatch(db, transitionStatements(t));
  return changes(update) > 0;
}
