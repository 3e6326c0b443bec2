// Waiting between retries (exponential with jitter) and on other work, cut short when the bridge stops.
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

/**
 * `work`'s value as `{ value }`, or undefined as soon as `signal` aborts: a wait the bridge must not
 * sit in once it stops (a POST, a produce, an offsets fetch). The work itself goes on unobserved; what
 * it did is never committed, since commits happen only after a wait that ended with a value.
 */
export function unlessStopped<T>(work: Promise<T>, signal: AbortSignal): Promise<{ value: T } | undefined> {
  const unobserved = () => void work.catch(() => {});
  if (signal.aborted) {
    unobserved();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const stop = () => {
      unobserved();
      resolve(undefined);
    };
    signal.addEventListener("abort", stop, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", stop);
        resolve({ value });
      },
      (err: unknown) => {
        signal.removeEventListener("abort", stop);
        reject(err);
      },
    );
  });
}

/** True when `work` settled within `ms`; false when it was still running then (it goes on unobserved). */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
