// Waiting between retries: exponential with jitter, cut short when the bridge stops.
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly baseMs = 200,
    private readonly maxMs = 10_000,
  ) {}

  /** The next delay; a server's Retry-After wins when it is longer. */
  next(retryAfterMs = 0): number {
    const exp = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt++);
    return Math.max(retryAfterMs, Math.round(exp / 2 + Math.random() * (exp / 2)));
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
