// The cron sweep (every minute): the safety net under the queue and the lanes.
// - hands scheduled messages kept in D1 alone to their lanes as their time comes near;
// - re-enqueues messages left `queued` (a lost queue hop) or `scheduled` past their time
//   (a lane that lost them); lanes dedupe, and the D1 claim makes a second send impossible;
// - wakes lanes stuck in `processing` and catches up lost receipts with Evolution (bounded);
// - offers automation what it never got or lost (automation/wake.ts);
// - purges terminal messages, inbound messages, events and finished automation deliveries older
//   than RETENTION_DAYS;
// - hands waiting tenant callbacks to their queue, and again those whose queue hop was lost.
//
// Each step runs on its own: one that throws (a D1 hiccup, one tenant's hostile Evolution) is
// logged and the next steps still run. The cheap steps every tenant depends on go first; the
// purge is bounded in pages and time; the receipt checks, which wait on tenants' Evolution
// servers, go last with a budget of their own (receipts.ts).
import { dispatchCallbacks, redispatchDue } from "../callbacks/dispatch.ts";
import { config } from "../config.ts";
import { database } from "../db/client.ts";
import * as owners from "../db/queries/index.ts";
import type { PurgeLimits } from "../db/purge.ts";
import { enqueueJobs, LANE_HORIZON_MS } from "../messages/accept.ts";
import { catchUpAutomation } from "../automation/wake.ts";
import { catchUpReceipts } from "./receipts.ts";
import { wakeStuckLanes } from "./wake.ts";
import { errorField, log } from "../observability/log.ts";

const SWEEP_PAGE = 500;
const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
// Pages removed per table per run at most, and the purge's time: a backlog (a retention cut, a
// first run) drains over several minutes instead of holding one cron invocation or crossing its
// 1,000 D1 queries.
export const PURGE_PAGES = 20;
const AUTOMATION_PURGE_PAGES = 10;
const PURGE_BUDGET_MS = 20_000;
// The timeline shows a day at most; its per-minute counts are kept two.
const ACTIVITY_KEPT_MS = 2 * 86_400_000;

// Pages handed over per run at most (20,000 sends; each page is one D1 statement and five queue
// writes, well inside an invocation's 1,000 subrequests): a campaign of 60,000 sends scheduled for
// one minute is handed over by the three runs up to its time. Beyond that, the rest go at the
// next runs, late by the minutes they wait.
const HANDOVER_PAGES = 40;

const jobOf = (r: { id: string; lane_key: string; instance_id: string; priority: number; ready_at: number; created_at: number }) => ({
  messageId: r.id,
  laneKey: r.lane_key,
  instanceId: r.instance_id,
  priority: r.priority,
  readyAt: r.ready_at,
  createdAt: r.created_at,
});

/** Scheduled messages whose time comes within the lanes' horizon, to their lanes through the sends
 *  queue (written to D1 only when accepted: accept.ts, LANE_HORIZON_MS). */
export async function handOverComingDue(env: Env, now = Date.now()): Promise<number> {
  const db = database(env.DB);
  let handed = 0;
  for (let page = 0; page < HANDOVER_PAGES; page++) {
    const rows = await owners.messages.takeComingDue(db, now, LANE_HORIZON_MS, SWEEP_PAGE);
    if (rows.length > 0) await enqueueJobs(env, rows.map(jobOf));
    handed += rows.length;
    if (rows.length < SWEEP_PAGE) break;
  }
  return handed;
}

export async function requeueStranded(env: Env, now = Date.now()): Promise<number> {
  const db = database(env.DB);
  const threshold = now - config(env).STUCK_QUEUED_MINUTES * 60_000;
  const rows = await owners.messages.takeStranded(db, threshold, now, SWEEP_PAGE);
  if (rows.length === 0) return 0;
  await enqueueJobs(env, rows.map(jobOf));
  return rows.length;
}

export type PurgeReport = {
  messages: number;
  deadLetters: number;
  inbound: number;
  events: number;
  idempotencyKeys: number;
  pendingReceipts: number;
  callbackDeliveries: number;
  automationDeliveries: number;
  activityMinutes: number;
};

export async function purge(env: Env, now = Date.now(), opts: { pages?: number; budgetMs?: number } = {}): Promise<PurgeReport> {
  const db = database(env.DB);
  const limits: PurgeLimits = { pages: opts.pages ?? PURGE_PAGES, deadline: Date.now() + (opts.budgetMs ?? PURGE_BUDGET_MS) };
  const cutoff = now - config(env).RETENTION_DAYS * 86_400_000;
  // Children first, so a purge cut short never leaves a dead letter without its message.
  const deadLetters = await owners.deadLetters.purgeOld(db, cutoff, limits);
  const messages = await owners.messages.purgeOld(db, cutoff, limits);
  const inbound = await owners.inboundMessages.purgeOld(db, cutoff, limits);
  const events = await owners.outboxEvents.purgeOld(db, cutoff, limits);
  const idempotencyKeys = await owners.idempotencyKeys.purgeOld(db, now - IDEMPOTENCY_TTL_MS, limits);
  const pendingReceipts = await owners.pendingReceipts.purgeOld(db, cutoff, limits);
  const callbackDeliveries = await owners.callbackDeliveries.purgeOld(db, cutoff, limits);
  const automationDeliveries = await owners.automationDeliveries.purgeOld(db, cutoff, { ...limits, pages: Math.min(limits.pages, AUTOMATION_PURGE_PAGES) });
  const activityMinutes = await owners.messageActivity.purgeOld(db, now - ACTIVITY_KEPT_MS, limits);
  return { messages, deadLetters, inbound, events, idempotencyKeys, pendingReceipts, callbackDeliveries, automationDeliveries, activityMinutes };
}

type StepResult<T> = T | { error: string };

// One step of the sweep, contained: its failure is logged and stands in the report as an error.
async function step<T>(name: string, run: () => Promise<T>): Promise<StepResult<T>> {
  const started = Date.now();
  try {
    return await run();
  } catch (err) {
    log("error", "sweep step failed", { step: name, ms: Date.now() - started, error: errorField(err) });
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

export async function sweep(env: Env, now = Date.now()) {
  // Cheap and critical first: scheduled sends coming due, every tenant's stranded sends, stuck
  // lanes, automation and callbacks.
  const handedOver = await step("hand-over", () => handOverComingDue(env, now));
  const requeued = await step("requeue", () => requeueStranded(env, now));
  const woken = await step("wake", () => wakeStuckLanes(env, now));
  const automation = await step("automation", () => catchUpAutomation(env, now));
  const callbacks = await step("callbacks", () => dispatchCallbacks(env));
  const callbacksRedispatched = await step("callbacks-redispatch", () => redispatchDue(env, now));
  const purged = await step("purge", () => purge(env, now));
  // Last: it waits on tenants' Evolution servers, within its own budget.
  const receipts = await step("receipts", () => catchUpReceipts(env, now));
  log("info", "sweep", { handedOver, requeued, woken, automation, receipts, purged, callbacks, callbacksRedispatched });
  return { handedOver, requeued, woken, automation, receipts, purged, callbacks, callbacksRedispatched };
}
