// /chat — the web chat's browser side: the widget script sites embed (a static asset), and a demo
// page for a local gateway. The demo exists only when WEB_CHAT_DEMO names a web instance
// ("<tenantId>/<instance>", set by `npm start`): it mints the visitor's token itself, so no API key
// reaches the browser, and a cookie keeps the same visitor across reloads.
import { and, eq } from "drizzle-orm";
import { type Context, Hono } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { html } from "hono/html";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { instances } from "../db/schema.ts";
import { ApiError } from "../errors.ts";
import { servedAsset, usePageHeaders } from "../http/page-headers.ts";
import { documented } from "../openapi/describe.ts";
import { channelOf } from "../providers/registry.ts";
import { chatSocketUrl } from "../providers/web/settings.ts";
import { mintVisitorToken, type Visitor } from "../providers/web/token.ts";
import { webChatSecret } from "./web-chat.ts";

export const chatPageRoutes = new Hono<AppEnv>();

chatPageRoutes.get(
  "/widget.js",
  documented({
    summary: "The web chat widget (a script for a site's pages)",
    description:
      'Embed with <script src="…/chat/widget.js" data-token="<visitor token>" async></script> or call MensageiroChat.open({token, url}); see the web chat section of the channels guide.',
    tags: ["Web chat"],
    caller: "public",
    responses: { 200: { description: "JavaScript.", schema: z.string(), contentType: "text/javascript" } },
  }),
  // Loaded by other sites' pages: let them, and let browsers keep it a few minutes.
  (c) =>
    servedAsset(c, {
      "cross-origin-resource-policy": "cross-origin",
      "access-control-allow-origin": "*",
      "x-content-type-options": "nosniff",
      "cache-control": "public, max-age=300",
    }),
);

const DEMO_COOKIE = "mensageiro-demo-visitor";
const demoVisitorId = /^demo-[0-9a-f]{12}$/;
const demoSetting = z.string().regex(/^[^/\s]+\/[^/\s]+$/);
const DEMO_TOKEN_TTL_SECONDS = 3_600;

// The demo's visitor: the one its cookie names, or a new one.
async function demoVisitor(c: Context<AppEnv>): Promise<Visitor> {
  const setting = demoSetting.safeParse(c.env.WEB_CHAT_DEMO);
  if (!setting.success) throw new ApiError("not_found", "No such route.");
  const [tenantId, name] = setting.data.split("/") as [string, string];
  const [row] = await c.var.db
    .select({ id: instances.id, channel: instances.channel })
    .from(instances)
    .where(and(eq(instances.tenantId, tenantId), eq(instances.name, name)));
  if (!row || channelOf(row.channel) !== "web") throw new ApiError("not_found", `The demo's web instance ${name} does not exist (yet).`);
  let visitorId = getCookie(c, DEMO_COOKIE);
  if (!visitorId || !demoVisitorId.test(visitorId)) {
    visitorId = `demo-${[...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  }
  setCookie(c, DEMO_COOKIE, visitorId, { path: "/chat", httpOnly: true, sameSite: "Lax", maxAge: 30 * 86_400 });
  return { tenantId, instanceId: row.id, instanceName: name, visitorId, name: null };
}

async function demoToken(c: Context<AppEnv>, v: Visitor) {
  const expiresAt = Date.now() + DEMO_TOKEN_TTL_SECONDS * 1000;
  const token = await mintVisitorToken(webChatSecret(c.env), v, expiresAt);
  const base = c.env.PUBLIC_URL || new URL(c.req.url).origin;
  return { token, expiresAt: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString(), url: `${chatSocketUrl(base)}?token=${token}` };
}

usePageHeaders(chatPageRoutes, "/demo", "/demo/*", "/demo.css");

chatPageRoutes.get(
  "/demo",
  documented({
    summary: "A local demo page of the web chat widget",
    description: "Only on a local gateway whose WEB_CHAT_DEMO names a web instance (npm start sets it); 404 otherwise.",
    tags: ["Web chat"],
    caller: "public",
    responses: { 200: { description: "HTML.", schema: z.string(), contentType: "text/html" } },
    errors: ["not_found"],
  }),
  async (c) => {
    const v = await demoVisitor(c);
    const { token } = await demoToken(c, v);
    c.header("cache-control", "no-store");
    return c.html(html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>mensageiro web chat demo</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="/chat/demo.css" />
    <script src="/chat/widget.js" data-token="${token}" data-token-url="/chat/demo/token" data-target="#chat" data-title="mensageiro demo" defer></script>
  </head>
  <body>
    <main>
      <h1>Web chat demo</h1>
      <p>
        You are visitor <code id="visitor">${v.visitorId}</code> of the web instance <code>${v.instanceName}</code>. The echo bot answers
        what you write; reload the page and the conversation is still here.
      </p>
      <div id="chat" class="chat"></div>
    </main>
  </body>
</html>`);
  },
);

chatPageRoutes.get(
  "/demo/token",
  documented({
    summary: "A fresh visitor token for the demo page's visitor",
    description: "What the demo page's widget calls when its token expires. Only where /chat/demo exists.",
    tags: ["Web chat"],
    caller: "public",
    responses: {
      200: { description: "As POST /v1/instances/:name/visitors answers.", schema: z.object({ token: z.string(), expiresAt: z.string(), url: z.string() }) },
    },
    errors: ["not_found"],
  }),
  async (c) => {
    const v = await demoVisitor(c);
    c.header("cache-control", "no-store");
    return c.json(await demoToken(c, v));
  },
);

chatPageRoutes.get(
  "/demo.css",
  documented({
    summary: "The demo page's stylesheet",
    tags: ["Web chat"],
    caller: "public",
    responses: { 200: { description: "CSS.", schema: z.string(), contentType: "text/css" } },
  }),
  (c) => servedAsset(c),
);
