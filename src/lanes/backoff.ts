// Exponential backoff with jitter: base·2^(attempt-1), scaled by a random factor in [0.5, 1],
// capped at 5 minutes. Jitter keeps many lanes from retrying against Evolution in lockstep.
export const MAX_BACKOFF_MS = 5 * 60_000;

export function backoffMs(attempt: number, baseMs: number, random = Math.random()): number {
  const exp = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + random / 2));
}
