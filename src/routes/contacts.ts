// GET /v1/contacts/:to/messages — one contact's timeline: what we sent and what they wrote (and,
// when asked, when it was handed to a person and back).
import { and, eq, sql } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { channel } from "../contracts/channels.ts";
import { messageRecipient, recipient } from "../contracts/messages.ts";
import type { Db } from "../db/client.ts";
import { instances } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { contactForms } from "../messages/contact-key.ts";
import { documented } from "../openapi/describe.ts";
import { channelOf, providerFor } from "../providers/registry.ts";

const query = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  // Opaque cursor: "<at>:<id>" of the last item seen.
  cursor: z
    .string()
    .regex(/^\d+:[a-z]+_[0-9a-z]+$/, "Not a cursor from this API.")
    .optional(),
  instance: z.string().min(1).optional(),
  include: z.enum(["handoffs"]).optional().describe("handoffs: also list the contact's hand-offs to a person and back (direction handoff)."),
});

type TimelineRow = {
  direction: string;
  id: string;
  at: number;
  instance: string;
  channel: string;
  text: string | null;
  media: string | null;
  status: string | null;
  from_me: number | null;
  push_name: string | null;
  message_type: string | null;
  provider_message_id: string | null;
};

const timelineItem = z.object({
  direction: z.enum(["outbound", "inbound", "handoff"]),
  id: z.string(),
  at: z.iso.datetime({ offset: true }),
  instance: z.string(),
  channel: channel.optional().describe("whatsapp, telegram or web (messages; not hand-offs)."),
  text: z.string().optional(),
  media: z.unknown().optional(),
  status: z.string().optional(),
  fromMe: z.boolean().optional(),
  pushName: z.string().optional(),
  messageType: z.string().optional(),
  providerMessageId: z.string().optional(),
  handoff: z
    .object({ state: z.enum(["human", "bot"]), reason: z.string().nullable(), by: z.enum(["operator", "handler", "timeout"]) })
    .optional()
    .describe("With include=handoffs: a hand-off to a person (human) or back to the automation handler (bot)."),
});

export const contactRoutes = new Hono<AppEnv>().get(
  "/:to/messages",
  documented({
    summary: "One contact's timeline: sent and received, newest first",
    tags: ["Contacts"],
    caller: "apiKey",
    params: z.object({ to: messageRecipient }),
    query,
    responses: {
      200: {
        description: "A page; pass nextCursor as cursor for the next.",
        schema: z.object({ data: z.array(timelineItem), nextCursor: z.string().nullable() }),
      },
    },
  }),
  async (c) => {
    const { to: raw } = c.req.valid("param");
    const q = c.req.valid("query");
    const tenantId = c.var.tenant.id;
    const to = await contactAddress(c.var.db, tenantId, raw, q.instance);
    const [cursorAt, cursorId] = q.cursor ? [Number(q.cursor.split(":")[0]), q.cursor.split(":")[1]!] : [Number.MAX_SAFE_INTEGER, "~"];
    // One chat, however its number is written (a Brazilian mobile with or without its 9).
    const forms = sql`(${sql.join(
      contactForms(to).map((f) => sql`${f}`),
      sql`, `,
    )})`;
    const byInstance = (col: string) => (q.instance ? sql`AND ${sql.raw(col)} = ${q.instance}` : sql``);
    const rows = await c.var.db.all<TimelineRow>(sql`
    SELECT * FROM (
      SELECT 'outbound' AS direction, id, created_at AS at, instance_name AS instance, channel, text, media, status, 1 AS from_me, NULL AS push_name, NULL AS message_type, provider_message_id
      FROM messages WHERE tenant_id = ${tenantId} AND "to" IN ${forms} ${byInstance("instance_name")}
      UNION ALL
      SELECT 'inbound', id, timestamp, instance_name, channel, text, media, NULL, from_me, push_name, message_type, provider_message_id
      FROM inbound_messages WHERE tenant_id = ${tenantId} AND contact IN ${forms} ${byInstance("instance_name")}
      ${
        q.include === "handoffs"
          ? sql`UNION ALL
      SELECT 'handoff', id, at, instance_name, NULL, NULL, NULL, state, NULL, reason, by, NULL
      FROM handoff_changes WHERE tenant_id = ${tenantId} AND contact IN ${forms} ${byInstance("instance_name")}`
          : sql``
      }
    ) WHERE at < ${cursorAt} OR (at = ${cursorAt} AND id < ${cursorId})
    ORDER BY at DESC, id DESC LIMIT ${q.limit + 1}`);
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    return c.json({
      data: page.map((r) =>
        // A hand-off's row carries its state, reason and by in the status, push_name and message_type columns.
        r.direction === "handoff"
          ? {
              direction: r.direction,
              id: r.id,
              at: new Date(r.at).toISOString(),
              instance: r.instance,
              handoff: { state: r.status, reason: r.push_name, by: r.message_type },
            }
          : {
              direction: r.direction,
              id: r.id,
              at: new Date(r.at).toISOString(),
              instance: r.instance,
              channel: r.channel,
              text: r.text ?? undefined,
              media: r.media ? JSON.parse(r.media) : undefined,
              status: r.status ?? undefined,
              fromMe: r.direction === "inbound" ? r.from_me === 1 : undefined,
              pushName: r.push_name ?? undefined,
              messageType: r.message_type ?? undefined,
              providerMessageId: r.provider_message_id ?? undefined,
            },
      ),
      nextCursor: rows.length > q.limit && last ? `${last.at}:${last.id}` : null,
    });
  },
);

// A phone number, group or Telegram chat as ever; anything else (a web chat visitor id) only when one
// of the tenant's instances (the one asked for, if any) takes it as an address on its channel.
async function contactAddress(db: Db, tenantId: string, raw: string, instance: string | undefined): Promise<string> {
  const strict = recipient.safeParse(raw);
  if (strict.success) return strict.data;
  const rows = await db
    .selectDistinct({ channel: instances.channel })
    .from(instances)
    .where(instance ? and(eq(instances.tenantId, tenantId), eq(instances.name, instance)) : eq(instances.tenantId, tenantId));
  for (const { channel: stored } of rows) {
    const addressed = providerFor(channelOf(stored)).address(raw);
    if (addressed.ok) return addressed.to;
  }
  throw new ApiError("invalid_request", "The request is invalid.", [
    { path: "to", message: "Not an address on any of this tenant's instances: a visitor id is one only for a web chat instance." },
  ]);
}
