// GET /openapi.json and GET /docs: the API's contract, generated from the routes themselves.
//
// How to add a documented route (test/worker/openapi.test.ts fails until you do):
//   1. Keep the route's zod schemas in constants (body, query, path params, answer).
//   2. Put `documented({...})` from src/openapi/describe.ts between the path and the handler:
//        routes.post("/things", documented({ summary: "Create a thing", tags: ["Things"],
//          caller: "apiKey", body: createThing, responses: { 201: { description: "Created", schema: thingView } },
//          errors: ["conflict"] }), async (c) => { const input = c.req.valid("json"); … });
//      `caller` picks the security scheme and the errors every such route can give (401, 500);
//      a body, query or params adds 400 (and 413/415 for a body); name any other error codes.
//   3. documented() checks the params, query and body with those schemas before the handler runs
//      (a failed check is the 400 invalid_request); the handler reads `c.req.valid("json" | "query" | "param")`.
//      Answers must match `responses`: Schemathesis holds the running Worker to this document in .ci/run.
import type { Hono } from "hono";
import { generateSpecs } from "hono-openapi";
import type { AppEnv } from "../app-env.ts";

export const API_VERSION = "1.0.0";

const documentation = {
  info: {
    title: "mensageiro",
    version: API_VERSION,
    description:
      "WhatsApp gateway on Cloudflare Workers, delivering through the Evolution API. Every error answer has the shape " +
      '`{"error":{"code","message","details":[{"path","message"}],"requestId"}}`. Guides: docs/ in the repository.',
  },
  components: {
    headers: {
      RateLimit: {
        description: 'What is left of the tenant\'s budget (IETF RateLimit fields): `"tenant";r=<remaining>;t=<seconds until refilled>`.',
        schema: { type: "string" },
      },
      RateLimitPolicy: {
        description: 'The tenant\'s budget: `"tenant";q=<requests>;w=<window seconds>` (rateLimitPerMinute of the tenant).',
        schema: { type: "string" },
      },
      RetryAfter: { description: "Seconds to wait before the next request is allowed.", schema: { type: "string" } },
    },
    securitySchemes: {
      apiKey: { type: "http", scheme: "bearer", description: "A tenant API key (mgo_…), from POST /v1/admin/tenants." },
      adminToken: { type: "http", scheme: "bearer", description: "The ADMIN_TOKEN secret." },
      metricsToken: { type: "http", scheme: "bearer", description: "The METRICS_TOKEN secret." },
    },
  },
} as const;

let cached: Promise<unknown> | undefined;

/** The OpenAPI 3.1 document of every documented route of `app`, built once per isolate. */
export function openApiDocument(app: Hono<AppEnv>): Promise<unknown> {
  cached ??= generateSpecs(app, { documentation, defaultValidationErrorResponse: false, excludeStaticFile: false });
  return cached;
}
