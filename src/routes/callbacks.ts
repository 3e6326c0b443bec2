// /v1/callbacks: the tenant's callback settings, secret rotation, delivery records and replay.
import { and, desc, eq, gte, lt, lte, or, type SQL, sql } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { enqueueCallbacks } from "../callbacks/dispatch.ts";
import { ROTATION_OVERLAP_MS } from "../callbacks/keys.ts";
import { callbackDeliveryPage, callbackReplay, callbackSettings, deliveryStatuses, enabledEndpoint, rotatedSecret } from "../contracts/callbacks.ts";
import { isoWithOffset } from "../contracts/messages.ts";
import { callbackDeliveries, disabledCallbackEndpoints, tenants } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { errorField, log } from "../observability/log.ts";
import { cursorParam, encodeCursor } from "../http/cursor.ts";
import { documented } from "../openapi/describe.ts";
import { eventIdIs } from "../outbox/event-id.ts";
import { newWebhookSecret } from "../signing/standard-webhooks.ts";
import { iso } from "../time.ts";

const tags = ["Callbacks"];

// A URL disabled after a 410 Gone takes callbacks again; replay what it missed with POST /replay.
const enableBody = z.strictObject({ url: z.string().min(1).max(2048) });

const deliveryStatus = z.enum(deliveryStatuses);

const deliveriesQuery = z.object({
  status: deliveryStatus.optional(),
  event: z.string().min(1).max(100).optional(),
  since: isoWithOffset.optional(),
  until: isoWithOffset.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: cursorParam.optional(),
});

type DeliveryRow = typeof callbackDeliveries.$inferSelect;
const deliveryView = (d: DeliveryRow) => ({
  eventId: d.eventId,
  eventType: d.eventType || undefined,
  url: d.url,
  status: deliveryStatus.parse(d.status),
  attempts: d.attempts,
  lastError: d.lastError ?? undefined,
  lastResponseStatus: d.lastStatus ?? undefined,
  nextAttemptAt: d.status === "pending" || d.status === "retrying" ? iso(d.nextAt) : undefined,
  deliveredAt: iso(d.deliveredAt),
  createdAt: iso(d.createdAt),
  updatedAt: iso(d.updatedAt),
});

const MAX_REPLAY = 500;
const replayBody = z.union([
  z.strictObject({ eventId: z.string().min(1).max(200) }),
  z.strictObject({
    since: isoWithOffset,
    until: isoWithOffset.optional(),
    limit: z.int().min(1).max(MAX_REPLAY).default(100),
  }),
]);

type Reset = { seq: number; event_id: string; tenant_id: string; url: string };

export const callbackRoutes = new Hono<AppEnv>()
  .get(
    "/",
    documented({
      summary: "This tenant's callback settings",
      description: "The URL, how callbacks are signed (Standard Webhooks), and URLs disabled after a 410. See docs/callbacks.md.",
      tags,
      caller: "apiKey",
      responses: { 200: { description: "The settings.", schema: callbackSettings } },
      errors: ["not_found"],
    }),
    async (c) => {
      const db = c.var.db;
      const [tenant] = await db
        .select({
          url: tenants.callbackUrl,
          secret: tenants.callbackSecret,
          previousUntil: tenants.callbackSecretPreviousUntil,
          previous: tenants.callbackSecretPrevious,
        })
        .from(tenants)
        .where(eq(tenants.id, c.var.tenant.id));
      if (!tenant) throw new ApiError("not_found", "No such tenant.");
      const disabled = await db.select().from(disabledCallbackEndpoints).where(eq(disabledCallbackEndpoints.tenantId, c.var.tenant.id));
      const now = Date.now();
      const overlap = tenant.previous && (tenant.previousUntil ?? 0) > now;
      const legacy = !tenant.secret.startsWith("whsec_") || Boolean(overlap && tenant.previous && !tenant.previous.startsWith("whsec_"));
      return c.json({
        url: tenant.url ?? null,
        signing: {
          scheme: "standard-webhooks" as const,
          // A token from before Standard Webhooks: its whsec_ form is "whsec_" + base64 of the token.
          secretFormat: tenant.secret.startsWith("whsec_") ? ("whsec" as const) : ("legacy-token" as const),
          previousSecretValidUntil: overlap ? iso(tenant.previousUntil) : undefined,
          legacyHeader: legacy,
        },
        disabledEndpoints: disabled.map((d) => ({ url: d.url, disabledAt: iso(d.disabledAt), reason: d.reason })),
      } satisfies z.input<typeof callbackSettings>);
    },
  )
  // The new secret is shown once; the old one keeps signing (a second signature) for 24 h.
  .post(
    "/secret/rotate",
    documented({
      summary: "Rotate the callback signing secret",
      description: "The new secret is shown once; for 24 hours callbacks carry signatures by both the new and the old secret.",
      tags,
      caller: "apiKey",
      responses: { 200: { description: "The new whsec_ secret.", schema: rotatedSecret } },
    }),
    async (c) => {
      const secret = newWebhookSecret();
      const now = Date.now();
      const until = now + ROTATION_OVERLAP_MS;
      await c.var.db.run(sql`UPDATE tenants SET callback_secret_previous = callback_secret, callback_secret_previous_until = ${until},
    callback_secret = ${secret} WHERE id = ${c.var.tenant.id}`);
      c.header("cache-control", "no-store");
      return c.json({ secret, previousSecretValidUntil: iso(until), rotatedAt: iso(now) } satisfies z.input<typeof rotatedSecret>);
    },
  )
  .post(
    "/enable",
    documented({
      summary: "Take callbacks again at a URL disabled after a 410",
      tags,
      caller: "apiKey",
      body: enableBody,
      responses: { 200: { description: "Enabled.", schema: enabledEndpoint } },
      errors: ["not_found"],
    }),
    async (c) => {
      const { url } = c.req.valid("json");
      const removed = await c.var.db
        .delete(disabledCallbackEndpoints)
        .where(and(eq(disabledCallbackEndpoints.tenantId, c.var.tenant.id), eq(disabledCallbackEndpoints.url, url)))
        .returning({ url: disabledCallbackEndpoints.url });
      if (removed.length === 0) throw new ApiError("not_found", "That callback URL is not disabled.", [{ path: "url", message: url }]);
      return c.json({ url, enabled: true as const } satisfies z.input<typeof enabledEndpoint>);
    },
  )
  // Newest first (by the event's outbox position).
  .get(
    "/deliveries",
    documented({
      summary: "Callback deliveries, newest first",
      tags,
      caller: "apiKey",
      query: deliveriesQuery,
      responses: { 200: { description: "A page; pass nextCursor as cursor for the next.", schema: callbackDeliveryPage } },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const where: SQL[] = [eq(callbackDeliveries.tenantId, c.var.tenant.id)];
      if (q.status) where.push(eq(callbackDeliveries.status, q.status));
      if (q.event) where.push(eq(callbackDeliveries.eventType, q.event));
      if (q.since) where.push(gte(callbackDeliveries.createdAt, Date.parse(q.since)));
      if (q.until) where.push(lte(callbackDeliveries.createdAt, Date.parse(q.until)));
      if (q.cursor) {
        const [seq, eventId] = q.cursor;
        const before = or(lt(callbackDeliveries.seq, seq), and(eq(callbackDeliveries.seq, seq), lt(callbackDeliveries.eventId, eventId)));
        if (before) where.push(before);
      }
      const rows = await c.var.db
        .select()
        .from(callbackDeliveries)
        .where(and(...where))
        .orderBy(desc(callbackDeliveries.seq), desc(callbackDeliveries.eventId))
        .limit(q.limit + 1);
      const page = rows.slice(0, q.limit);
      const last = page.at(-1);
      const answer = { data: page.map(deliveryView), nextCursor: rows.length > q.limit && last ? encodeCursor(last.seq, last.eventId) : null };
      return c.json(answer satisfies z.input<typeof callbackDeliveryPage>);
    },
  )
  // One event (whatever its delivery status), or the failed deliveries created since a time,
  // oldest first, at most `limit` a call (`more` says whether to call again).
  .post(
    "/replay",
    documented({
      summary: "Deliver callbacks again: one event, or the failed deliveries since a time",
      tags,
      caller: "apiKey",
      body: replayBody,
      responses: { 202: { description: "Handed to the callbacks queue; `more` says whether to call again.", schema: callbackReplay } },
      errors: ["not_found", "conflict", "unprocessable"],
    }),
    async (c) => {
      const input = c.req.valid("json");
      const db = c.var.db;
      const tenantId = c.var.tenant.id;
      const now = Date.now();
      const notDisabled = sql`url NOT IN (SELECT url FROM disabled_callback_endpoints WHERE tenant_id = ${tenantId})`;
      let reset: Reset[];
      let more = false;
      if ("eventId" in input) {
        const [event] = await db.all<{ seq: number; type: string; callback_url: string | null; disabled: string | null }>(sql`
      SELECT seq, type, callback_url,
        (SELECT reason FROM disabled_callback_endpoints x WHERE x.tenant_id = e.tenant_id AND x.url = e.callback_url) AS disabled
      FROM outbox_events e WHERE tenant_id = ${tenantId} AND ${eventIdIs(input.eventId)}`);
        if (!event) throw new ApiError("not_found", `No event ${input.eventId}.`, [{ path: "eventId", message: input.eventId }]);
        if (!event.callback_url) throw new ApiError("unprocessable", "This event had no callback URL.", [{ path: "eventId", message: input.eventId }]);
        if (event.disabled)
          throw new ApiError("conflict", "The callback URL is disabled; enable it with POST /v1/callbacks/enable first.", [
            { path: "eventId", message: event.disabled },
          ]);
        reset = await db.all<Reset>(sql`
      INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, updated_at, seq, event_type, created_at, next_at)
      VALUES (${input.eventId}, ${event.callback_url}, ${tenantId}, 'pending', 0, ${now}, ${event.seq}, ${event.type}, ${now}, ${now})
      ON CONFLICT (event_id, url) DO UPDATE SET status = 'pending', attempts = 0, next_at = ${now}, last_error = NULL, last_status = NULL,
        delivered_at = NULL, updated_at = ${now}
      RETURNING seq, event_id, tenant_id, url`);
      } else {
        const window = sql`tenant_id = ${tenantId} AND status = 'failed' AND created_at >= ${Date.parse(input.since)}
      AND created_at <= ${input.until ? Date.parse(input.until) : now} AND ${notDisabled}`;
        reset = await db.all<Reset>(sql`
      UPDATE callback_deliveries SET status = 'pending', attempts = 0, next_at = ${now}, last_error = NULL, last_status = NULL, updated_at = ${now}
      WHERE rowid IN (SELECT rowid FROM callback_deliveries WHERE ${window} ORDER BY seq LIMIT ${input.limit})
      RETURNING seq, event_id, tenant_id, url`);
        const [left] = await db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM (SELECT 1 FROM callback_deliveries WHERE ${window} LIMIT 1)`);
        more = (left?.n ?? 0) > 0;
      }
      reset.sort((a, b) => a.seq - b.seq);
      // Should the queue fail here, the rows are pending and the cron hands them out (redispatchDue).
      await enqueueCallbacks(
        c.env,
        reset.map((r) => ({ seq: r.seq, eventId: r.event_id, tenantId: r.tenant_id, url: r.url })),
      ).catch((err) => log("warn", "callbacks queue unavailable; the cron hands replays out", { error: errorField(err) }));
      return c.json({ replayed: reset.length, eventIds: reset.map((r) => r.event_id), more } satisfies z.input<typeof callbackReplay>, 202);
    },
  );
