// Inbound automation: the configuration API, the call to the tenant's handler and its answer.
import { z } from "zod";
import { channel } from "./channels.ts";
import { mediaSchema } from "./messages.ts";

export const automationInput = z.strictObject({
  url: z.url({ protocol: /^https?$/, message: "Must be the http(s) URL of the handler." }),
  enabled: z.boolean().default(true),
  timeoutMs: z.int().min(1000).max(30000).default(10000),
  contextMessages: z.int().min(0).max(50).default(10),
  debounceMs: z.int().min(0).max(10000).default(0),
  includeGroups: z.boolean().default(false),
  maxAttempts: z.int().min(1).max(10).default(5),
});
export type AutomationInput = z.infer<typeof automationInput>;

// What the handler may answer with. Each reply is an ordinary outbound message to `replyTo`.
export const handlerReply = z
  .strictObject({ text: z.string().min(1).max(65536).optional(), media: mediaSchema.optional() })
  .refine((r) => r.text !== undefined || r.media !== undefined, { message: "A reply needs text, media, or both." });
export type HandlerReply = z.infer<typeof handlerReply>;

// POST /v1/instances/:name/contacts/:contact/handoff
export const handoffInput = z.strictObject({
  reason: z.string().min(1).max(500).optional().describe("Why a person takes over; shown with the state and in the event."),
  ttlMinutes: z.int().min(5).max(10080).optional().describe("Hand back to the handler by itself after this long (5 minutes to 7 days)."),
});
export type HandoffInput = z.infer<typeof handoffInput>;

export const handoffState = z
  .object({
    state: z.enum(["bot", "human"]).describe("bot: inbound messages go to the automation handler; human: they are stored, not offered."),
    since: z.iso.datetime().optional().describe("When the contact was handed to a person."),
    reason: z.string().nullable().optional(),
    by: z.enum(["operator", "handler"]).optional().describe("Who handed the contact to a person."),
    until: z.iso.datetime().optional().describe("When it hands back by itself (ttlMinutes)."),
  })
  .meta({ id: "HandoffState" });

// The handler's answer may hand the contact to a person, after its replies are sent.
const handlerHandoff = z.union([
  z.boolean(),
  z.strictObject({ reason: z.string().min(1).max(500).optional(), ttlMinutes: z.int().min(5).max(10080).optional() }),
]);
export type HandlerHandoff = { reason: string | null; ttlMinutes: number | null };

export const MAX_REPLIES = 10;
/** Replies from a handler body (204 or an empty body is no reply), and its hand-off request. */
export function repliesOf(body: string): { ok: true; replies: HandlerReply[]; handoff?: HandlerHandoff } | { ok: false; error: string } {
  if (body.trim() === "") return { ok: true, replies: [] };
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, error: "the handler answered with a body that is not JSON" };
  }
  if (json === null || typeof json !== "object") return { ok: false, error: "the handler answered with JSON that is not an object" };
  let handoff: HandlerHandoff | undefined;
  if ("handoff" in json) {
    const asked = handlerHandoff.safeParse(json.handoff);
    if (!asked.success) return { ok: false, error: `invalid handoff: ${asked.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}` };
    if (asked.data === true) handoff = { reason: null, ttlMinutes: null };
    else if (asked.data !== false) handoff = { reason: asked.data.reason ?? null, ttlMinutes: asked.data.ttlMinutes ?? null };
  }
  const asks = handoff ? { handoff } : {};
  if ("replies" in json || "reply" in json) {
    const shaped = z.union([z.object({ replies: z.array(handlerReply).max(MAX_REPLIES) }), z.object({ reply: handlerReply })]).safeParse(json);
    if (!shaped.success) return { ok: false, error: `invalid replies: ${shaped.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}` };
    return { ok: true, replies: "replies" in shaped.data ? shaped.data.replies : [shaped.data.reply], ...asks };
  }
  return { ok: true, replies: [], ...asks };
}

const media = z.record(z.string(), z.unknown()).nullable();

// The body POSTed to the handler (signed by Standard Webhooks).
export const automationInbound = z.object({
  type: z.literal("automation.inbound"),
  instance: z.string(),
  channel: channel.describe("whatsapp or telegram: where the conversation is."),
  contact: z.string(),
  // Where replies go: the phone digits (also for @lid contacts whose number is known) or the group JID; null when unknown.
  replyTo: z.string().nullable(),
  messages: z
    .array(
      z.object({
        id: z.string(),
        text: z.string().nullable(),
        media,
        pushName: z.string().nullable(),
        participant: z.string().nullable().optional(),
        at: z.iso.datetime(),
      }),
    )
    .min(1),
  conversation: z.array(
    z.object({
      direction: z.enum(["in", "out"]),
      id: z.string(),
      text: z.string().nullable(),
      media,
      status: z.string().nullable(),
      at: z.iso.datetime(),
    }),
  ),
});
export type AutomationInbound = z.infer<typeof automationInbound>;

// POST /v1/instances/:name/automation/secret/rotate: the same answer as the callback secret's rotation.
export const rotatedAutomationSecret = z
  .object({
    secret: z.string().describe("The new whsec_ secret, shown once."),
    previousSecretValidUntil: z.iso.datetime().describe("Until then calls carry a second signature, by the previous secret."),
    rotatedAt: z.iso.datetime(),
  })
  .meta({ id: "RotatedAutomationSecret" });
