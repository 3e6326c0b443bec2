// The cron sweep (every minute): the safety net under the queue and the lanes.
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
import { sql } from "drizzle-orm";
import { dispatchCallbacks, redispatchDue } from "../callbacks/dispatch.ts";
import { config } from "../config.ts";
import { database, type Db } from "../db/client.ts";
import { enqueueJobs } from "../messages/accept.ts";
import { catchUpAutomation } from "../automation/wake.ts";
import { catchUpReceipts } from "./receipts.ts";
import { wakeStuckLanes } from "./wake.ts";
import { errorField, log } from "../observability/log.ts";
import { terminalStatuses } from "../contracts/events.ts";

const SWEEP_PAGE = 500;
const DELETE_PAGE = 500;
const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
// Literals, not bound parameters: the planner sees the same statement as before.
const finished = sql.raw(`(${terminalStatuses.map((s) => `'${s}'`).join(", ")})`);
// Pages removed per table per run at most, and the purge's time: a backlog (a retention cut, a
// first run) drains over several minutes instead of holding one cron invocation or crossing its
// 1,000 D1 queries.
export const PURGE_PAGES = 20;
const AUTOMATION_PURGE_PAGES = 10;
const PURGE_BUDGET_MS = 20_000;
// The timeline shows a day at most; its per-minute counts are kept two.
const ACTIVITY_KEPT_MS = 2 * 86_400_000;

export async function requeueStranded(env: Env, now = Date.now()): Promise<number> {
  const db = database(env.DB);
  const threshold = now - config(env).STUCK_QUEUED_MINUTES * 60_000;
  // One statement picks and touches the page (so the next sweep does not send the same jobs again
  // right away) and returns it: no id list, so no bound-parameter limit however many are stranded.
  // Through messages_active_ready (the IN term names its partial condition): a queued message was
  // ready before it was last updated, so ready_at < threshold bounds the range.
  const rows = await db.all<{ id: string; lane_key: string; instance_id: string; priority: number; ready_at: number; created_at: number }>(sql`
    UPDATE messages SET updated_at = ${now} WHERE id IN (
      SELECT id FROM messages
      WHERE status IN ('scheduled', 'queued', 'processing') AND status IN ('scheduled', 'queued') AND ready_at < ${threshold}
        AND (status = 'scheduled' OR updated_at < ${threshold})
      ORDER BY ready_at LIMIT ${SWEEP_PAGE})
    RETURNING id, lane_key, instance_id, priority, ready_at, created_at`);
  if (rows.length === 0) return 0;
  await enqueueJobs(
    env,
    rows.map((r) => ({ messageId: r.id, laneKey: r.lane_key, instanceId: r.instance_id, priority: r.priority, readyAt: r.ready_at, createdAt: r.created_at })),
  );
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

type PurgeLimits = { pages: number; deadline: number };

// Every DELETE goes by key through a LIMITed select: D1 has no DELETE … LIMIT.
async function deleteInPages(db: Db, select: ReturnType<typeof sql>, table: string, key: string, limits: PurgeLimits): Promise<number> {
  let total = 0;
  for (let page = 0; page < limits.pages && Date.now() < limits.deadline; page++) {
    const res = await db.run(sql`DELETE FROM ${sql.raw(table)} WHERE ${sql.raw(key)} IN (${select} LIMIT ${DELETE_PAGE})`);
    const n = res.meta?.changes ?? 0;
    total += n;
    if (n < DELETE_PAGE) break;
  }
  return total;
}

export async function purge(env: Env, now = Date.now(), opts: { pages?: number; budgetMs?: number } = {}): Promise<PurgeReport> {
  const db = database(env.DB);
  const limits: PurgeLimits = { pages: opts.pages ?? PURGE_PAGES, deadline: Date.now() + (opts.budgetMs ?? PURGE_BUDGET_MS) };
  const cutoff = now - config(env).RETENTION_DAYS * 86_400_000;
  // Walked tenant by tenant (CROSS JOIN keeps tenants outermost) through the tenant indexes: no index
  // keeps (status, updated_at), which every status change would rewrite.
  // A message is created before it was last updated.
  const old = sql`SELECT m.id FROM tenants t CROSS JOIN messages m ON m.tenant_id = t.id AND m.created_at < ${cutoff}
    WHERE m.status IN ${finished} AND m.updated_at < ${cutoff}`;
  // Children first, so a purge cut short never leaves a dead letter without its message.
  const deadLetters = await deleteInPages(
    db,
    sql`SELECT d.message_id FROM dead_letters d JOIN messages m ON m.id = d.message_id
    WHERE m.status IN ${finished} AND m.created_at < ${cutoff} AND m.updated_at < ${cutoff}`,
    "dead_letters",
    "message_id",
    limits,
  );
  const messages = await deleteInPages(db, old, "messages", "id", limits);
  const inbound = await deleteInPages(db, sql`SELECT id FROM inbound_messages WHERE received_at < ${cutoff}`, "inbound_messages", "id", limits);
  // The newest event always stays: seq is the rowid, and an empty table would start it again at 1
  // behind the consumers' cursors.
  const events = await deleteInPages(
    db,
    sql`SELECT seq FROM outbox_events WHERE occurred_at < ${cutoff} AND seq < (SELECT MAX(seq) FROM outbox_events)`,
    "outbox_events",
    "seq",
    limits,
  );
  const idempotencyKeys = await deleteInPages(
    db,
    sql`SELECT rowid FROM idempotency_keys WHERE created_at < ${now - IDEMPOTENCY_TTL_MS}`,
    "idempotency_keys",
    "rowid",
    limits,
  );
  const pendingReceipts = await deleteInPages(db, sql`SELECT rowid FROM pending_receipts WHERE at < ${cutoff}`, "pending_receipts", "rowid", limits);
  const callbackDeliveries = await deleteInPages(
    db,
    sql`SELECT rowid FROM callback_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < ${cutoff}`,
    "callback_deliveries",
    "rowid",
    limits,
  );
  // Delivered, dead (automation dead letters) and canceled; pending ones are work still under way.
  // Walked instance by instance through (instance_id, status, updated_at); an instance's rows
  // outlive its automation (DELETE cancels them), so the walk goes over instances.
  const automationDeliveries = await deleteInPages(
    db,
    sql`SELECT d.inbound_id FROM instances i CROSS JOIN automation_deliveries d ON d.instance_id = i.id
      AND d.status IN ('delivered', 'dead', 'canceled') AND d.updated_at < ${cutoff}`,
    "automation_deliveries",
    "inbound_id",
    { ...limits, pages: Math.min(limits.pages, AUTOMATION_PURGE_PAGES) },
  );
  const activityMinutes = await deleteInPages(
    db,
    sql`SELECT tenant_id, minute FROM message_activity WHERE minute < ${Math.floor((now - ACTIVITY_KEPT_MS) / 60_000)}`,
    "message_activity",
    "(tenant_id, minute)",
    limits,
  );
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
  // Cheap and critical first: every tenant's stranded sends, stuck lanes, automation and callbacks.
  const requeued = await step("requeue", () => requeueStranded(env, now));
  const woken = await step("wake", () => wakeStuckLanes(env, now));
  const automation = await step("automation", () => catchUpAutomation(env, now));
  const callbacks = await step("callbacks", () => dispatchCallbacks(env));
  const callbacksRedispatched = await step("callbacks-redispatch", () => redispatchDue(env, now));
  const purged = await step("purge", () => purge(env, now));
  // Last: it waits on tenants' Evolution servers, within its own budget.
  const receipts = await step("receipts", () => catchUpReceipts(env, now));
  log("info", "sweep", { requeued, woken, automation, receipts, purged, callbacks, callbacksRedispatched });
  return { requeued, woken, automation, receipts, purged, callbacks, callbacksRedispatched };
}
