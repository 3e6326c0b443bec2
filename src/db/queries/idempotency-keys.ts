// The idempotency_keys table: a tenant's Idempotency-Key values and the answers they stand for.
import { sql } from "drizzle-orm";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";

/** Deletes keys created before `before`. */
export function purgeOld(db: Db, before: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(db, "idempotency_keys", "rowid", sql`SELECT rowid FROM idempotency_keys WHERE created_at < ${before}`, limits);
}
