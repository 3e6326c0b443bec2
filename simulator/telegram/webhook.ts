// Update delivery to a bot's webhook, the way Telegram does it: a JSON POST with the
// X-Telegram-Bot-Api-Secret-Token header; one chat's updates in sequence (the next waits until
// the previous got a 2xx), chats concurrently; any non-2xx or network error retried with
// backoff, and reported by getWebhookInfo as last_error_date/last_error_message. Updates wait in
// the queue while no webhook is set (pending_update_count) and go out once one is.
import { roll } from "../chaos.ts";
import type { Update, UpdateKind } from "./shapes.ts";
import type { Bot, Delivery, TelegramState } from "./state.ts";

type Queued = { update: Update; duplicate: boolean; settle: () => void; done: Promise<void> };
const entries = new WeakMap<Update, Queued>();

export const updateKind = (update: Update): UpdateKind | undefined =>
  (["message", "edited_message", "channel_post", "edited_channel_post", "callback_query"] as const).find((k) => update[k] !== undefined);

/** Queues an update for its chat; `done` settles when it was delivered, given up, or dropped. */
export function enqueue(tg: TelegramState, bot: Bot, chatId: number, update: Update, duplicate = false): { queued: boolean; done: Promise<void> } {
  const kind = updateKind(update);
  const allowed = bot.webhook?.allowedUpdates ?? [];
  if (allowed.length > 0 && kind && !allowed.includes(kind)) return { queued: false, done: Promise.resolve() };
  let settle = () => {};
  const done = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const entry: Queued = { update, duplicate, settle, done };
  entries.set(update, entry);
  const queue = bot.queues.get(chatId) ?? [];
  queue.push(update);
  bot.queues.set(chatId, queue);
  drain(tg, bot, chatId);
  return { queued: true, done };
}

export const pendingCount = (bot: Bot) => [...bot.queues.values()].reduce((n, q) => n + q.length, 0);

/** drop_pending_updates: forget what waits (it is never delivered). */
export function dropPending(bot: Bot): void {
  for (const queue of bot.queues.values()) for (const update of queue.splice(0)) entries.get(update)?.settle();
}

/** Starts delivering every chat's queue (after setWebhook). */
export function drainAll(tg: TelegramState, bot: Bot): void {
  for (const chatId of bot.queues.keys()) drain(tg, bot, chatId);
}

function drain(tg: TelegramState, bot: Bot, chatId: number): void {
  if (bot.draining.has(chatId) || !bot.webhook || tg.sim.stopped) return;
  bot.draining.add(chatId);
  void (async () => {
    try {
      for (;;) {
        const queue = bot.queues.get(chatId);
        const update = queue?.[0];
        const webhook = bot.webhook;
        if (!queue || !update || !webhook || tg.sim.stopped) return;
        const entry = entries.get(update);
        const delivered = await post(tg, bot, chatId, update, false);
        // A webhook deleted meanwhile keeps the update pending for the next one; a new URL gets it.
        if (!delivered && bot.webhook !== webhook) {
          if (!bot.webhook) return;
          continue;
        }
        if (delivered && (entry?.duplicate || roll(tg.sim, `tg-dup:${bot.user.id}:${update.update_id}`) < tg.settings.faults.duplicateDeliveryRate)) {
          await post(tg, bot, chatId, update, true);
        }
        if (queue[0] === update) queue.shift();
        entry?.settle();
      }
    } finally {
      bot.draining.delete(chatId);
    }
  })();
}

/** Posts one update until a 2xx or the attempts run out; true when delivered. */
async function post(tg: TelegramState, bot: Bot, chatId: number, update: Update, duplicate: boolean): Promise<boolean> {
  const webhook = bot.webhook;
  if (!webhook) return false;
  const record: Delivery = tg.recordDelivery({
    botId: bot.user.id,
    updateId: update.update_id,
    chatId,
    url: webhook.url,
    duplicate,
    ...(webhook.secretToken ? { secretToken: webhook.secretToken } : {}),
    body: update,
  });
  const { maxAttempts, retryDelayMs, timeoutMs } = tg.settings.webhook;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (webhook.secretToken) headers["x-telegram-bot-api-secret-token"] = webhook.secretToken;
  const payload = JSON.stringify(update);
  for (let attempt = 1; attempt <= maxAttempts && !tg.sim.stopped && bot.webhook === webhook; attempt++) {
    record.attempts = attempt;
    try {
      const res = await fetch(webhook.url, { method: "POST", headers, body: payload, signal: AbortSignal.timeout(timeoutMs) });
      record.status = res.status;
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        record.outcome = "delivered";
        record.deliveredAt = Date.now();
        delete record.error;
        return true;
      }
      record.error = `Wrong response from the webhook: ${res.status} ${res.statusText}`.trim();
    } catch (err) {
      record.status = 0;
      record.error = networkError(err);
    }
    bot.lastErrorDate = Math.floor(Date.now() / 1000);
    bot.lastErrorMessage = record.error;
    if (attempt < maxAttempts) await tg.sim.sleep(Math.min(retryDelayMs * 2 ** (attempt - 1), retryDelayMs * 30));
  }
  record.outcome = "failed";
  return false;
}

function networkError(err: unknown): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return "Read timeout expired";
  const code = err instanceof Error && err.cause instanceof Error && "code" in err.cause ? String(err.cause.code) : "";
  if (code === "ECONNREFUSED") return "Connection refused";
  return err instanceof Error ? err.message : String(err);
}
