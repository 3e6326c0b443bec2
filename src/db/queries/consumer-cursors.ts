// The consumer_cursors table: how far each named consumer of a tenant's outbox (the Kafka bridge,
// the callback dispatch) has read.
import { and, eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "../client.ts";
import { consumerCursors } from "../schema.ts";

/** The consumer's cursor: the last seq it acknowledged, 0 before its first ack. */
export async function cursorOf(db: Db, tenantId: string, consumer: string): Promise<number> {
  return (await find(db, tenantId, consumer)) ?? 0;
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

/** Moves a cursor from `from` to `to` only if it still stands at `from` (or, with no cursor yet,
 *  creates it): changes() says whether this caller won the range. Un-awaited, for a batch. */
export function compareAndSet(tenantId: string, consumer: string, existed: boolean, from: number, to: number, at: number): SQL {
  return existed
    ? sql`UPDATE consumer_cursors SET seq = ${to}, updated_at = ${at} WHERE tenant_id = ${tenantId} AND consumer = ${consumer} AND seq = ${from}`
    : sql`INSERT INTO consumer_cursors (tenant_id, consumer, seq, updated_at) VALUES (${tenantId}, ${consumer}, ${to}, ${at}) ON CONFLICT DO NOTHING`;
}

/** The cursor when there is one (undefined before the first write). */
export async function find(db: Db, tenantId: string, consumer: string): Promise<number | undefined> {
  const [row] = await db
    .select({ seq: consumerCursors.seq })
    .from(consumerCursors)
    .where(and(eq(consumerCursors.tenantId, tenantId), eq(consumerCursors.consumer, consumer)));
  return row?.seq;
}
