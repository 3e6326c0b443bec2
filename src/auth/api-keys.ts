// Bearer API keys: stored as SHA-256 hashes only; a key sees exactly one tenant.
import { createMiddleware } from "hono/factory";
import type { AppEnv, Tenant } from "../app-env.ts";
import type { Db } from "../db/client.ts";
import { apiKeys } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { randomToken, sha256Hex } from "../ids.ts";
import { TtlCache } from "../ttl-cache.ts";

export const KEY_PREFIX = "mgo_";

export async function newApiKey(): Promise<{ key: string; hash: string; prefix: string }> {
  const key = `${KEY_PREFIX}${randomToken(24)}`;
  return { key, hash: await sha256Hex(key), prefix: key.slice(0, 10) };
}

export function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

// Valid keys are remembered per isolate for a short while: one D1 read saved on every request.
// A revocation is seen at once by the isolate that made it and within KEY_CACHE_MS by the others.
const KEY_CACHE_MS = 30_000;
const keyCache = new TtlCache<string, { tenant: Tenant; keyId: string }>(KEY_CACHE_MS, 10_000);

export function forgetKey(hash: string) {
  keyCache.delete(hash);
}

/** A tenant's settings changed: this isolate reads them again at once (others within KEY_CACHE_MS). */
export function forgetTenant(tenantId: string) {
  keyCache.deleteWhere((entry) => entry.tenant.id === tenantId);
}

/** The tenant a key belongs to and the key's id, or undefined for an unknown or revoked key. */
export async function ownerOfKey(db: Db, key: string): Promise<{ tenant: Tenant; keyId: string } | undefined> {
  const hash = await sha256Hex(key);
  const cached = keyCache.get(hash);
  if (cached) return cached;
  const row = await apiKeys.ownerOfHash(db, hash);
  if (!row) return undefined;
  const { keyId, ...tenant } = row;
  keyCache.set(hash, { tenant, keyId });
  return { tenant, keyId };
}

/** Of these key ids, the ones not revoked (and not deleted). */
export function liveKeyIds(db: Db, keyIds: string[]): Promise<Set<string>> {
  return apiKeys.liveIds(db, keyIds);
}

export const requireApiKey = createMiddleware<AppEnv>(async (c, next) => {
  const key = bearer(c.req.header("authorization"));
  if (!key) throw new ApiError("unauthorized", "Missing API key: send Authorization: Bearer <key>.");
  const owner = await ownerOfKey(c.var.db, key);
  if (!owner) throw new ApiError("unauthorized", "Unknown or revoked API key.");
  c.set("tenant", owner.tenant);
  c.set("apiKeyId", owner.keyId);
  await next();
});

// Constant-time comparison so the admin token cannot be guessed byte by byte.
export async function tokenMatches(given: string | undefined, expected: string | undefined): Promise<boolean> {
  if (!given || !expected) return false;
  const [a, b] = await Promise.all([sha256Hex(given), sha256Hex(expected)]);
  const enc = new TextEncoder();
  return crypto.subtle.timingSafeEqual(enc.encode(a), enc.encode(b));
}

export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  if (!(await tokenMatches(bearer(c.req.header("authorization")), c.env.ADMIN_TOKEN))) {
    throw new ApiError("unauthorized", "Admin token required.");
  }
  await next();
});
