// Idempotency-Key: the same key and body answer the first answer again; the same key with
// another body is 409. The key is reserved before the work so two racing requests cannot both run.
import { sql } from "drizzle-orm";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "../app-env.ts";
import { changes, runBatch } from "../db/batch.ts";
import { ApiError } from "../errors.ts";
import { sha256Hex, stableStringify } from "../ids.ts";

export type Answer = { status: ContentfulStatusCode; body: unknown; headers?: Record<string, string> };

// A reservation whose request died is taken over after this long.
const STALE_RESERVATION_MS = 60_000;

export async function idempotent(c: Context<AppEnv>, scope: string, request: unknown, run: () => Promise<Answer>): Promise<Response> {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return send(c, await run());
  if (key.length < 1 || key.length > 255) {
    throw new ApiError("invalid_request", "Idempotency-Key must be 1 to 255 characters.", [{ path: "Idempotency-Key", message: "Bad length." }]);
  }
  const db = c.var.db;
  const tenantId = c.var.tenant.id;
  const hash = await sha256Hex(stableStringify(request));
  const now = Date.now();
  const [, insert] = await runBatch(db, [
    sql`DELETE FROM idempotency_keys WHERE tenant_id = ${tenantId} AND scope = ${scope} AND key = ${key}
      AND response_status IS NULL AND created_at < ${now - STALE_RESERVATION_MS}`,
    sql`INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, created_at) VALUES (${tenantId}, ${scope}, ${key}, ${hash}, ${now})
      ON CONFLICT DO NOTHING`,
  ]);
  const reserved = changes(insert) > 0;
  if (!reserved) {
    const [prior] = await db.all<{ request_hash: string; response_status: number | null; response_body: string | null }>(
      sql`SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE tenant_id = ${tenantId} AND scope = ${scope} AND key = ${key}`,
    );
    if (!prior) throw new ApiError("conflict", "Idempotency-Key is being reused concurrently; retry shortly.");
    if (prior.request_hash !== hash) {
      throw new ApiError("conflict", "This Idempotency-Key was already used with a different request body.", [{ path: "Idempotency-Key", message: key }]);
    }
    if (prior.response_status === null || prior.response_body === null) {
      throw new ApiError("conflict", "A request with this Idempotency-Key is still in progress; retry shortly.", [], { "retry-after": "1" });
    }
    c.header("idempotent-replayed", "true");
    return c.body(prior.response_body, prior.response_status as ContentfulStatusCode, { "content-type": "application/json" });
  }
  let answer: Answer;
  try {
    answer = await run();
  } catch (err) {
    // Nothing was accepted: free the key so the client may fix the request and try again.
    await db.run(sql`DELETE FROM idempotency_keys WHERE tenant_id = ${tenantId} AND scope = ${scope} AND key = ${key}`);
    throw err;
  }
  await db.run(sql`UPDATE idempotency_keys SET response_status = ${answer.status}, response_body = ${JSON.stringify(answer.body)}
    WHERE tenant_id = ${tenantId} AND scope = ${scope} AND key = ${key}`);
  return send(c, answer);
}

function send(c: Context, answer: Answer): Response {
  return c.json(answer.body as object, answer.status, answer.headers);
}
