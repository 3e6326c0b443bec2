// The message_counts table: messages by status, one row per instance, kept by triggers on messages.
import { eq } from "drizzle-orm";
import type { Db } from "../client.ts";
import { messageCounts } from "../schema.ts";

/** The rows of one tenant, or of all tenants (undefined: the metrics). */
export function ofTenant(db: Db, tenantId: string | undefined) {
  return tenantId ? db.select().from(messageCounts).where(eq(messageCounts.tenantId, tenantId)) : db.select().from(messageCounts);
}
