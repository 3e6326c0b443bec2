// The parked_webhooks table: webhook jobs whose retries ran out, kept for an operator to replay.
import { and, asc, count, eq, inArray, isNull } from "drizzle-orm";
import type { Db } from "../client.ts";
import { parkedWebhooks } from "../schema.ts";

export type ParkedRow = typeof parkedWebhooks.$inferSelect;

/** Parks a job; a second parking of the same queue message changes nothing. */
export async function park(db: Db, job: { id: string; tenantId: string | null; event: string | null; job: unknown; attempts: number; parkedAt: number }) {
  await db.insert(parkedWebhooks).values(job).onConflictDoNothing();
}

/** Jobs not replayed yet, the oldest first (only `ids`, when given). */
export async function waiting(db: Db, limit: number, ids?: string[]): Promise<ParkedRow[]> {
  const pending = isNull(parkedWebhooks.replayedAt);
  return db
    .select()
    .from(parkedWebhooks)
    .where(ids ? and(pending, inArray(parkedWebhooks.id, ids)) : pending)
    .orderBy(asc(parkedWebhooks.parkedAt))
    .limit(limit);
}

export async function markReplayed(db: Db, id: string, at: number): Promise<void> {
  await db.update(parkedWebhooks).set({ replayedAt: at, lastError: null }).where(eq(parkedWebhooks.id, id));
}

export async function markFailed(db: Db, id: string, error: string): Promise<void> {
  await db.update(parkedWebhooks).set({ lastError: error }).where(eq(parkedWebhooks.id, id));
}

export async function countWaiting(db: Db): Promise<number> {
  const [row] = await db.select({ n: count() }).from(parkedWebhooks).where(isNull(parkedWebhooks.replayedAt));
  return row?.n ?? 0;
}
