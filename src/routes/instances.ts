// /v1/instances: register Evolution instances. The Evolution API key is stored, never echoed.
import { and, asc, eq, sql } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { instances } from "../db/schema.ts";
import { config } from "../config.ts";
import { runBatch } from "../db/batch.ts";
import { ApiError } from "../errors.ts";
import { connectInstance } from "../evolution/client.ts";
import { parseBody, parseWith } from "../http/body.ts";
import { newId, randomToken } from "../ids.ts";
import { connectionStatements } from "../webhooks/process.ts";

export const instanceRoutes = new Hono<AppEnv>();

export const DEFAULT_RATE_PER_MINUTE = 60;
const instanceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "Letters, digits, '.', '_' and '-', at most 100.");

const putInstance = z.strictObject({
  evolutionUrl: z.url({ protocol: /^https?$/, message: "Must be the http(s) base URL of the Evolution API." }),
  evolutionApiKey: z.string().min(1).max(500).optional(),
  ratePerMinute: z.int().min(1).max(60000).optional(),
});

type Row = typeof instances.$inferSelect;

export function webhookUrl(env: Env, requestUrl: string, token: string): string {
  const base = env.PUBLIC_URL || new URL(requestUrl).origin;
  return `${base.replace(/\/+$/, "")}/webhooks/evolution/${token}`;
}

const view = (row: Row, env: Env, requestUrl: string) => ({
  name: row.name,
  evolutionUrl: row.evolutionUrl,
  ratePerMinute: row.ratePerMinute,
  state: row.state,
  stateChangedAt: row.stateChangedAt ? new Date(row.stateChangedAt).toISOString() : undefined,
  webhookUrl: webhookUrl(env, requestUrl, row.webhookToken),
  createdAt: new Date(row.createdAt).toISOString(),
  updatedAt: new Date(row.updatedAt).toISOString(),
});

async function findOwn(c: { var: AppEnv["Variables"] }, name: string): Promise<Row | undefined> {
  const [row] = await c.var.db
    .select()
    .from(instances)
    .where(and(eq(instances.tenantId, c.var.tenant.id), eq(instances.name, name)));
  return row;
}

instanceRoutes.put("/:name", async (c) => {
  const name = parseWith(instanceName, c.req.param("name"), "name");
  const input = await parseBody(c, putInstance);
  const existing = await findOwn(c, name);
  const now = Date.now();
  if (existing) {
    const [row] = await c.var.db
      .update(instances)
      .set({
        evolutionUrl: input.evolutionUrl,
        evolutionApiKey: input.evolutionApiKey ?? existing.evolutionApiKey,
        ratePerMinute: input.ratePerMinute ?? existing.ratePerMinute,
        updatedAt: now,
      })
      .where(eq(instances.id, existing.id))
      .returning();
    return c.json(view(row ?? existing, c.env, c.req.url), 200);
  }
  if (!input.evolutionApiKey) {
    throw new ApiError("invalid_request", "The request is invalid.", [{ path: "evolutionApiKey", message: "Required when registering an instance." }]);
  }
  const [row] = await c.var.db
    .insert(instances)
    .values({
      id: newId("ins"),
      tenantId: c.var.tenant.id,
      name,
      evolutionUrl: input.evolutionUrl,
      evolutionApiKey: input.evolutionApiKey,
      ratePerMinute: input.ratePerMinute ?? DEFAULT_RATE_PER_MINUTE,
      webhookToken: randomToken(24),
      createdAt: now,
      updatedAt: now,
    })
    .onConflictDoNothing()
    .returning();
  if (!row) throw new ApiError("conflict", `Instance ${name} was registered concurrently; retry.`);
  return c.json(view(row, c.env, c.req.url), 201);
});

instanceRoutes.get("/", async (c) => {
  const rows = await c.var.db.select().from(instances).where(eq(instances.tenantId, c.var.tenant.id)).orderBy(asc(instances.name));
  return c.json({ data: rows.map((r) => view(r, c.env, c.req.url)) });
});

instanceRoutes.get("/:name", async (c) => {
  const row = await findOwn(c, c.req.param("name"));
  if (!row) throw new ApiError("not_found", `No instance ${c.req.param("name")}.`);
  return c.json(view(row, c.env, c.req.url));
});

// A stored code younger than this is shown as is; Evolution refreshes it about every 20 s and says so
// through qrcode.updated. Older (or none): ask Evolution, which also starts pairing.
const QR_FRESH_MS = 15_000;

// GET /v1/instances/:name/qr — the pairing QR code of a number that is not connected, for the console.
instanceRoutes.get("/:name/qr", async (c) => {
  const row = await findOwn(c, c.req.param("name"));
  if (!row) throw new ApiError("not_found", `No instance ${c.req.param("name")}.`);
  if (row.state === "open") return c.json({ name: row.name, state: "open" });
  const now = Date.now();
  if (row.qrCode && row.qrUpdatedAt && now - row.qrUpdatedAt < QR_FRESH_MS) {
    return c.json({ name: row.name, state: row.state, qr: { base64: row.qrCode, count: row.qrCount, updatedAt: new Date(row.qrUpdatedAt).toISOString() } });
  }
  const answer = await connectInstance({ name: row.name, url: row.evolutionUrl, apiKey: row.evolutionApiKey }, config(c.env).EVOLUTION_TIMEOUT_MS);
  if (answer.kind === "error") throw new ApiError("unavailable", `Could not get a QR code from Evolution: ${answer.error}`);
  if (answer.kind === "open") {
    // The connection.update webhook may have been lost: record what Evolution says now.
    await runBatch(
      c.var.db,
      connectionStatements({ tenantId: row.tenantId, instanceId: row.id, instanceName: row.name, state: "open", statusReason: null, at: now }),
    );
    return c.json({ name: row.name, state: "open" });
  }
  await c.var.db
    .update(instances)
    .set({ qrCode: answer.base64, qrCount: answer.count, qrUpdatedAt: now })
    .where(and(eq(instances.id, row.id), sql`state != 'open'`));
  return c.json({ name: row.name, state: row.state, qr: { base64: answer.base64, count: answer.count, updatedAt: new Date(now).toISOString() } });
});
