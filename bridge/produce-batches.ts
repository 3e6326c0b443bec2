// Kafka refuses a record batch over the broker's message.max.bytes (1 MB by default) and kafkajs
// sends whatever it is given in one request: split what the relays produce by bytes first.
import type { OutRecord } from "./kafka.ts";

// Per-record framing in a v2 record batch (varints, attributes, deltas) plus the batch header, rounded up.
const RECORD_OVERHEAD = 32;
const BATCH_OVERHEAD = 128;

const size = (v: string | Buffer | null): number => (v === null ? 0 : typeof v === "string" ? Buffer.byteLength(v) : v.byteLength);

export function recordBytes(r: OutRecord): number {
  let bytes = RECORD_OVERHEAD + size(r.key) + size(r.value);
  for (const [k, v] of Object.entries(r.headers ?? {})) bytes += 2 + Buffer.byteLength(k) + Buffer.byteLength(v);
  return bytes;
}

/**
 * Consecutive groups of records, each at most `maxBytes` (a record larger than that goes alone:
 * the broker will say so, and the caller's retry and alert apply). Order is kept.
 */
export function splitByBytes(records: OutRecord[], maxBytes: number): OutRecord[][] {
  const groups: OutRecord[][] = [];
  let current: OutRecord[] = [];
  let bytes = BATCH_OVERHEAD;
  for (const r of records) {
    const n = recordBytes(r);
    if (current.length > 0 && bytes + n > maxBytes) {
      groups.push(current);
      current = [];
      bytes = BATCH_OVERHEAD;
    }
    current.push(r);
    bytes += n;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
