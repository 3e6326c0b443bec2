// The instances table: a tenant's numbers and bots (an Evolution instance, a Telegram bot, a web
// chat), their connection state, pacing settings and the governor's pause.
import { and, asc, eq, type SQL, sql } from "drizzle-orm";
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

/** Mirrors the governor's pause (null: sending) into the instance's row; un-awaited, for the batch
 *  that writes its instance.status event. */
export function mirrorPause(id: string, pause: { reason: string; at: number; until: number | null } | null, now: number): SQL {
  return sql`UPDATE instances SET paused_reason = ${pause?.reason ?? null}, paused_at = ${pause?.at ?? null},
        paused_until = ${pause?.until ?? null}, updated_at = ${now} WHERE id = ${id}`;
}

/** An instance.status event's values read from the instance's row as it stands. */
export function statusEventFromRow(id: string) {
  return {
    tenantId: sql`tenant_id`,
    row: { instance: sql`name`, channel: sql`channel`, state: sql`state` },
    callbackUrl: sql`(SELECT callback_url FROM tenants WHERE id = instances.tenant_id)`,
    source: sql`FROM instances WHERE id = ${id}`,
  };
}

/** A connection state change, only when the state differs; an open connection no longer needs its
 *  QR code. Un-awaited: its event follows it in the batch, guarded by changes(). */
export function changeState(id: string, state: string, at: number): SQL {
  const clearQr = state === "open" ? sql`, qr_code = NULL, qr_count = NULL, qr_updated_at = NULL` : sql``;
  return sql`UPDATE instances SET state = ${state}, state_changed_at = ${at}, updated_at = ${at} ${clearQr}
      WHERE id = ${id} AND state != ${state}`;
}

/** A QR code refresh, kept on the instance only: a late refresh never overwrites a newer code, nor
 *  revives one on a connected number. */
export function refreshQrCode(id: string, qr: { base64: string; count: number | null; at: number }): SQL {
  return sql`UPDATE instances SET qr_code = ${qr.base64}, qr_count = ${qr.count}, qr_updated_at = ${qr.at}
    WHERE id = ${id} AND state != 'open' AND COALESCE(qr_updated_at, 0) <= ${qr.at}`;
}

// An instance an agent's message may go to, with its automation's settings (a JOIN: it answers
// about the instance).
const agentTargetRow = z.object({
  id: z.string(),
  name: z.string(),
  channel: z.string(),
  enabled: z.number().nullable(),
  state: z.string().nullable(),
  debounce_ms: z.number().nullable(),
  probe_at: z.number().nullable(),
});
export type AgentTarget = z.infer<typeof agentTargetRow>;

const agentTargetColumns = sql`i.id, i.name, i.channel, a.enabled, a.state, a.debounce_ms, a.probe_at
  FROM instances i LEFT JOIN automations a ON a.instance_id = i.id`;

/** The tenant's instance of that name, with its automation's settings. */
export async function agentTargetByName(db: Db, tenantId: string, name: string): Promise<AgentTarget | undefined> {
  const rows = z.array(agentTargetRow).parse(await db.all(sql`SELECT ${agentTargetColumns} WHERE i.tenant_id = ${tenantId} AND i.name = ${name}`));
  return rows[0];
}

/** Up to two of the tenant's instances (of the channel, when given): two are enough to know it is not one. */
export async function agentTargets(db: Db, tenantId: string, channel: string | undefined): Promise<AgentTarget[]> {
  return z
    .array(agentTargetRow)
    .parse(await db.all(sql`SELECT ${agentTargetColumns} WHERE i.tenant_id = ${tenantId} ${channel ? sql`AND i.channel = ${channel}` : sql``} LIMIT 2`));
}

// An instance's automation counters and breaker (a JOIN: it answers about the tenant's instances).
const queueCountRow = z.object({
  name: z.string(),
  enabled: z.number().nullable(),
  state: z.string().nullable(),
  waiting: z.number().nullable(),
  retrying: z.number().nullable(),
  delivered: z.number().nullable(),
  dead: z.number().nullable(),
  canceled: z.number().nullable(),
  human: z.number().nullable(),
});
export type QueueCountRow = z.infer<typeof queueCountRow>;

/** One automation counter row per instance of the tenant, with its automation's switch and breaker. */
export async function automationCounts(db: Db, tenantId: string): Promise<QueueCountRow[]> {
  return z.array(queueCountRow).parse(
    await db.all(sql`SELECT i.name, a.enabled, a.state, c.waiting, c.retrying, c.delivered, c.dead, c.canceled, c.human
    FROM instances i LEFT JOIN automations a ON a.instance_id = i.id LEFT JOIN automation_counts c ON c.tenant_id = i.tenant_id AND c.instance_id = i.id
    WHERE i.tenant_id = ${tenantId}`),
  );
}

// What a contact lane needs of its instance to send: the provider's way there and its pacing.
const senderRow = z.object({
  name: z.string(),
  channel: z.string(),
  evolution_url: z.string(),
  evolution_api_key: z.string(),
  telegram_api_url: z.string().nullable(),
  telegram_bot_token: z.string().nullable(),
  rate_per_minute: z.number(),
  typing: z.number(),
  gap_max_ms: z.number(),
});
export type SenderRow = z.infer<typeof senderRow>;

export async function senderOf(db: Db, id: string): Promise<SenderRow | undefined> {
  const [row] = z.array(senderRow).parse(
    await db.all(sql`SELECT name, channel, evolution_url, evolution_api_key, telegram_api_url, telegram_bot_token, rate_per_minute, typing, gap_max_ms
        FROM instances WHERE id = ${id}`),
  );
  return row;
}
