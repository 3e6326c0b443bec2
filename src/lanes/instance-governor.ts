// InstanceGovernor: one per Evolution instance. Paces sends to ratePerMinute with GCRA
// (a token bucket kept as one timestamp), so a WhatsApp number never bursts past its rate.
import { DurableObject } from "cloudflare:workers";

// How many sends may go back to back before pacing starts.
export const burstFor = (ratePerMinute: number) => Math.max(1, Math.ceil(ratePerMinute / 60));

export class InstanceGovernor extends DurableObject<Env> {
  // Theoretical arrival time of the next send. Kept in memory only: a storage write would hold
  // every answer behind the output gate until it is confirmed, on the hot path of every send,
  // while losing it (eviction, restart) grants at most one burst of burstFor(rate) sends.
  private tat = 0;

  /** Reserves the next send slot; returns how many ms the caller must wait before sending. */
  reserve(ratePerMinute: number, now = Date.now()): number {
    const interval = 60_000 / ratePerMinute;
    const tolerance = interval * (burstFor(ratePerMinute) - 1);
    const tat = Math.max(this.tat, now);
    const allowedAt = tat - tolerance;
    this.tat = tat + interval;
    return Math.max(0, Math.ceil(allowedAt - now));
  }
}
