// GET /v1/stats — counts by status (total and per instance), dead letters, oldest queued age,
// and sends in the last minute, for the calling tenant.
import { sql } from "drizzle-orm";
import { Hono } from "hono";
import type { AppEnv } from "../app-env.ts";

export const statsRoutes = new Hono<AppEnv>();

statsRoutes.get("/", async (c) => {
  const tenantId = c.var.tenant.id;
  const now = Date.now();
  const db = c.var.db;
  const [byStatus, deadLetters, oldestQueued, lastMinute] = await Promise.all([
    db.all<{ instance: string; status: string; n: number }>(sql`SELECT instance_name AS instance, status, COUNT(*) AS n FROM messages WHERE tenant_id = ${tenantId} GROUP BY instance_name, status`),
    db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM dead_letters WHERE tenant_id = ${tenantId} AND replayed_at IS NULL`),
    db.all<{ at: number | null }>(sql`SELECT MIN(ready_at) AS at FROM messages WHERE tenant_id = ${tenantId} AND status = 'queued'`),
    db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ${tenantId} AND sent_at >= ${now - 60_000}`),
  ]);
  const total: Record<string, number> = {};
  const byInstance: Record<string, Record<string, number>> = {};
  for (const r of byStatus) {
    total[r.status] = (total[r.status] ?? 0) + r.n;
    (byInstance[r.instance] ??= {})[r.status] = r.n;
  }
  const oldest = oldestQueued[0]?.at;
  return c.json({
    messages: { total, byInstance },
    deadLetters: deadLetters[0]?.n ?? 0,
    oldestQueuedAgeSeconds: oldest ? Math.max(0, Math.round((now - oldest) / 1000)) : 0,
    sentLastMinute: lastMinute[0]?.n ?? 0,
  });
});
