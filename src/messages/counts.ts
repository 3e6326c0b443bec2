// The message counts behind GET /v1/stats (one tenant) and GET /metrics (all tenants).
// Every read here is bounded by something other than the tenant's message count: the counts by
// status come from message_counts (kept by triggers, one row per instance), the last minute's sends
// from the partial index of sent messages, the oldest queued from the first rows of an index.
import { eq, sql } from "drizzle-orm";
import { messageStatuses } from "../contracts/events.ts";
import type { Db } from "../db/client.ts";
import { messageCounts as countsTable } from "../db/schema.ts";

export type MessageCounts = {
  byStatus: { instance: string; status: string; n: number }[];
  deadLetters: number;
  oldestQueuedAgeSeconds: number;
  sentLastMinute: number;
  sentLastMinuteByInstance: Record<string, number>;
};

// Queued messages looked at for the oldest: the first ones by creation (a queued message was ready
// at its creation, or at its sendAt for one scheduled before).
const OLDEST_QUEUED_SAMPLE = 100;

export async function messageCounts(db: Db, tenantId: string | undefined, now = Date.now()): Promise<MessageCounts> {
  const tenant = (column = "tenant_id") => (tenantId ? sql`${sql.raw(column)} = ${tenantId}` : sql`1`);
  const [rows, dead, oldest, lastMinute] = await Promise.all([
    tenantId ? db.select().from(countsTable).where(eq(countsTable.tenantId, tenantId)) : db.select().from(countsTable),
    db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM dead_letters WHERE ${tenant()} AND replayed_at IS NULL`),
    db.all<{ at: number | null }>(
      sql`SELECT MIN(ready_at) AS at FROM (SELECT ready_at FROM messages WHERE ${tenant()} AND status = 'queued' ORDER BY created_at LIMIT ${OLDEST_QUEUED_SAMPLE})`,
    ),
    db.all<{ instance: string; n: number }>(
      sql`SELECT instance_name AS instance, COUNT(*) AS n FROM messages WHERE ${tenant()} AND sent_at >= ${now - 60_000} GROUP BY instance_name`,
    ),
  ]);
  // Summed across tenants for /metrics (instance names are per tenant).
  const byKey = new Map<string, { instance: string; status: string; n: number }>();
  for (const row of rows) {
    for (const status of messageStatuses) {
      if (row[status] === 0) continue;
      const key = `${row.instanceName}\u0000${status}`;
      const entry = byKey.get(key) ?? { instance: row.instanceName, status, n: 0 };
      entry.n += row[status];
      byKey.set(key, entry);
    }
  }
  const oldestAt = oldest[0]?.at;
  return {
    byStatus: [...byKey.values()],
    deadLetters: dead[0]?.n ?? 0,
    oldestQueuedAgeSeconds: oldestAt ? Math.max(0, (now - oldestAt) / 1000) : 0,
    sentLastMinute: lastMinute.reduce((sum, r) => sum + r.n, 0),
    sentLastMinuteByInstance: Object.fromEntries(lastMinute.map((r) => [r.instance, r.n])),
  };
}
