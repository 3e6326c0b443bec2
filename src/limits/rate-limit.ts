// Per-tenant API rate limit: counted by the tenant's RateLimiter object (through this isolate's
// short lease, budget.ts), answered with the IETF RateLimit
// fields (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy: "tenant";q=…;w=…` and
// `RateLimit: "tenant";r=…;t=…`), and 429 with Retry-After once the budget is spent.
//
// Counted per tenant, not per key: the setting belongs to the tenant, and a per-key count would
// let a tenant multiply its budget by issuing itself more keys.
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../app-env.ts";
import { config } from "../config.ts";
import { ApiError } from "../errors.ts";
import { errorField, log } from "../observability/log.ts";
import { type Ask, LocalBudget } from "./budget.ts";
import { type Budget, type RateDecision, WINDOW_SECONDS } from "./rate-limiter.ts";

const budgets = new LocalBudget();

function charge(c: Context<AppEnv>, budget: Budget, limit: number, cost: number): Promise<RateDecision> {
  const tenantId = c.var.tenant.id;
  const ask: Ask = (...args) => c.env.RATE_LIMITER.get(c.env.RATE_LIMITER.idFromName(tenantId)).charge(...args);
  return budgets.charge(tenantId, budget, limit, cost, ask);
}

export function rateLimitHeaders(d: RateDecision, policy = "tenant"): Record<string, string> {
  return {
    "ratelimit-policy": `"${policy}";q=${d.limit};w=${WINDOW_SECONDS}`,
    ratelimit: `"${policy}";r=${d.remaining};t=${d.resetSeconds}`,
  };
}

const overloaded = (err: unknown) => err instanceof Error && "overloaded" in err && err.overloaded === true;

export const rateLimit = createMiddleware<AppEnv>(async (c, next) => {
  const tenant = c.var.tenant;
  const limit = tenant.rateLimitPerMinute ?? config(c.env).DEFAULT_RATE_LIMIT_PER_MINUTE;
  let decision: RateDecision | undefined;
  try {
    decision = await charge(c, "requests", limit, 1);
  } catch (err) {
    // A tenant flooding its own limiter past what one object takes is over any sane limit.
    if (overloaded(err)) throw new ApiError("rate_limited", "Too many requests; slow down.", [], { "retry-after": "1" });
    // Otherwise the limiter is unreachable: serve the request rather than fail the API with it.
    log("warn", "rate limiter unavailable; request let through", { tenant: tenant.id, error: errorField(err) });
  }
  if (decision && !decision.allowed) {
    throw new ApiError(
      "rate_limited",
      `Rate limit of ${decision.limit} requests per minute reached; retry in ${decision.retryAfterSeconds} s.`,
      [{ path: "rateLimitPerMinute", message: String(decision.limit) }],
      { "retry-after": String(decision.retryAfterSeconds), ...rateLimitHeaders(decision) },
    );
  }
  await next();
  // A WebSocket upgrade (101) keeps its own headers; everything else gets the fields.
  if (decision && c.res.status !== 101) {
    // A refusal by the message budget carries its own policy: both stand, as the fields' list allows.
    for (const [name, value] of Object.entries(rateLimitHeaders(decision))) {
      const other = c.res.headers.get(name);
      c.res.headers.set(name, other && !other.startsWith('"tenant"') ? `${value}, ${other}` : value);
    }
  }
});

/** Charges the messages a request brings (one per batch item) to the tenant's messages-per-minute
 *  budget, beside its request budget: at its request limit a tenant could otherwise hand the one D1
 *  500 messages a request. Over the budget: 429 with Retry-After, nothing accepted. */
export async function chargeMessages(c: Context<AppEnv>, messages: number): Promise<void> {
  const limit = config(c.env).MESSAGE_LIMIT_PER_MINUTE;
  let decision: RateDecision | undefined;
  try {
    decision = await charge(c, "messages", limit, messages);
  } catch (err) {
    if (overloaded(err)) throw new ApiError("rate_limited", "Too many requests; slow down.", [], { "retry-after": "1" });
    log("warn", "rate limiter unavailable; messages let through", { tenant: c.var.tenant.id, error: errorField(err) });
  }
  if (decision && !decision.allowed) {
    throw new ApiError(
      "rate_limited",
      `Message limit of ${decision.limit} messages per minute reached (this request carries ${messages}); retry in ${decision.retryAfterSeconds} s.`,
      [{ path: "messages", message: `limit ${decision.limit} per minute` }],
      { "retry-after": String(decision.retryAfterSeconds), ...rateLimitHeaders(decision, "messages") },
    );
  }
}
