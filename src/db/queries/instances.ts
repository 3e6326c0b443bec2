// The instances table: a tenant's numbers and bots (an Evolution instance, a Telegram bot, a web
// chat), their connection state, pacing settings and the governor's pause.
import { and, asc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { instances } from "../schema.ts";

export type InstanceRow = typeof instances.$inferSelect;
export type NewInstance = typeof instances.$inferInsert;

/** A tenant's instance by its name. */
export async function ownedByName(db: Db, tenantId: string, name: string): Promise<InstanceRow | undefined> {
  const [row] = await db
    .select()
    .from(instances)
    .where(and(eq(instances.tenantId, tenantId), eq(instances.name, name)));
  return row;
}

export async function byId(db: Db, id: string): Promise<InstanceRow | undefined> {
  const [row] = await db.select().from(instances).where(eq(instances.id, id));
  return row;
}

/** A tenant's instances, by name. */
export function listOwned(db: Db, tenantId: string): Promise<InstanceRow[]> {
  return db.select().from(instances).where(eq(instances.tenantId, tenantId)).orderBy(asc(instances.name));
}

/** The channels of a tenant's instances (of the one named, when given). */
export async function channelsOwned(db: Db, tenantId: string, name?: string): Promise<string[]> {
  const rows = await db
    .selectDistinct({ channel: instances.channel })
    .from(instances)
    .where(name ? and(eq(instances.tenantId, tenantId), eq(instances.name, name)) : eq(instances.tenantId, tenantId));
  return rows.map((r) => r.channel);
}

/** Inserts a new instance; undefined when its name was taken meanwhile (registered concurrently). */
export async function register(db: Db, values: NewInstance): Promise<InstanceRow | undefined> {
  const [row] = await db.insert(instances).values(values).onConflictDoNothing().returning();
  return row;
}

export async function change(db: Db, id: string, columns: Partial<NewInstance>): Promise<InstanceRow | undefined> {
  const [row] = await db.update(instances).set(columns).where(eq(instances.id, id)).returning();
  return row;
}

export async function remove(db: Db, id: string): Promise<void> {
  await db.delete(instances).where(eq(instances.id, id));
}

/** Keeps a fresh QR code on an instance not yet connected (never in the outbox: whoever holds it can link the number). */
export async function storeQrCode(db: Db, id: string, qr: { base64: string; count: number | null; at: number }): Promise<void> {
  await db
    .update(instances)
    .set({ qrCode: qr.base64, qrCount: qr.count, qrUpdatedAt: qr.at })
    .where(and(eq(instances.id, id), sql`state != 'open'`));
}

// What a provider's webhook needs of the instance its URL names (a JOIN: it answers about the instance).
const webhookRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  name: z.string(),
  channel: z.string(),
  secret: z.string().nullable(),
  callbacks: z.number(),
});
export type WebhookInstance = z.infer<typeof webhookRow>;

/** The instance a webhook URL's token names, with whether its tenant takes callbacks. */
export async function byWebhookToken(db: Db, token: string): Promise<WebhookInstance | undefined> {
  const rows = await db.all(sql`SELECT i.id, i.tenant_id, i.name, i.channel, i.telegram_webhook_secret AS secret, t.callback_url IS NOT NULL AS callbacks
    FROM instances i JOIN tenants t ON t.id = i.tenant_id WHERE i.webhook_token = ${token}`);
  return rows[0] === undefined ? undefined : webhookRow.parse(rows[0]);
}

const stateRow = z.object({ name: z.string(), state: z.string() });

/** Every instance's connection state (all tenants: the metrics). */
export async function states(db: Db): Promise<z.infer<typeof stateRow>[]> {
  return z.array(stateRow).parse(await db.all(sql`SELECT name, state FROM instances`));
}

const namedRow = z.object({ id: z.string(), name: z.string(), channel: z.string() });
// Within D1's 100 bound parameters a statement.
const NAME_CHUNK = 50;

/** A tenant's instances among these names (their id and channel). */
export async function ownedByNames(db: Db, tenantId: string, names: string[]): Promise<z.infer<typeof namedRow>[]> {
  const rows: z.infer<typeof namedRow>[] = [];
  for (let i = 0; i < names.length; i += NAME_CHUNK) {
    const chunk = names.slice(i, i + NAME_CHUNK);
    rows.push(
      ...z.array(namedRow).parse(
        await db.all(
          sql`SELECT id, name, channel FROM instances WHERE tenant_id = ${tenantId} AND name IN (${sql.join(
            chunk.map((n) => sql`${n}`),
            sql`, `,
          )})`,
        ),
      ),
    );
  }
  return rows;
}
