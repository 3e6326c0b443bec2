// The lane's state machine, as pure functions: the named phase of an item, what the lane asks D1
// for in that phase, and the next action once D1 (then Evolution) has answered. The Durable Object
// (contact-lane.ts) only carries actions out; every decision is here, so it can be tested by table.
//
// Stored phases (lane_items.phase):
//   waiting    accepted, not yet sent by this lane (due once ready_at and next_at have passed)
//   retrying   the last attempt failed for sure (Evolution answered); next_at is the next try
//   in_doubt   an attempt's outcome is unknown (timeout, dropped connection, or D1 shows a claim this
//              lane has no answer for): ask Evolution before sending again
//   unrecorded Evolution answered but the D1 write of that answer failed: write it, never resend
//   done       nothing left to do here (kept a while to recognise redeliveries)
import type { MessageStatus } from "../contracts/events.ts";

export const storedPhases = ["waiting", "retrying", "in_doubt", "unrecorded", "done"] as const;
export type StoredPhase = (typeof storedPhases)[number];
/** `due` is a waiting item whose time has come; it is derived, never stored. */
export type Phase = StoredPhase | "due";

export type LaneItem = { phase: StoredPhase; readyAt: number; nextAt: number; attempts: number };

export function phaseOf(item: LaneItem, now: number): Phase {
  if (item.phase === "waiting" && Math.max(item.readyAt, item.nextAt) <= now) return "due";
  return item.phase;
}

/** What the lane does with D1 first in a phase: claim the next attempt, or only read the row. */
export type D1Ask = "claim_first" | "claim_retry" | "read" | "none";
export function askFor(phase: Phase): D1Ask {
  switch (phase) {
    case "due":
      return "claim_first";
    case "retrying":
      return "claim_retry";
    case "in_doubt":
    case "unrecorded":
      return "read";
    case "waiting":
    case "done":
      return "none";
  }
}

/** Phases whose next step is a send: they need a pacing slot from the governor first. */
export const needsSlot = (phase: Phase) => phase === "due" || phase === "retrying";

/** D1's answer to the claim or read, by name. */
export type D1Answer =
  | { found: false }
  | {
      found: true;
      status: MessageStatus;
      /** The claim in this batch applied (always false for a plain read). */
      claimed: boolean;
      attempts: number;
      readyAt: number;
      /** Another message of this lane, queued and due before this one, is not in the lane yet. */
      olderWaiting: boolean;
    };

export type Action =
  | { kind: "send"; attempt: number }
  | { kind: "reconcile" }
  | { kind: "record" }
  | { kind: "pull_older" }
  | { kind: "wait_until"; at: number }
  | { kind: "hold" }
  | { kind: "requeue" }
  | { kind: "done" }
  | { kind: "none" };

const terminal = new Set<MessageStatus>(["sent", "delivered", "read", "failed", "canceled"]);

/** The one decision: from the item's phase and D1's answer to the next action. */
export function decide(phase: Phase, item: Pick<LaneItem, "attempts">, answer: D1Answer, now: number): Action {
  if (phase === "waiting") return { kind: "none" };
  if (phase === "done") return { kind: "done" };
  if (!answer.found || terminal.has(answer.status)) return { kind: "done" };
  const pending = answer.status === "queued" || answer.status === "scheduled";
  switch (phase) {
    case "due":
      if (answer.claimed) return { kind: "send", attempt: answer.attempts };
      // D1 says an attempt was claimed, but this lane never learned its outcome (it stopped
      // between the claim and recording the answer): in doubt.
      if (answer.status === "processing") return { kind: "reconcile" };
      // D1 holds the due time: a reschedule that reached D1 but not this lane still counts.
      if (answer.status === "scheduled" && answer.readyAt > now) return { kind: "wait_until", at: answer.readyAt };
      if (answer.olderWaiting) return { kind: "pull_older" };
      // Still ours but not claimable this instant (an older message came and went).
      return { kind: "hold" };
    case "retrying":
      if (answer.claimed) return { kind: "send", attempt: answer.attempts };
      // D1 counts more attempts than this lane knows of: one was claimed and its answer lost.
      if (answer.status === "processing") return { kind: "reconcile" };
      return pending ? { kind: "requeue" } : { kind: "done" };
    case "in_doubt":
      if (answer.status === "processing") return { kind: "reconcile" };
      return pending ? { kind: "requeue" } : { kind: "done" };
    case "unrecorded":
      return answer.status === "processing" ? { kind: "record" } : { kind: "done" };
  }
}

/** Evolution's answer to a send, as the lane sees it. */
export type SendResult =
  | { kind: "sent"; providerMessageId: string }
  | { kind: "permanent"; error: string }
  | { kind: "transient"; error: string; retryAfterMs?: number; doubt: boolean };

/** What a finished attempt leads to. */
export type AfterSend =
  | { next: "record"; outcome: Outcome }
  | { next: "retrying"; delayMs: number; error: string }
  | { next: "in_doubt"; delayMs: number; error: string };

export type Outcome = { kind: "sent"; providerMessageId: string; detail?: string } | { kind: "failed"; error: string };

/** After an attempt: record it, retry it later, or (the answer was lost) check before retrying. */
export function afterSend(result: SendResult, attempt: number, maxAttempts: number, backoffMs: number): AfterSend {
  if (result.kind === "sent") return { next: "record", outcome: { kind: "sent", providerMessageId: result.providerMessageId } };
  if (result.kind === "permanent") return { next: "record", outcome: { kind: "failed", error: result.error } };
  // The request may have reached WhatsApp: check first, even on the last attempt, so a message
  // that went is recorded `sent` rather than `failed`.
  if (result.doubt) return { next: "in_doubt", delayMs: Math.min(backoffMs, IN_DOUBT_CHECK_MS), error: result.error };
  if (attempt >= maxAttempts) return { next: "record", outcome: { kind: "failed", error: `${result.error} (gave up after ${attempt} attempts)` } };
  return { next: "retrying", delayMs: Math.max(backoffMs, result.retryAfterMs ?? 0), error: result.error };
}

/** A timed-out send is checked this soon: long enough for Evolution to have stored it. */
export const IN_DOUBT_CHECK_MS = 5_000;

/** Evolution's answer to "did this attempt go out?". */
export type Reconciled = { kind: "found"; providerMessageId: string } | { kind: "not_found" } | { kind: "unanswerable"; reason: string };

export type AfterReconcile = { next: "record"; outcome: Outcome } | { next: "retrying"; detail: string };

/** After asking Evolution about an in-doubt attempt. */
export function afterReconcile(found: Reconciled, attempts: number, maxAttempts: number): AfterReconcile {
  if (found.kind === "found")
    return {
      next: "record",
      outcome: {
        kind: "sent",
        providerMessageId: found.providerMessageId,
        detail: `reconciled: found in Evolution as ${found.providerMessageId}; not sent again`,
      },
    };
  const why =
    found.kind === "not_found"
      ? "reconcile: not found in Evolution's messages"
      : `reconcile: Evolution could not answer (${found.reason}); sending again without proof, it may arrive twice`;
  if (attempts >= maxAttempts) return { next: "record", outcome: { kind: "failed", error: `${why} (gave up after ${attempts} attempts)` } };
  return { next: "retrying", detail: found.kind === "not_found" ? `${why}; sending again` : why };
}
