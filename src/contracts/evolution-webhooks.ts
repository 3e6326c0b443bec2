// Evolution webhook bodies (docs/webhooks.md; examples in test/fixtures/evolution/), parsed loosely: Evolution adds fields between
// versions, so only what the gateway reads is required and the rest passes through.
import { z } from "zod";

export const webhookEnvelope = z.object({
  event: z.string().min(1).max(100),
  instance: z.string().max(200).optional(),
  data: z.unknown(),
  date_time: z.string().optional(),
});

const messageKey = z.object({
  remoteJid: z.string().min(1),
  fromMe: z.boolean().default(false),
  id: z.string().min(1),
  participant: z.string().nullish(),
  remoteJidAlt: z.string().nullish(),
  participantAlt: z.string().nullish(),
  addressingMode: z.string().nullish(),
});

export const upsertData = z.object({
  key: messageKey,
  pushName: z.string().nullish(),
  message: z.record(z.string(), z.unknown()).nullish(),
  messageType: z.string().default("unknown"),
  messageTimestamp: z.union([z.number(), z.string(), z.object({ low: z.number() }).loose()]).optional(),
  status: z.string().nullish(),
});
export type UpsertData = z.infer<typeof upsertData>;

export const updateData = z.object({
  keyId: z.string().min(1),
  remoteJid: z.string().nullish(),
  fromMe: z.boolean().nullish(),
  status: z.string().nullish(),
});

export const sendMessageData = z.object({ key: messageKey, status: z.string().nullish() });

export const connectionData = z.object({
  state: z.string().min(1),
  statusReason: z.number().int().nullish(),
});

// The pairing QR code as it refreshes (qrcode.updated); `base64` is a PNG data URL.
export const qrcodeData = z.object({
  qrcode: z.object({
    code: z.string().nullish(),
    pairingCode: z.string().nullish(),
    base64: z.string().startsWith("data:image/", "Must be an image data URL.").max(200_000),
    count: z.number().int().nullish(),
  }),
});

// An event as Evolution may spell it (`messages.upsert`, `MESSAGES_UPSERT`, or the "webhook by
// events" path segment `messages-upsert`) to the dotted name.
export const eventName = (spelling: string) => spelling.toLowerCase().replace(/[-_]/g, ".");
export const handledEvents = new Set(["messages.upsert", "messages.update", "send.message", "connection.update", "qrcode.updated"]);
