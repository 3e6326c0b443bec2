// The message_activity table: messages per tenant and minute, kept by triggers, for the stats timeline.
import { sql } from "drizzle-orm";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";

/** Deletes the minutes before `before` (ms). */
export function purgeOld(db: Db, before: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(
    db,
    "message_activity",
    "(tenant_id, minute)",
    sql`SELECT tenant_id, minute FROM message_activity WHERE minute < ${Math.floor(before / 60_000)}`,
    limits,
  );
}
