// Tenant callbacks, step 1: outbox events that have a callback URL become delivery rows and
// queue jobs. One global cursor, advanced with a compare-and-set so two dispatchers never hand
// out the same range. The rows are written in the same D1 batch that moves the cursor, before
// the queue send: if sendBatch throws or the isolate dies after the cursor moved, the rows stay
// `pending` and redispatchDue (cron) hands them out again, so no callback is skipped.
import { runBatch } from "../db/batch.ts";
import { database } from "../db/client.ts";
import { callbackDeliveries, consumerCursors, outboxEvents } from "../db/queries/index.ts";
import { errorField, log } from "../observability/log.ts";
import type { CallbackJob } from "./deliver.ts";

const CURSOR_TENANT = "*";
const CURSOR_NAME = "callbacks";
const PAGE = 100;
// A pending or retrying row this far past its due time lost its queue message (or never had one).
export const REDISPATCH_GRACE_MS = 2 * 60_000;

export type { CallbackJob };

export async function enqueueCallbacks(env: Env, jobs: CallbackJob[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += 100) {
    await env.CALLBACKS.sendBatch(jobs.slice(i, i + 100).map((body) => ({ body, contentType: "json" as const })));
  }
}

/** Hands out callbacks after the response or alarm at hand (a failure is logged; the cron retries). */
export function dispatchInBackground(env: Env, ctx: { waitUntil(promise: Promise<unknown>): void }): void {
  ctx.waitUntil(dispatchCallbacks(env).catch((err) => log("warn", "callback dispatch failed", { error: errorField(err) })));
}

export async function dispatchCallbacks(env: Env): Promise<number> {
  const db = database(env.DB);
  let handed = 0;
  for (let round = 0; round < 20; round++) {
    const cursor = await consumerCursors.find(db, CURSOR_TENANT, CURSOR_NAME);
    const from = cursor ?? 0;
    const events = await outboxEvents.withCallbacksAfter(db, from, PAGE);
    if (events.length === 0) return handed;
    const to = events.at(-1)?.seq ?? from;
    const now = Date.now();
    const [claimed] = await runBatch(db, [
      consumerCursors.compareAndSet(CURSOR_TENANT, CURSOR_NAME, cursor !== undefined, from, to, now),
      // Only when this dispatcher won the range (changes() of the cursor write just above).
      callbackDeliveries.openForRange(from, to, now),
    ]);
    if ((claimed?.meta?.changes ?? 0) === 0) continue; // another dispatcher took this range
    const jobs: CallbackJob[] = events.map((e) => ({ seq: e.seq, eventId: e.event_id, tenantId: e.tenant_id, url: e.callback_url }));
    try {
      await enqueueCallbacks(env, jobs);
    } catch (err) {
      log("warn", "callbacks queue unavailable; the cron hands these out again", { events: jobs.length, error: errorField(err) });
      return handed;
    }
    handed += jobs.length;
  }
  return handed;
}

/** Hands out again the deliveries whose attempt is overdue and that no consumer holds (no claim, or
 *  one that ran out): the queue send after the cursor failed, a retry's queue message was lost, or
 *  the consumer died mid-attempt. A copy of a delivery that was only late in the queue's backlog is
 *  harmless: the consumer claims each attempt before its POST, so only one copy sends it.
 *  Bounded per run; marks them due now so the next run skips them. */
export async function redispatchDue(env: Env, now = Date.now(), limit = 200): Promise<number> {
  const db = database(env.DB);
  const due = await callbackDeliveries.takeOverdue(db, now, REDISPATCH_GRACE_MS, limit);
  if (due.length === 0) return 0;
  await enqueueCallbacks(
    env,
    due.map((d) => ({ seq: d.seq, eventId: d.event_id, tenantId: d.tenant_id, url: d.url })),
  );
  return due.length;
}
