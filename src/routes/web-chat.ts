// The web chat's HTTP side. POST /v1/instances/:name/visitors (the tenant's backend, with its API key)
// mints a visitor token; GET /v1/chat?token= (and /ws/chat, the older system's path) checks it and
// the page's Origin, then hands the socket to the visitor's conversation object (VisitorChat), which
// refuses a revoked token. DELETE /v1/instances/:name/visitors/:visitorId revokes a visitor's tokens.
import { and, desc, eq, inArray } from "drizzle-orm";
import { type Context, Hono } from "hono";
import { cors } from "hono/cors";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { inboundMessages, instances, messages } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { documented } from "../openapi/describe.ts";
import { channelOf } from "../providers/registry.ts";
import { chatOf, VISITOR_HEADER } from "../providers/web/chat.ts";
import { visitorIdFormat } from "../providers/web/limits.ts";
import { chatSocketUrl } from "../providers/web/settings.ts";
import { checkVisitorToken, mintVisitorToken, type Visitor, type VisitorToken } from "../providers/web/token.ts";

export const chatRoutes = new Hono<AppEnv>();

const MIN_SECRET_LENGTH = 32;

export function webChatSecret(env: Env): string {
  const secret = env.WEB_CHAT_SECRET ?? "";
  if (secret.length < MIN_SECRET_LENGTH)
    throw new ApiError("unavailable", `The web chat is not configured: set the WEB_CHAT_SECRET secret (at least ${MIN_SECRET_LENGTH} characters).`);
  return secret;
}

const visitorInput = z.strictObject({
  visitorId: z.string().regex(visitorIdFormat, "Letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit."),
  name: z.string().trim().min(1).max(100).optional().describe("The visitor's display name, shown to the handler as pushName."),
  ttlSeconds: z.int().min(60).max(86_400).default(3_600).describe("How long the token opens sockets."),
});

/** The tenant's web chat instance of that name: 404 when there is none, 422 when it is another channel's. */
async function webInstanceNamed(c: Context<AppEnv>, name: string): Promise<{ id: string; name: string }> {
  const [row] = await c.var.db
    .select({ id: instances.id, name: instances.name, channel: instances.channel })
    .from(instances)
    .where(and(eq(instances.tenantId, c.var.tenant.id), eq(instances.name, name)));
  if (!row) throw new ApiError("not_found", `No instance ${name}.`);
  if (channelOf(row.channel) !== "web") throw new ApiError("unprocessable", `Instance ${row.name} is not a web chat instance.`);
  return row;
}

/** The visitor a token names, once its instance still exists and the page's Origin may use it. */
async function admittedVisitor(c: Context<AppEnv>, token: string): Promise<VisitorToken> {
  const visitor = await checkVisitorToken(webChatSecret(c.env), token);
  if (!visitor) throw new ApiError("unauthorized", "Bad or expired visitor token: get a new one from the site's backend.");
  const [row] = await c.var.db
    .select({ channel: instances.channel, allowedOrigins: instances.webAllowedOrigins })
    .from(instances)
    .where(and(eq(instances.id, visitor.instanceId), eq(instances.tenantId, visitor.tenantId)));
  if (!row || channelOf(row.channel) !== "web") throw new ApiError("unauthorized", "The token's instance no longer exists.");
  if (row.allowedOrigins) {
    const origin = c.req.header("origin");
    if (!origin || !row.allowedOrigins.includes(origin)) throw new ApiError("forbidden", "This page's origin may not open this chat.");
  }
  return visitor;
}

const visitorParams = z.object({
  name: z.string().min(1),
  visitorId: z.string().regex(visitorIdFormat, "Letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit."),
});

export const visitorRoutes = new Hono<AppEnv>()
  .post(
    "/:name/visitors",
    documented({
      summary: "A visitor token for a web chat instance",
      description:
        "The tenant's backend mints one per visitor and hands it to the page, which opens GET /v1/chat?token=. The token is signed, names the tenant, instance and visitor, and expires; no API key reaches the browser.",
      tags: ["Web chat"],
      caller: "apiKey",
      body: visitorInput,
      responses: {
        201: {
          description: "The token, when it expires, and the socket URL with it.",
          schema: z.object({ token: z.string(), expiresAt: z.iso.datetime(), url: z.string() }),
        },
      },
      errors: ["invalid_request", "not_found", "unprocessable", "unavailable"],
    }),
    async (c) => {
      const input = c.req.valid("json");
      const secret = webChatSecret(c.env);
      const row = await webInstanceNamed(c, c.req.param("name") ?? "");
      const expiresAt = Date.now() + input.ttlSeconds * 1000;
      const visitor: Visitor = { tenantId: c.var.tenant.id, instanceId: row.id, instanceName: row.name, visitorId: input.visitorId, name: input.name ?? null };
      const token = await mintVisitorToken(secret, visitor, expiresAt);
      const base = c.env.PUBLIC_URL || new URL(c.req.url).origin;
      return c.json({ token, expiresAt: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString(), url: `${chatSocketUrl(base)}?token=${token}` }, 201);
    },
  )
  .delete(
    "/:name/visitors/:visitorId",
    documented({
      summary: "Revoke a visitor's tokens and close its sockets",
      description:
        "Every token of the visitor minted until now stops opening sockets (401), and the visitor's open sockets get a last error frame (token_revoked) and close with code 1008. Tokens minted afterwards work.",
      tags: ["Web chat"],
      caller: "apiKey",
      params: visitorParams,
      responses: {
        200: {
          description: "Revoked: tokens minted up to revokedBefore are refused; how many open sockets were closed.",
          schema: z.object({ visitorId: z.string(), revokedBefore: z.iso.datetime(), socketsClosed: z.int() }),
        },
      },
      errors: ["invalid_request", "not_found", "unprocessable"],
    }),
    async (c) => {
      const { visitorId } = c.req.valid("param");
      const row = await webInstanceNamed(c, c.req.param("name") ?? "");
      const { revokedBefore, socketsClosed } = await chatOf(c.env, c.var.tenant.id, row.id, visitorId).revoke();
      return c.json({ visitorId, revokedBefore: new Date(revokedBefore).toISOString(), socketsClosed });
    },
  );

const chatQuery = z.object({ token: z.string().min(1).max(4096).optional() });

chatRoutes.get(
  "/",
  documented({
    summary: "A visitor's web chat socket (Upgrade: websocket)",
    description:
      "Opened by the page with ?token= from POST /v1/instances/:name/visitors. Refused before the upgrade: a missing, bad, expired or revoked token (401), an Origin outside the instance's allowedOrigins (403). The socket closes (code 1008, after an error frame token_expired, token_revoked or instance_removed) when its token expires, is revoked, or its instance is removed. Frames: see the web chat section of the channels guide.",
    tags: ["Web chat"],
    caller: "public",
    query: chatQuery,
    responses: { 101: { description: "Switching to the WebSocket." } },
    errors: ["invalid_request", "unauthorized", "forbidden"],
  }),
  async (c) => {
    const { token } = c.req.valid("query");
    if (!token) throw new ApiError("unauthorized", "Missing ?token=: get one from POST /v1/instances/:name/visitors.");
    const visitor = await admittedVisitor(c, token);
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new ApiError("invalid_request", "This route is a WebSocket: send Upgrade: websocket.", [{ path: "upgrade", message: "expected websocket" }]);
    }
    const res = await chatOf(c.env, visitor.tenantId, visitor.instanceId, visitor.visitorId).fetch("https://visitor-chat/connect", {
      headers: { upgrade: "websocket", [VISITOR_HEADER]: JSON.stringify(visitor) },
    });
    if (res.status === 401) throw new ApiError("unauthorized", "This visitor token was revoked: get a new one from the site's backend.");
    return res;
  },
);

// The conversation so far, for a page that was reloaded or opened on another device: the socket
// replays only what no tab acknowledged yet. A page on another site calls it, so it answers CORS
// (the token in the Authorization header is the credential; no cookies).
export const chatHistoryRoutes = new Hono<AppEnv>();

const historyQuery = z.object({ limit: z.coerce.number().int().min(1).max(200).default(50) });
// Stored for the visitor: what the socket has pushed or will push on connect.
const STORED_FOR_VISITOR = ["sent", "delivered", "read"];

const historyItem = z.object({
  messageId: z.string(),
  direction: z.enum(["inbound", "outbound"]).describe("inbound: the visitor wrote it; outbound: sent to the visitor (a handler's reply, an operator)."),
  message: z.string(),
  timestamp: z.iso.datetime(),
  metadata: z.record(z.string(), z.unknown()),
  clientMessageId: z.string().optional().describe("inbound: the page's clientMessageId, when it gave one."),
  status: z.enum(["sent", "delivered", "read"]).optional().describe("outbound: where the message is."),
});

chatHistoryRoutes.use("*", cors({ origin: (origin) => origin, allowMethods: ["GET"], allowHeaders: ["authorization"], maxAge: 600 }));
chatHistoryRoutes.get(
  "/",
  documented({
    summary: "A visitor's conversation so far (visitor token)",
    description:
      "Authorization: Bearer <visitor token>. The latest messages of the visitor's conversation, both ways, oldest first: what a reloaded page shows before the socket's frames. Refused like the socket: a bad or expired token (401), an Origin outside allowedOrigins (403).",
    tags: ["Web chat"],
    caller: "public",
    headers: { authorization: "Bearer <visitor token from POST /v1/instances/:name/visitors>" },
    query: historyQuery,
    responses: {
      200: {
        description: "The conversation, oldest first.",
        schema: z.object({ conversationId: z.string(), visitorId: z.string(), messages: z.array(historyItem) }),
      },
    },
    errors: ["invalid_request", "unauthorized", "forbidden"],
  }),
  async (c) => {
    const { limit } = c.req.valid("query");
    const token = /^Bearer (.+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
    if (!token) throw new ApiError("unauthorized", "Send the visitor token as Authorization: Bearer <token>.");
    const v = await admittedVisitor(c, token);
    if (!(await chatOf(c.env, v.tenantId, v.instanceId, v.visitorId).admits(v.issuedAt)))
      throw new ApiError("unauthorized", "This visitor token was revoked: get a new one from the site's backend.");
    const db = c.var.db;
    const [outbound, inbound] = await Promise.all([
      db
        .select({ id: messages.id, text: messages.text, media: messages.media, status: messages.status, at: messages.sentAt, createdAt: messages.createdAt })
        .from(messages)
        .where(
          and(
            eq(messages.tenantId, v.tenantId),
            eq(messages.to, v.visitorId),
            eq(messages.instanceId, v.instanceId),
            inArray(messages.status, STORED_FOR_VISITOR),
          ),
        )
        .orderBy(desc(messages.createdAt))
        .limit(limit),
      db
        .select({
          id: inboundMessages.id,
          text: inboundMessages.text,
          media: inboundMessages.media,
          at: inboundMessages.timestamp,
          providerId: inboundMessages.providerMessageId,
        })
        .from(inboundMessages)
        .where(and(eq(inboundMessages.tenantId, v.tenantId), eq(inboundMessages.contact, v.visitorId), eq(inboundMessages.instanceId, v.instanceId)))
        .orderBy(desc(inboundMessages.timestamp))
        .limit(limit),
    ]);
    // The visitor's own messages carry the page's clientMessageId as `<visitorId>:<clientMessageId>`.
    const clientPrefix = `${v.visitorId}:`;
    const items = [
      ...outbound.map((m) => ({
        messageId: m.id,
        direction: "outbound" as const,
        message: m.text ?? "",
        at: m.at ?? m.createdAt,
        metadata: m.media ? { media: m.media } : {},
        status: historyItem.shape.status.parse(m.status),
      })),
      ...inbound.map((m) => ({
        messageId: m.id,
        direction: "inbound" as const,
        message: m.text ?? "",
        at: m.at,
        metadata: m.media ? { media: m.media } : {},
        clientMessageId: m.providerId.startsWith(clientPrefix) ? m.providerId.slice(clientPrefix.length) : undefined,
      })),
    ]
      .sort((a, b) => a.at - b.at || a.messageId.localeCompare(b.messageId))
      .slice(-limit);
    return c.json({
      conversationId: chatOf(c.env, v.tenantId, v.instanceId, v.visitorId).id.toString(),
      visitorId: v.visitorId,
      messages: items.map(({ at, ...item }) => ({ ...item, timestamp: new Date(at).toISOString() })),
    });
  },
);
