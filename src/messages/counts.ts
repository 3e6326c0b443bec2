// The message counts behind GET /v1/stats (one tenant) and GET /metrics (all tenants).
// Every read here is bounded by something other than the tenant's message count: the counts by
// status come from message_counts (kept by triggers, one row per instance), the last minute's sends
// from the partial index of sent messages, the oldest queued from the first rows of an index.
import { messageStatuses } from "../contracts/events.ts";
import type { Db } from "../db/client.ts";
import { deadLetters, messageCounts as countsTable, messages } from "../db/queries/index.ts";

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
  const [rows, dead, oldestAt, lastMinute] = await Promise.all([
    countsTable.ofTenant(db, tenantId),
    deadLetters.countOpen(db, tenantId),
    messages.oldestQueuedReadyAt(db, tenantId, OLDEST_QUEUED_SAMPLE),
    messages.sentSinceByInstance(db, tenantId, now - 60_000),
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
  return {
    byStatus: [...byKey.values()],
    deadLetters: dead,
    oldestQueuedAgeSeconds: oldestAt ? Math.max(0, (now - oldestAt) / 1000) : 0,
    sentLastMinute: lastMinute.reduce((sum, r) => sum + r.n, 0),
    sentLastMinuteByInstance: Object.fromEntries(lastMinute.map((r) => [r.instance, r.n])),
  };
}
