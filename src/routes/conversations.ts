// GET /v1/conversations — the inbox: a tenant's conversations across instances, newest activity
// first, paged by cursor. It reads the conversations table (kept by triggers as messages are
// stored), one row a conversation plus two key lookups each for its state, never the messages.
// POST /v1/instances/:name/contacts/:contact/read — an operator opened it: its unread count is zero.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { conversations, instances } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { listPage } from "../http/cursor.ts";
import { documented } from "../openapi/describe.ts";
import { contactOf, contactParam } from "./handoff.ts";

const tags = ["Conversations"];
const states = ["agent", "human", "failed"] as const;

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  // Opaque cursor: "<lastAt>:<id>" of the last conversation seen.
  cursor: z
    .string()
    .regex(/^\d{1,15}:\d{1,15}$/, "Not a cursor from this API.")
    .optional(),
  instance: z.string().min(1).max(100).optional(),
  channel: z.string().min(1).max(32).optional(),
  state: z
    .enum(states)
    .optional()
    .describe("agent: with the automation handler; human: handed to a person; failed: the handler gave up on a message (a dead letter)."),
  unread: z.enum(["true", "false"]).optional().describe("true: only conversations with inbound messages not yet read."),
  // D1 refuses LIKE patterns over 50 bytes: the term and its two wildcards fit.
  q: z
    .string()
    .min(1)
    .refine((v) => new TextEncoder().encode(v).byteLength <= 40, "At most 40 bytes.")
    .optional()
    .describe("Search the contact's name, its address and the last message's text."),
});

const conversationItem = z.object({
  instance: z.string(),
  channel: z.string(),
  contact: z.string().describe("The contact's address: phone digits, a group JID or a @lid JID."),
  name: z.string().nullable().describe("The name the contact last sent with a message (WhatsApp's push name)."),
  lastMessage: z.object({ id: z.string(), direction: z.enum(["in", "out"]), text: z.string().nullable(), at: z.iso.datetime() }),
  unread: z.int().describe("Inbound messages since an operator last read the conversation."),
  state: z.enum(states),
  handoff: z.object({ reason: z.string().nullable(), until: z.iso.datetime().optional() }).optional(),
});

export const conversationRoutes = new Hono<AppEnv>().get(
  "/",
  documented({
    summary: "The inbox: conversations across instances and channels, newest activity first",
    description:
      "Each conversation with its last message, unread count and state. Paged by cursor: pass nextCursor as cursor. " +
      "A page reads one row per conversation listed (more with filters that skip rows), however many messages are stored.",
    tags,
    caller: "apiKey",
    query: listQuery,
    responses: { 200: { description: "A page.", schema: z.object({ data: z.array(conversationItem), nextCursor: z.string().nullable() }) } },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const rows = await conversations.page(c.var.db, c.var.tenant.id, q, Date.now());
    return c.json(
      listPage(
        rows,
        q.limit,
        (r) => ({
          instance: r.instance_name,
          channel: r.channel,
          contact: r.contact,
          name: r.name,
          lastMessage: { id: r.last_id, direction: r.last_direction, text: r.last_text, at: new Date(r.last_at).toISOString() },
          unread: r.unread,
          state: r.human ? "human" : r.failed ? "failed" : "agent",
          ...(r.human
            ? { handoff: { reason: r.handoff_reason, ...(r.handoff_until !== null ? { until: new Date(r.handoff_until).toISOString() } : {}) } }
            : {}),
        }),
        (last) => `${last.last_at}:${last.id}`,
      ),
    );
  },
);

export const readRoutes = new Hono<AppEnv>().post(
  "/:name/contacts/:contact/read",
  documented({
    summary: "Mark a conversation read (an operator opened it)",
    tags,
    caller: "apiKey",
    params: z.object({ name: z.string().describe("The instance's name."), contact: contactParam }),
    responses: { 200: { description: "Its unread count is zero.", schema: z.object({ unread: z.literal(0), readAt: z.iso.datetime() }) } },
    errors: ["not_found"],
  }),
  async (c) => {
    const name = c.req.param("name") ?? "";
    const instance = await instances.ownedByName(c.var.db, c.var.tenant.id, name);
    if (!instance) throw new ApiError("not_found", `No instance ${name}.`);
    const contact = contactOf(c.req.param("contact"), instance.channel);
    const now = Date.now();
    if (!(await conversations.markRead(c.var.db, instance.id, contact, now)))
      throw new ApiError("not_found", `No conversation with ${contact} on instance ${name}.`);
    return c.json({ unread: 0 as const, readAt: new Date(now).toISOString() });
  },
);
