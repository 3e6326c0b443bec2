// Connecting a Telegram bot to an instance: the token checked with getMe, the webhook pointed at this
// gateway with a fresh secret, and the webhook's state read back for GET. The provider folder owns
// the Bot API; this flow owns the order of the steps and what the API answers about them.
import { z } from "zod";
import { ApiError } from "../errors.ts";
import { randomToken } from "../ids.ts";
import { DEFAULT_API_URL } from "../providers/telegram/api.ts";
import { deleteWebhook, setWebhook, type WebhookState, webhookState, webhookStatus, whoAmI } from "../providers/telegram/connect.ts";

// A bot token is `<bot id>:<secret>`; anything else cannot be one (and could not travel in a URL path).
export const botToken = z.string().regex(/^\d{1,20}:[A-Za-z0-9_-]{1,200}$/, "Must be a bot token as BotFather gives it: <bot id>:<secret>.");

export const telegramInput = z.strictObject({
  botToken: botToken.optional().describe("From BotFather. Stored, never returned. Required when registering."),
  apiUrl: z
    .url({ protocol: /^https?$/, message: "Must be the http(s) base URL of a Bot API server." })
    .max(2048)
    .optional()
    .describe(`A self-hosted Bot API server (larger files); default ${DEFAULT_API_URL}.`),
});
export type TelegramInput = z.infer<typeof telegramInput>;

export const telegramAnswer = z
  .object({
    botUsername: z.string().nullable().describe("The bot's @username, from getMe."),
    apiUrl: z.string(),
    webhook: webhookState.optional().describe("Telegram's view of the webhook (getWebhookInfo), on GET of one instance."),
    webhookError: z.string().optional().describe("Why the webhook state could not be read."),
  })
  .meta({ id: "TelegramConnection" });

export type TelegramConnected = { botToken: string; apiUrl: string; webhookSecret: string; botUsername: string | null };

/** getMe, then setWebhook with a new secret (32 random bytes: 43 characters of A-Z a-z 0-9 _ -). */
export async function connectBot(bot: { botToken: string; apiUrl: string }, webhookUrl: string, timeoutMs: number): Promise<TelegramConnected> {
  const conn = { url: bot.apiUrl, secret: bot.botToken };
  const me = await whoAmI(conn, timeoutMs);
  if (!me.ok)
    throw me.refused
      ? new ApiError("unprocessable", `Telegram refused the bot token: ${me.error}`, [{ path: "telegram.botToken", message: me.error }])
      : unavailable(me.error);
  const webhookSecret = randomToken(32);
  const hooked = await setWebhook(conn, webhookUrl, webhookSecret, timeoutMs);
  if (!hooked.ok) throw hooked.refused ? new ApiError("unprocessable", `Telegram refused the webhook: ${hooked.error}`) : unavailable(hooked.error);
  return { botToken: bot.botToken, apiUrl: bot.apiUrl, webhookSecret, botUsername: me.value.username };
}

export async function disconnectBot(bot: { botToken: string; apiUrl: string }, timeoutMs: number): Promise<void> {
  const done = await deleteWebhook({ url: bot.apiUrl, secret: bot.botToken }, timeoutMs);
  // A token Telegram no longer knows has no webhook left to remove.
  if (!done.ok && !done.refused) throw unavailable(done.error);
}

export async function webhookOf(bot: { botToken: string; apiUrl: string }, timeoutMs: number): Promise<{ webhook: WebhookState } | { webhookError: string }> {
  const state = await webhookStatus({ url: bot.apiUrl, secret: bot.botToken }, timeoutMs);
  return state.ok ? { webhook: state.value } : { webhookError: state.error };
}

const unavailable = (error: string) => new ApiError("unavailable", `Could not reach Telegram: ${error}`, [], { "retry-after": "5" });
