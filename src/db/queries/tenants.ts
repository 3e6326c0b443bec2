// The tenants table: a tenant's name, settings and callback endpoint.
import { eq, sql } from "drizzle-orm";
import type { Db } from "../client.ts";
import { tenants } from "../schema.ts";

export type TenantRow = typeof tenants.$inferSelect;
export type NewTenant = typeof tenants.$inferInsert;

/** Inserts a tenant; un-awaited, to batch with its first API key. */
export function create(db: Db, tenant: NewTenant) {
  return db.insert(tenants).values(tenant);
}

export async function exists(db: Db, id: string): Promise<boolean> {
  const [row] = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, id));
  return row !== undefined;
}

/** Changes a tenant's settings (null puts one back to its default); undefined when there is no such tenant. */
export async function changeSettings(
  db: Db,
  id: string,
  settings: Partial<Pick<TenantRow, "name" | "maxAttempts" | "rateLimitPerMinute">>,
): Promise<TenantRow | undefined> {
  const [row] = await db.update(tenants).set(settings).where(eq(tenants.id, id)).returning();
  return row;
}

/** A tenant's callback URL and signing secrets (the current one, and the one before the last
 *  rotation with when it stops signing). */
export async function callbackSettings(db: Db, id: string) {
  const [row] = await db
    .select({
      url: tenants.callbackUrl,
      secret: tenants.callbackSecret,
      previousUntil: tenants.callbackSecretPreviousUntil,
      previous: tenants.callbackSecretPrevious,
    })
    .from(tenants)
    .where(eq(tenants.id, id));
  return row;
}

/** A new callback signing secret; the current one keeps signing (alongside) until previousUntil. */
export async function rotateCallbackSecret(db: Db, id: string, secret: string, previousUntil: number): Promise<void> {
  await db
    .update(tenants)
    .set({ callbackSecretPrevious: sql`callback_secret`, callbackSecretPreviousUntil: previousUntil, callbackSecret: secret })
    .where(eq(tenants.id, id));
}

/** A tenant's name and send defaults; undefined when there is no such tenant. */
export async function sendDefaults(db: Db, id: string): Promise<{ id: string; name: string; maxAttempts: number } | undefined> {
  const [row] = await db.select({ id: tenants.id, name: tenants.name, maxAttempts: tenants.maxAttempts }).from(tenants).where(eq(tenants.id, id));
  return row;
}
