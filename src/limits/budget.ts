// A tenant's rate budgets as one isolate spends them. Every unit is counted by the tenant's
// RateLimiter object before it is spent; to spare a call to the object on every request, a call may
// take a few units ahead (a lease: at most a tenth of a second of the limit, for half a second) that
// this isolate then hands out itself. What a lease leaves unused goes back to the object with this
// isolate's next call. So the object never counts fewer units than were let through, and a unit is
// spent at most LEASE_MS after the object counted it. Below 600 a minute there is no lease at all:
// every request asks the object, as the smallest limits need.
import type { Budget, Charge, RateDecision } from "./rate-limiter.ts";

export const LEASE_MS = 500;
const MAX_LEASE = 50;

/** Units one call may take ahead at `limit` per minute. */
export const leaseSize = (limit: number) => Math.min(MAX_LEASE, Math.floor(limit / 600));

/** One call to the tenant's object (RateLimiter.charge). */
export type Ask = (budget: Budget, limit: number, cost: number, lease: number, returned: number) => Promise<Charge>;

type Lease = { limit: number; units: number; until: number; remaining: number; resetSeconds: number };

export class LocalBudget {
  private readonly leases = new Map<string, Lease>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Spends `cost` units of `tenantId`'s `budget`: from this isolate's lease when it holds enough,
   *  otherwise through `ask`, giving back what the lease held. */
  async charge(tenantId: string, budget: Budget, limit: number, cost: number, ask: Ask): Promise<RateDecision> {
    const id = `${tenantId}/${budget}`;
    const held = this.leases.get(id);
    if (held && held.limit === limit && held.until > this.now() && held.units >= cost) {
      held.units -= cost;
      return { allowed: true, limit, remaining: held.remaining + held.units, resetSeconds: held.resetSeconds, retryAfterSeconds: 0 };
    }
    // Units leased at another limit were counted at another rate: they lapse rather than come back.
    const returned = held && held.limit === limit ? held.units : 0;
    // Taken out before the call: a request running meanwhile neither spends nor returns them again.
    this.leases.delete(id);
    const { decision, leased } = await ask(budget, limit, cost, leaseSize(limit), returned);
    const now = this.now();
    const current = this.leases.get(id);
    if (leased > 0) {
      if (current && current.limit === limit && current.until > now) {
        current.units += leased;
        current.remaining = decision.remaining;
      } else {
        this.leases.set(id, { limit, units: leased, until: now + LEASE_MS, remaining: decision.remaining, resetSeconds: decision.resetSeconds });
      }
    }
    return { ...decision, remaining: decision.remaining + (this.leases.get(id)?.units ?? 0) };
  }
}
