// Turning an Evolution messages.upsert into the gateway's inbound record (bodies as in test/fixtures/evolution/).
import { replyAddress } from "../automation/offer.ts";
import type { UpsertData } from "../contracts/evolution-webhooks.ts";
import { contactKey, reportedNumber } from "../messages/contact-key.ts";
import type { InboundMessage } from "../providers/provider.ts";

type Message = Record<string, unknown>;
const mediaTypes = ["imageMessage", "videoMessage", "audioMessage", "documentMessage", "stickerMessage", "ptvMessage"] as const;

const obj = (v: unknown): Message | undefined => (v && typeof v === "object" && !Array.isArray(v) ? (v as Message) : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" && v.length > 0 ? v : undefined);

// Wrappers Evolution does not unwrap itself.
function unwrap(message: Message | undefined): Message | undefined {
  let m = message;
  for (let i = 0; i < 3 && m; i++) {
    const inner =
      obj(obj(m.ephemeralMessage)?.message) ??
      obj(obj(m.viewOnceMessage)?.message) ??
      obj(obj(m.viewOnceMessageV2)?.message) ??
      obj(obj(m.documentWithCaptionMessage)?.message);
    if (!inner) break;
    m = inner;
  }
  return m;
}

export function textOf(message: Message | undefined): string | undefined {
  const m = unwrap(message);
  if (!m) return undefined;
  return (
    str(m.conversation) ??
    str(obj(m.extendedTextMessage)?.text) ??
    mediaTypes.map((t) => str(obj(m[t])?.caption)).find(Boolean) ??
    str(obj(m.buttonsResponseMessage)?.selectedDisplayText) ??
    str(obj(obj(m.listResponseMessage)?.singleSelectReply)?.selectedRowId) ??
    str(obj(m.listResponseMessage)?.title) ??
    str(obj(m.templateButtonReplyMessage)?.selectedDisplayText)
  );
}

export function mediaOf(message: Message | undefined): Record<string, unknown> | undefined {
  const m = unwrap(message);
  if (!m) return undefined;
  for (const t of mediaTypes) {
    const media = obj(m[t]);
    if (!media) continue;
    // The URL is WhatsApp's encrypted .enc file: kept for reference, not as a download link.
    return {
      type: t.replace(/Message$/, ""),
      mimeType: str(media.mimetype),
      fileName: str(media.fileName),
      caption: str(media.caption),
      ptt: media.ptt === true ? true : undefined,
      seconds: typeof media.seconds === "number" ? media.seconds : undefined,
      url: str(media.url),
    };
  }
  return undefined;
}

/** The contact a message belongs to: the group JID for groups, else the phone digits as the chat's
 *  key (from remoteJidAlt when the chat is addressed by @lid; a Brazilian mobile in its 13-digit
 *  form, as API sends to it are keyed), else the LID JID as given. */
export function contactOf(key: UpsertData["key"]): string {
  if (key.remoteJid.endsWith("@g.us")) return key.remoteJid;
  const reported = reportedNumber(key.remoteJid) ?? (key.remoteJidAlt ? reportedNumber(key.remoteJidAlt) : undefined);
  if (reported !== undefined) return contactKey(reported);
  return key.remoteJid;
}

export function timestampOf(ts: UpsertData["messageTimestamp"], fallback: number): number {
  if (typeof ts === "number") return ts * 1000;
  if (typeof ts === "string" && /^\d+$/.test(ts)) return Number(ts) * 1000;
  if (ts && typeof ts === "object" && typeof ts.low === "number") return ts.low * 1000;
  return fallback;
}

/** A messages.upsert as the inbound door takes every provider's message. Evolution's own id dedupes
 *  it; the phone's own messages (fromMe) are kept, never answered. */
export function evolutionMessage(data: UpsertData, receivedAt: number): InboundMessage {
  const contact = contactOf(data.key);
  return {
    dedupeKey: null,
    kind: "message",
    contact,
    replyTo: replyAddress(contact, data.key.remoteJid),
    chat: data.key.remoteJid,
    participant: data.key.participantAlt ?? data.key.participant ?? null,
    providerMessageId: data.key.id,
    fromMe: data.key.fromMe,
    pushName: data.pushName ?? null,
    messageType: data.messageType,
    text: textOf(data.message ?? undefined) ?? null,
    media: mediaOf(data.message ?? undefined) ?? null,
    isGroup: data.key.remoteJid.endsWith("@g.us"),
    timestamp: timestampOf(data.messageTimestamp, receivedAt),
  };
}
