// Exponential backoff with jitter: base·2^(attempt-1), scaled by a random factor in [0.5, 1],
// capped at 5 minutes. Jitter keeps many lanes from retrying against Evolution in lockstep.
export const MAX_BACKOFF_MS = 5 * 60_000;

/** base·2^step (step 0: base), capped: the growing wait without jitter. */
export function doubling(step: number, base: number, cap = Number.POSITIVE_INFINITY): number {
  return Math.min(cap, base * 2 ** Math.max(0, step));
}

export function backoffMs(attempt: number, baseMs: number, random = Math.random()): number {
  const exp = doubling(attempt - 1, baseMs, MAX_BACKOFF_MS);
  return Math.round(exp * (0.5 + random / 2));
}
