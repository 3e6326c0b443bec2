// The Bot API methods the gateway uses, with Telegram's checks and error descriptions: each takes
// the bot and the call's parameters and gives the answer, and for sends the message that went out.
import { type Method, sendMethods } from "./config.ts";
import { admit } from "./limits.ts";
import { chatId, flag, integer, list, type Params, text } from "./params.ts";
import {
  type Answer,
  badRequest,
  failure,
  type FileKind,
  fileFields,
  type Message,
  newFile,
  ok,
  type StoredFile,
  tooManyRequests,
  unixSeconds,
  type User,
} from "./shapes.ts";
import type { Bot, KnownChat, TelegramState } from "./state.ts";
import { drainAll, dropPending, pendingCount } from "./webhook.ts";

export type Outcome = Answer & { message?: Message; chat?: KnownChat };
type Handler = (tg: TelegramState, bot: Bot, params: Params) => Outcome | Promise<Outcome>;

const maxText = 4096;
const maxCaption = 1024;
const secretToken = /^[A-Za-z0-9_-]+$/;
const chatActions = new Set([
  "typing",
  "upload_photo",
  "record_video",
  "upload_video",
  "record_voice",
  "upload_voice",
  "upload_document",
  "choose_sticker",
  "find_location",
  "record_video_note",
  "upload_video_note",
]);

const mediaOf: Record<Exclude<(typeof sendMethods)[number], "sendMessage">, FileKind> = {
  sendPhoto: "photo",
  sendVideo: "video",
  sendAudio: "audio",
  sendDocument: "document",
  sendVoice: "voice",
};

export const isSend = (method: string) => (sendMethods as readonly string[]).includes(method);

export const handlers: Record<Method, Handler> = {
  getMe: (_tg, bot) => ok(bot.user),

  setWebhook: (tg, bot, params) => {
    const url = text(params, "url")?.trim() ?? "";
    if (url === "") return removeWebhook(bot, params);
    if (!isHttpUrl(url)) return badRequest("invalid webhook URL specified");
    const secret = text(params, "secret_token");
    if (secret !== undefined && secret !== "") {
      if (secret.length > 256) return badRequest("secret token is too long");
      if (!secretToken.test(secret)) return badRequest("secret token contains unallowed characters");
    }
    const allowed = list(params, "allowed_updates");
    if (allowed === "invalid") return badRequest("can't parse allowed updates");
    const maxConnections = Math.min(100, Math.max(1, integer(params, "max_connections") ?? 40));
    const same = bot.webhook?.url === url && bot.webhook.secretToken === (secret || undefined);
    if (flag(params, "drop_pending_updates")) dropPending(bot);
    bot.webhook = {
      url,
      ...(secret ? { secretToken: secret } : {}),
      // Omitted keeps the previous list, as Telegram does.
      allowedUpdates: allowed ?? bot.webhook?.allowedUpdates ?? [],
      maxConnections,
      setAt: Date.now(),
    };
    if (!same) {
      delete bot.lastErrorDate;
      delete bot.lastErrorMessage;
    }
    drainAll(tg, bot);
    return ok(true, same ? "Webhook is already set" : "Webhook was set");
  },

  deleteWebhook: (_tg, bot, params) => removeWebhook(bot, params),

  getWebhookInfo: (_tg, bot) => {
    const webhook = bot.webhook;
    return ok({
      url: webhook?.url ?? "",
      has_custom_certificate: false,
      pending_update_count: pendingCount(bot),
      ...(bot.lastErrorDate !== undefined ? { last_error_date: bot.lastErrorDate, last_error_message: bot.lastErrorMessage } : {}),
      ...(webhook ? { max_connections: webhook.maxConnections, ip_address: "127.0.0.1" } : {}),
      ...(webhook && webhook.allowedUpdates.length > 0 ? { allowed_updates: webhook.allowedUpdates } : {}),
    });
  },

  sendChatAction: (tg, bot, params) => {
    const target = resolveChat(tg, bot, params);
    if ("status" in target) return target;
    const action = text(params, "action");
    if (action === undefined || action === "") return badRequest("action is empty");
    if (!chatActions.has(action)) return badRequest("wrong parameter action in request");
    return { ...ok(true), chat: target };
  },

  sendMessage: (tg, bot, params) => {
    const target = resolveChat(tg, bot, params);
    if ("status" in target) return target;
    const body = text(params, "text") ?? "";
    if (body.trim() === "") return badRequest("message text is empty");
    if ([...body].length > maxText) return badRequest("message is too long");
    return send(tg, bot, target, { text: body });
  },

  sendPhoto: (tg, bot, params) => sendMedia(tg, bot, params, "sendPhoto"),
  sendVideo: (tg, bot, params) => sendMedia(tg, bot, params, "sendVideo"),
  sendAudio: (tg, bot, params) => sendMedia(tg, bot, params, "sendAudio"),
  sendDocument: (tg, bot, params) => sendMedia(tg, bot, params, "sendDocument"),
  sendVoice: (tg, bot, params) => sendMedia(tg, bot, params, "sendVoice"),
};

function removeWebhook(bot: Bot, params: Params): Answer {
  if (flag(params, "drop_pending_updates")) dropPending(bot);
  if (!bot.webhook) return ok(true, "Webhook is already deleted");
  delete bot.webhook;
  return ok(true, "Webhook was deleted");
}

function sendMedia(tg: TelegramState, bot: Bot, params: Params, method: keyof typeof mediaOf): Outcome {
  const target = resolveChat(tg, bot, params);
  if ("status" in target) return target;
  const kind = mediaOf[method];
  const caption = text(params, "caption") ?? "";
  if ([...caption].length > maxCaption) return badRequest("message caption is too long");
  const file = fileFrom(tg, kind, params[kind]);
  if (file === "missing") return badRequest(`there is no ${kind} in the request`);
  if (file === "wrong") return badRequest("wrong file identifier/HTTP URL specified");
  return send(tg, bot, target, { ...fileFields(file), ...(caption.trim() !== "" ? { caption } : {}) }, file);
}

/** A file by URL (Telegram downloads it), by a file_id it knows, or uploaded in the request. */
function fileFrom(tg: TelegramState, kind: FileKind, value: unknown): StoredFile | "missing" | "wrong" {
  if (value instanceof Blob) {
    if (value.size === 0) return "wrong";
    return newFile(kind, {
      size: value.size,
      ...(value instanceof File && value.name ? { name: value.name } : {}),
      ...(value.type ? { mime: value.type } : {}),
    });
  }
  if (typeof value !== "string" || value.trim() === "") return "missing";
  if (isHttpUrl(value)) return newFile(kind, { name: decodeURIComponent(new URL(value).pathname.split("/").pop() || "") || undefined });
  const known = tg.files.get(value);
  return known && known.kind === kind ? known : "wrong";
}

/** The chat a call names, or the answer Telegram gives when it cannot be used. */
export function resolveChat(tg: TelegramState, bot: Bot, params: Params): KnownChat | Answer {
  if (params.chat_id === undefined || params.chat_id === "") return badRequest("chat_id is empty");
  const ref = chatId(params);
  const chat = ref === undefined ? undefined : tg.findChat(bot, ref);
  if (!chat) return badRequest("chat not found");
  if (chat.migratedTo !== undefined) return badRequest("group chat was upgraded to a supergroup chat", { migrate_to_chat_id: chat.migratedTo });
  if (chat.state === "blocked") return failure(403, "Forbidden: bot was blocked by the user");
  if (chat.state === "never-started") return failure(403, "Forbidden: bot can't initiate conversation with a user");
  return chat;
}

/** Flood control, then the message goes out with the chat's next message id. */
function send(tg: TelegramState, bot: Bot, chat: KnownChat, content: Partial<Message>, file?: StoredFile): Outcome {
  const verdict = admit(tg.settings, bot, chat);
  if (!verdict.allowed) return { ...tooManyRequests(verdict.retryAfter), chat };
  if (file) tg.rememberFile(file);
  const message: Message = {
    message_id: tg.nextMessageId(chat),
    // Channel posts are signed by the channel, not the bot.
    ...(chat.chat.type === "channel" ? { sender_chat: chat.chat } : { from: botAsUser(bot) }),
    chat: chat.chat,
    date: unixSeconds(),
    ...content,
  };
  tg.keepMessage(chat, message);
  return { ...ok(message), message, chat };
}

export const botAsUser = (bot: Bot): User => ({
  id: bot.user.id,
  is_bot: true,
  first_name: bot.user.first_name,
  ...(bot.user.username ? { username: bot.user.username } : {}),
});

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}
