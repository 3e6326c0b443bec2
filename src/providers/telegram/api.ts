// The Bot API as this gateway uses it: `POST <apiUrl>/bot<token>/<method>` with a JSON body, and
// the few shapes it reads back, parsed with zod. The token is in every URL: it never leaves this
// file in an error text.
import { z } from "zod";
import { redact } from "../../redact.ts";
import type { Connection } from "../provider.ts";

export const DEFAULT_API_URL = "https://api.telegram.org";

export const user = z.object({
  id: z.number(),
  is_bot: z.boolean().optional(),
  first_name: z.string(),
  last_name: z.string().optional(),
  username: z.string().optional(),
});
export const chat = z.object({
  id: z.number(),
  type: z.enum(["private", "group", "supergroup", "channel"]),
  title: z.string().optional(),
  username: z.string().optional(),
  first_name: z.string().optional(),
  last_name: z.string().optional(),
});
const fileRef = z.looseObject({ file_id: z.string(), file_unique_id: z.string().optional(), file_size: z.number().optional() });
export const message = z.looseObject({
  message_id: z.number(),
  from: user.optional(),
  sender_chat: chat.optional(),
  chat,
  date: z.number(),
  edit_date: z.number().optional(),
  text: z.string().optional(),
  caption: z.string().optional(),
  photo: z.array(fileRef.extend({ width: z.number().optional(), height: z.number().optional() })).optional(),
  document: fileRef.extend({ file_name: z.string().optional(), mime_type: z.string().optional() }).optional(),
  voice: fileRef.extend({ duration: z.number().optional(), mime_type: z.string().optional() }).optional(),
  audio: fileRef.extend({ duration: z.number().optional(), mime_type: z.string().optional(), file_name: z.string().optional() }).optional(),
  video: fileRef.extend({ duration: z.number().optional(), mime_type: z.string().optional(), file_name: z.string().optional() }).optional(),
  sticker: fileRef.extend({ emoji: z.string().optional() }).optional(),
  location: z.object({ latitude: z.number(), longitude: z.number() }).optional(),
  contact: z.object({ phone_number: z.string(), first_name: z.string(), last_name: z.string().optional(), user_id: z.number().optional() }).optional(),
});
export type TelegramMessage = z.infer<typeof message>;

export const callbackQuery = z.looseObject({ id: z.string(), from: user, message: message.optional(), data: z.string().optional() });

export const update = z.looseObject({
  update_id: z.number().int(),
  message: message.optional(),
  edited_message: message.optional(),
  channel_post: message.optional(),
  callback_query: callbackQuery.optional(),
});
export type Update = z.infer<typeof update>;

export const webhookInfo = z.looseObject({
  url: z.string(),
  pending_update_count: z.number(),
  last_error_date: z.number().optional(),
  last_error_message: z.string().optional(),
});

const okAnswer = z.object({ ok: z.literal(true), result: z.unknown() });
const errorAnswer = z.object({
  ok: z.literal(false),
  error_code: z.number(),
  description: z.string().default(""),
  parameters: z.object({ retry_after: z.number().optional(), migrate_to_chat_id: z.number().optional() }).optional(),
});

export type BotAnswer =
  | { kind: "ok"; result: unknown }
  | { kind: "error"; status: number; code: number; description: string; retryAfter?: number; migrateTo?: number }
  /** No readable answer: `timeout` means the call may still have gone through. */
  | { kind: "unreachable"; timeout: boolean; reason: string }
  | { kind: "unreadable"; status: number; reason: string };

export async function callBotApi(conn: Pick<Connection, "url" | "secret">, method: string, body: unknown, timeoutMs: number): Promise<BotAnswer> {
  const url = `${conn.url.replace(/\/+$/, "")}/bot${conn.secret}/${method}`;
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      // Never followed: the token is in the URL, and a redirect would hand it to wherever it points.
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await res.text();
  } catch (err) {
    const timeout = err instanceof Error && err.name === "TimeoutError";
    const reason = timeout ? `timed out after ${timeoutMs} ms` : redact(String(err), [conn.secret]);
    return { kind: "unreachable", timeout, reason: `Telegram unreachable: ${reason}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const ok = okAnswer.safeParse(json);
  if (ok.success && res.ok) return { kind: "ok", result: ok.data.result };
  const error = errorAnswer.safeParse(json);
  if (error.success)
    return {
      kind: "error",
      status: res.status,
      code: error.data.error_code,
      description: redact(error.data.description, [conn.secret]),
      retryAfter: error.data.parameters?.retry_after,
      migrateTo: error.data.parameters?.migrate_to_chat_id,
    };
  if (res.status >= 300 && res.status <= 399)
    return { kind: "unreadable", status: res.status, reason: `Telegram ${res.status}: a redirect (not followed); check apiUrl` };
  return { kind: "unreadable", status: res.status, reason: `Telegram ${res.status}: ${redact(text.slice(0, 300), [conn.secret])}` };
}

/** A short description of a non-ok answer, for errors and history. */
export function describeAnswer(answer: Exclude<BotAnswer, { kind: "ok" }>): string {
  if (answer.kind === "error") return `Telegram ${answer.code}: ${answer.description}`;
  return answer.reason;
}
