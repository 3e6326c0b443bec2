// Kafka refuses a record batch over the broker's message.max.bytes (1 MB by default) and kafkajs
// sends whatever it is given in one request: split what the relays produce by bytes first. A single
// record too large for any batch (a DLQ copy of a record near 1 MB, plus its headers) would be
// refused on every retry and hold its partition for ever: it is cut to fit, and says so in headers.
import { createHash } from "node:crypto";

/** A record to produce (the relays' view; kafka.ts maps it to the client's). */
export type OutRecord = { topic: string; key: string | Buffer | null; value: string | Buffer | null; headers?: Record<string, string> };

// Per-record framing in a v2 record batch (varints, attributes, deltas) plus the batch header, rounded up.
const RECORD_OVERHEAD = 32;
const BATCH_OVERHEAD = 128;

const size = (v: string | Buffer | null): number => (v === null ? 0 : typeof v === "string" ? Buffer.byteLength(v) : v.byteLength);

export function recordBytes(r: OutRecord): number {
  let bytes = RECORD_OVERHEAD + size(r.key) + size(r.value);
  for (const [k, v] of Object.entries(r.headers ?? {})) bytes += 2 + Buffer.byteLength(k) + Buffer.byteLength(v);
  return bytes;
}

const asBuffer = (v: string | Buffer): Buffer => (typeof v === "string" ? Buffer.from(v) : v);

// Headers a cut record keeps when even its headers are too large: what says why it was parked and
// where the original is (source topic, partition, offset), and what identifies the event.
const KEPT_HEADER = /^x-(dlq|event)-/;

/**
 * The record as it can be produced alone within `maxBytes`: unchanged when it fits; otherwise its
 * value cut to what fits (bytes, not characters), with `x-truncated-from-bytes` and
 * `x-original-sha256` saying what the whole value was (a DLQ record's `x-dlq-source-*` headers say
 * where it still is), and, if the headers alone are too large, only the `x-dlq-*`/`x-event-*` ones.
 */
export function fitRecord(r: OutRecord, maxBytes: number): OutRecord {
  const limit = maxBytes - BATCH_OVERHEAD;
  if (recordBytes(r) <= limit) return r;
  const value = r.value === null ? Buffer.alloc(0) : asBuffer(r.value);
  const marks = { "x-truncated-from-bytes": String(value.byteLength), "x-original-sha256": createHash("sha256").update(value).digest("hex") };
  let headers: Record<string, string> = { ...r.headers, ...marks };
  let budget = limit - recordBytes({ ...r, value: null, headers });
  if (budget < 0) {
    const kept = Object.entries(r.headers ?? {}).filter(([k]) => KEPT_HEADER.test(k));
    headers = { ...Object.fromEntries(kept.map(([k, v]) => [k, v.slice(0, 1000)])), ...marks, "x-headers-dropped": "true" };
    budget = Math.max(0, limit - recordBytes({ ...r, key: r.key, value: null, headers }));
  }
  return { ...r, value: value.subarray(0, budget), headers };
}

/**
 * Consecutive groups of records, each at most `maxBytes`, a record too large for any group cut to
 * fit alone (fitRecord). Order is kept.
 */
export function splitByBytes(records: OutRecord[], maxBytes: number): OutRecord[][] {
  const groups: OutRecord[][] = [];
  let current: OutRecord[] = [];
  let bytes = BATCH_OVERHEAD;
  for (const original of records) {
    const r = fitRecord(original, maxBytes);
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
