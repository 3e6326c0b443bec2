// Telegram's webhook in: the secret header checked in constant time, and an Update read into the
// gateway's inbound messages, keyed by update_id (Telegram redelivers an update until it got a 2xx).
import type { InboundMessage } from "../provider.ts";
import { type TelegramMessage, type Update, update } from "./api.ts";

export const SECRET_HEADER = "x-telegram-bot-api-secret-token";

/** The updates this gateway handles; setWebhook asks Telegram for these only. */
export const ALLOWED_UPDATES = ["message", "edited_message", "callback_query"] as const;

/** Whether the request carries the instance's webhook secret (SHA-256 first: equal lengths, no timing leak). */
export async function verifySecret(header: string | null | undefined, secret: string | null | undefined): Promise<boolean> {
  if (!header || !secret) return false;
  const digest = async (s: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  const [a, b] = await Promise.all([digest(header), digest(secret)]);
  return crypto.subtle.timingSafeEqual(a, b);
}

export const parseUpdate = (body: unknown) => update.safeParse(body);

const nameOf = (u: { first_name: string; last_name?: string } | undefined) => (u ? [u.first_name, u.last_name].filter(Boolean).join(" ") : null);

function contentOf(m: TelegramMessage): { messageType: string; text: string | null; media: Record<string, unknown> | null } {
  const caption = m.caption ?? undefined;
  if (m.text !== undefined) return { messageType: "text", text: m.text, media: null };
  const largest = m.photo?.at(-1);
  if (largest)
    return {
      messageType: "photo",
      text: caption ?? null,
      media: { type: "image", fileId: largest.file_id, caption, width: largest.width, height: largest.height },
    };
  if (m.video)
    return {
      messageType: "video",
      text: caption ?? null,
      media: { type: "video", fileId: m.video.file_id, caption, mimeType: m.video.mime_type, seconds: m.video.duration },
    };
  if (m.voice)
    return {
      messageType: "voice",
      text: caption ?? null,
      media: { type: "audio", ptt: true, fileId: m.voice.file_id, mimeType: m.voice.mime_type, seconds: m.voice.duration },
    };
  if (m.audio)
    return {
      messageType: "audio",
      text: caption ?? null,
      media: { type: "audio", fileId: m.audio.file_id, caption, mimeType: m.audio.mime_type, seconds: m.audio.duration },
    };
  if (m.document)
    return {
      messageType: "document",
      text: caption ?? null,
      media: { type: "document", fileId: m.document.file_id, caption, fileName: m.document.file_name, mimeType: m.document.mime_type },
    };
  if (m.sticker) return { messageType: "sticker", text: null, media: { type: "sticker", fileId: m.sticker.file_id, emoji: m.sticker.emoji } };
  if (m.location) return { messageType: "location", text: null, media: { type: "location", latitude: m.location.latitude, longitude: m.location.longitude } };
  if (m.contact)
    return {
      messageType: "contact",
      text: null,
      media: { type: "contact", phoneNumber: m.contact.phone_number, name: nameOf(m.contact), userId: m.contact.user_id },
    };
  return { messageType: "unsupported", text: null, media: null };
}

function fromMessage(u: Update, m: TelegramMessage, kind: InboundMessage["kind"]): InboundMessage {
  const chatId = String(m.chat.id);
  const isGroup = m.chat.type === "group" || m.chat.type === "supergroup";
  const content = contentOf(m);
  const providerMessageId = kind === "edit" ? `${chatId}:${m.message_id}:edited:${m.edit_date ?? u.update_id}` : `${chatId}:${m.message_id}`;
  return {
    dedupeKey: `update:${u.update_id}`,
    kind,
    // The chat is the contact (a person's private chat, a group, a channel); replies go to it.
    contact: chatId,
    replyTo: chatId,
    chat: chatId,
    participant: isGroup && m.from ? String(m.from.id) : null,
    providerMessageId,
    pushName: nameOf(m.from) ?? m.chat.title ?? null,
    messageType: kind === "edit" ? "edited_message" : content.messageType,
    text: content.text,
    media: content.media,
    isGroup,
    timestamp: (kind === "edit" ? (m.edit_date ?? m.date) : m.date) * 1000,
  };
}

/** The inbound messages an update carries (none for kinds this gateway does not handle). */
export function inboundOf(u: Update, receivedAt: number): InboundMessage[] {
  if (u.message) return [fromMessage(u, u.message, "message")];
  if (u.channel_post) return [fromMessage(u, u.channel_post, "message")];
  if (u.edited_message) return [fromMessage(u, u.edited_message, "edit")];
  const q = u.callback_query;
  if (q) {
    const chatId = q.message ? String(q.message.chat.id) : String(q.from.id);
    const isGroup = q.message?.chat.type === "group" || q.message?.chat.type === "supergroup";
    return [
      {
        dedupeKey: `update:${u.update_id}`,
        kind: "callback",
        contact: chatId,
        replyTo: chatId,
        chat: chatId,
        participant: isGroup ? String(q.from.id) : null,
        providerMessageId: `callback:${q.id}`,
        pushName: nameOf(q.from),
        messageType: "callback_query",
        // The button's data is what the person chose.
        text: q.data ?? null,
        media: q.message ? { type: "callback", messageId: `${chatId}:${q.message.message_id}` } : null,
        isGroup,
        timestamp: receivedAt,
      },
    ];
  }
  return [];
}
