// Per-tenant API rate limits: counted in one RateLimiter object per tenant, all keys together.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { gcra, type RateLimiter } from "../../src/limits/rate-limiter.ts";
import { ADMIN, api, json, unique } from "./helpers.ts";

async function tenantWithLimit(rateLimitPerMinute?: number) {
  const res = await api("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name: unique("rl"), rateLimitPerMinute } });
  expect(res.status).toBe(201);
  const body = await json(res);
  return { id: body.tenant.id as string, key: body.apiKey as string, tenant: body.tenant };
}

const limiterOf = (tenantId: string) => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(tenantId));

/** Moves the tenant's limiter clock forward: the window passes without sleeping. */
async function advance(tenantId: string, ms: number) {
  await runInDurableObject(limiterOf(tenantId), (limiter: RateLimiter) => {
    limiter.clockOffsetMs += ms;
  });
}

describe("rate limits per tenant", () => {
  it("answers 429 in the error shape at limit + 1, with Retry-After and the RateLimit fields on every answer", async () => {
    const t = await tenantWithLimit(5);
    expect(t.tenant).toMatchObject({ rateLimitPerMinute: 5, rateLimitIsDefault: false });
    for (let i = 0; i < 5; i++) {
      const res = await api("/v1/instances", { key: t.key });
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-policy")).toBe('"tenant";q=5;w=60');
      expect(res.headers.get("ratelimit")).toMatch(new RegExp(`^"tenant";r=${4 - i};t=\\d+$`));
    }
    const limited = await api("/v1/instances", { key: t.key });
    expect(limited.status).toBe(429);
    expect(await json(limited)).toEqual({
      error: { code: "rate_limited", message: expect.stringContaining("5 requests per minute"), details: [{ path: "rateLimitPerMinute", message: "5" }] },
    });
    // GCRA at 5 a minute frees one request every 12 s.
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(11);
    expect(Number(limited.headers.get("retry-after"))).toBeLessThanOrEqual(12);
    expect(limited.headers.get("ratelimit")).toMatch(/^"tenant";r=0;t=(59|60)$/);
    expect(limited.headers.get("ratelimit-policy")).toBe('"tenant";q=5;w=60');
  });

  it("counts all of a tenant's keys together, so a second key is no way around the limit", async () => {
    const t = await tenantWithLimit(3);
    const second = await json(await api(`/v1/admin/tenants/${t.id}/keys`, { method: "POST", key: ADMIN }));
    const answers: number[] = [];
    for (const key of [t.key, second.apiKey, t.key, second.apiKey, second.apiKey]) answers.push((await api("/v1/instances", { key })).status);
    expect(answers).toEqual([200, 200, 200, 429, 429]);
  });

  it("recovers after the window, and one tenant's flood leaves another untouched", async () => {
    const flooded = await tenantWithLimit(2);
    const other = await tenantWithLimit(2);
    for (let i = 0; i < 2; i++) expect((await api("/v1/instances", { key: flooded.key })).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await api("/v1/instances", { key: flooded.key })).status).toBe(429);
    // Refused requests spend nothing: the other tenant has its whole budget.
    const otherRes = await api("/v1/instances", { key: other.key });
    expect(otherRes.status).toBe(200);
    expect(otherRes.headers.get("ratelimit")).toMatch(/^"tenant";r=1;/);

    await advance(flooded.id, 30_000);
    const half = await api("/v1/instances", { key: flooded.key });
    expect(half.status).toBe(200);
    expect(half.headers.get("ratelimit")).toMatch(/^"tenant";r=0;/);
    await advance(flooded.id, 60_000);
    for (let i = 0; i < 2; i++) expect((await api("/v1/instances", { key: flooded.key })).status).toBe(200);
    expect((await api("/v1/instances", { key: flooded.key })).status).toBe(429);
  });

  it("applies PATCH /v1/admin/tenants/:id at once, and null goes back to the default", async () => {
    const t = await tenantWithLimit();
    expect(t.tenant).toMatchObject({ rateLimitPerMinute: 6000, rateLimitIsDefault: true });
    expect((await api("/v1/instances", { key: t.key })).headers.get("ratelimit-policy")).toBe('"tenant";q=6000;w=60');

    const patched = await api(`/v1/admin/tenants/${t.id}`, { method: "PATCH", key: ADMIN, json: { rateLimitPerMinute: 1, maxAttempts: 7 } });
    expect(patched.status).toBe(200);
    expect((await json(patched)).tenant).toMatchObject({ id: t.id, rateLimitPerMinute: 1, maxAttempts: 7, rateLimitIsDefault: false });
    const row = await env.DB.prepare("SELECT rate_limit_per_minute, max_attempts FROM tenants WHERE id = ?").bind(t.id).first();
    expect(row).toEqual({ rate_limit_per_minute: 1, max_attempts: 7 });
    // At 1 a minute (with the window since the first request passed): one more request, then over.
    await advance(t.id, 60_000);
    expect((await api("/v1/instances", { key: t.key })).status).toBe(200);
    const limited = await api("/v1/instances", { key: t.key });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("ratelimit-policy")).toBe('"tenant";q=1;w=60');

    const reset = await json(await api(`/v1/admin/tenants/${t.id}`, { method: "PATCH", key: ADMIN, json: { rateLimitPerMinute: null } }));
    expect(reset.tenant).toMatchObject({ rateLimitPerMinute: 6000, rateLimitIsDefault: true });
    expect((await api("/v1/instances", { key: t.key })).status).toBe(200);
  });

  it("refuses bad PATCH input and unknown tenants in the error shape; admin token only", async () => {
    const t = await tenantWithLimit(10);
    for (const body of [{}, { rateLimitPerMinute: 0 }, { rateLimitPerMinute: 1.5 }, { rateLimitPerMinute: "10" }, { callbackSecret: "x" }]) {
      const res = await api(`/v1/admin/tenants/${t.id}`, { method: "PATCH", key: ADMIN, json: body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await json(res)).error.code).toBe("invalid_request");
    }
    expect((await api("/v1/admin/tenants/ten_nope", { method: "PATCH", key: ADMIN, json: { rateLimitPerMinute: 5 } })).status).toBe(404);
    expect((await api(`/v1/admin/tenants/${t.id}`, { method: "PATCH", key: t.key, json: { rateLimitPerMinute: 100000 } })).status).toBe(401);
    const created = await api("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name: "x", rateLimitPerMinute: -1 } });
    expect(created.status).toBe(400);
    const row = await env.DB.prepare("SELECT rate_limit_per_minute FROM tenants WHERE id = ?").bind(t.id).first();
    expect(row).toEqual({ rate_limit_per_minute: 10 });
  });

  it("puts the RateLimit fields on error answers too, and on the compatibility routes", async () => {
    const t = await tenantWithLimit(50);
    const missing = await api("/v1/messages/msg_01aaaaaaaaaaaaaaaaaaaaaaaa", { key: t.key });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("ratelimit")).toMatch(/^"tenant";r=49;t=\d+$/);
    const compat = await api("/api/whatsapp/send-message", { method: "POST", key: t.key, json: {} });
    expect(compat.status).toBe(400);
    expect(compat.headers.get("ratelimit")).toMatch(/^"tenant";r=48;/);
  });
});

describe("GCRA step", () => {
  it("lets `limit` through at once, then one every window/limit", () => {
    let tat = 0;
    const now = 1_000_000;
    const allowed = [];
    for (let i = 0; i < 12; i++) {
      const step = gcra(tat, now, 10);
      tat = step.tat;
      allowed.push(step.decision.allowed);
    }
    expect(allowed).toEqual([...Array(10).fill(true), false, false]);
    expect(gcra(tat, now + 5_999, 10).decision.allowed).toBe(false);
    expect(gcra(tat, now + 6_000, 10).decision).toMatchObject({ allowed: true, remaining: 0 });
    expect(gcra(tat, now + 60_000, 10).decision).toMatchObject({ allowed: true, remaining: 9, resetSeconds: 6 });
  });
});
