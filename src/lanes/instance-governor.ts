// InstanceGovernor: one per Evolution instance. Grants send permits at ratePerMinute with GCRA
// (a token bucket kept as one timestamp), so a WhatsApp number never bursts past its rate.
// Contract with the lanes: a lane asks when its head is due; on `go` it sends at once, otherwise it
// re-arms its alarm to `retryAt` and asks again then (never sleeps). A permit is idempotent per
// message attempt, so a lane that crashed or re-ran its alarm after a `go` gets `go` again without
// taking another slot.
import { DurableObject } from "cloudflare:workers";

export type AcquireRequest = {
  laneKey: string;
  messageId: string;
  /** 1 (first) to 10; the policy may favour urgent messages. */
  priority: number;
  ratePerMinute: number;
  /** Which attempt of the message this permit is for (default 1): each attempt is one send. */
  attempt?: number;
  now?: number;
};
export type Permit = { go: true } | { go: false; retryAt: number; reason?: string };

// How many sends may go back to back before pacing starts.
export const burstFor = (ratePerMinute: number) => Math.max(1, Math.ceil(ratePerMinute / 60));

// Permits are remembered this long (a lane re-running its alarm does so within seconds) and at
// most this many, so the memory stays small.
const GRANT_TTL_MS = 10 * 60_000;
const MAX_GRANTS = 5_000;

export class InstanceGovernor extends DurableObject<Env> {
  // Theoretical arrival time of the next send. Kept in memory only: a storage write would hold
  // every answer behind the output gate until it is confirmed, on the hot path of every send,
  // while losing it (eviction, restart) grants at most one burst of burstFor(rate) sends.
  private tat = 0;
  private grants = new Map<string, number>();

  acquire(req: AcquireRequest): Permit {
    const now = req.now ?? Date.now();
    const key = `${req.messageId}#${req.attempt ?? 1}`;
    if (this.grants.has(key)) return { go: true };
    const interval = 60_000 / req.ratePerMinute;
    const tolerance = interval * (burstFor(req.ratePerMinute) - 1);
    const tat = Math.max(this.tat, now);
    const allowedAt = tat - tolerance;
    // Not yet: nothing is reserved; the lane comes back at retryAt and competes again.
    if (allowedAt > now) return { go: false, retryAt: Math.ceil(allowedAt), reason: "rate" };
    this.tat = tat + interval;
    this.remember(key, now);
    return { go: true };
  }

  private remember(key: string, now: number) {
    this.grants.set(key, now);
    if (this.grants.size <= MAX_GRANTS) return;
    for (const [k, at] of this.grants) {
      if (this.grants.size <= MAX_GRANTS && now - at < GRANT_TTL_MS) break;
      this.grants.delete(k);
    }
  }
}
