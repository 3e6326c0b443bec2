// How a partition's records are cut into gateway batches, so that a batch posted by a bridge that
// then died is posted again with the same records and the same Idempotency-Key (the gateway then
// replays its first answer instead of accepting the messages twice).
//
// Full chunks are deterministic from their first offset, but the last chunk of a fetch depends on
// what had been produced by then. So before a post, the bridge commits the partition's current
// offset again with a note "pending:<first>-<last>" (Kafka keeps commit metadata beside the
// offset). A bridge that starts on that partition reads the note and cuts its first chunk the same.
import { createHash } from "node:crypto";
import type { InRecord } from "./kafka.ts";

export type Range = { first: string; last: string };

const NOTE = /^pending:(\d+)-(\d+)$/;

export const pendingNote = (r: Range) => `pending:${r.first}-${r.last}`;

export function parseNote(note: string | null): Range | undefined {
  const m = NOTE.exec(note ?? "");
  return m?.[1] && m[2] ? { first: m[1], last: m[2] } : undefined;
}

export const nextOffset = (offset: string) => (BigInt(offset) + 1n).toString();

export type ChunkLimits = { maxItems: number; maxBytes: number };

/**
 * The next chunk from the head of `records` (sorted by offset). With a pending range that starts
 * at the head, exactly that range; `complete: false` when the fetch did not reach its end.
 */
export function planChunk(records: InRecord[], pending: Range | undefined, limits: ChunkLimits): { chunk: InRecord[]; complete: boolean } {
  const head = records[0];
  if (!head) return { chunk: [], complete: true };
  if (pending && pending.first === head.offset) {
    const last = BigInt(pending.last);
    const chunk = records.filter((r) => BigInt(r.offset) <= last);
    return { chunk, complete: chunk.at(-1)?.offset === pending.last };
  }
  const chunk: InRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = (r.value?.length ?? 0) + 512; // JSON overhead per item: metadata, keys
    if (chunk.length > 0 && (chunk.length >= limits.maxItems || bytes + size > limits.maxBytes)) break;
    chunk.push(r);
    bytes += size;
  }
  return { chunk, complete: true };
}

/** The batch's Idempotency-Key: its place in the log plus the ids of what it carries. */
export function batchKey(topic: string, partition: number, range: Range, sourceIds: string[]): string {
  const digest = createHash("sha256")
    .update([topic, partition, range.first, range.last, ...sourceIds].join("\n"))
    .digest("hex");
  const readable = `kafka:${topic}:${partition}:${range.first}-${range.last}:${digest.slice(0, 16)}`;
  return readable.length <= 255 ? readable : `kafka:${digest}`;
}
