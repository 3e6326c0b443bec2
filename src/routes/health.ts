// GET /health: no auth; D1 and queue binding checks.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { ping } from "../db/client.ts";
import { documented } from "../openapi/describe.ts";

const healthAnswer = z.object({ status: z.enum(["ok", "degraded"]), checks: z.record(z.string(), z.string()) });

// Chained, so the typed client (src/client.ts) knows the route.
export const healthRoutes = new Hono<AppEnv>().get(
  "/",
  documented({
    summary: "Liveness: D1 and the queue binding",
    tags: ["Operations"],
    caller: "public",
    responses: {
      200: { description: "All checks ok.", schema: healthAnswer },
      503: { description: "A check failed (the body says which).", schema: healthAnswer },
    },
  }),
  async (c) => {
    const checks: Record<string, string> = {};
    try {
      await ping(c.var.db);
      checks.d1 = "ok";
    } catch (err) {
      checks.d1 = `down: ${String(err).slice(0, 200)}`;
    }
    checks.queue = typeof c.env.SENDS?.send === "function" ? "ok" : "missing binding";
    const healthy = Object.values(checks).every((v) => v === "ok");
    return c.json({ status: healthy ? "ok" : "degraded", checks }, healthy ? 200 : 503);
  },
);
