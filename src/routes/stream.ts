// GET /v1/events/stream — the tenant's events live over a WebSocket, from its TenantStream object.
// Auth: `Authorization: Bearer <key>` (servers), or `?ticket=` from POST /v1/events/stream/tickets
// (browsers cannot set headers on a WebSocket; a ticket is single-use and lives 60 s, so the key
// itself never travels in a URL). Options: `after` (resume after this seq; default: from now),
// `types` (comma separated), `contact`, `instance`.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { bearer, ownerOfKey } from "../auth/api-keys.ts";
import { recipient } from "../contracts/messages.ts";
import { ApiError } from "../errors.ts";
import { streamEventTypes, type StreamOptions } from "../stream/tenant-stream.ts";
import { documented } from "../openapi/describe.ts";

export const streamRoutes = new Hono<AppEnv>();

const ticketFormat = /^([a-z]+_[0-9a-z]{26})\.[A-Za-z0-9_-]{32}$/;

const streamQuery = z.object({
  ticket: z.string().regex(ticketFormat, "Not a ticket from POST /v1/events/stream/tickets.").optional(),
  after: z.coerce.number().int().min(0).optional(),
  types: z
    .string()
    .transform((s) => s.split(",").filter(Boolean))
    .pipe(z.array(z.enum(streamEventTypes)).min(1))
    .optional(),
  contact: recipient.optional(),
  instance: z.string().min(1).max(100).optional(),
});

export const streamOf = (env: Env, tenantId: string) => env.STREAMS.get(env.STREAMS.idFromName(tenantId));

streamRoutes.get(
  "/",
  documented({
    summary: "Live events over a WebSocket (Upgrade: websocket)",
    tags: ["Events"],
    caller: "public",
    description: "Authenticate with Authorization: Bearer <key> or ?ticket= from POST /v1/events/stream/tickets.",
    query: streamQuery,
    responses: { 101: { description: "Switching to the WebSocket." } },
    errors: ["invalid_request", "unauthorized"],
  }),
  async (c) => {
    const { ticket, ...filters } = c.req.valid("query");
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new ApiError("invalid_request", "This route is a WebSocket: send Upgrade: websocket.", [{ path: "upgrade", message: "expected websocket" }]);
    }
    let tenantId: string | undefined;
    let keyId: string | undefined;
    const key = bearer(c.req.header("authorization"));
    if (key) {
      const owner = await ownerOfKey(c.var.db, key);
      if (!owner) throw new ApiError("unauthorized", "Unknown or revoked API key.");
      tenantId = owner.tenant.id;
      keyId = owner.keyId;
    } else if (ticket) {
      const owner = ticketFormat.exec(ticket)![1]!;
      keyId = await streamOf(c.env, owner).redeemTicket(ticket);
      if (!keyId) throw new ApiError("unauthorized", "Unknown, used or expired ticket: get a new one from POST /v1/events/stream/tickets.");
      tenantId = owner;
    } else {
      throw new ApiError("unauthorized", "Missing credentials: send Authorization: Bearer <key>, or ?ticket= from POST /v1/events/stream/tickets.");
    }
    const options: StreamOptions = { tenantId, keyId, ...filters };
    return streamOf(c.env, tenantId).fetch("https://tenant-stream/connect", {
      headers: { upgrade: "websocket", "x-stream-options": JSON.stringify(options) },
    });
  },
);

export const ticketRoutes = new Hono<AppEnv>()
  // POST /v1/events/stream/tickets (API key) → 201 {ticket, expiresAt, url}
  .post(
    "/",
    documented({
      summary: "A short-lived ticket for the events WebSocket",
      tags: ["Events"],
      caller: "apiKey",
      responses: {
        201: { description: "The ticket and the URL to open.", schema: z.looseObject({ ticket: z.string(), expiresAt: z.string(), url: z.string() }) },
      },
    }),
    async (c) => {
      const { ticket, expiresAt } = await streamOf(c.env, c.var.tenant.id).issueTicket(c.var.tenant.id, c.var.apiKeyId);
      return c.json({ ticket, expiresAt: new Date(expiresAt).toISOString(), url: `/v1/events/stream?ticket=${encodeURIComponent(ticket)}` }, 201);
    },
  );
