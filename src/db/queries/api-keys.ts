// The api_keys table: bearer keys stored as SHA-256 hashes; a key sees exactly one tenant.
import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { apiKeys } from "../schema.ts";

// The key's tenant with the settings a request needs, read through the key's hash (a JOIN: it
// answers about the key, so it lives here).
const ownerRow = z.object({
  id: z.string(),
  name: z.string(),
  maxAttempts: z.number(),
  rateLimitPerMinute: z.number().nullable(),
  keyId: z.string(),
});
export type KeyOwner = z.infer<typeof ownerRow>;

/** The tenant of a live (not revoked) key, by the key's hash; undefined for an unknown or revoked key. */
export async function ownerOfHash(db: Db, hash: string): Promise<KeyOwner | undefined> {
  const rows = await db.all(sql`
    SELECT t.id, t.name, t.max_attempts AS maxAttempts, t.rate_limit_per_minute AS rateLimitPerMinute, k.id AS keyId
    FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
    WHERE k.key_hash = ${hash} AND k.revoked_at IS NULL`);
  return rows[0] === undefined ? undefined : ownerRow.parse(rows[0]);
}

// Within D1's 100 bound parameters a statement.
const ID_CHUNK = 90;

/** Of these key ids, the ones not revoked (and not deleted). */
export async function liveIds(db: Db, keyIds: string[]): Promise<Set<string>> {
  const live = new Set<string>();
  for (let i = 0; i < keyIds.length; i += ID_CHUNK) {
    const chunk = keyIds.slice(i, i + ID_CHUNK);
    const rows = await db
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(inArray(apiKeys.id, chunk), isNull(apiKeys.revokedAt)));
    for (const r of rows) live.add(r.id);
  }
  return live;
}

/** Stores a new key (its hash only); un-awaited, so a new tenant's first key goes in the tenant's batch. */
export function issue(db: Db, key: { id: string; tenantId: string; hash: string; prefix: string; createdAt: number }) {
  return db.insert(apiKeys).values({ id: key.id, tenantId: key.tenantId, keyHash: key.hash, prefix: key.prefix, createdAt: key.createdAt });
}

/** Revokes a tenant's live key; the revoked key's id and hash, or undefined when there was no such live key. */
export async function revoke(db: Db, tenantId: string, keyId: string, at: number): Promise<{ id: string; keyHash: string } | undefined> {
  const [row] = await db
    .update(apiKeys)
    .set({ revokedAt: at })
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.tenantId, tenantId), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id, keyHash: apiKeys.keyHash });
  return row;
}
