// Event contracts written to the outbox and relayed by the bridge and tenant callbacks.
import { z } from "zod";
import { channel } from "./channels.ts";

// Events written before channels existed carry none: they were WhatsApp.
const channelField = channel.default("whatsapp");

export const messageStatuses = ["scheduled", "queued", "processing", "sent", "delivered", "read", "failed", "canceled"] as const;
export const messageStatus = z.enum(messageStatuses);
export type MessageStatus = z.infer<typeof messageStatus>;
/** Statuses after which the gateway sends nothing more for the message. */
export const terminalStatuses = ["sent", "delivered", "read", "failed", "canceled"] as const satisfies readonly MessageStatus[];

const envelope = {
  eventId: z.string().min(1),
  version: z.literal(1),
  occurredAt: z.iso.datetime(),
};

export const messageStatusEvent = z.object({
  ...envelope,
  type: z.literal("message.status"),
  data: z.object({
    messageId: z.string(),
    instance: z.string(),
    channel: channelField,
    to: z.string(),
    status: messageStatus,
    attempt: z.int().optional(),
    error: z.string().optional(),
    providerMessageId: z.string().optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const messageReceivedEvent = z.object({
  ...envelope,
  type: z.literal("message.received"),
  data: z.object({
    id: z.string(),
    instance: z.string(),
    channel: channelField,
    contact: z.string(),
    remoteJid: z.string(),
    participant: z.string().optional(),
    providerMessageId: z.string(),
    fromMe: z.boolean(),
    pushName: z.string().optional(),
    messageType: z.string(),
    text: z.string().optional(),
    media: z.record(z.string(), z.unknown()).optional(),
    timestamp: z.iso.datetime(),
  }),
});

export const instanceStatusEvent = z.object({
  ...envelope,
  type: z.literal("instance.status"),
  data: z.object({
    instance: z.string(),
    channel: channelField,
    state: z.string(),
    statusReason: z.int().optional(),
    // Sending paused or resumed by the governor, and why (rate-overlimit, connection-closed,
    // invalid-number-spike; operator, connection-open, pause-expired).
    sending: z.enum(["paused", "active"]).optional(),
    reason: z.string().optional(),
    pausedUntil: z.iso.datetime().nullish(),
    detail: z.string().nullish(),
  }),
});

// Inbound automation of an instance: a message given up on (dead letter), the breaker opening and closing.
export const automationFailedEvent = z.object({
  ...envelope,
  type: z.literal("automation.failed"),
  data: z.object({ instance: z.string(), channel: channelField, contact: z.string(), inboundIds: z.array(z.string()), attempts: z.int(), error: z.string() }),
});

export const automationPausedEvent = z.object({
  ...envelope,
  type: z.literal("automation.paused"),
  data: z.object({ instance: z.string(), failures: z.int(), probeAt: z.iso.datetime() }),
});

export const automationResumedEvent = z.object({
  ...envelope,
  type: z.literal("automation.resumed"),
  data: z.object({ instance: z.string() }),
});

// A contact handed to a person or back to the automation handler.
export const conversationHandoffEvent = z.object({
  ...envelope,
  type: z.literal("conversation.handoff"),
  data: z.object({
    instance: z.string(),
    contact: z.string(),
    channel: z.string(),
    state: z.enum(["human", "bot"]),
    reason: z.string().nullish(),
    by: z.enum(["operator", "handler", "timeout"]),
    until: z.iso.datetime().nullish(),
  }),
});

export const gatewayEvent = z.discriminatedUnion("type", [
  messageStatusEvent,
  messageReceivedEvent,
  instanceStatusEvent,
  automationFailedEvent,
  automationPausedEvent,
  automationResumedEvent,
  conversationHandoffEvent,
]);
export type GatewayEvent = z.infer<typeof gatewayEvent>;
