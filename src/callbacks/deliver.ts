// Tenant callbacks, step 2: POST each event to its URL, signed by the Standard Webhooks scheme
// (webhook-id / webhook-timestamp / webhook-signature). The delivery row in D1 holds the attempt
// count and when the next attempt is due; the queue message carries the wait (delaySeconds, at
// most 12 h per hop, so a longer Retry-After is waited out in several hops).
import { z } from "zod";
import { runBatch } from "../db/batch.ts";
import { database, type Db } from "../db/client.ts";
import { callbackDeliveries, disabledCallbackEndpoints } from "../db/queries/index.ts";
import { type EventRow, eventView } from "../outbox/view.ts";
import { signWebhook } from "../signing/standard-webhooks.ts";
import { legacySignature, signingPlan } from "./keys.ts";

// Waits after attempts 1…7 (Svix's schedule, about 27.6 h in all): attempt 1 is immediate.
export const RETRY_DELAYS_S = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600] as const;
export const MAX_CALLBACK_ATTEMPTS = RETRY_DELAYS_S.length + 1;
// Queues take delaySeconds up to 12 h.
const QUEUE_MAX_DELAY_S = 12 * 3600;
// A Retry-After beyond this is treated as this (a receiver cannot park an event for ever).
const MAX_RETRY_AFTER_S = 24 * 3600;
const ATTEMPT_TIMEOUT_MS = 15_000;
// A claim outlives the attempt's timeout and the write of its outcome; past it, the attempt is
// taken as lost (the isolate died) and the delivery may be claimed again.
export const CALLBACK_LEASE_MS = 60_000;
const MAX_ERROR_CHARS = 300;

export const callbackJob = z.object({ seq: z.number(), eventId: z.string(), tenantId: z.string(), url: z.string() });
export type CallbackJob = z.infer<typeof callbackJob>;

type Row = callbackDeliveries.AttemptRow;

export type AttemptOutcome =
  | { kind: "delivered"; status: number }
  | { kind: "gone"; status: number }
  | { kind: "failed"; status: number | null; error: string; retryAfterS: number | null };

/** Seconds from a Retry-After header (delta-seconds or an HTTP date); null when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now: number): number | null {
  if (!header) return null;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

/** The wait before the next attempt after `attempt` failed: the schedule, or longer when the receiver asked. */
export function nextDelaySeconds(attempt: number, retryAfterS: number | null): number {
  const scheduled = RETRY_DELAYS_S[Math.min(attempt, RETRY_DELAYS_S.length) - 1] ?? RETRY_DELAYS_S[0];
  return Math.max(scheduled, Math.min(retryAfterS ?? 0, MAX_RETRY_AFTER_S));
}

/** The event as GET /v1/events serves it, without the feed's `seq`: one shape on every path. */
export function eventBody(row: Omit<EventRow, "seq">): string {
  const { seq: _, ...event } = eventView({ ...row, seq: 0 });
  return JSON.stringify(event);
}

async function attemptOnce(url: string, row: Row, now: number): Promise<AttemptOutcome> {
  const body = eventBody(row);
  const plan = signingPlan({ current: row.secret, previous: row.previous, previousUntil: row.previous_until }, now);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    ...(await signWebhook({ id: row.event_id, body, secrets: plan.secrets, now })),
  };
  if (plan.legacy) {
    headers["x-mensageiro-signature"] = await legacySignature(plan.legacy, body);
    headers["x-mensageiro-event-id"] = row.event_id;
    headers["x-mensageiro-event-type"] = row.type;
  }
  try {
    // 3xx counts as a failure: a callback URL that moved must be changed, not followed.
    const res = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS) });
    await res.body?.cancel();
    if (res.status >= 200 && res.status < 300) return { kind: "delivered", status: res.status };
    if (res.status === 410) return { kind: "gone", status: 410 };
    return { kind: "failed", status: res.status, error: `HTTP ${res.status}`, retryAfterS: retryAfterSeconds(res.headers.get("retry-after"), now) };
  } catch (err) {
    return { kind: "failed", status: null, error: String(err).slice(0, MAX_ERROR_CHARS), retryAfterS: null };
  }
}

// The messages of a batch go out side by side: one slow receiver does not hold up the others.
export async function consumeCallbacks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const db = database(env.DB);
  await Promise.all(batch.messages.map((message) => deliverOne(db, message)));
}

async function deliverOne(db: Db, message: Message<unknown>): Promise<void> {
  const parsed = callbackJob.safeParse(message.body);
  if (!parsed.success) {
    message.ack();
    return;
  }
  const job = parsed.data;
  const row = await callbackDeliveries.attemptOf(db, job);
  // Purged event, or a duplicate of a delivery already settled (a replay resets the row first).
  if (!row || row.status === "delivered" || row.status === "failed") {
    message.ack();
    return;
  }
  const now = Date.now();
  // Early: a Retry-After longer than one queue hop, or a copy that came before its turn.
  if (row.next_at && row.next_at > now + 1000) {
    message.retry({ delaySeconds: Math.min(QUEUE_MAX_DELAY_S, Math.ceil((row.next_at - now) / 1000)) });
    return;
  }
  const attempt = (row.attempts ?? 0) + 1;
  // Claim this attempt before the POST. Another copy of the job (a re-dispatch of a delivery that
  // was only waiting in the queue) that holds the claim or already made the attempt wins: this one
  // is dropped, and the cron re-dispatches the delivery if that copy's claim runs out unsettled.
  const leaseUntil = now + CALLBACK_LEASE_MS;
  const [claim] = await runBatch(db, [
    callbackDeliveries.claimAttempt({
      eventId: row.event_id,
      url: job.url,
      tenantId: row.tenant_id,
      seq: job.seq,
      type: row.type,
      attempts: row.attempts ?? 0,
      now,
      leaseUntil,
    }),
  ]);
  if ((claim?.meta?.changes ?? 0) === 0) {
    message.ack();
    return;
  }
  const outcome: AttemptOutcome = row.disabled
    ? { kind: "failed", status: null, error: `endpoint disabled: ${row.disabled}`, retryAfterS: null }
    : await attemptOnce(job.url, row, now);
  const at = Date.now();
  let status: "delivered" | "failed" | "retrying";
  let delayS = 0;
  if (outcome.kind === "delivered") status = "delivered";
  else if (outcome.kind === "gone" || row.disabled || attempt >= MAX_CALLBACK_ATTEMPTS) status = "failed";
  else {
    status = "retrying";
    delayS = nextDelaySeconds(attempt, outcome.retryAfterS);
  }
  const gone = outcome.kind === "gone";
  const error = outcome.kind === "failed" ? outcome.error : gone ? "HTTP 410 Gone: endpoint disabled" : null;
  const nextAt = status === "retrying" ? at + delayS * 1000 : null;
  await runBatch(db, [
    callbackDeliveries.recordAttempt({
      eventId: row.event_id,
      url: job.url,
      tenantId: row.tenant_id,
      seq: job.seq,
      type: row.type,
      status,
      attempt,
      error,
      httpStatus: outcome.status,
      nextAt,
      at,
      leaseUntil,
    }),
    ...(gone ? [disabledCallbackEndpoints.disable(row.tenant_id, job.url, at, `410 Gone at ${new Date(at).toISOString()} (event ${row.event_id})`)] : []),
  ]);
  if (status === "retrying") message.retry({ delaySeconds: Math.min(QUEUE_MAX_DELAY_S, delayS) });
  else message.ack();
}
