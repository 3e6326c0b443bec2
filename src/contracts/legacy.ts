// Formats of the older systems (HTTP aliases and Kafka topics), shared with the bridge.
import { z } from "zod";

// Older services sent phone numbers with +, spaces, dashes or a JID suffix.
export function legacyRecipient(value: string): string {
  const v = value.trim();
  if (/@g\.us$/.test(v)) return v;
  return v
    .replace(/@s\.whatsapp\.net$/, "")
    .replace(/:\d+$/, "")
    .replace(/[\s()+.-]/g, "");
}

export const whatsappSendMessage = z.object({
  instanceName: z.string().min(1),
  phoneNumber: z.string().min(1),
  message: z.string().min(1),
  userId: z.union([z.string(), z.number()]).optional(),
  timestamp: z.union([z.string(), z.number()]).optional(),
});

export const whatsappScheduleMessage = z.object({
  scheduleId: z.string().min(1).optional(),
  instanceName: z.string().min(1),
  phoneNumber: z.string().min(1),
  message: z.string().min(1),
  scheduledFor: z.string().min(1),
  userId: z.union([z.string(), z.number()]).optional(),
});

const mediaTypes = z.enum(["image", "video", "audio", "document"]);

export const messagingSend = z
  .object({
    channel: z.literal("whatsapp_evolution"),
    channelInstanceId: z.string().min(1),
    remoteJid: z.string().min(1).optional(),
    groupId: z.string().min(1).optional(),
    message: z.string().optional(),
    mediaUrl: z.url().optional(),
    mediaType: mediaTypes.optional(),
    messageId: z.string().min(1).optional(),
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
