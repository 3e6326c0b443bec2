// Formats of the older systems (HTTP aliases and Kafka topics), shared with the bridge.
import { z } from "zod";
import { metadataSchema } from "./messages.ts";

// Older services sent phone numbers with +, spaces, dashes or a JID suffix.
export function legacyRecipient(value: string): string {
  const v = value.trim();
  if (/@g\.us$/.test(v)) return v;
  return v
    .replace(/@s\.whatsapp\.net$/, "")
    .replace(/:\d+$/, "")
    .replace(/[\s()+.-]/g, "");
}

// Bounds as on the v1 request (to ≤ 64, text ≤ 64 KiB, URLs ≤ 2048), with room for the old formatting.
export const whatsappSendMessage = z.object({
  instanceName: z.string().min(1).max(100),
  phoneNumber: z.string().min(1).max(64),
  message: z.string().min(1).max(65536),
  userId: z.union([z.string().max(255), z.number()]).optional(),
  timestamp: z.union([z.string().max(64), z.number()]).optional(),
});

export const whatsappScheduleMessage = z.object({
  scheduleId: z.string().min(1).max(255).optional(),
  instanceName: z.string().min(1).max(100),
  phoneNumber: z.string().min(1).max(64),
  message: z.string().min(1).max(65536),
  scheduledFor: z.string().min(1).max(64),
  userId: z.union([z.string().max(255), z.number()]).optional(),
});

const mediaTypes = z.enum(["image", "video", "audio", "document"]);

export const messagingSend = z
  .object({
    channel: z.literal("whatsapp_evolution"),
    channelInstanceId: z.string().min(1).max(100),
    remoteJid: z.string().min(1).max(128).optional(),
    groupId: z.string().min(1).max(128).optional(),
    message: z.string().max(65536).optional(),
    mediaUrl: z.url().max(2048).optional(),
    mediaType: mediaTypes.optional(),
    messageId: z.string().min(1).max(255).optional(),
  })
  .refine((m) => m.remoteJid || m.groupId, { message: "Give remoteJid or groupId.", path: ["remoteJid"] })
  .refine((m) => m.message || m.mediaUrl, { message: "Give message or mediaUrl.", path: ["message"] });

export type MessagingSend = z.infer<typeof messagingSend>;

/** whatsapp-send-message → the v1 send request (before its own validation). */
export function fromWhatsappSend(m: z.infer<typeof whatsappSendMessage>) {
  return { instance: m.instanceName, to: legacyRecipient(m.phoneNumber), text: m.message };
}

/** whatsapp-schedule-message → the v1 send request: scheduledFor is the sendAt. */
export function fromWhatsappSchedule(m: z.infer<typeof whatsappScheduleMessage>) {
  return { instance: m.instanceName, to: legacyRecipient(m.phoneNumber), text: m.message, sendAt: m.scheduledFor };
}

/** messaging.send → the v1 send request (before its own validation). */
export function fromMessagingSend(m: MessagingSend) {
  const to = m.groupId ?? legacyRecipient(m.remoteJid ?? "");
  const media = m.mediaUrl
    ? { url: m.mediaUrl, type: m.mediaType ?? "image", ...(m.message && m.mediaType !== "audio" ? { caption: m.message } : {}) }
    : undefined;
  return { instance: m.channelInstanceId, to, ...(media ? { media } : { text: m.message }) };
}

// The agent queue's POST /api/messages: a user's message for the agent, on one of its channels. The
// channel's instance and the contact come from channelMetadata or conversationId (src/webhooks/agent-jobs.ts).
export const agentChannels = ["web", "whatsapp", "telegram", "api"] as const;

const address = z.union([z.string().min(1).max(64), z.int()]);

// Bounded as a message's metadata (depth, 4 KiB): it is stored with the message.
export const agentChannelMetadata = z
  .looseObject({
    instance: z.string().min(1).max(100).optional().describe("The instance to post to; else the tenant's only instance of the channel."),
    contact: address.optional().describe("Who writes: a visitor id, phone digits or a Telegram chat id."),
    visitorId: address.optional().describe("The web chat visitor (as contact)."),
    phoneNumber: z.string().min(1).max(64).optional().describe("The WhatsApp number (as contact; +, spaces and dashes are dropped)."),
    chatId: address.optional().describe("The Telegram chat id (as contact)."),
    name: z.string().min(1).max(255).optional().describe("The contact's display name."),
  })
  .and(metadataSchema);

export const agentMessage = z.object({
  message: z.string().min(1).max(65536),
  conversationId: z.string().min(1).max(64).optional().describe("The contact (as answered before); a new web visitor when absent."),
  channel: z.enum(agentChannels),
  channelMetadata: agentChannelMetadata.optional(),
  priority: z.int().min(1).max(10).optional().describe("Recorded with the message; a contact's messages go to the handler in arrival order."),
  agentId: z
    .union([z.string().min(1).max(255), z.int()])
    .optional()
    .describe("Recorded with the message; the instance's automation is the agent."),
});

export type AgentMessage = z.infer<typeof agentMessage>;
