// The callback_deliveries table: one row per event and callback URL, from its hand-out (pending)
// to delivered or failed.
import { and, desc, eq, gte, lt, lte, or, type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";
import { callbackDeliveries } from "../schema.ts";
import { eventIdIs } from "./outbox-events.ts";
import { callbackIsOpen } from "./statuses.ts";

const statusCount = z.object({ status: z.string(), n: z.number() });

/** How many deliveries stand in each status (all tenants: the metrics). */
export async function countsByStatus(db: Db): Promise<z.infer<typeof statusCount>[]> {
  return z.array(statusCount).parse(await db.all(sql`SELECT status, COUNT(*) AS n FROM callback_deliveries GROUP BY status`));
}

/** Opens a pending delivery for each event of the range (from, to] that has a callback URL; written
 *  only when the statement just before it in the batch (the dispatch cursor's compare-and-set)
 *  changed a row, so only the dispatcher that won the range writes them. Un-awaited, for that batch. */
export function openForRange(from: number, to: number, now: number): SQL {
  return sql`INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, updated_at, seq, event_type, created_at, next_at)
    SELECT event_id, callback_url, tenant_id, 'pending', 0, ${now}, seq, type, ${now}, ${now} FROM outbox_events
    WHERE seq > ${from} AND seq <= ${to} AND callback_url IS NOT NULL AND changes() > 0
    ON CONFLICT DO NOTHING`;
}

const dueRow = z.object({ seq: z.number(), event_id: z.string(), tenant_id: z.string(), url: z.string() });

/** The deliveries whose attempt is overdue by more than graceMs and that no consumer holds (no
 *  claim, or one that ran out), at most limit; marked due now, so the next run skips them. */
export async function takeOverdue(db: Db, now: number, graceMs: number, limit: number): Promise<z.infer<typeof dueRow>[]> {
  return z.array(dueRow).parse(
    await db.all(sql`
    UPDATE callback_deliveries SET next_at = ${now}, updated_at = ${now}
    WHERE rowid IN (SELECT rowid FROM callback_deliveries WHERE ${callbackIsOpen()} AND next_at <= ${now - graceMs}
      AND (lease_until IS NULL OR lease_until <= ${now}) ORDER BY next_at LIMIT ${limit})
    RETURNING seq, event_id, tenant_id, url`),
  );
}

// A delivery job's event with its tenant's signing secrets, its delivery row (if any) and whether
// its endpoint is disabled: all the consumer needs for one attempt.
const attemptRow = z.object({
  event_id: z.string(),
  type: z.string(),
  version: z.number(),
  occurred_at: z.number(),
  data: z.string(),
  tenant_id: z.string(),
  secret: z.string(),
  previous: z.string().nullable(),
  previous_until: z.number().nullable(),
  status: z.string().nullable(),
  attempts: z.number().nullable(),
  next_at: z.number().nullable(),
  disabled: z.string().nullable(),
});
export type AttemptRow = z.infer<typeof attemptRow>;

/** What an attempt of a job needs; undefined when its event was purged. A job from the dispatch
 *  names the event's seq; one from a replay of an older event may carry only its id (seq 0). */
export async function attemptOf(db: Db, job: { seq: number; eventId: string; tenantId: string; url: string }): Promise<AttemptRow | undefined> {
  const rows = await db.all(sql`
    SELECT e.event_id, e.type, e.version, e.occurred_at, e.data, e.tenant_id,
      t.callback_secret AS secret, t.callback_secret_previous AS previous, t.callback_secret_previous_until AS previous_until,
      d.status, d.attempts, d.next_at,
      (SELECT reason FROM disabled_callback_endpoints x WHERE x.tenant_id = e.tenant_id AND x.url = ${job.url}) AS disabled
    FROM outbox_events e JOIN tenants t ON t.id = e.tenant_id
    LEFT JOIN callback_deliveries d ON d.event_id = e.event_id AND d.url = ${job.url}
    WHERE ${job.seq > 0 ? sql`e.seq = ${job.seq} AND e.event_id = ${job.eventId}` : sql`e.tenant_id = ${job.tenantId} AND ${eventIdIs(job.eventId, "e")}`}`);
  return rows[0] === undefined ? undefined : attemptRow.parse(rows[0]);
}

/** Claims the next attempt of a delivery before its POST, until leaseUntil: changes() is 0 when
 *  another copy of the job holds the claim or already made the attempt. */
export function claimAttempt(d: {
  eventId: string;
  url: string;
  tenantId: string;
  seq: number;
  type: string;
  attempts: number;
  now: number;
  leaseUntil: number;
}): SQL {
  return sql`INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, updated_at, seq, event_type, created_at, next_at, lease_until)
      VALUES (${d.eventId}, ${d.url}, ${d.tenantId}, 'pending', 0, ${d.now}, ${d.seq}, ${d.type}, ${d.now}, ${d.now}, ${d.leaseUntil})
      ON CONFLICT (event_id, url) DO UPDATE SET lease_until = excluded.lease_until, updated_at = excluded.updated_at
      WHERE ${callbackIsOpen("callback_deliveries")} AND callback_deliveries.attempts = ${d.attempts}
        AND (callback_deliveries.lease_until IS NULL OR callback_deliveries.lease_until <= ${d.now})`;
}

/** Records an attempt's outcome and releases the claim; only the holder of the claim (leaseUntil) writes. */
export function recordAttempt(d: {
  eventId: string;
  url: string;
  tenantId: string;
  seq: number;
  type: string;
  status: "delivered" | "failed" | "retrying";
  attempt: number;
  error: string | null;
  httpStatus: number | null;
  nextAt: number | null;
  at: number;
  leaseUntil: number;
}): SQL {
  return sql`INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, last_error, last_status, next_at, delivered_at, updated_at, seq, event_type, created_at)
      VALUES (${d.eventId}, ${d.url}, ${d.tenantId}, ${d.status}, ${d.attempt}, ${d.error}, ${d.httpStatus}, ${d.nextAt}, ${d.status === "delivered" ? d.at : null}, ${d.at}, ${d.seq}, ${d.type}, ${d.at})
      ON CONFLICT (event_id, url) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, last_error = excluded.last_error,
        last_status = excluded.last_status, next_at = excluded.next_at, delivered_at = excluded.delivered_at, updated_at = excluded.updated_at,
        lease_until = NULL
      WHERE callback_deliveries.lease_until = ${d.leaseUntil}`;
}

export type DeliveryRow = typeof callbackDeliveries.$inferSelect;

/** A tenant's deliveries, newest first (by the event's outbox position), filtered; limit + 1 rows
 *  so the caller knows whether there is a next page. `before`: the cursor (seq, event id). */
export function page(
  db: Db,
  tenantId: string,
  q: { status?: string; event?: string; since?: number; until?: number; before?: readonly [number, string]; limit: number },
): Promise<DeliveryRow[]> {
  const where: SQL[] = [eq(callbackDeliveries.tenantId, tenantId)];
  if (q.status) where.push(eq(callbackDeliveries.status, q.status));
  if (q.event) where.push(eq(callbackDeliveries.eventType, q.event));
  if (q.since !== undefined) where.push(gte(callbackDeliveries.createdAt, q.since));
  if (q.until !== undefined) where.push(lte(callbackDeliveries.createdAt, q.until));
  if (q.before) {
    const [seq, eventId] = q.before;
    const before = or(lt(callbackDeliveries.seq, seq), and(eq(callbackDeliveries.seq, seq), lt(callbackDeliveries.eventId, eventId)));
    if (before) where.push(before);
  }
  return db
    .select()
    .from(callbackDeliveries)
    .where(and(...where))
    .orderBy(desc(callbackDeliveries.seq), desc(callbackDeliveries.eventId))
    .limit(q.limit + 1);
}

const replayEventRow = z.object({ seq: z.number(), type: z.string(), callback_url: z.string().nullable(), disabled: z.string().nullable() });

/** A tenant's event by its id, with its callback URL and whether that URL is disabled. */
export async function replayableEvent(db: Db, tenantId: string, eventId: string): Promise<z.infer<typeof replayEventRow> | undefined> {
  const rows = await db.all(sql`
      SELECT seq, type, callback_url,
        (SELECT reason FROM disabled_callback_endpoints x WHERE x.tenant_id = e.tenant_id AND x.url = e.callback_url) AS disabled
      FROM outbox_events e WHERE tenant_id = ${tenantId} AND ${eventIdIs(eventId)}`);
  return rows[0] === undefined ? undefined : replayEventRow.parse(rows[0]);
}

/** One event's delivery to url, pending again from its first attempt (created if it never had one). */
export async function resetOne(
  db: Db,
  d: { eventId: string; url: string; tenantId: string; seq: number; type: string; now: number },
): Promise<z.infer<typeof dueRow>[]> {
  return z.array(dueRow).parse(
    await db.all(sql`
      INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, updated_at, seq, event_type, created_at, next_at)
      VALUES (${d.eventId}, ${d.url}, ${d.tenantId}, 'pending', 0, ${d.now}, ${d.seq}, ${d.type}, ${d.now}, ${d.now})
      ON CONFLICT (event_id, url) DO UPDATE SET status = 'pending', attempts = 0, next_at = ${d.now}, last_error = NULL, last_status = NULL,
        delivered_at = NULL, updated_at = ${d.now}
      RETURNING seq, event_id, tenant_id, url`),
  );
}

/** A tenant's failed deliveries created in [since, until] to URLs not disabled, oldest first, at
 *  most limit, pending again; `more`: some are left. */
export async function resetFailed(
  db: Db,
  tenantId: string,
  w: { since: number; until: number; limit: number; now: number },
): Promise<{ reset: z.infer<typeof dueRow>[]; more: boolean }> {
  const notDisabled = sql`url NOT IN (SELECT url FROM disabled_callback_endpoints WHERE tenant_id = ${tenantId})`;
  const window = sql`tenant_id = ${tenantId} AND status = 'failed' AND created_at >= ${w.since}
      AND created_at <= ${w.until} AND ${notDisabled}`;
  const reset = z.array(dueRow).parse(
    await db.all(sql`
      UPDATE callback_deliveries SET status = 'pending', attempts = 0, next_at = ${w.now}, last_error = NULL, last_status = NULL, updated_at = ${w.now}
      WHERE rowid IN (SELECT rowid FROM callback_deliveries WHERE ${window} ORDER BY seq LIMIT ${w.limit})
      RETURNING seq, event_id, tenant_id, url`),
  );
  const [left] = z
    .array(z.object({ n: z.number() }))
    .parse(await db.all(sql`SELECT COUNT(*) AS n FROM (SELECT 1 FROM callback_deliveries WHERE ${window} LIMIT 1)`));
  return { reset, more: (left?.n ?? 0) > 0 };
}

/** Deletes settled deliveries (delivered, failed) last changed before cutoff. */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(
    db,
    "callback_deliveries",
    "rowid",
    sql`SELECT rowid FROM callback_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < ${cutoff}`,
    limits,
  );
}
