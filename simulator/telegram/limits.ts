// Flood control as Telegram applies it to sends: token buckets per chat (about 1 a second with a
// short burst), per group (about 20 a minute) and per bot (about 30 a second). A 429 names the
// seconds until the bucket refills, and Telegram keeps answering 429 until that time passed, so a
// call inside the window is refused again and recorded as such.
import type { TelegramSettings } from "./config.ts";
import type { Bot, Bucket, KnownChat } from "./state.ts";

type Rule = { capacity: number; perMs: number };

function take(bucket: Bucket | undefined, rule: Rule, now: number): { bucket: Bucket; waitMs: number } {
  const current = bucket ?? { tokens: rule.capacity, at: now };
  const tokens = Math.min(rule.capacity, current.tokens + (now - current.at) * rule.perMs);
  if (tokens >= 1) return { bucket: { tokens, at: now }, waitMs: 0 };
  return { bucket: { tokens, at: now }, waitMs: (1 - tokens) / rule.perMs };
}

export type Verdict = { allowed: true } | { allowed: false; retryAfter: number; scope: "chat" | "bot" };

/** Decides one send to `chat`; spends the tokens only when it is allowed. */
export function admit(settings: TelegramSettings, bot: Bot, chat: KnownChat, now = Date.now()): Verdict {
  const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
  if (bot.retryUntil > now) return { allowed: false, retryAfter: seconds(bot.retryUntil - now), scope: "bot" };
  if (chat.retryUntil > now) return { allowed: false, retryAfter: seconds(chat.retryUntil - now), scope: "chat" };
  const { enabled, perChatPerSecond, perChatBurst, perGroupPerMinute, perBotPerSecond } = settings.limits;
  if (!enabled) return { allowed: true };

  const perChat = take(chat.buckets.chat, { capacity: perChatBurst, perMs: perChatPerSecond / 1000 }, now);
  const isGroup = chat.chat.type !== "private";
  const perGroup = isGroup ? take(chat.buckets.group, { capacity: perGroupPerMinute, perMs: perGroupPerMinute / 60_000 }, now) : undefined;
  const perBot = take(bot.bucket, { capacity: perBotPerSecond, perMs: perBotPerSecond / 1000 }, now);

  const chatWait = Math.max(perChat.waitMs, perGroup?.waitMs ?? 0);
  if (perBot.waitMs > 0 && perBot.waitMs >= chatWait) {
    const retryAfter = seconds(perBot.waitMs);
    bot.retryUntil = now + retryAfter * 1000;
    return { allowed: false, retryAfter, scope: "bot" };
  }
  if (chatWait > 0) {
    const retryAfter = seconds(chatWait);
    chat.retryUntil = now + retryAfter * 1000;
    return { allowed: false, retryAfter, scope: "chat" };
  }
  chat.buckets.chat = { ...perChat.bucket, tokens: perChat.bucket.tokens - 1 };
  if (perGroup) chat.buckets.group = { ...perGroup.bucket, tokens: perGroup.bucket.tokens - 1 };
  bot.bucket = { ...perBot.bucket, tokens: perBot.bucket.tokens - 1 };
  return { allowed: true };
}

/** A scripted 429 holds the chat (or the whole bot, when no chat) like a real one. */
export function holdFor(target: Bot | KnownChat, retryAfter: number, now = Date.now()): void {
  target.retryUntil = Math.max(target.retryUntil, now + retryAfter * 1000);
}

/** Whether a retry_after answered earlier to this chat or bot is still running. */
export const held = (bot: Bot, chat: KnownChat | undefined, now = Date.now()) => bot.retryUntil > now || (chat !== undefined && chat.retryUntil > now);
