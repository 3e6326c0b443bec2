// One log line per request: request id, tenant, route pattern (never the raw path, which may hold
// a webhook token), status and latency.
import { createMiddleware } from "hono/factory";
import { routePath } from "hono/route";
import type { AppEnv } from "../app-env.ts";
import { log } from "./log.ts";

export const requestLog = createMiddleware<AppEnv>(async (c, next) => {
  const started = Date.now();
  await next();
  log(c.res.status >= 500 ? "error" : "info", "request", {
    requestId: c.get("requestId"),
    tenant: c.get("tenant")?.id,
    method: c.req.method,
    // The pattern of the handler that answered (a middleware's, such as "/v1/*", when it refused).
    route: routePath(c, c.req.routeIndex),
    status: c.res.status,
    latencyMs: Date.now() - started,
  });
});
