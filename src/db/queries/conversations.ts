// The conversations table: one row per contact of an instance (its last message and unread count),
// kept by triggers on the inbound and outbound messages; read for the inbox.
import { type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";

const row = z.object({
  id: z.number(),
  instance_name: z.string(),
  channel: z.string(),
  contact: z.string(),
  name: z.string().nullable(),
  last_at: z.number(),
  last_id: z.string(),
  last_direction: z.enum(["in", "out"]),
  last_text: z.string().nullable(),
  unread: z.number(),
  human: z.number(),
  handoff_reason: z.string().nullable(),
  handoff_until: z.number().nullable(),
  failed: z.number(),
});
export type ConversationRow = z.infer<typeof row>;

export type PageQuery = {
  limit: number;
  /** "<lastAt>:<id>" of the last conversation seen. */
  cursor?: string;
  instance?: string;
  channel?: string;
  state?: "agent" | "human" | "failed";
  unread?: "true" | "false";
  q?: string;
};

const escapeLike = (v: string) => v.replace(/[\\%_]/g, (c) => `\\${c}`);

/** One page's statement (exported for the rows-read check in the tests). */
export function pageStatement(tenantId: string, q: PageQuery, now: number): SQL {
  const [at, id] = q.cursor ? q.cursor.split(":").map(Number) : [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
  const human = sql`h.instance_id IS NOT NULL`;
  const failed = sql`EXISTS (SELECT 1 FROM automation_deliveries d WHERE d.status = 'dead' AND d.lane_key = c.tenant_id || ':' || c.instance_id || ':' || c.contact)`;
  const filters: SQL[] = [];
  if (q.instance) filters.push(sql`c.instance_name = ${q.instance}`);
  if (q.channel) filters.push(sql`c.channel = ${q.channel}`);
  if (q.unread === "true") filters.push(sql`c.unread > 0`);
  if (q.unread === "false") filters.push(sql`c.unread = 0`);
  if (q.state === "human") filters.push(human);
  if (q.state === "failed") filters.push(sql`NOT ${human} AND ${failed}`);
  if (q.state === "agent") filters.push(sql`NOT ${human} AND NOT ${failed}`);
  if (q.q) {
    const like = `%${escapeLike(q.q)}%`;
    filters.push(sql`(c.name LIKE ${like} ESCAPE '\\' OR c.contact LIKE ${like} ESCAPE '\\' OR c.last_text LIKE ${like} ESCAPE '\\')`);
  }
  return sql`
      SELECT c.id, c.instance_name, c.channel, c.contact, c.name, c.last_at, c.last_id, c.last_direction, c.last_text, c.unread,
        ${human} AS human, h.reason AS handoff_reason, h.until AS handoff_until, ${failed} AS failed
      FROM conversations c
      LEFT JOIN conversation_handoffs h ON h.instance_id = c.instance_id AND h.contact = c.contact AND (h.until IS NULL OR h.until > ${now})
      WHERE c.tenant_id = ${tenantId} AND (c.last_at < ${at} OR (c.last_at = ${at} AND c.id < ${id}))
        ${filters.length > 0 ? sql`AND ${sql.join(filters, sql` AND `)}` : sql``}
      ORDER BY c.last_at DESC, c.id DESC LIMIT ${q.limit + 1}`;
}

/** A tenant's conversations, newest activity first; limit + 1 rows so the caller knows whether there is a next page. */
export async function page(db: Db, tenantId: string, q: PageQuery, now: number): Promise<ConversationRow[]> {
  return z.array(row).parse(await db.all(pageStatement(tenantId, q, now)));
}

/** An operator opened the conversation: its unread count is zero. False when there is no such conversation. */
export async function markRead(db: Db, instanceId: string, contact: string, now: number): Promise<boolean> {
  const rows = await db.all(sql`
      UPDATE conversations SET unread = 0, read_at = ${now}
      WHERE instance_id = ${instanceId} AND contact = ${contact}
      RETURNING id`);
  return rows.length > 0;
}
