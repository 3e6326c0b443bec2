// The consumer_cursors table: how far each named consumer of a tenant's outbox (the Kafka bridge,
// the callback dispatch) has read.
import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../client.ts";
import { consumerCursors } from "../schema.ts";

/** The consumer's cursor: the last seq it acknowledged, 0 before its first ack. */
export async function cursorOf(db: Db, tenantId: string, consumer: string): Promise<number> {
  const [row] = await db
    .select({ seq: consumerCursors.seq })
    .from(consumerCursors)
    .where(and(eq(consumerCursors.tenantId, tenantId), eq(consumerCursors.consumer, consumer)));
  return row?.seq ?? 0;
}

/** Moves the cursor to seq; only forward: a late or repeated ack cannot make events reappear. */
export async function advance(db: Db, tenantId: string, consumer: string, seq: number, at: number): Promise<void> {
  await db
    .insert(consumerCursors)
    .values({ tenantId, consumer, seq, updatedAt: at })
    .onConflictDoUpdate({
      target: [consumerCursors.tenantId, consumerCursors.consumer],
      set: { seq: sql`MAX(seq, excluded.seq)`, updatedAt: sql`excluded.updated_at` },
    });
}
