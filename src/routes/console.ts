// /console — the operator console's static files (public/console/, Workers static assets), with
// headers that keep it to this origin: scripts, styles and connections only from here, images
// also as data: URLs (Evolution's QR codes), never framed.
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "../app-env.ts";
import { z } from "zod";
import { documented } from "../openapi/describe.ts";

export const consoleRoutes = new Hono<AppEnv>();

/** Headers of the gateway's own pages: everything from this origin only, never framed. */
export const pageHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", "data:"],
    connectSrc: ["'self'"],
    formAction: ["'none'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
  },
  referrerPolicy: "no-referrer",
  crossOriginEmbedderPolicy: false,
});
consoleRoutes.use("/console", pageHeaders);
consoleRoutes.use("/console/*", pageHeaders);
consoleRoutes.get(
  "/console",
  documented({
    summary: "The web console (redirects to /console/)",
    tags: ["Console"],
    caller: "public",
    responses: { 308: { description: "Redirect to /console/." } },
  }),
  (c) => c.redirect("/console/", 308),
);
consoleRoutes.get(
  "/console/*",
  documented({
    summary: "The web console's pages and assets",
    tags: ["Console"],
    caller: "public",
    responses: { 200: { description: "HTML, JS or CSS.", schema: z.string(), contentType: "text/html" } },
    errors: ["not_found"],
  }),
  async (c) => {
    const res = await c.env.ASSETS.fetch(c.req.raw);
    // The key lives in the page's session storage: never let a proxy or the browser cache keep a page that reads it stale.
    const headers = new Headers(res.headers);
    headers.set("cache-control", "no-cache");
    return new Response(res.body, { status: res.status, headers });
  },
);
