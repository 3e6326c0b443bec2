// A per-isolate cache: each entry lives `ttlMs`, and at most `maxEntries` are kept (the least
// recently stored goes first), so a busy isolate's memory stays bounded however many keys it sees.
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; at: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 1_000,
  ) {}

  /** The entry still alive for `key`, wrapped (so a cached `undefined` is told from a miss). */
  lookup(key: K, now = Date.now()): { value: V } | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (now - hit.at >= this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return { value: hit.value };
  }

  get(key: K, now = Date.now()): V | undefined {
    return this.lookup(key, now)?.value;
  }

  set(key: K, value: V, now = Date.now()): void {
    // Map keeps insertion order: stored again, the key moves to the end, the oldest stays first.
    this.entries.delete(key);
    this.entries.set(key, { value, at: now });
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  /** Drops every entry whose value matches (a tenant's settings changed: all its keys). */
  deleteWhere(matches: (value: V) => boolean): void {
    for (const [key, entry] of this.entries) if (matches(entry.value)) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
