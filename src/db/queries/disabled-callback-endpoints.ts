// The disabled_callback_endpoints table: a tenant's callback URLs that answered 410 Gone; nothing
// more is sent to them until the tenant enables them again.
import { and, eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "../client.ts";
import { disabledCallbackEndpoints } from "../schema.ts";

/** Disables an endpoint (a first 410 wins); un-awaited, for the batch that records the attempt. */
export function disable(tenantId: string, url: string, at: number, reason: string): SQL {
  return sql`INSERT INTO disabled_callback_endpoints (tenant_id, url, disabled_at, reason)
            VALUES (${tenantId}, ${url}, ${at}, ${reason}) ON CONFLICT DO NOTHING`;
}

export function ofTenant(db: Db, tenantId: string) {
  return db.select().from(disabledCallbackEndpoints).where(eq(disabledCallbackEndpoints.tenantId, tenantId));
}

/** Takes callbacks at the URL again; false when it was not disabled. */
export async function enable(db: Db, tenantId: string, url: string): Promise<boolean> {
  const removed = await db
    .delete(disabledCallbackEndpoints)
    .where(and(eq(disabledCallbackEndpoints.tenantId, tenantId), eq(disabledCallbackEndpoints.url, url)))
    .returning({ url: disabledCallbackEndpoints.url });
  return removed.length > 0;
}
