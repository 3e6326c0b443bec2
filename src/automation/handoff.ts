// A contact handed to a person. D1 is the record (conversation_handoffs: the human phases under
// way; handoff_changes: every change, for the timeline). Each change writes its row, its timeline
// entry and its conversation.handoff event in one D1 batch, so an event is never lost or invented.
// While a contact is human its inbound messages are recorded as `human` instead of `pending`
// (offer.ts, wake.ts) and its automation lane holds back what already waited (lane.ts): stored and
// shown, never offered; the next call after the hand-back carries them in its conversation.
import { type SQL, sql } from "drizzle-orm";
import type { Statement } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { newId } from "../ids.ts";
import { writeEvent } from "../outbox/write.ts";

export type HandoffBy = "operator" | "handler" | "timeout";

export type Conversation = { tenantId: string; instanceId: string; instanceName: string; contact: string };

export type HandoffRow = { reason: string | null; by: string; since: number; until: number | null };

/** Human now: a hand-off row whose until (if any) has not passed. The alarm that hands back at
 *  until only writes the record and the event; the hand-back itself takes effect at until. */
export function humanSql(instanceId: SQL | string, contact: SQL | string, now: number): SQL {
  return sql`EXISTS (SELECT 1 FROM conversation_handoffs h WHERE h.instance_id = ${instanceId} AND h.contact = ${contact}
    AND (h.until IS NULL OR h.until > ${now}))`;
}

export function handoffStatement(instanceId: string, contact: string): SQL {
  return sql`SELECT reason, by, since, until FROM conversation_handoffs WHERE instance_id = ${instanceId} AND contact = ${contact}`;
}

export async function handoffOf(db: Db, instanceId: string, contact: string, now = Date.now()): Promise<HandoffRow | undefined> {
  const [row] = await db.all<HandoffRow>(handoffStatement(instanceId, contact));
  return row && (row.until === null || row.until > now) ? row : undefined;
}

const handoffEvent = (
  c: Conversation,
  now: number,
  data: { state: "human" | "bot"; reason: string | null; by: HandoffBy; until: number | null },
  source: SQL,
) =>
  writeEvent("conversation.handoff", {
    tenantId: c.tenantId,
    occurredAt: now,
    data: {
      instance: c.instanceName,
      contact: c.contact,
      channel: sql`(SELECT channel FROM instances WHERE id = ${c.instanceId})`,
      state: data.state,
      reason: data.reason,
      by: data.by,
      until: data.until === null ? null : new Date(data.until).toISOString(),
    },
    source,
  });

/** To a person: the row (since kept when already human), the timeline entry and the event.
 *  changeId names the change: a second run of the same statements (a lane's retry) writes nothing. */
export function takeOverStatements(
  c: Conversation,
  input: { reason: string | null; until: number | null; by: HandoffBy; now: number; changeId?: string },
): Statement[] {
  const { reason, until, by, now } = input;
  const changeId = input.changeId ?? newId("ho");
  return [
    handoffEvent(c, now, { state: "human", reason, by, until }, sql`WHERE NOT EXISTS (SELECT 1 FROM handoff_changes WHERE id = ${changeId})`),
    sql`INSERT INTO handoff_changes (id, tenant_id, instance_id, instance_name, contact, state, reason, by, at)
      VALUES (${changeId}, ${c.tenantId}, ${c.instanceId}, ${c.instanceName}, ${c.contact}, 'human', ${reason}, ${by}, ${now})
      ON CONFLICT (id) DO NOTHING`,
    // A row whose until has passed (its alarm not yet run) starts a new phase.
    sql`INSERT INTO conversation_handoffs (instance_id, contact, tenant_id, reason, by, since, until, updated_at)
      VALUES (${c.instanceId}, ${c.contact}, ${c.tenantId}, ${reason}, ${by}, ${now}, ${until}, ${now})
      ON CONFLICT (instance_id, contact) DO UPDATE SET reason = excluded.reason, by = excluded.by, until = excluded.until,
        since = CASE WHEN conversation_handoffs.until IS NOT NULL AND conversation_handoffs.until <= ${now} THEN excluded.since
          ELSE conversation_handoffs.since END,
        updated_at = excluded.updated_at`,
  ];
}

/** Back to the handler: the timeline entry, the event and the row's removal, all only when the
 *  contact is handed off (and, for a timeout, only for the phase whose until it is). The first
 *  statement's changes say whether anything changed. */
export function handBackStatements(c: Conversation, input: { by: HandoffBy; now: number; until?: number }): Statement[] {
  const { by, now } = input;
  const phase =
    input.until === undefined
      ? sql`instance_id = ${c.instanceId} AND contact = ${c.contact}`
      : sql`instance_id = ${c.instanceId} AND contact = ${c.contact} AND until = ${input.until} AND until <= ${now}`;
  return [
    handoffEvent(c, now, { state: "bot", reason: null, by, until: null }, sql`FROM conversation_handoffs WHERE ${phase}`),
    sql`INSERT INTO handoff_changes (id, tenant_id, instance_id, instance_name, contact, state, reason, by, at)
      SELECT ${newId("ho")}, ${c.tenantId}, ${c.instanceId}, ${c.instanceName}, ${c.contact}, 'bot', NULL, ${by}, ${now}
      FROM conversation_handoffs WHERE ${phase}`,
    sql`DELETE FROM conversation_handoffs WHERE ${phase}`,
  ];
}
