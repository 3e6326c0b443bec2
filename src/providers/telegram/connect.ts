// Connecting a bot: getMe checks the token, setWebhook points Telegram at this gateway with a
// secret header, getWebhookInfo reports the webhook's state, deleteWebhook disconnects it.
import { z } from "zod";
import type { Connection } from "../provider.ts";
import { callBotApi, describeAnswer, user, webhookInfo } from "./api.ts";
import { ALLOWED_UPDATES } from "./inbound.ts";

type Bot = Pick<Connection, "url" | "secret">;
export type Checked<T> = { ok: true; value: T } | { ok: false; refused: boolean; error: string };

/** getMe: who the token belongs to. `refused`: Telegram answered and said no (a bad token). */
export async function whoAmI(bot: Bot, timeoutMs: number): Promise<Checked<{ id: number; username: string | null; firstName: string }>> {
  const answer = await callBotApi(bot, "getMe", {}, timeoutMs);
  if (answer.kind !== "ok") return { ok: false, refused: answer.kind === "error" && answer.code < 500 && answer.code !== 429, error: describeAnswer(answer) };
  const me = user.safeParse(answer.result);
  if (!me.success) return { ok: false, refused: false, error: "getMe answered an unexpected body" };
  return { ok: true, value: { id: me.data.id, username: me.data.username ?? null, firstName: me.data.first_name } };
}

export async function setWebhook(bot: Bot, url: string, secretToken: string, timeoutMs: number): Promise<Checked<true>> {
  const answer = await callBotApi(bot, "setWebhook", { url, secret_token: secretToken, allowed_updates: ALLOWED_UPDATES }, timeoutMs);
  if (answer.kind !== "ok") return { ok: false, refused: answer.kind === "error" && answer.code < 500, error: describeAnswer(answer) };
  return { ok: true, value: true };
}

export async function deleteWebhook(bot: Bot, timeoutMs: number): Promise<Checked<true>> {
  const answer = await callBotApi(bot, "deleteWebhook", {}, timeoutMs);
  if (answer.kind !== "ok") return { ok: false, refused: answer.kind === "error" && answer.code < 500, error: describeAnswer(answer) };
  return { ok: true, value: true };
}

export const webhookState = z.object({
  url: z.string().describe("Where Telegram posts updates (empty: no webhook)."),
  pendingUpdates: z.int().describe("Updates Telegram holds that this gateway has not taken yet."),
  lastError: z.string().optional(),
  lastErrorAt: z.iso.datetime().optional(),
});
export type WebhookState = z.infer<typeof webhookState>;

export async function webhookStatus(bot: Bot, timeoutMs: number): Promise<Checked<WebhookState>> {
  const answer = await callBotApi(bot, "getWebhookInfo", {}, timeoutMs);
  if (answer.kind !== "ok") return { ok: false, refused: false, error: describeAnswer(answer) };
  const info = webhookInfo.safeParse(answer.result);
  if (!info.success) return { ok: false, refused: false, error: "getWebhookInfo answered an unexpected body" };
  return {
    ok: true,
    value: {
      // The URL's path is the instance's webhook token: shown without it.
      url: info.data.url.replace(/\/webhooks\/telegram\/[^/?#]+/, "/webhooks/telegram/…"),
      pendingUpdates: info.data.pending_update_count,
      ...(info.data.last_error_message ? { lastError: info.data.last_error_message } : {}),
      ...(info.data.last_error_date ? { lastErrorAt: new Date(info.data.last_error_date * 1000).toISOString() } : {}),
    },
  };
}
