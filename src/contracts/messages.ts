// The public send request (v1), shared by the Worker and the Kafka bridge.
import { z } from "zod";
import { channel } from "./channels.ts";
import { errorSchema } from "./errors.ts";
import { messageStatus } from "./events.ts";
import { nestsDeeperThan } from "./json-depth.ts";

export const MAX_SCHEDULE_DAYS = 90;
export const MAX_METADATA_BYTES = 4096;

// A WhatsApp address. One pattern (not a refine) so the OpenAPI document carries it too.
export const whatsappRecipient = z
  .string()
  .max(64)
  .regex(/^(?:[1-9]\d{7,14}|\d{5,}(-\d+)?@g\.us)$/, {
    message: "Must be the digits of an E.164 number (country code first, no +) or a group JID ending in @g.us.",
  });

// Any channel's address; the instance's provider checks the exact form when the message is accepted.
export const recipient = z
  .string()
  .max(64)
  .regex(/^(?:[1-9]\d{7,14}|\d{5,}(-\d+)?@g\.us|-?[1-9]\d{0,15}|@[A-Za-z][A-Za-z0-9_]{3,31})$/, {
    message:
      "Must be the digits of an E.164 number (country code first, no +) or a group JID ending in @g.us; for a Telegram instance, a chat id (424242001, -1001234567890) or a channel's @username.",
  });

// The `to` of a message: any channel's address, a web chat visitor id included (letters, digits, '.',
// '_', '-'); the instance's provider checks the exact form when the message is accepted.
export const messageRecipient = z
  .string()
  .max(64)
  .regex(/^(?:[1-9]\d{7,14}|\d{5,}(-\d+)?@g\.us|-?[1-9]\d{0,15}|@[A-Za-z][A-Za-z0-9_]{3,31}|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$/, {
    message:
      "Must be the digits of an E.164 number (country code first, no +) or a group JID ending in @g.us; for a Telegram instance, a chat id (424242001, -1001234567890) or a channel's @username; for a web chat instance, a visitor id.",
  });

export const MAX_URL_LENGTH = 2048;
const httpUrl = (message: string) => z.url({ protocol: /^https?$/, message }).max(MAX_URL_LENGTH);

export const mediaSchema = z.strictObject({
  url: httpUrl("Must be an http(s) URL."),
  type: z.enum(["image", "video", "audio", "document"]),
  caption: z.string().max(4096).optional(),
  fileName: z.string().min(1).max(255).optional(),
  mimeType: z.string().min(3).max(255).optional(),
});

export const MAX_METADATA_DEPTH = 8;

// Depth first, and aborting: only a shallow value is serialized to measure its size.
export const metadataSchema = z
  .record(z.string(), z.unknown())
  .refine((m) => !nestsDeeperThan(m, MAX_METADATA_DEPTH), { message: `Must nest at most ${MAX_METADATA_DEPTH} levels deep.`, abort: true })
  .refine((m) => new TextEncoder().encode(JSON.stringify(m)).length <= MAX_METADATA_BYTES, {
    message: `Must serialize to at most ${MAX_METADATA_BYTES} bytes.`,
  });

// ISO 8601 with an explicit offset (Z or ±hh:mm); range checks (future, ≤ 90 days) are 422s, done at accept time.
export const isoWithOffset = z.iso.datetime({
  offset: true,
  message: "Must be an ISO 8601 date-time with a time zone offset, e.g. 2026-12-01T09:00:00-03:00.",
});

export const sendMessageSchema = z
  .strictObject({
    instance: z.string().min(1).max(100),
    to: messageRecipient,
    text: z.string().min(1).max(65536).optional(),
    media: mediaSchema.optional(),
    sendAt: isoWithOffset.optional(),
    // A sendAt already past on arrival: "reject" (422, the default) or "send" now, the lateness noted
    // in the history. For relays of schedules made earlier (the Kafka bridge after a lag).
    ifLate: z.enum(["reject", "send"]).optional(),
    priority: z.int().min(1).max(10).optional(),
    maxAttempts: z.int().min(1).max(20).optional(),
    metadata: metadataSchema.optional(),
    callbackUrl: httpUrl("Must be an http(s) URL.").optional(),
    // Per-message idempotency: the same key and body answer with the first message, another body is 409.
    idempotencyKey: z.string().min(1).max(255).optional(),
  })
  .superRefine((m, ctx) => {
    if (!m.text && !m.media) ctx.addIssue({ code: "custom", path: ["text"], message: "Give text, media, or both." });
    if (m.text && m.media?.type === "audio")
      ctx.addIssue({ code: "custom", path: ["text"], message: "An audio message cannot carry text; send the text as its own message." });
  });

export type SendMessageRequest = z.infer<typeof sendMessageSchema>;

/** The older WhatsApp and Telegram routes: a send whose `to` is a phone, group or chat, never a visitor. */
export const legacySendMessageSchema = sendMessageSchema.and(z.object({ to: recipient }));

export const MAX_BATCH = 500;
export const sendBatchSchema = z.strictObject({
  messages: z
    .array(z.unknown())
    .min(1)
    .max(MAX_BATCH, { message: `At most ${MAX_BATCH} messages per batch.` }),
});

// Answers of /v1/messages, as documented in GET /openapi.json.
const isoTime = z.iso.datetime({ offset: true });

export const acceptedMessage = z
  .object({
    id: z.string(),
    status: messageStatus,
    instance: z.string(),
    to: z.string(),
    createdAt: isoTime,
    sendAt: isoTime.optional(),
  })
  .meta({ id: "AcceptedMessage" });

export const messageAnswer = acceptedMessage
  .extend({
    channel: channel.describe("whatsapp or telegram. A Telegram message ends at sent: Telegram gives bots no delivery or read receipts."),
    text: z.string().optional(),
    media: z.record(z.string(), z.unknown()).optional(),
    priority: z.int(),
    attempts: z.int(),
    maxAttempts: z.int(),
    lastError: z.string().optional(),
    providerMessageId: z.string().optional(),
    sentAt: isoTime.optional(),
    deliveredAt: isoTime.optional(),
    readAt: isoTime.optional(),
    failedAt: isoTime.optional(),
    canceledAt: isoTime.optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
    callbackUrl: z.string().optional(),
    idempotencyKey: z.string().optional(),
    history: z
      .array(z.object({ status: z.string(), at: isoTime, attempt: z.int().optional(), detail: z.string().optional() }))
      .optional()
      .describe("Every status change, oldest first (on single-message answers)."),
  })
  .meta({ id: "Message" });

/** POST /v1/messages/batch: one result per item, in order. */
export const batchAnswer = z.object({
  results: z.array(
    z.union([
      z.object({ index: z.int(), id: z.string(), status: messageStatus, replayed: z.literal(true).optional() }),
      // An item's error is the error shape without the request id (the answer is one request).
      z.object({ index: z.int(), error: errorSchema.shape.error.omit({ requestId: true }) }),
    ]),
  ),
});
