// Telegram through the Bot API, behind the provider seam.
import type { Provider } from "../provider.ts";
import { callBotApi, describeAnswer } from "./api.ts";
import { inboundOf, parseUpdate, SECRET_HEADER, verifySecret } from "./inbound.ts";
import { chatIdOf, MAX_CAPTION, MAX_TEXT, sendToTelegram } from "./send.ts";

// A chat id: a private chat's positive integer, a group's negative one, a supergroup or channel's
// -100…; or a public channel's @username (5–32 characters).
const chatId = /^-?[1-9]\d{0,15}$/;
const channelName = /^@[A-Za-z][A-Za-z0-9_]{3,31}$/;

// Telegram's published guidance: about one message a second to one chat, twenty a minute to a group.
const PRIVATE_CHAT_GAP_MS = 1_000;
const GROUP_GAP_MS = 3_000;

export const telegramProvider: Provider = {
  channel: "telegram",
  capabilities: {
    // Bots get no delivered or read receipts: a Telegram message ends at `sent`.
    receipts: [],
    typing: true,
    media: ["image", "video", "audio", "document"],
    maxTextLength: MAX_TEXT,
    maxCaptionLength: MAX_CAPTION,
    addressFormat: "a chat id (424242001, -1001234567890) or a public channel's @username",
    // Telegram allows about 30 a second across chats. Calls granted at a steady pace reach Telegram in
    // bunches (each waits for its D1 claim first): 20 a second with bursts of 5 stays under 30 in any
    // second even when a second and a quarter's worth of grants arrive together.
    defaultRatePerMinute: 1_200,
    defaultBurst: 5,
  },
  address(to) {
    if (chatId.test(to) && Number.isSafeInteger(Number(to))) return { ok: true, to };
    if (channelName.test(to)) return { ok: true, to };
    return { ok: false, message: "Must be a Telegram chat id (e.g. 424242001 or -1001234567890) or a channel's @username." };
  },
  refuseContent(msg) {
    if (!msg.media && msg.text && msg.text.length > MAX_TEXT) return { path: "text", message: `Telegram takes at most ${MAX_TEXT} characters of text.` };
    const caption = msg.media ? (msg.media.caption ?? msg.text) : undefined;
    if (caption && caption.length > MAX_CAPTION)
      return { path: msg.media?.caption ? "media.caption" : "text", message: `Telegram takes at most ${MAX_CAPTION} characters of caption.` };
    return undefined;
  },
  send: sendToTelegram,
  // A bot cannot list what it sent, and a send has no idempotency key: an attempt in doubt is never
  // sent again (at most once). It fails with this reason and can be replayed on purpose.
  inDoubt: {
    kind: "fail",
    reason:
      "in doubt: Telegram did not answer in time, so it may have gone out, and a bot cannot ask; not sent again to avoid a duplicate (replay it from the dead letters with force if it did not arrive)",
  },
  async typing(conn, to) {
    // "typing…" shows for up to 5 s; the text follows on the lane's alarm.
    const answer = await callBotApi(conn, "sendChatAction", { chat_id: chatIdOf(to), action: "typing" }, 1_500);
    return answer.kind === "ok" ? { kind: "ok" } : { kind: "failed", error: describeAnswer(answer) };
  },
  chatGapMs: (to) => (to.startsWith("-") || to.startsWith("@") ? GROUP_GAP_MS : PRIVATE_CHAT_GAP_MS),
  inbound: {
    verify: (headers, secret) => verifySecret(headers.get(SECRET_HEADER), secret),
    parse(body, receivedAt) {
      const parsed = parseUpdate(body);
      return parsed.success ? inboundOf(parsed.data, receivedAt) : undefined;
    },
  },
};
