// Counters and the relays' live state, read by /health and /metrics.
type Labels = Record<string, string>;

export class Metrics {
  private readonly counters = new Map<string, { name: string; labels: Labels; value: number }>();

  /** Live state the relays keep current. */
  readonly state = {
    gatewayUp: true,
    /** Set while the gateway answers as if misconfigured (wrong URL, key or proxy): the alert to act on. */
    gatewayProblem: undefined as string | undefined,
    kafkaUp: true,
    outbox: { seenCursor: 0, ackedCursor: 0, inFlight: 0 },
  };

  inc(name: string, labels: Labels = {}, by = 1): void {
    const id = `${name}${JSON.stringify(labels)}`;
    const c = this.counters.get(id) ?? { name, labels, value: 0 };
    c.value += by;
    this.counters.set(id, c);
  }

  get(name: string, labels: Labels = {}): number {
    return this.counters.get(`${name}${JSON.stringify(labels)}`)?.value ?? 0;
  }

  /** Sum over every label set of one counter. */
  total(name: string): number {
    let sum = 0;
    for (const c of this.counters.values()) if (c.name === name) sum += c.value;
    return sum;
  }

  counterLines(): string[] {
    const byName = new Map<string, string[]>();
    for (const c of this.counters.values()) {
      const lines = byName.get(c.name) ?? [`# TYPE ${c.name} counter`];
      lines.push(`${c.name}${labelText(c.labels)} ${c.value}`);
      byName.set(c.name, lines);
    }
    return [...byName.values()].flat();
  }
}

export function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}
