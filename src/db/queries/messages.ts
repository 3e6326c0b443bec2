// The messages table: every message a tenant sends, its status, history and lane.
import { sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";

// One row of a contact's timeline: a message sent, one received, or (on request) a hand-off, whose
// state, reason and by ride in the status, push_name and message_type columns.
const timelineRow = z.object({
  direction: z.enum(["outbound", "inbound", "handoff"]),
  id: z.string(),
  at: z.number(),
  instance: z.string(),
  channel: z.string().nullable(),
  text: z.string().nullable(),
  media: z.string().nullable(),
  status: z.string().nullable(),
  from_me: z.number().nullable(),
  push_name: z.string().nullable(),
  message_type: z.string().nullable(),
  provider_message_id: z.string().nullable(),
});
export type TimelineRow = z.infer<typeof timelineRow>;

/** One contact's timeline, newest first, across sent messages, received ones (inbound_messages)
 *  and, with handoffs, its hand-offs (handoff_changes); `forms`: the contact's address as each may
 *  be written. limit + 1 rows so the caller knows whether there is a next page. */
export async function contactTimeline(
  db: Db,
  tenantId: string,
  q: { forms: string[]; instance?: string; handoffs: boolean; before: readonly [number, string]; limit: number },
): Promise<TimelineRow[]> {
  const forms = sql`(${sql.join(
    q.forms.map((f) => sql`${f}`),
    sql`, `,
  )})`;
  const byInstance = (col: string) => (q.instance ? sql`AND ${sql.raw(col)} = ${q.instance}` : sql``);
  const [cursorAt, cursorId] = q.before;
  return z.array(timelineRow).parse(
    await db.all(sql`
    SELECT * FROM (
      SELECT 'outbound' AS direction, id, created_at AS at, instance_name AS instance, channel, text, media, status, 1 AS from_me, NULL AS push_name, NULL AS message_type, provider_message_id
      FROM messages WHERE tenant_id = ${tenantId} AND "to" IN ${forms} ${byInstance("instance_name")}
      UNION ALL
      SELECT 'inbound', id, timestamp, instance_name, channel, text, media, NULL, from_me, push_name, message_type, provider_message_id
      FROM inbound_messages WHERE tenant_id = ${tenantId} AND contact IN ${forms} ${byInstance("instance_name")}
      ${
        q.handoffs
          ? sql`UNION ALL
      SELECT 'handoff', id, at, instance_name, NULL, NULL, NULL, state, NULL, reason, by, NULL
      FROM handoff_changes WHERE tenant_id = ${tenantId} AND contact IN ${forms} ${byInstance("instance_name")}`
          : sql``
      }
    ) WHERE at < ${cursorAt} OR (at = ${cursorAt} AND id < ${cursorId})
    ORDER BY at DESC, id DESC LIMIT ${q.limit + 1}`),
  );
}
