// The message counts behind GET /v1/stats (one tenant) and GET /metrics (all tenants).
import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";

export type MessageCounts = {
  byStatus: { instance: string; status: string; n: number }[];
  deadLetters: number;
  oldestQueuedAgeSeconds: number;
  sentLastMinute: number;
};

export async function messageCounts(db: Db, tenantId: string | undefined, now = Date.now()): Promise<MessageCounts> {
  const tenant = (column = "tenant_id") => (tenantId ? sql`${sql.raw(column)} = ${tenantId}` : sql`1`);
  const [byStatus, dead, oldest, lastMinute] = await Promise.all([
    db.all<{ instance: string; status: string; n: number }>(
      sql`SELECT instance_name AS instance, status, COUNT(*) AS n FROM messages WHERE ${tenant()} GROUP BY instance_name, status`,
    ),
    db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM dead_letters WHERE ${tenant()} AND replayed_at IS NULL`),
    db.all<{ at: number | null }>(sql`SELECT MIN(ready_at) AS at FROM messages WHERE ${tenant()} AND status = 'queued'`),
    db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM messages WHERE ${tenant()} AND sent_at >= ${now - 60_000}`),
  ]);
  const oldestAt = oldest[0]?.at;
  return {
    byStatus,
    deadLetters: dead[0]?.n ?? 0,
    oldestQueuedAgeSeconds: oldestAt ? Math.max(0, (now - oldestAt) / 1000) : 0,
    sentLastMinute: lastMinute[0]?.n ?? 0,
  };
}
