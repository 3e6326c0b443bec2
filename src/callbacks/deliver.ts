// Tenant callbacks, step 2: POST each event to its URL, signed with the tenant's secret:
// X-Mensageiro-Signature: sha256=<hex HMAC-SHA256 of the exact body>. Retried with backoff
// through the queue; after MAX_CALLBACK_ATTEMPTS the failure is recorded and delivery stops.
import { sql } from "drizzle-orm";
import { z } from "zod";
import { database } from "../db/client.ts";

export const MAX_CALLBACK_ATTEMPTS = 8;
const callbackJob = z.object({ seq: z.number(), eventId: z.string(), tenantId: z.string(), url: z.url() });

export async function signature(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body));
  return `sha256=${[...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export async function consumeCallbacks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const db = database(env.DB);
  for (const message of batch.messages) {
    const parsed = callbackJob.safeParse(message.body);
    if (!parsed.success) {
      message.ack();
      continue;
    }
    const job = parsed.data;
    const [row] = await db.all<{ event_id: string; type: string; version: number; occurred_at: number; data: string; secret: string }>(sql`
      SELECT e.event_id, e.type, e.version, e.occurred_at, e.data, t.callback_secret AS secret
      FROM outbox_events e JOIN tenants t ON t.id = e.tenant_id WHERE e.seq = ${job.seq}`);
    if (!row) {
      message.ack();
      continue;
    }
    const body = JSON.stringify({
      eventId: row.event_id,
      type: row.type,
      version: row.version,
      occurredAt: new Date(row.occurred_at).toISOString(),
      data: JSON.parse(row.data),
    });
    let error: string | undefined;
    try {
      const res = await fetch(job.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-mensageiro-signature": await signature(row.secret, body),
          "x-mensageiro-event-id": row.event_id,
          "x-mensageiro-event-type": row.type,
        },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      await res.body?.cancel();
      if (!res.ok) error = `HTTP ${res.status}`;
    } catch (err) {
      error = String(err);
    }
    const attempts = message.attempts;
    const status = !error ? "delivered" : attempts >= MAX_CALLBACK_ATTEMPTS ? "failed" : "retrying";
    await db.run(sql`INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, last_error, updated_at)
      VALUES (${job.eventId}, ${job.url}, ${job.tenantId}, ${status}, ${attempts}, ${error ?? null}, ${Date.now()})
      ON CONFLICT (event_id, url) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, last_error = excluded.last_error, updated_at = excluded.updated_at`);
    if (status === "retrying") message.retry({ delaySeconds: Math.min(600, 2 ** attempts) });
    else message.ack();
  }
}
