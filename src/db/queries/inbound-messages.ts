// The inbound_messages table: messages contacts sent to a tenant's instances.
import { sql } from "drizzle-orm";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";

/** Deletes inbound messages received before cutoff. */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(db, "inbound_messages", "id", sql`SELECT id FROM inbound_messages WHERE received_at < ${cutoff}`, limits);
}
