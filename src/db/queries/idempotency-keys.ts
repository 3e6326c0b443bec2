// The idempotency_keys table: a tenant's Idempotency-Key values and the answers they stand for.
import { type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import { changes } from "../batch.ts";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";

/** Deletes keys created before `before`. */
export function purgeOld(db: Db, before: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(db, "idempotency_keys", "rowid", sql`SELECT rowid FROM idempotency_keys WHERE created_at < ${before}`, limits);
}

/** One Idempotency-Key of a tenant in a scope (the route it was sent to). */
export type KeyRef = { tenantId: string; scope: string; key: string };

const whereKey = (k: KeyRef) => sql`tenant_id = ${k.tenantId} AND scope = ${k.scope} AND key = ${k.key}`;

/** Reserves the key for a request (by its hash), leased until leaseUntil; false when it was taken before. */
export async function reserve(db: Db, k: KeyRef, requestHash: string, now: number, leaseUntil: number): Promise<boolean> {
  const insert = await db.run(sql`INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, created_at, locked_until)
    VALUES (${k.tenantId}, ${k.scope}, ${k.key}, ${requestHash}, ${now}, ${leaseUntil}) ON CONFLICT DO NOTHING`);
  return changes(insert) > 0;
}

/** The reservation as one statement of the work's own batch: a plain INSERT, so a key taken before
 *  fails the whole batch (none of the work is written) and the request reserves first instead. */
export function reserveInBatch(k: KeyRef, requestHash: string, now: number, leaseUntil: number): SQL {
  return sql`INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, created_at, locked_until)
    VALUES (${k.tenantId}, ${k.scope}, ${k.key}, ${requestHash}, ${now}, ${leaseUntil})`;
}

/** recordAnswer as a statement, for the same batch. */
export function answerStatement(k: KeyRef, status: number, body: unknown, final: boolean): SQL {
  const lease = final ? sql`, locked_until = NULL` : sql``;
  return sql`UPDATE idempotency_keys SET response_status = ${status}, response_body = ${JSON.stringify(body)}${lease} WHERE ${whereKey(k)}`;
}

const priorRow = z.object({
  request_hash: z.string(),
  response_status: z.number().nullable(),
  response_body: z.string().nullable(),
  created_at: z.number(),
  locked_until: z.number().nullable(),
});
export type Prior = z.infer<typeof priorRow>;

/** The key's reservation: the request it was for, its answer once recorded, its lease. */
export async function find(db: Db, k: KeyRef): Promise<Prior | undefined> {
  const rows = await db.all(sql`SELECT request_hash, response_status, response_body, created_at, locked_until FROM idempotency_keys WHERE ${whereKey(k)}`);
  return rows[0] === undefined ? undefined : priorRow.parse(rows[0]);
}

/** Takes over a reservation with no answer whose lease (lockedUntil, as read) ran out; false when
 *  another request took it meanwhile. */
export async function takeOver(db: Db, k: KeyRef, lockedUntil: number, leaseUntil: number): Promise<boolean> {
  const taken = await db.run(sql`UPDATE idempotency_keys SET locked_until = ${leaseUntil}
      WHERE ${whereKey(k)} AND response_status IS NULL AND COALESCE(locked_until, 0) = ${lockedUntil}`);
  return changes(taken) > 0;
}

/** Records the answer; `final` also ends the lease (a provisional answer keeps it). */
export async function recordAnswer(db: Db, k: KeyRef, status: number, body: unknown, final: boolean): Promise<void> {
  await db.run(answerStatement(k, status, body, final));
}

/** Frees the key (a request refused before anything was written may use it again). */
export async function release(db: Db, k: KeyRef): Promise<void> {
  await db.run(sql`DELETE FROM idempotency_keys WHERE ${whereKey(k)}`);
}

/** Ends the lease of a reservation without an answer, so a retry finishes the work at once. */
export async function endLease(db: Db, k: KeyRef): Promise<void> {
  await db.run(sql`UPDATE idempotency_keys SET locked_until = 0 WHERE ${whereKey(k)} AND response_status IS NULL`);
}
