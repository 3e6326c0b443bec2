// Webhook delivery back to the gateway, like Evolution's webhook controller: JSON POST,
// exponential backoff on 5xx/429/network errors, no retry on 400/401/403/404/422, nothing
// awaited in the send path and no ordering guarantee across events.
import { planWebhook } from "./chaos.ts";
import { cuid } from "./ids.ts";
import { envelope, receipt, type MessageRaw } from "./shapes.ts";
import type { Instance, SimulatorState, WebhookRecord } from "./state.ts";

const nonRetryable = new Set([400, 401, 403, 404, 422]);

/** byEvents: `send.message` → `<url>/send-message`. */
export function webhookTarget(instance: Instance, event: string): string | undefined {
  if (!instance.webhookUrl) return undefined;
  if (!instance.byEvents) return instance.webhookUrl;
  return `${instance.webhookUrl.replace(/\/+$/, "")}/${event.replace(/[._]/g, "-")}`;
}

/**
 * Posts one event for an instance. Returns the log record (undefined when the instance has no
 * webhook) and a promise that settles when delivery finished or gave up.
 */
export function emit(state: SimulatorState, instance: Instance, event: string, data: unknown, keyId?: string): { record?: WebhookRecord; done: Promise<void> } {
  const url = webhookTarget(instance, event);
  if (!url || state.stopped) return { done: Promise.resolve() };
  const body = envelope(instance, event, data, state.config.serverUrl);
  const record = state.recordWebhook({ instance: instance.name, event, url, body, ...(keyId ? { keyId } : {}) });
  const plan = planWebhook(state, event, keyId, record.seq);
  if (plan.drop) {
    record.outcome = "dropped";
    return { record, done: Promise.resolve() };
  }
  const copies = [record];
  if (plan.copies > 1) copies.push(state.recordWebhook({ instance: instance.name, event, url, body, ...(keyId ? { keyId } : {}) }));
  const held = plan.delayMs > 0 ? state.sleep(plan.delayMs) : Promise.resolve();
  return { record, done: held.then(() => Promise.all(copies.map((r) => deliver(state, r, instance.webhookHeaders)))).then(() => undefined) };
}

async function deliver(state: SimulatorState, record: WebhookRecord, headers: Record<string, string>): Promise<void> {
  const { webhookMaxAttempts, webhookRetryDelayMs, webhookTimeoutMs } = state.config;
  const payload = JSON.stringify(record.body);
  for (let attempt = 1; attempt <= webhookMaxAttempts && !state.stopped; attempt++) {
    record.attempts = attempt;
    try {
      const res = await fetch(record.url, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: payload,
        signal: AbortSignal.timeout(webhookTimeoutMs),
      });
      record.status = res.status;
      // Drain the body so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        record.outcome = "delivered";
        record.deliveredAt = Date.now();
        delete record.error;
        return;
      }
      record.error = `HTTP ${res.status}`;
      if (nonRetryable.has(res.status)) break;
    } catch (err) {
      record.status = 0;
      record.error = err instanceof Error ? err.message : String(err);
    }
    if (attempt < webhookMaxAttempts) {
      const backoff = Math.min(webhookRetryDelayMs * 2 ** (attempt - 1), webhookRetryDelayMs * 30);
      // ±20% jitter, as Evolution's default WEBHOOK_RETRY_JITTER_FACTOR.
      await state.sleep(backoff * (0.8 + Math.random() * 0.4));
    }
  }
  record.outcome = "failed";
}

/**
 * After a successful send: `send.message`, then the receipts. Groups get only SERVER_ACK:
 * per-participant group receipts reach Evolution as `message-receipt.update`, which it does not
 * forward.
 */
export function scheduleAfterSend(state: SimulatorState, instance: Instance, raw: MessageRaw, isGroup: boolean): void {
  const { sendMessageDelayMs, deliveredDelayMs, readDelayMs } = state.config;
  // One database row per message, so both receipts carry the same messageId.
  const rowId = cuid();
  const keyId = raw.key.id;
  // Read at fire time, so a webhook URL changed meanwhile is honoured.
  const current = () => state.instances.get(instance.name) ?? instance;
  if (sendMessageDelayMs >= 0) state.later(sendMessageDelayMs, () => void emit(state, current(), "send.message", raw, keyId));
  if (deliveredDelayMs >= 0) {
    const status = isGroup ? "SERVER_ACK" : "DELIVERY_ACK";
    state.later(deliveredDelayMs, () => {
      state.recordStatus(keyId, status);
      void emit(state, current(), "messages.update", receipt(instance, raw, status, rowId), keyId);
    });
  }
  if (readDelayMs >= 0 && !isGroup) {
    state.later(readDelayMs, () => {
      state.recordStatus(keyId, "READ");
      void emit(state, current(), "messages.update", receipt(instance, raw, "READ", rowId), keyId);
    });
  }
}
