// /console — the operator console's static files (public/console/, Workers static assets), with
// headers that keep it to this origin: scripts, styles and connections only from here, images
// also as data: URLs (Evolution's QR codes), never framed.
import { Hono } from "hono";
import type { AppEnv } from "../app-env.ts";
import { z } from "zod";
import { servedAsset, usePageHeaders } from "../http/page-headers.ts";
import { documented } from "../openapi/describe.ts";

export const consoleRoutes = new Hono<AppEnv>();

usePageHeaders(consoleRoutes, "/console", "/console/*");
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
  // The key lives in the page's session storage: never let a proxy or the browser cache keep a page that reads it stale.
  (c) => servedAsset(c, { "cache-control": "no-cache" }),
);
