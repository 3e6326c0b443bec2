// GET /openapi.json (the contract) and GET /docs (a readable reference of it). No auth: the
// document holds no secrets, and integrators read it before they have a key.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { documented } from "../openapi/describe.ts";
import { openApiDocument } from "../openapi/document.ts";
import { referenceAssets, referenceInit, referencePage } from "../openapi/reference.ts";

const CACHE = "public, max-age=3600";

export function referenceRoutes(app: Hono<AppEnv>) {
  const routes = new Hono<AppEnv>();
  routes.get(
    "/openapi.json",
    documented({
      summary: "This API's OpenAPI 3.1 document",
      tags: ["Reference"],
      caller: "public",
      responses: { 200: { description: "The document.", schema: z.looseObject({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) }) } },
    }),
    async (c) => c.json(await openApiDocument(app)),
  );
  routes.get(
    "/docs",
    documented({
      summary: "The API reference, readable in a browser",
      tags: ["Reference"],
      caller: "public",
      responses: { 200: { description: "An HTML page (Swagger UI) that reads /openapi.json.", schema: z.string(), contentType: "text/html" } },
    }),
    (c) => c.html(referencePage),
  );
  routes.get(
    "/docs/init.js",
    documented({
      summary: "The reference page's start-up script",
      tags: ["Reference"],
      caller: "public",
      responses: { 200: { description: "JavaScript.", schema: z.string(), contentType: "text/javascript" } },
    }),
    (c) => c.body(referenceInit, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": CACHE }),
  );
  routes.get(
    "/docs/swagger-ui-bundle.js",
    documented({
      summary: "Swagger UI's script, served with the Worker",
      tags: ["Reference"],
      caller: "public",
      responses: { 200: { description: "JavaScript.", schema: z.string(), contentType: "text/javascript" } },
    }),
    (c) => c.body(referenceAssets.bundle, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": CACHE }),
  );
  routes.get(
    "/docs/swagger-ui.css",
    documented({
      summary: "Swagger UI's stylesheet, served with the Worker",
      tags: ["Reference"],
      caller: "public",
      responses: { 200: { description: "CSS.", schema: z.string(), contentType: "text/css" } },
    }),
    (c) => c.body(referenceAssets.css, 200, { "content-type": "text/css; charset=utf-8", "cache-control": CACHE }),
  );
  return routes;
}
