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

/** Takes back `units` granted earlier and never used (an isolate's lease that ran out): the object
 *  counts them as not spent. Never earlier than `now`: a bucket is never fuller than full. */
export function giveBack(tat: number, now: number, limit: number, units: number): number {
  return units > 0 ? Math.max(now, tat - (WINDOW_MS / limit) * units) : tat;
}

/** Up to `want` more units, granted at once if the bucket holds them (none otherwise): what an
 *  isolate may hand out on its own for a short while. Returns how many and the new tat. */
export function grantAhead(tat: number, now: number, limit: number, want: number, burst = limit): { units: number; tat: number } {
  if (want <= 0) return { units: 0, tat };
  const interval = WINDOW_MS / limit;
  const tolerance = burst >= limit ? WINDOW_MS : interval * burst;
  const base = Math.max(tat, now);
  const units = Math.max(0, Math.min(want, Math.floor((tolerance - (base - now)) / interval)));
  return { units, tat: units > 0 ? base + interval * units : tat };
}

/** Messages that may come at once: ten seconds' worth, and at least one full batch (500), so a
 *  tenant cannot drop a whole minute of messages on the shared database in one go. */
export const messageBurst = (limit: number) => Math.min(limit, Math.max(500, Math.ceil(limit / 6)));

/** The two budgets of a tenant: requests, and the messages they carry. */
export type Budget = "requests" | "messages";

/** One charge and what came with it: `leased` units more, already counted here, for the caller's
 *  isolate to hand out itself. */
export type Charge = { decision: RateDecision; leased: number };

/** `returned` units an isolate leased earlier at this same limit and did not use come back first;
 *  then `cost` is charged; when that is allowed, up to `lease` more units are counted now and
 *  granted to the caller. */
export function chargeStep(
  tat: number,
  now: number,
  budget: Budget,
  limit: number,
  cost: number,
  lease: number,
  returned: number,
): { charge: Charge; tat: number } {
  const burst = budget === "messages" ? messageBurst(limit) : limit;
  const step = gcra(giveBack(tat, now, limit, returned), now, limit, cost, burst);
  const ahead = step.decision.allowed ? grantAhead(step.tat, now, limit, lease, burst) : { units: 0, tat: step.tat };
  // What the object has left once the lease is counted: the isolate adds back what it holds.
  const remaining = Math.max(0, step.decision.remaining - ahead.units);
  return { charge: { decision: { ...step.decision, remaining }, leased: ahead.units }, tat: ahead.tat };
}

export class RateLimiter extends DurableObject<Env> {
  // Milliseconds added to Date.now(): tests move this object's clock forward instead of sleeping.
  clockOffsetMs = 0;
  private tat = 0;
  private messagesTat = 0;

  /** One request's (or one request's messages') charge against `budget`, in one call (chargeStep). */
  charge(budget: Budget, limit: number, cost: number, lease = 0, returned = 0): Charge {
    const now = Date.now() + this.clockOffsetMs;
    const step = chargeStep(budget === "messages" ? this.messagesTat : this.tat, now, budget, limit, cost, lease, returned);
    if (budget === "messages") this.messagesTat = step.tat;
    else this.tat = step.tat;
    return step.charge;
  }
}
