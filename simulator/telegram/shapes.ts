// Bot API objects as Telegram serialises them (User, Chat, Message, PhotoSize and the other
// files, Update, CallbackQuery, WebhookInfo) and its answer envelopes.
import type { ChatType } from "./config.ts";

export type User = { id: number; is_bot: boolean; first_name: string; last_name?: string; username?: string; language_code?: string };
export type BotUser = User & {
  can_join_groups: boolean;
  can_read_all_group_messages: boolean;
  supports_inline_queries: boolean;
  can_connect_to_business: boolean;
  has_main_web_app: boolean;
};
export type Chat = { id: number; type: ChatType; title?: string; username?: string; first_name?: string; last_name?: string };

export type PhotoSize = { file_id: string; file_unique_id: string; width: number; height: number; file_size?: number };
export type FileKind = "photo" | "video" | "audio" | "document" | "voice" | "sticker";
/** One stored file: the fields its Message field carries (photo: the largest size; the others derive). */
export type StoredFile = { kind: FileKind; file_id: string; file_unique_id: string; file_size: number } & Record<string, unknown>;

export type Message = {
  message_id: number;
  from?: User;
  sender_chat?: Chat;
  chat: Chat;
  date: number;
  edit_date?: number;
  text?: string;
  caption?: string;
  photo?: PhotoSize[];
  video?: Record<string, unknown>;
  audio?: Record<string, unknown>;
  document?: Record<string, unknown>;
  voice?: Record<string, unknown>;
  sticker?: Record<string, unknown>;
  location?: { latitude: number; longitude: number };
  contact?: { phone_number: string; first_name: string; last_name?: string; user_id?: number };
};

/** What a callback query carries when the bot's message is no longer available (date 0). */
export type InaccessibleMessage = { chat: Chat; message_id: number; date: 0 };
export type CallbackQuery = { id: string; from: User; message?: Message | InaccessibleMessage; chat_instance: string; data?: string };
export type UpdateKind = "message" | "edited_message" | "channel_post" | "edited_channel_post" | "callback_query";
export type Update = { update_id: number } & { [K in UpdateKind]?: K extends "callback_query" ? CallbackQuery : Message };

export type ResponseParameters = { retry_after?: number; migrate_to_chat_id?: number };
export type Answer = { status: number; body: { ok: true; result: unknown; description?: string } | Failure };
export type Failure = { ok: false; error_code: number; description: string; parameters?: ResponseParameters };

export const ok = (result: unknown, description?: string): Answer => ({ status: 200, body: { ok: true, result, ...(description ? { description } : {}) } });

export function failure(status: number, description: string, parameters?: ResponseParameters): Answer {
  return { status, body: { ok: false, error_code: status, description, ...(parameters ? { parameters } : {}) } };
}

export const badRequest = (what: string, parameters?: ResponseParameters) => failure(400, `Bad Request: ${what}`, parameters);
export const unauthorized = () => failure(401, "Unauthorized");
export const notFound = () => failure(404, "Not Found");
export const tooManyRequests = (retryAfter: number) => failure(429, `Too Many Requests: retry after ${retryAfter}`, { retry_after: retryAfter });

const reasons: Record<number, string> = { 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" };
export const serverError = (status: number) => failure(status, reasons[status] ?? "Internal Server Error");

export const unixSeconds = () => Math.floor(Date.now() / 1000);

// file_id and file_unique_id look like Telegram's: url-safe base64, type-specific prefixes.
const base64url = (bytes: number) =>
  btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(bytes))))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const prefixes: Record<FileKind, string> = {
  photo: "AgACAgEAAxkBAA",
  video: "BAACAgEAAxkBAA",
  audio: "CQACAgEAAxkBAA",
  document: "BQACAgEAAxkBAA",
  voice: "AwACAgEAAxkBAA",
  sticker: "CAACAgEAAxkBAA",
};
export const newFileId = (kind: FileKind) => `${prefixes[kind]}${base64url(48)}`;
export const newFileUniqueId = () => `AQAD${base64url(12)}`;

const mimeTypes: Record<FileKind, string> = {
  photo: "image/jpeg",
  video: "video/mp4",
  audio: "audio/mpeg",
  document: "application/pdf",
  voice: "audio/ogg",
  sticker: "image/webp",
};

/** A new file as Telegram stores it after downloading a URL or receiving an upload. */
export function newFile(kind: FileKind, hints: { name?: string; size?: number; mime?: string } & Record<string, unknown> = {}): StoredFile {
  const { name, size, mime, ...extra } = hints;
  const base = { kind, file_id: newFileId(kind), file_unique_id: newFileUniqueId(), file_size: size ?? 48_213 };
  const mime_type = mime ?? mimeTypes[kind];
  if (kind === "photo") return { ...base, width: 1280, height: 960, ...extra };
  if (kind === "video") return { ...base, width: 1280, height: 720, duration: 12, file_name: name ?? "video.mp4", mime_type, ...extra };
  if (kind === "audio") return { ...base, duration: 184, file_name: name ?? "audio.mp3", mime_type, ...extra };
  if (kind === "voice") return { ...base, duration: 4, mime_type, ...extra };
  if (kind === "sticker") return { ...base, type: "regular", width: 512, height: 512, is_animated: false, is_video: false, emoji: "👍", ...extra };
  return { ...base, file_name: name ?? "document.pdf", mime_type, ...extra };
}

/** The Message fields for a file: photos come as sizes, largest last. */
export function fileFields(file: StoredFile): Partial<Message> {
  const { kind, ...fields } = file;
  if (kind !== "photo") return { [kind]: fields };
  const width = Number(file.width);
  const height = Number(file.height);
  const scaled = (max: number, share: number): PhotoSize => {
    const ratio = Math.min(1, max / Math.max(width, height));
    return {
      file_id: `${file.file_id.slice(0, -4)}${max.toString(36).padStart(4, "0")}`,
      file_unique_id: `${file.file_unique_id}${max}`,
      width: Math.round(width * ratio),
      height: Math.round(height * ratio),
      file_size: Math.round(file.file_size * share),
    };
  };
  return {
    photo: [
      scaled(90, 0.02),
      scaled(320, 0.1),
      scaled(800, 0.4),
      { file_id: file.file_id, file_unique_id: file.file_unique_id, width, height, file_size: file.file_size },
    ],
  };
}
