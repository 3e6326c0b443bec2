// The lane's state machine, as pure functions: the named phase of an item, what the lane asks D1
// for in that phase, and the next action once D1 (then Evolution) has answered. The Durable Object
// (contact-lane.ts) only carries actions out; every decision is here, so it can be tested by table.
//
// Stored phases (lane_items.phase):
//   waiting    accepted, not yet sent by this lane (due once ready_at and next_at have passed)
//   retrying   the last attempt failed for sure (Evolution answered); next_at is the next try
//   in_doubt   an attempt's outcome is unknown (timeout, dropped connection, or D1 shows a claim this
//              lane has no answer for): ask Evolution before sending again, but only once the attempt
//              has had time to finish inside Evolution (a hung send may still go out)
//   unrecorded Evolution answered but the D1 write of that answer failed: write it, never resend
//   done       nothing left to do here (kept a while to recognise redeliveries)
import { type MessageStatus, terminalStatuses } from "../contracts/events.ts";
import { doubling } from "./backoff.ts";
import type { Reconciled, SendOutcome as ProviderOutcome } from "../providers/provider.ts";

export const storedPhases = ["waiting", "retrying", "in_doubt", "unrecorded", "done"] as const;
export type StoredPhase = (typeof storedPhases)[number];
/** `due` is a waiting item whose time has come; it is derived, never stored. */
export type Phase = StoredPhase | "due";

export type LaneItem = { phase: StoredPhase; readyAt: number; nextAt: number; attempts: number };

/** What the lane's storage holds for an item, by phase: the machine says which, the lane writes it
 *  whole in one place. `nextAt`: not before then (a retry's backoff, a pacing slot, a check);
 *  `attemptAt`: when the attempt in flight started (0: unknown, D1's claim time stands in). */
export type StoredItem =
  | { phase: "waiting"; attempts: number; readyAt: number; nextAt: number }
  | { phase: "retrying"; attempts: number; attemptAt: number; nextAt: number }
  | { phase: "in_doubt"; attempts: number; attemptAt: number; nextAt: number; checks: number }
  /** The provider's answer, known here and not yet in D1: written, never sent again. */
  | { phase: "unrecorded"; attempts: number; attemptAt: number; nextAt: number; outcome: Outcome }
  | { phase: "done" };

/** The same item, not before `at` (a pacing slot, a hold, a failed write's wait). */
export const waitUntil = (item: StoredItem, at: number): StoredItem => (item.phase === "done" ? item : { ...item, nextAt: at });

/** Storage after a step that only waits or settles: the actions the lane carries out by writing.
 *  undefined: the action needs D1 or the provider first (send, reconcile, record, pull_older). */
export function storedAfter(action: Action, item: StoredItem, readyAt: number, now: number, holdMs: number): StoredItem | undefined {
  switch (action.kind) {
    case "check_at":
      return {
        phase: "in_doubt",
        attempts: action.attempts,
        attemptAt: action.attemptAt,
        nextAt: action.at,
        checks: item.phase === "in_doubt" ? item.checks : 0,
      };
    case "wait_until":
      return { phase: "waiting", attempts: item.phase === "done" ? 0 : item.attempts, readyAt: action.at, nextAt: 0 };
    case "hold":
      return waitUntil(item, now + holdMs);
    case "requeue":
      return { phase: "waiting", attempts: 0, readyAt, nextAt: 0 };
    case "done":
    case "none":
      return { phase: "done" };
    default:
      return undefined;
  }
}

/** How long an attempt in doubt is left alone before Evolution is asked about it: its own timeout,
 *  then as long again. Evolution may still be sending when the gateway gives up (the request is not
 *  canceled on its side), and it stores the message only once it went out; asking earlier finds
 *  nothing and sends the message twice. */
export const settleMs = (evolutionTimeoutMs: number) => 2 * evolutionTimeoutMs;

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
      /** D1's last change of the row: no earlier than the claim of its latest attempt. */
      updatedAt: number;
    };

export type Action =
  | { kind: "send"; attempt: number }
  | { kind: "reconcile" }
  /** In doubt, but the attempt (started at attemptAt) may still be under way: ask Evolution at `at`. */
  | { kind: "check_at"; at: number; attemptAt: number; attempts: number }
  | { kind: "record" }
  | { kind: "pull_older" }
  | { kind: "wait_until"; at: number }
  | { kind: "hold" }
  | { kind: "requeue" }
  | { kind: "done" }
  | { kind: "none" };

const terminal = new Set<MessageStatus>(terminalStatuses);

/** The one decision: from the item's phase and D1's answer to the next action. `item.attemptAt` is
 *  when the lane started its attempt in doubt (0: unknown, D1's last change stands in for it). */
export function decide(phase: Phase, item: Pick<LaneItem, "attempts"> & { attemptAt?: number }, answer: D1Answer, now: number, settle: number): Action {
  if (phase === "waiting") return { kind: "none" };
  if (phase === "done") return { kind: "done" };
  if (!answer.found || terminal.has(answer.status)) return { kind: "done" };
  const pending = answer.status === "queued" || answer.status === "scheduled";
  // An attempt in doubt is asked about once it cannot be in flight any more; until then the item
  // holds the head of the lane (the contact's later messages wait behind it).
  const inDoubt = (attemptAt: number): Action =>
    now < attemptAt + settle ? { kind: "check_at", at: attemptAt + settle, attemptAt, attempts: answer.attempts } : { kind: "reconcile" };
  switch (phase) {
    case "due":
      if (answer.claimed) return { kind: "send", attempt: answer.attempts };
      // D1 says an attempt was claimed, but this lane never learned its outcome (it stopped
      // between the claim and recording the answer): in doubt, since the claim.
      if (answer.status === "processing") return inDoubt(answer.updatedAt);
      // D1 holds the due time: a reschedule that reached D1 but not this lane still counts.
      if (answer.status === "scheduled" && answer.readyAt > now) return { kind: "wait_until", at: answer.readyAt };
      if (answer.olderWaiting) return { kind: "pull_older" };
      // Still ours but not claimable this instant (an older message came and went).
      return { kind: "hold" };
    case "retrying":
      if (answer.claimed) return { kind: "send", attempt: answer.attempts };
      // D1 counts more attempts than this lane knows of: one was claimed and its answer lost.
      if (answer.status === "processing") return inDoubt(answer.updatedAt);
      return pending ? { kind: "requeue" } : { kind: "done" };
    case "in_doubt":
      if (answer.status === "processing") return inDoubt(item.attemptAt ? item.attemptAt : answer.updatedAt);
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

/** Storage after an attempt's answer: `startedAt` the call's start, `at` its end. A throttled
 *  attempt (`afterMs`, or undefined for the number's pause) does not count: the same attempt again. */
export function storedAfterSend(
  next: AfterSend | { next: "throttled"; afterMs?: number },
  attempt: number,
  startedAt: number,
  at: number,
  item: StoredItem,
): StoredItem {
  const nextAt = item.phase === "done" ? 0 : item.nextAt;
  switch (next.next) {
    case "throttled":
      return { phase: "retrying", attempts: attempt - 1, attemptAt: startedAt, nextAt: at + (next.afterMs ?? 0) };
    case "record":
      return { phase: "unrecorded", attempts: attempt, attemptAt: startedAt, nextAt, outcome: next.outcome };
    case "retrying":
      return { phase: "retrying", attempts: attempt, attemptAt: startedAt, nextAt: at + next.delayMs };
    case "in_doubt":
      return { phase: "in_doubt", attempts: attempt, attemptAt: startedAt, nextAt: at + next.delayMs, checks: 0 };
  }
}

/** A provider's answer (src/providers/provider.ts) as the machine reads it. */
export function resultOf(outcome: ProviderOutcome): SendResult {
  switch (outcome.kind) {
    case "sent":
      return { kind: "sent", providerMessageId: outcome.providerMessageId };
    case "refused":
      return { kind: "permanent", error: outcome.reason };
    case "retry":
      return { kind: "transient", error: outcome.reason, retryAfterMs: outcome.afterMs, doubt: false };
    case "in_doubt":
      return { kind: "transient", error: outcome.reason, doubt: true };
  }
}

/** After an attempt: record it, retry it later, or (the answer was lost) check before retrying.
 *  `settleLeftMs`: how long the attempt may still be under way inside the provider.
 *  `unaskable`: the provider cannot be asked about an attempt in doubt; its stated policy fails the
 *  message with this reason rather than risk sending it twice. */
export function afterSend(result: SendResult, attempt: number, maxAttempts: number, backoffMs: number, settleLeftMs: number, unaskable?: string): AfterSend {
  if (result.kind === "sent") return { next: "record", outcome: { kind: "sent", providerMessageId: result.providerMessageId } };
  if (result.kind === "permanent") return { next: "record", outcome: { kind: "failed", error: result.error } };
  if (result.doubt && unaskable !== undefined) return { next: "record", outcome: { kind: "failed", error: `${unaskable}. ${result.error}` } };
  // The request may have reached WhatsApp: check first, even on the last attempt, so a message
  // that went is recorded `sent` rather than `failed`.
  if (result.doubt) return { next: "in_doubt", delayMs: Math.max(settleLeftMs, 0), error: result.error };
  if (attempt >= maxAttempts) return { next: "record", outcome: { kind: "failed", error: `${result.error} (gave up after ${attempt} attempts)` } };
  return { next: "retrying", delayMs: Math.max(backoffMs, result.retryAfterMs ?? 0), error: result.error };
}

/** The provider's answer to "did this attempt go out?" (src/providers/provider.ts). */
export type { Reconciled };

export type AfterReconcile =
  | { next: "record"; outcome: Outcome }
  | { next: "retrying"; detail: string }
  | { next: "check_again"; delayMs: number; detail: string };

/** Storage after asking the provider about an attempt in doubt. `attemptAt`: the attempt's start
 *  as the lane knows it (0: unknown, `claimedAt`, D1's last change, stands in once checked again). */
export function storedAfterReconcile(next: AfterReconcile, item: StoredItem, attempts: number, claimedAt: number, now: number): StoredItem {
  const attemptAt = item.phase === "done" || item.phase === "waiting" ? 0 : item.attemptAt;
  const checks = item.phase === "in_doubt" ? item.checks : 0;
  switch (next.next) {
    case "record":
      return { phase: "unrecorded", attempts, attemptAt, nextAt: item.phase === "done" ? 0 : item.nextAt, outcome: next.outcome };
    case "check_again":
      return { phase: "in_doubt", attempts, attemptAt: attemptAt || claimedAt, checks: checks + 1, nextAt: now + next.delayMs };
    case "retrying":
      return { phase: "retrying", attempts, attemptAt, nextAt: 0 };
  }
}

/** A failed findMessages is asked again this many times (5, 10, 20, 40, 80 s later: about two and
 *  a half minutes) before the message is sent again without proof. Sending twice is the broken
 *  promise; a short Evolution incident must not cause it. */
export const RECONCILE_CHECKS = 5;
export const RECONCILE_RETRY_MS = 5_000;

/** After asking Evolution about an in-doubt attempt. `checks`: questions so far that did not settle
 *  it (failed, or a first "not found"). `recheckMs`: how long a first "not found" (or "it keeps no
 *  messages for the contact") waits to be asked once more, for a send that completes inside
 *  Evolution later than the settle time. */
export function afterReconcile(
  found: Reconciled,
  attempts: number,
  maxAttempts: number,
  checks = 0,
  recheckMs = RECONCILE_RETRY_MS,
  unaskable?: string,
): AfterReconcile {
  // A provider that cannot be asked: its stated in-doubt policy, not a guess.
  if (found.kind === "unanswerable" && unaskable !== undefined)
    return { next: "record", outcome: { kind: "failed", error: `${unaskable} (attempt ${attempts})` } };
  if (found.kind === "unanswerable" && found.retry && checks < RECONCILE_CHECKS) {
    const delayMs = doubling(checks, RECONCILE_RETRY_MS);
    return {
      next: "check_again",
      delayMs,
      detail: `reconcile: Evolution could not answer (${found.reason}); asking again in ${delayMs} ms (check ${checks + 1} of ${RECONCILE_CHECKS})`,
    };
  }
  // Not there (or Evolution keeps nothing for the contact yet): once more a little later, for a send
  // that completes inside Evolution after the settle time, before sending it again.
  if ((found.kind === "not_found" || found.kind === "unanswerable") && checks === 0)
    return {
      next: "check_again",
      delayMs: recheckMs,
      detail: `reconcile: ${found.kind === "not_found" ? "not found in Evolution's messages" : `Evolution could not answer (${found.reason})`} yet; asking once more in ${recheckMs} ms (a send may complete late)`,
    };
  if (found.kind === "found")
    return {
      next: "record",
      outcome: {
        kind: "sent",
        providerMessageId: found.providerMessageId,
        detail: `reconciled: found in Evolution as ${found.providerMessageId}; not sent again`,
      },
    };
  // Cannot tell: sent again with a note. At-least-once beats recording another message's id as this
  // one's (which loses this one).
  const why =
    found.kind === "not_found"
      ? "reconcile: not found in Evolution's messages"
      : found.kind === "cannot_tell"
        ? `reconcile: cannot tell whether it went (${found.reason}); sending again, it may arrive twice`
        : `reconcile: Evolution could not answer (${found.reason})${found.retry ? ` after ${checks + 1} checks` : ""}; sending again without proof, it may arrive twice`;
  if (attempts >= maxAttempts) return { next: "record", outcome: { kind: "failed", error: `${why} (gave up after ${attempts} attempts)` } };
  return { next: "retrying", detail: found.kind === "not_found" ? `${why}; sending again` : why };
}
