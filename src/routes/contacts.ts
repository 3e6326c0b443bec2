// GET /v1/contacts/:to/messages — one contact's timeline: what we sent and what they wrote (and,
// when asked, when it was handed to a person and back).
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { channel } from "../contracts/channels.ts";
import { messageRecipient, recipient } from "../contracts/messages.ts";
import type { Db } from "../db/client.ts";
import { instances, messages } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { listPage } from "../http/cursor.ts";
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
    const before: [number, string] = q.cursor ? [Number(q.cursor.split(":")[0]), q.cursor.split(":")[1]!] : [Number.MAX_SAFE_INTEGER, "~"];
    // One chat, however its number is written (a Brazilian mobile with or without its 9).
    const rows = await messages.contactTimeline(c.var.db, tenantId, {
      forms: contactForms(to),
      instance: q.instance,
      handoffs: q.include === "handoffs",
      before,
      limit: q.limit,
    });
    return c.json(
      listPage(
        rows,
        q.limit,
        (r) =>
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
        (last) => `${last.at}:${last.id}`,
      ),
    );
  },
);

// A phone number, group or Telegram chat as ever; anything else (a web chat visitor id) only when one
// of the tenant's instances (the one asked for, if any) takes it as an address on its channel.
async function contactAddress(db: Db, tenantId: string, raw: string, instance: string | undefined): Promise<string> {
  const strict = recipient.safeParse(raw);
  if (strict.success) return strict.data;
  for (const stored of await instances.channelsOwned(db, tenantId, instance)) {
    const addressed = providerFor(channelOf(stored)).address(raw);
    if (addressed.ok) return addressed.to;
  }
  throw new ApiError("invalid_request", "The request is invalid.", [
    { path: "to", message: "Not an address on any of this tenant's instances: a visitor id is one only for a web chat instance." },
  ]);
}
