// Tenant callbacks, step 1: move outbox events that have a callback URL onto the callbacks queue.
// One global cursor, advanced with a compare-and-set, so two dispatchers never hand out the same range.
import { sql } from "drizzle-orm";
import { database } from "../db/client.ts";

const CURSOR_TENANT = "*";
const CURSOR_NAME = "callbacks";
const PAGE = 100;

export type CallbackJob = { seq: number; eventId: string; tenantId: string; url: string };

export async function dispatchCallbacks(env: Env): Promise<number> {
  const db = database(env.DB);
  let handed = 0;
  for (let round = 0; round < 20; round++) {
    const [cursor] = await db.all<{ seq: number }>(sql`SELECT seq FROM consumer_cursors WHERE tenant_id = ${CURSOR_TENANT} AND consumer = ${CURSOR_NAME}`);
    const from = cursor?.seq ?? 0;
    const events = await db.all<{ seq: number; event_id: string; tenant_id: string; callback_url: string | null }>(
      sql`SELECT seq, event_id, tenant_id, callback_url FROM outbox_events WHERE seq > ${from} AND callback_url IS NOT NULL ORDER BY seq LIMIT ${PAGE}`,
    );
    if (events.length === 0) return handed;
    const to = events.at(-1)!.seq;
    const claimed = cursor
      ? await db.run(
          sql`UPDATE consumer_cursors SET seq = ${to}, updated_at = ${Date.now()} WHERE tenant_id = ${CURSOR_TENANT} AND consumer = ${CURSOR_NAME} AND seq = ${from}`,
        )
      : await db.run(
          sql`INSERT INTO consumer_cursors (tenant_id, consumer, seq, updated_at) VALUES (${CURSOR_TENANT}, ${CURSOR_NAME}, ${to}, ${Date.now()}) ON CONFLICT DO NOTHING`,
        );
    if ((claimed.meta?.changes ?? 0) === 0) continue; // another dispatcher took this range
    const jobs: CallbackJob[] = events
      .filter((e) => e.callback_url)
      .map((e) => ({ seq: e.seq, eventId: e.event_id, tenantId: e.tenant_id, url: e.callback_url! }));
    for (let i = 0; i < jobs.length; i += 100) {
      await env.CALLBACKS.sendBatch(jobs.slice(i, i + 100).map((body) => ({ body, contentType: "json" as const })));
    }
    handed += jobs.length;
  }
  return handed;
}
