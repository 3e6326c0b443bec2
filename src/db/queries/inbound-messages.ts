// The inbound_messages table: what contacts sent, from every provider, unique per instance by the
// provider's id (and its dedupe key, when it has one).
import { type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";

export type NewInbound = {
  id: string;
  tenantId: string;
  instanceId: string;
  instanceName: string;
  channel: string;
  contact: string;
  remoteJid: string;
  participant: string | null;
  providerMessageId: string;
  fromMe: boolean;
  pushName: string | null;
  messageType: string;
  text: string | null;
  /** JSON, or null. */
  media: string | null;
  timestamp: number;
  receivedAt: number;
  dedupeKey: string | null;
  metadata: string | null;
};

/** Stores a message; a redelivery changes nothing (its changes() are 0). Un-awaited, to batch with its event. */
export function store(m: NewInbound): SQL {
  // No conflict target: the provider id and the dedupe key are both unique per instance.
  return sql`INSERT INTO inbound_messages (id, tenant_id, instance_id, instance_name, channel, contact, remote_jid, participant, provider_message_id,
      from_me, push_name, message_type, text, media, timestamp, received_at, dedupe_key, metadata)
    VALUES (${m.id}, ${m.tenantId}, ${m.instanceId}, ${m.instanceName}, ${m.channel}, ${m.contact}, ${m.remoteJid}, ${m.participant}, ${m.providerMessageId},
      ${m.fromMe ? 1 : 0}, ${m.pushName}, ${m.messageType}, ${m.text}, ${m.media}, ${m.timestamp}, ${m.receivedAt}, ${m.dedupeKey}, ${m.metadata})
    ON CONFLICT DO NOTHING`;
}

/** An inbound message's columns as automation is offered it; the reads below add their own. */
export const offeredColumns = z.object({
  id: z.string(),
  contact: z.string(),
  remote_jid: z.string(),
  participant: z.string().nullable(),
  push_name: z.string().nullable(),
  text: z.string().nullable(),
  media: z.string().nullable(),
  timestamp: z.number(),
});

/** A stored message (a duplicate's first one) with its instance's automation switch and its
 *  automation record's status. */
export const storedWithRecordRow = offeredColumns.extend({
  enabled: z.number().nullable(),
  status: z.string().nullable(),
});
export type StoredWithRecord = z.infer<typeof storedWithRecordRow>;

/** The statement reading it, to batch after the store. */
export function storedWithRecord(instanceId: string, providerMessageId: string): SQL {
  return sql`SELECT i.id, i.contact, i.remote_jid, i.participant, i.push_name, i.text, i.media, i.timestamp, a.enabled, d.status
    FROM inbound_messages i LEFT JOIN automations a ON a.instance_id = i.instance_id
    LEFT JOIN automation_deliveries d ON d.inbound_id = i.id
    WHERE i.instance_id = ${instanceId} AND i.provider_message_id = ${providerMessageId}`;
}

/** Deletes inbound messages received before cutoff. */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(db, "inbound_messages", "id", sql`SELECT id FROM inbound_messages WHERE received_at < ${cutoff}`, limits);
}

export const historyRow = z.object({
  direction: z.enum(["in", "out"]),
  id: z.string(),
  text: z.string().nullable(),
  media: z.string().nullable(),
  status: z.string().nullable(),
  at: z.number(),
});
export type HistoryRow = z.infer<typeof historyRow>;

/** A contact's messages on an instance, both directions (its inbound rows and the messages sent to
 *  it), newest first: `limit` rows (a number, or an expression read in the same batch) plus `extra`.
 *  `contacts`/`to`: every form the contact's address is written in. (`+instance_id`: inbound rows
 *  through (tenant, contact), not through all of the instance's.) Parse the rows with historyRow. */
export function history(c: { tenantId: string; instanceId: string; contacts: string[]; to: string[] }, limit: SQL | number, extra: number): SQL {
  const list = (xs: string[]) =>
    sql`(${sql.join(
      xs.map((x) => sql`${x}`),
      sql`, `,
    )})`;
  return sql`
    SELECT * FROM (
      SELECT CASE WHEN from_me = 1 THEN 'out' ELSE 'in' END AS direction, id, text, media, NULL AS status, timestamp AS at
      FROM inbound_messages WHERE tenant_id = ${c.tenantId} AND contact IN ${list(c.contacts)} AND +instance_id = ${c.instanceId}
      UNION ALL
      SELECT 'out', id, text, media, status, created_at FROM messages
      WHERE tenant_id = ${c.tenantId} AND "to" IN ${list(c.to)} AND instance_id = ${c.instanceId} AND status != 'canceled'
    ) ORDER BY at DESC, id DESC LIMIT (${limit}) + ${extra}`;
}

// An inbound message with its automation delivery's record (a JOIN: it answers about the message).
const agentJobRow = z.object({
  id: z.string(),
  instance_name: z.string(),
  channel: z.string(),
  contact: z.string(),
  metadata: z.string().nullable(),
  status: z.string().nullable(),
  attempts: z.number().nullable(),
  last_error: z.string().nullable(),
  updated_at: z.number().nullable(),
  lane_key: z.string().nullable(),
});
export type AgentJobRow = z.infer<typeof agentJobRow>;

/** The tenant's inbound message and its automation delivery's state; undefined: none. */
export async function agentJob(db: Db, tenantId: string, id: string): Promise<AgentJobRow | undefined> {
  const rows = z.array(agentJobRow).parse(
    await db.all(sql`SELECT i.id, i.instance_name, i.channel, i.contact, i.metadata, d.status, d.attempts, d.last_error, d.updated_at, d.lane_key
    FROM inbound_messages i LEFT JOIN automation_deliveries d ON d.inbound_id = i.id WHERE i.id = ${id} AND i.tenant_id = ${tenantId}`),
  );
  return rows[0];
}
