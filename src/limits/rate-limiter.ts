// RateLimiter Durable Object: one per tenant, so a tenant's budget is counted in one place
// whichever isolate or key a request comes through, and one tenant's flood only ever queues on
// its own object.
//
// GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): `limit` requests
// per window, spread evenly, with a burst of the whole window. Unlike a fixed window it never lets
// 2×limit through around a window edge.
//
// The state is kept in memory only, on purpose: an object that sits idle for longer than the
// window would have a full bucket anyway, and the runtime only evicts idle objects. A reset (a
// deploy) hands a tenant at most one extra burst; not writing storage keeps each call off the
// output gate and the storage bill.
import { DurableObject } from "cloudflare:workers";

export const WINDOW_SECONDS = 60;
const WINDOW_MS = WINDOW_SECONDS * 1000;

export type RateDecision = {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the bucket is full again (the RateLimit field's `t`). */
  resetSeconds: number;
  /** Seconds until the next request would be allowed (0 when allowed). */
  retryAfterSeconds: number;
};

/** One GCRA step of `cost` units (a request is one; a batch of messages is one per message), with
 *  a burst of `burst` units (the whole window's by default). `tat` is the theoretical arrival time;
 *  returns the decision and the new tat. A cost above the burst counts as the burst, so a large
 *  batch waits for a full bucket instead of never going. */
export function gcra(tat: number, now: number, limit: number, cost = 1, burst = limit): { decision: RateDecision; tat: number } {
  const interval = WINDOW_MS / limit;
  const tolerance = burst >= limit ? WINDOW_MS : interval * burst;
  const base = Math.max(tat, now);
  const next = base + interval * Math.min(Math.max(cost, 1), burst, limit);
  const allowed = next - now <= tolerance;
  const newTat = allowed ? next : tat;
  const used = Math.max(0, newTat - now);
  return {
    tat: newTat,
    decision: {
      allowed,
      limit,
      remaining: Math.max(0, Math.floor((tolerance - used) / interval)),
      resetSeconds: Math.ceil(used / 1000),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((next - tolerance - now) / 1000)),
    },
  };
}

/** Messages that may come at once: ten seconds' worth, and at least one full batch (500), so a
 *  tenant cannot drop a whole minute of messages on the shared database in one go. */
export const messageBurst = (limit: number) => Math.min(limit, Math.max(500, Math.ceil(limit / 6)));

export class RateLimiter extends DurableObject<Env> {
  // Milliseconds added to Date.now(): tests move this object's clock forward instead of sleeping.
  clockOffsetMs = 0;
  private tat = 0;
  private messagesTat = 0;

  /** Counts one request against `limit` per minute. The limit comes with each call, so a changed
   *  tenant setting applies on the next request without a second call to configure the object. */
  take(limit: number): RateDecision {
    const step = gcra(this.tat, Date.now() + this.clockOffsetMs, limit);
    this.tat = step.tat;
    return step.decision;
  }

  /** Counts `messages` accepted in one request against `limit` messages per minute: the work a
   *  request brings, which the request count alone does not see (a batch carries 500). */
  takeMessages(limit: number, messages: number): RateDecision {
    const step = gcra(this.messagesTat, Date.now() + this.clockOffsetMs, limit, messages, messageBurst(limit));
    this.messagesTat = step.tat;
    return step.decision;
  }
}
