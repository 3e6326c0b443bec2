// Per-tenant API rate limits: counted in one RateLimiter object per tenant, all keys together.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type Ask, LEASE_MS, LocalBudget, leaseSize } from "../../src/limits/budget.ts";
import { type Budget, chargeStep, gcra, messageBurst, type RateLimiter } from "../../src/limits/rate-limiter.ts";
import { ADMIN, api, json, setupTenant, unique, postWith } from "./helpers.ts";

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
      error: {
        code: "rate_limited",
        message: expect.stringContaining("5 requests per minute"),
        details: [{ path: "rateLimitPerMinute", message: "5" }],
        requestId: limited.headers.get("x-request-id"),
      },
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

describe("message limit per tenant (work, not requests)", () => {
  // The Worker with MESSAGE_LIMIT_PER_MINUTE=5: each batch item counts, whatever the request count.
  const limited = { ...env, MESSAGE_LIMIT_PER_MINUTE: "5" } as Env;
  const post = (key: string, path: string, body: unknown) => postWith(limited, path, body, { key });
  const item = (instance: string, i: number) => ({ instance, to: `5511955500${String(i).padStart(3, "0")}`, text: `lote ${i}` });

  it("counts each batch item: a batch past the budget is refused whole with 429 and Retry-After", async () => {
    const t = await setupTenant();
    const first = await post(t.key, "/v1/messages/batch", { messages: [0, 1, 2, 3].map((i) => item(t.instance, i)) });
    expect(first.status).toBe(200);
    // The request budget is far from spent; the message budget has one left.
    expect(first.headers.get("ratelimit")).toMatch(/^"tenant";r=\d{3,};/);

    const refused = await post(t.key, "/v1/messages/batch", { messages: [4, 5, 6].map((i) => item(t.instance, i)) });
    expect(refused.status).toBe(429);
    expect(await json(refused)).toEqual({
      error: {
        code: "rate_limited",
        message: expect.stringContaining("5 messages per minute reached (this request carries 3)"),
        details: [{ path: "messages", message: "limit 5 per minute" }],
        requestId: refused.headers.get("x-request-id"),
      },
    });
    // GCRA at 5 a minute frees one message every 12 s; three need two more than the one left.
    expect(Number(refused.headers.get("retry-after"))).toBe(24);
    expect(refused.headers.get("ratelimit-policy")).toBe('"tenant";q=6000;w=60, "messages";q=5;w=60');
    expect(refused.headers.get("ratelimit")).toMatch(/^"tenant";r=\d+;t=\d+, "messages";r=1;t=4[78]$/);

    // The one left goes as a single send; nothing of the refused batch was written.
    expect((await post(t.key, "/v1/messages", item(t.instance, 7))).status).toBe(202);
    expect((await post(t.key, "/v1/messages", item(t.instance, 8))).status).toBe(429);
    const written = await env.DB.prepare("SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ?").bind(t.id).first<{ n: number }>();
    expect(written?.n).toBe(5);

    // Three slots free up 36 s later (the single send took the one that was left): the batch goes.
    await advance(t.id, 36_000);
    expect((await post(t.key, "/v1/messages/batch", { messages: [4, 5, 6].map((i) => item(t.instance, i)) })).status).toBe(200);
  });

  it("charges a batch larger than the whole budget as the whole budget", () => {
    const now = 1_000_000;
    expect(gcra(0, now, 5, 500).decision).toMatchObject({ allowed: true, remaining: 0 });
    expect(gcra(now + 60_000, now, 5, 500).decision).toMatchObject({ allowed: false, retryAfterSeconds: 60 });
  });

  it("lets ten seconds of messages come at once, not the whole minute", () => {
    const now = 1_000_000;
    const burst = messageBurst(6000);
    expect(burst).toBe(1000);
    const first = gcra(0, now, 6000, 500, burst);
    const second = gcra(first.tat, now, 6000, 500, burst);
    expect(second.decision).toMatchObject({ allowed: true, remaining: 0 });
    // 100 a second sustained: the third batch of 500 goes 5 s later.
    expect(gcra(second.tat, now, 6000, 500, burst).decision).toMatchObject({ allowed: false, retryAfterSeconds: 5 });
    expect(gcra(second.tat, now + 5_000, 6000, 500, burst).decision.allowed).toBe(true);
  });
});

describe("leases: isolates spend ahead of the tenant's object, never past it", () => {
  // The tenant's object on a clock that stands still (no refill while the test runs), counting its calls.
  function tenantObject() {
    const tat: Record<Budget, number> = { requests: 0, messages: 0 };
    const object = {
      now: 1_000_000,
      calls: 0,
      ask: (async (budget, limit, cost, lease, returned) => {
        object.calls++;
        const step = chargeStep(tat[budget], object.now, budget, limit, cost, lease, returned);
        tat[budget] = step.tat;
        return step.charge;
      }) as Ask,
    };
    return object;
  }
  // Isolates with their own clock (a lease runs out on it; the object's clock does not move).
  const isolates = (n: number) => {
    const clock = { now: 5_000 };
    return { clock, budgets: Array.from({ length: n }, () => new LocalBudget(() => clock.now)) };
  };

  it("two isolates let through exactly the limit between them, with far fewer calls to the object", async () => {
    expect(leaseSize(6000)).toBe(10);
    const object = tenantObject();
    const { budgets } = isolates(2);
    let allowed = 0;
    const refusedBy = new Set<number>();
    for (let i = 0; refusedBy.size < 2 && i < 10_000; i++) {
      const k = i % 2;
      if (refusedBy.has(k)) continue;
      const d = await budgets[k]!.charge("ten_a", "requests", 6000, 1, object.ask);
      if (d.allowed) allowed++;
      else refusedBy.add(k);
    }
    expect(allowed).toBe(6000);
    expect(object.calls).toBeLessThan(6000 / 5);
  });

  it("gives a lease's unused units back with the isolate's next call once it runs out", async () => {
    const object = tenantObject();
    const { clock, budgets } = isolates(2);
    const [a, b] = budgets as [LocalBudget, LocalBudget];
    expect((await a.charge("ten_b", "requests", 6000, 1, object.ask)).allowed).toBe(true);
    // a holds 10 units ahead: b gets the rest, then is refused.
    let byB = 0;
    while ((await b.charge("ten_b", "requests", 6000, 1, object.ask)).allowed) byB++;
    expect(byB).toBe(6000 - 11);
    // a's lease runs out: its next call returns the 10, which pay for it and lease the other 9 again.
    clock.now += LEASE_MS + 1;
    const callsBefore = object.calls;
    let byA = 0;
    while ((await a.charge("ten_b", "requests", 6000, 1, object.ask)).allowed) byA++;
    expect(byA).toBe(10);
    expect(object.calls - callsBefore).toBe(2); // one call, then the one refused
    expect((await b.charge("ten_b", "requests", 6000, 1, object.ask)).allowed).toBe(false);
  });

  it("charges a batch larger than the lease at the object, with the lease given back in the same call", async () => {
    const object = tenantObject();
    const { budgets } = isolates(1);
    const [a] = budgets as [LocalBudget];
    expect((await a.charge("ten_c", "messages", 6000, 1, object.ask)).allowed).toBe(true);
    // Burst of 1,000: 1 + 10 ahead are counted; a batch of 990 still fits once the 10 come back.
    const batch = await a.charge("ten_c", "messages", 6000, 990, object.ask);
    expect(batch).toMatchObject({ allowed: true, remaining: 9 });
    let more = 0;
    while ((await a.charge("ten_c", "messages", 6000, 1, object.ask)).allowed) more++;
    expect(more).toBe(9);
  });

  it("asks the object on every request below 600 a minute, and drops a lease taken at another limit", async () => {
    expect(leaseSize(599)).toBe(0);
    const object = tenantObject();
    const { budgets } = isolates(1);
    const [a] = budgets as [LocalBudget];
    for (let i = 0; i < 5; i++) expect((await a.charge("ten_d", "requests", 5, 1, object.ask)).remaining).toBe(4 - i);
    expect(object.calls).toBe(5);
    expect((await a.charge("ten_d", "requests", 5, 1, object.ask)).allowed).toBe(false);

    // Leased at 6000 a minute, then the tenant's limit drops to 1: the held units are not spent at the new limit.
    const other = tenantObject();
    expect((await a.charge("ten_e", "requests", 6000, 1, other.ask)).allowed).toBe(true);
    other.now += 60_000;
    expect((await a.charge("ten_e", "requests", 1, 1, other.ask)).allowed).toBe(true);
    expect((await a.charge("ten_e", "requests", 1, 1, other.ask)).allowed).toBe(false);
  });
});
