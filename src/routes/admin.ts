// /v1/admin: tenants and their API keys. Admin token only.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { forgetKey, forgetTenant, newApiKey, requireAdmin } from "../auth/api-keys.ts";
import { config } from "../config.ts";
import { runBatch } from "../db/batch.ts";
import { apiKeys, tenants } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { MAX_URL_LENGTH } from "../contracts/messages.ts";
import { refusePrivateUrl } from "../http/outbound-url.ts";
import { newId } from "../ids.ts";
import { errorField, log } from "../observability/log.ts";
import { documented } from "../openapi/describe.ts";
import { newWebhookSecret } from "../signing/standard-webhooks.ts";
import { purge } from "../sweep/sweeper.ts";
import { streamOf } from "./stream.ts";
import { countParked, listParked, replayParked } from "../webhooks/parked.ts";

// API requests per minute, counted for the tenant as a whole (all its keys together).
const rateLimitPerMinute = z.int().min(1).max(1_000_000);

const createTenant = z.strictObject({
  name: z.string().trim().min(1).max(200),
  maxAttempts: z.int().min(1).max(20).optional(),
  callbackUrl: z
    .url({ protocol: /^https?$/ })
    .max(MAX_URL_LENGTH)
    .optional(),
  rateLimitPerMinute: rateLimitPerMinute.optional(),
});

// null puts a setting back to its default.
const patchTenant = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    maxAttempts: z.int().min(1).max(20).optional(),
    rateLimitPerMinute: rateLimitPerMinute.nullable().optional(),
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), "Give at least one of name, maxAttempts, rateLimitPerMinute.");

type TenantRow = tenants.TenantRow;

// What the admin API shows of a tenant: never its callback secret.
function tenantView(t: Pick<TenantRow, "id" | "name" | "maxAttempts" | "callbackUrl" | "rateLimitPerMinute" | "createdAt">, defaultLimit: number) {
  return {
    id: t.id,
    name: t.name,
    maxAttempts: t.maxAttempts,
    callbackUrl: t.callbackUrl ?? undefined,
    rateLimitPerMinute: t.rateLimitPerMinute ?? defaultLimit,
    rateLimitIsDefault: t.rateLimitPerMinute === null,
    createdAt: new Date(t.createdAt).toISOString(),
  };
}

const tags = ["Admin"];
const isoTime = z.iso.datetime({ offset: true });
const tenantAnswer = z
  .object({
    id: z.string(),
    name: z.string(),
    maxAttempts: z.int(),
    callbackUrl: z.string().optional(),
    rateLimitPerMinute: z.int(),
    rateLimitIsDefault: z.boolean(),
    createdAt: isoTime,
  })
  .meta({ id: "Tenant" });
const createdTenant = z.object({
  tenant: tenantAnswer,
  apiKey: z.string().describe("Shown once."),
  apiKeyId: z.string(),
  callbackSecret: z.string().describe("Shown once: the whsec_ secret that signs this tenant's callbacks (Standard Webhooks)."),
});

async function tenantExists(c: { var: AppEnv["Variables"] }, id: string) {
  if (!(await tenants.exists(c.var.db, id))) throw new ApiError("not_found", `No tenant ${id}.`);
}

// Webhook jobs parked by the webhooks DLQ consumer: list them, and replay them once the cause is gone.
const parkedQuery = z.object({ limit: z.coerce.number().int().min(1).max(200).default(50) });
const replayBody = z.strictObject({
  ids: z.array(z.string().min(1).max(100)).min(1).max(50).optional(),
  limit: z.int().min(1).max(100).default(100),
});

export const adminRoutes = new Hono<AppEnv>()
  .use("*", requireAdmin)
  .post(
    "/tenants",
    documented({
      summary: "Create a tenant and its first API key",
      tags,
      caller: "admin",
      body: createTenant,
      responses: { 201: { description: "The tenant, its API key and its callback secret (both shown once).", schema: createdTenant } },
    }),
    async (c) => {
      const input = c.req.valid("json");
      refusePrivateUrl(c.env, input.callbackUrl, "callbackUrl");
      const now = Date.now();
      const tenant = {
        id: newId("ten"),
        name: input.name,
        maxAttempts: input.maxAttempts ?? 3,
        callbackUrl: input.callbackUrl ?? null,
        callbackSecret: newWebhookSecret(),
        rateLimitPerMinute: input.rateLimitPerMinute ?? null,
        createdAt: now,
      };
      const key = await newApiKey();
      const keyId = newId("key");
      await runBatch(c.var.db, [
        tenants.create(c.var.db, tenant),
        apiKeys.issue(c.var.db, { id: keyId, tenantId: tenant.id, hash: key.hash, prefix: key.prefix, createdAt: now }),
      ]);
      return c.json(
        {
          tenant: tenantView(tenant, config(c.env).DEFAULT_RATE_LIMIT_PER_MINUTE),
          apiKey: key.key,
          apiKeyId: keyId,
          // Shown once, like the key: the Standard Webhooks secret that signs callbacks (docs/callbacks.md).
          callbackSecret: tenant.callbackSecret,
        },
        201,
      );
    },
  )
  .patch(
    "/tenants/:id",
    documented({
      summary: "Change a tenant's settings",
      description: "null puts rateLimitPerMinute back to the default (DEFAULT_RATE_LIMIT_PER_MINUTE).",
      tags,
      caller: "admin",
      body: patchTenant,
      responses: { 200: { description: "The tenant now.", schema: z.object({ tenant: tenantAnswer }) } },
      errors: ["not_found"],
    }),
    async (c) => {
      const input = c.req.valid("json");
      const id = c.req.param("id");
      const row = await tenants.changeSettings(c.var.db, id, input);
      if (!row) throw new ApiError("not_found", `No tenant ${id}.`);
      // This isolate applies the new settings at once; others within the key cache's lifetime.
      forgetTenant(id);
      return c.json({ tenant: tenantView(row, config(c.env).DEFAULT_RATE_LIMIT_PER_MINUTE) });
    },
  )
  .post(
    "/tenants/:id/keys",
    documented({
      summary: "Issue another API key for a tenant",
      tags,
      caller: "admin",
      responses: {
        201: {
          description: "The key, shown once.",
          schema: z.object({ id: z.string(), apiKey: z.string(), prefix: z.string(), createdAt: isoTime }),
        },
      },
      errors: ["not_found"],
    }),
    async (c) => {
      const tenantId = c.req.param("id");
      await tenantExists(c, tenantId);
      const key = await newApiKey();
      const id = newId("key");
      const now = Date.now();
      await apiKeys.issue(c.var.db, { id, tenantId, hash: key.hash, prefix: key.prefix, createdAt: now });
      return c.json({ id, apiKey: key.key, prefix: key.prefix, createdAt: new Date(now).toISOString() }, 201);
    },
  )
  .delete(
    "/tenants/:id/keys/:keyId",
    documented({
      summary: "Revoke an API key",
      tags,
      caller: "admin",
      responses: { 200: { description: "Revoked.", schema: z.object({ id: z.string(), revokedAt: isoTime }) } },
      errors: ["not_found"],
    }),
    async (c) => {
      const tenantId = c.req.param("id");
      const keyId = c.req.param("keyId");
      const now = Date.now();
      const revoked = await apiKeys.revoke(c.var.db, tenantId, keyId, now);
      if (!revoked) throw new ApiError("not_found", `No active key ${keyId} for tenant ${tenantId}.`);
      forgetKey(revoked.keyHash);
      // Streams opened with the key stop now; if this fails, the stream's own check of its keys
      // (every minute) closes them.
      try {
        await streamOf(c.env, tenantId).closeKey(keyId);
      } catch (err) {
        log("warn", "closing a revoked key's streams failed", { tenantId, keyId, error: errorField(err) });
      }
      return c.json({ id: keyId, revokedAt: new Date(now).toISOString() });
    },
  )
  // The retention purge on demand (it also runs every minute from the cron sweep).
  .post(
    "/cleanup",
    documented({
      summary: "Run the retention purge now",
      tags,
      caller: "admin",
      responses: { 200: { description: "How many rows were removed.", schema: z.object({ removed: z.unknown(), retentionDays: z.number() }) } },
    }),
    async (c) => {
      const removed = await purge(c.env);
      return c.json({ removed, retentionDays: Number(c.env.RETENTION_DAYS) || 30 });
    },
  )
  .get(
    "/webhooks/parked",
    documented({
      summary: "Webhook jobs parked by the webhooks dead-letter queue",
      tags,
      caller: "admin",
      query: parkedQuery,
      responses: {
        200: { description: "The oldest parked jobs and how many there are.", schema: z.looseObject({ parked: z.array(z.unknown()), total: z.number() }) },
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      return c.json({ parked: await listParked(c.var.db, q.limit), total: await countParked(c.var.db) });
    },
  )
  .post(
    "/webhooks/parked/replay",
    documented({
      summary: "Replay parked webhook jobs",
      tags,
      caller: "admin",
      body: replayBody,
      responses: { 200: { description: "What was replayed and how many remain parked.", schema: z.looseObject({ remaining: z.number() }) } },
    }),
    async (c) => {
      const input = c.req.valid("json");
      const result = await replayParked(c.env, c.var.db, input);
      return c.json({ ...result, remaining: await countParked(c.var.db) });
    },
  );
