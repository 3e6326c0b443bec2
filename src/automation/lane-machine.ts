// The automation lane's state machine, as pure functions: what an inbound message's row and the
// batch being called hold in each state, and the next state once the handler (or the clock) has
// answered. The Durable Object (lane.ts) carries the steps out and writes the result in one place.
//
// An inbound message (items.state):
//   pending   waiting for the handler (debounced with the contact's next messages)
//   batched   part of the batch being called now
//   done      answered (or kept as a person's context); kept a while to recognise duplicates
//   dead      every attempt failed: a dead letter, waiting for a replay
//   dropped   the automation was deleted while it waited
//
// The batch (at most one): debouncing is no row yet; then
//   calling   due now: the handler is called (again)
//   retrying  the last call failed; not before nextAt
//   answered  the handler answered: its answer is written to D1, never called again
//
// What the lane waits for (waits.kind), each stored with its due time where it is decided; the
// alarm is the earliest of them, so it can always be explained from the stored rows:
//   run       a run is wanted: a new message or a kick (now), a run out of time (now) or failed (later)
//   debounce  the end of a burst's quiet time
//   retry     the batch's next attempt (its nextAt)
//   probe     the paused breaker's next probe
//   handoff   the end of a hand-off to a person
import type { HandlerHandoff } from "../contracts/automation.ts";
import type { SendMessageRequest } from "../contracts/messages.ts";

export const itemStates = ["pending", "batched", "done", "dead", "dropped"] as const;
export type ItemState = (typeof itemStates)[number];

export const waitKinds = ["run", "debounce", "retry", "probe", "handoff"] as const;
export type WaitKind = (typeof waitKinds)[number];

// replyIds: the ids given to the replies, kept before they are written (absent until then).
// handoff: the handler asked for a person; handoffChange: that change's id and time, kept like replyIds.
export type Answer = {
  replies: SendMessageRequest[];
  dropped: number;
  attempts: number;
  replyIds?: string[];
  handoff?: HandlerHandoff;
  handoffChange?: { id: string; at: number };
};

/** What the lane's batch row holds, by phase. `id`: the batch's last message; `webhookId`: the
 *  calls' webhook-id, the same on every retry of this batch (null: formed before it was kept). */
type BatchBase = { id: string; itemIds: string[]; attempts: number; webhookId: string | null };
export type StoredBatch =
  | (BatchBase & { phase: "calling"; lastError: string | null })
  | (BatchBase & { phase: "retrying"; nextAt: number; lastError: string })
  | (BatchBase & { phase: "answered"; answer: Answer });

export type CallingBatch = Extract<StoredBatch, { phase: "calling" }>;

/** The batch row as SQLite holds it. */
export type BatchRow = {
  id: string;
  item_ids: string;
  attempts: number;
  next_at: number;
  last_error: string | null;
  answer: string | null;
  webhook_id: string | null;
};

export function batchOf(row: BatchRow, now: number): StoredBatch {
  const base: BatchBase = { id: row.id, itemIds: JSON.parse(row.item_ids) as string[], attempts: row.attempts, webhookId: row.webhook_id };
  if (row.answer !== null) return { ...base, phase: "answered", answer: JSON.parse(row.answer) as Answer };
  if (row.next_at > now) return { ...base, phase: "retrying", nextAt: row.next_at, lastError: row.last_error ?? "" };
  return { ...base, phase: "calling", lastError: row.last_error };
}

export function rowOf(batch: StoredBatch): BatchRow {
  return {
    id: batch.id,
    item_ids: JSON.stringify(batch.itemIds),
    attempts: batch.attempts,
    next_at: batch.phase === "retrying" ? batch.nextAt : 0,
    last_error: batch.phase === "answered" ? null : batch.lastError,
    answer: batch.phase === "answered" ? JSON.stringify(batch.answer) : null,
    webhook_id: batch.webhookId,
  };
}

// A debounced burst is sent when the contact has been quiet for debounceMs, but no later than
// DEBOUNCE_CAP × debounceMs after its first message, and with at most MAX_BATCH messages.
export const DEBOUNCE_CAP = 3;
export const MAX_BATCH = 20;

export type PendingItem = { id: string; arrivedAt: number };

/** The next call's messages in order (pending in lane order, at most MAX_BATCH): one, or a
 *  debounced burst; `wait`: not before then; `none`: nothing waits. `storedEnd`: the debounce's end
 *  as stored when it was computed; once it has come, the burst is called (a setting changed since
 *  applies from the next burst), before it the end is computed again (a new message moves it). */
export function nextBatch(
  pending: PendingItem[],
  debounceMs: number,
  now: number,
  storedEnd: number | null = null,
): { kind: "none" } | { kind: "wait"; at: number } | { kind: "form"; ids: string[] } {
  if (pending.length === 0) return { kind: "none" };
  if (storedEnd !== null && storedEnd <= now) return { kind: "form", ids: pending.slice(0, MAX_BATCH).map((p) => p.id) };
  if (debounceMs <= 0) return { kind: "form", ids: [pending[0]!.id] };
  const first = Math.min(...pending.map((p) => p.arrivedAt));
  const last = Math.max(...pending.map((p) => p.arrivedAt));
  const due = Math.min(last + debounceMs, first + DEBOUNCE_CAP * debounceMs);
  if (due > now && pending.length < MAX_BATCH) return { kind: "wait", at: due };
  return { kind: "form", ids: pending.slice(0, MAX_BATCH).map((p) => p.id) };
}

/** A new batch of these messages: called at once. */
export const formed = (ids: string[], webhookId: string): CallingBatch => ({
  phase: "calling",
  id: ids.at(-1) ?? "",
  itemIds: ids,
  attempts: 0,
  webhookId,
  lastError: null,
});

/** An attempt starts: counted before the call, so a call cut off by a crash still used one. */
export const attempting = (batch: CallingBatch): CallingBatch => ({ ...batch, attempts: batch.attempts + 1 });

/** The handler answered: kept before anything else is written, so a failure from then on never
 *  calls it again. */
export const answered = (batch: StoredBatch, answer: Answer): StoredBatch => ({
  phase: "answered",
  id: batch.id,
  itemIds: batch.itemIds,
  attempts: batch.attempts,
  webhookId: batch.webhookId,
  answer,
});

/** The call failed: retried at retryAt, or a dead letter once the attempts are used up
 *  (the batch is gone and its messages are dead). */
export function afterFailure(
  batch: CallingBatch,
  maxAttempts: number,
  error: string,
  retryAt: number,
): { kind: "dead" } | { kind: "retry"; batch: StoredBatch } {
  if (batch.attempts >= maxAttempts) return { kind: "dead" };
  return { kind: "retry", batch: { ...batch, phase: "retrying", nextAt: retryAt, lastError: error } };
}

/** What a state means for the lane: still waiting here (a replay of a dead letter counts as waiting). */
export const waitsHere = (state: ItemState | undefined): boolean => state === "pending" || state === "batched";
