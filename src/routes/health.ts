// GET /health: no auth; D1 and queue binding checks.
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import type { AppEnv } from "../app-env.ts";

export const healthRoutes = new Hono<AppEnv>();

healthRoutes.get("/", async (c) => {
  const checks: Record<string, string> = {};
  try {
    await c.var.db.run(sql`SELECT 1`);
    checks.d1 = "ok";
  } catch (err) {
    checks.d1 = `down: ${String(err).slice(0, 200)}`;
  }
  checks.queue = typeof c.env.SENDS?.send === "function" ? "ok" : "missing binding";
  const healthy = Object.values(checks).every((v) => v === "ok");
  return c.json({ status: healthy ? "ok" : "degraded", checks }, healthy ? 200 : 503);
});
