// /v1/instances: register Evolution instances. The Evolution API key is stored, never echoed.
import { and, asc, eq } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { instances } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { MAX_URL_LENGTH } from "../contracts/messages.ts";
import { parseBody, parseWith } from "../http/body.ts";
import { refusePrivateUrl } from "../http/outbound-url.ts";
import { newId, randomToken } from "../ids.ts";
import { documented } from "../openapi/describe.ts";

export const instanceRoutes = new Hono<AppEnv>();

export const DEFAULT_RATE_PER_MINUTE = 60;
const instanceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "Letters, digits, '.', '_' and '-', at most 100.");

const putInstance = z.strictObject({
  evolutionUrl: z.url({ protocol: /^https?$/, message: "Must be the http(s) base URL of the Evolution API." }).max(MAX_URL_LENGTH),
  evolutionApiKey: z.string().min(1).max(500).optional(),
  ratePerMinute: z.int().min(1).max(60000).optional(),
});

type Row = typeof instances.$inferSelect;

const tags = ["Instances"];
const isoTime = z.iso.datetime({ offset: true });
const instanceAnswer = z
  .object({
    name: z.string(),
    evolutionUrl: z.string(),
    ratePerMinute: z.int(),
    state: z.string().describe("Evolution's connection state, from connection.update webhooks (unknown until the first)."),
    stateChangedAt: isoTime.optional(),
    webhookUrl: z.string().describe("Configure this URL as the instance's webhook in Evolution."),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .meta({ id: "Instance" });
const instanceParams = z.object({ name: instanceName });

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

instanceRoutes.put(
  "/:name",
  documented({
    summary: "Register or update an Evolution instance",
    description: "The Evolution API key is stored and never returned. Changing evolutionUrl requires evolutionApiKey again.",
    tags,
    caller: "apiKey",
    params: instanceParams,
    body: putInstance,
    responses: {
      200: { description: "Updated.", schema: instanceAnswer },
      201: { description: "Registered.", schema: instanceAnswer },
    },
    errors: ["conflict"],
  }),
  async (c) => {
    const name = parseWith(instanceName, c.req.param("name"), "name");
    const input = await parseBody(c, putInstance);
    refusePrivateUrl(c.env, input.evolutionUrl, "evolutionUrl");
    const existing = await findOwn(c, name);
    const now = Date.now();
    if (existing) {
      // The stored key is a secret of the old URL: never hand it to a new one.
      if (input.evolutionUrl !== existing.evolutionUrl && !input.evolutionApiKey) {
        throw new ApiError("invalid_request", "The request is invalid.", [{ path: "evolutionApiKey", message: "Required again when evolutionUrl changes." }]);
      }
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
  },
);

instanceRoutes.get(
  "/",
  documented({
    summary: "List this tenant's instances",
    tags,
    caller: "apiKey",
    responses: { 200: { description: "All of them, by name.", schema: z.object({ data: z.array(instanceAnswer) }) } },
  }),
  async (c) => {
    const rows = await c.var.db.select().from(instances).where(eq(instances.tenantId, c.var.tenant.id)).orderBy(asc(instances.name));
    return c.json({ data: rows.map((r) => view(r, c.env, c.req.url)) });
  },
);

instanceRoutes.get(
  "/:name",
  documented({
    summary: "One instance",
    tags,
    caller: "apiKey",
    responses: { 200: { description: "The instance.", schema: instanceAnswer } },
    errors: ["not_found"],
  }),
  async (c) => {
    const row = await findOwn(c, c.req.param("name"));
    if (!row) throw new ApiError("not_found", `No instance ${c.req.param("name")}.`);
    return c.json(view(row, c.env, c.req.url));
  },
);
