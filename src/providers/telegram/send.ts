// Sending through the Bot API: one method per content kind, and Telegram's answers read into the
// seam's outcomes (the error table of the Bot API documentation).
import type { MediaJson } from "../../db/schema.ts";
import type { Connection, Outgoing, SendOutcome } from "../provider.ts";
import { type BotAnswer, callBotApi, describeAnswer, message } from "./api.ts";

export const MAX_TEXT = 4_096;
export const MAX_CAPTION = 1_024;

const mediaMethod: Record<MediaJson["type"], { method: string; field: string }> = {
  image: { method: "sendPhoto", field: "photo" },
  video: { method: "sendVideo", field: "video" },
  audio: { method: "sendAudio", field: "audio" },
  document: { method: "sendDocument", field: "document" },
};

/** `chat_id` as the Bot API takes it: an integer, or `@channelname`. */
export const chatIdOf = (to: string): number | string => (to.startsWith("@") ? to : Number(to));

export function sendRequest(msg: Outgoing, to: string): { method: string; body: Record<string, unknown> } {
  const chat_id = chatIdOf(to);
  const media = msg.media;
  if (!media) return { method: "sendMessage", body: { chat_id, text: msg.text } };
  const { method, field } = mediaMethod[media.type];
  // Text given with media travels as its caption.
  const caption = media.caption ?? msg.text ?? undefined;
  return { method, body: { chat_id, [field]: media.url, ...(caption ? { caption } : {}) } };
}

/** A send's answer in the seam's terms (before any chat migration is followed). */
export function classify(answer: BotAnswer): SendOutcome {
  if (answer.kind === "ok") {
    const sent = message.safeParse(answer.result);
    // Message ids are unique per chat only: the provider id is chat + message id.
    if (sent.success) return { kind: "sent", providerMessageId: `${sent.data.chat.id}:${sent.data.message_id}` };
    // Accepted but unreadable: the message may be out, so it is not sent again.
    return { kind: "refused", reason: "Telegram accepted the message with an unexpected answer: it may have gone out" };
  }
  if (answer.kind === "unreachable")
    return answer.timeout ? { kind: "in_doubt", reason: answer.reason } : { kind: "retry", reason: answer.reason, countsAsAttempt: true };
  if (answer.kind === "unreadable") {
    return answer.status >= 500 || answer.status === 429
      ? { kind: "retry", reason: answer.reason, countsAsAttempt: true }
      : { kind: "refused", reason: answer.reason };
  }
  const reason = describeAnswer(answer);
  // Flood control: wait as long as Telegram says, and that wait is not this message's failure. A 429
  // does not say whether the chat's limit or the bot's was hit, so the whole bot waits it out: a
  // call inside a retry_after is what gets a bot restricted.
  if (answer.code === 429)
    return { kind: "retry", reason, afterMs: Math.max(1, answer.retryAfter ?? 1) * 1000, countsAsAttempt: false, signal: "rate-overlimit" };
  if (answer.code >= 500) return { kind: "retry", reason, countsAsAttempt: true };
  // 400 chat not found, 403 blocked / never started, 401 bad token, message too long: for good.
  return { kind: "refused", reason };
}

// When each bot's last retry_after ends, as this isolate saw it. The governor pauses the bot for the
// same time, but a lane granted just before the 429 may reach its call after it: this catches that
// call in the same isolate (best effort; the governor's pause is the bot-wide rule).
const heldUntil = new Map<string, number>();
const botKey = (conn: Connection) => `${conn.url}|${conn.secret}`;

export async function sendToTelegram(conn: Connection, msg: Outgoing, timeoutMs: number): Promise<SendOutcome> {
  const held = (heldUntil.get(botKey(conn)) ?? 0) - Date.now();
  if (held > 0) return { kind: "retry", reason: `Telegram's retry_after for this bot runs ${held} ms more; not called`, afterMs: held, countsAsAttempt: false };
  const outcome = await callAndFollow(conn, msg, timeoutMs);
  if (outcome.kind === "retry" && outcome.signal === "rate-overlimit" && outcome.afterMs !== undefined) {
    if (heldUntil.size > 10_000) heldUntil.clear();
    heldUntil.set(botKey(conn), Math.max(heldUntil.get(botKey(conn)) ?? 0, Date.now() + outcome.afterMs));
  }
  return outcome;
}

async function callAndFollow(conn: Connection, msg: Outgoing, timeoutMs: number): Promise<SendOutcome> {
  const first = sendRequest(msg, msg.to);
  const answer = await callBotApi(conn, first.method, first.body, timeoutMs);
  // The group became a supergroup: the message goes to its new id, which the lane remembers.
  if (answer.kind === "error" && answer.migrateTo !== undefined) {
    const movedTo = String(answer.migrateTo);
    const again = sendRequest(msg, movedTo);
    const outcome = classify(await callBotApi(conn, again.method, again.body, timeoutMs));
    return { ...outcome, movedTo };
  }
  return classify(answer);
}
