// /v1/callbacks: the tenant's callback settings, secret rotation, delivery records and replay.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { enqueueCallbacks } from "../callbacks/dispatch.ts";
import { ROTATION_OVERLAP_MS } from "../callbacks/keys.ts";
import { callbackDeliveryPage, callbackReplay, callbackSettings, deliveryStatuses, enabledEndpoint, rotatedSecret } from "../contracts/callbacks.ts";
import { isoWithOffset } from "../contracts/messages.ts";
import { callbackDeliveries, disabledCallbackEndpoints, tenants } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { errorField, log } from "../observability/log.ts";
import { cursorParam, encodeCursor, listPage } from "../http/cursor.ts";
import { documented } from "../openapi/describe.ts";
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

const deliveryView = (d: callbackDeliveries.DeliveryRow) => ({
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
      const tenant = await tenants.callbackSettings(db, c.var.tenant.id);
      if (!tenant) throw new ApiError("not_found", "No such tenant.");
      const disabled = await disabledCallbackEndpoints.ofTenant(db, c.var.tenant.id);
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
      await tenants.rotateCallbackSecret(c.var.db, c.var.tenant.id, secret, until);
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
      if (!(await disabledCallbackEndpoints.enable(c.var.db, c.var.tenant.id, url)))
        throw new ApiError("not_found", "That callback URL is not disabled.", [{ path: "url", message: url }]);
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
      const rows = await callbackDeliveries.page(c.var.db, c.var.tenant.id, {
        status: q.status,
        event: q.event,
        since: q.since ? Date.parse(q.since) : undefined,
        until: q.until ? Date.parse(q.until) : undefined,
        before: q.cursor,
        limit: q.limit,
      });
      const answer = listPage(rows, q.limit, deliveryView, (last) => encodeCursor(last.seq, last.eventId));
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
      let reset: Awaited<ReturnType<typeof callbackDeliveries.resetOne>>;
      let more = false;
      if ("eventId" in input) {
        const event = await callbackDeliveries.replayableEvent(db, tenantId, input.eventId);
        if (!event) throw new ApiError("not_found", `No event ${input.eventId}.`, [{ path: "eventId", message: input.eventId }]);
        if (!event.callback_url) throw new ApiError("unprocessable", "This event had no callback URL.", [{ path: "eventId", message: input.eventId }]);
        if (event.disabled)
          throw new ApiError("conflict", "The callback URL is disabled; enable it with POST /v1/callbacks/enable first.", [
            { path: "eventId", message: event.disabled },
          ]);
        reset = await callbackDeliveries.resetOne(db, { eventId: input.eventId, url: event.callback_url, tenantId, seq: event.seq, type: event.type, now });
      } else {
        const until = input.until ? Date.parse(input.until) : now;
        ({ reset, more } = await callbackDeliveries.resetFailed(db, tenantId, { since: Date.parse(input.since), until, limit: input.limit, now }));
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
