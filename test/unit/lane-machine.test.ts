// The lane's state machine, table by table: every phase against every kind of D1 answer.
import { describe, expect, it } from "vitest";
import type { MessageStatus } from "../../src/contracts/events.ts";
import { classify } from "../../src/evolution/client.ts";
import { remoteJidsOf } from "../../src/evolution/reconcile.ts";
import {
  RECONCILE_CHECKS,
  afterReconcile,
  afterSend,
  askFor,
  decide,
  needsSlot,
  phaseOf,
  storedAfter,
  storedAfterReconcile,
  storedAfterSend,
  storedPhases,
  waitUntil,
  type Action,
  type StoredItem,
  type D1Answer,
  type Phase,
} from "../../src/lanes/lane-machine.ts";

const NOW = 1_000_000;
// An attempt in doubt is asked about SETTLE ms after it started (twice the Evolution timeout).
const SETTLE = 60_000;
const LONG_AGO = NOW - SETTLE - 1;
const row = (status: MessageStatus, extra: Partial<Extract<D1Answer, { found: true }>> = {}): D1Answer => ({
  found: true,
  status,
  claimed: false,
  attempts: 1,
  readyAt: NOW - 1,
  olderWaiting: false,
  updatedAt: LONG_AGO,
  ...extra,
});
const missing: D1Answer = { found: false };

describe("phaseOf", () => {
  it.each([
    ["waiting, not due", { phase: "waiting", readyAt: NOW + 1, nextAt: 0 }, "waiting"],
    ["waiting, due", { phase: "waiting", readyAt: NOW, nextAt: 0 }, "due"],
    ["waiting, due but paced", { phase: "waiting", readyAt: NOW - 5, nextAt: NOW + 10 }, "waiting"],
    ["retrying", { phase: "retrying", readyAt: 0, nextAt: NOW + 10 }, "retrying"],
    ["in_doubt", { phase: "in_doubt", readyAt: 0, nextAt: 0 }, "in_doubt"],
    ["unrecorded", { phase: "unrecorded", readyAt: 0, nextAt: 0 }, "unrecorded"],
    ["done", { phase: "done", readyAt: 0, nextAt: 0 }, "done"],
  ] as const)("%s", (_name, item, phase) => {
    expect(phaseOf({ ...item, attempts: 0 }, NOW)).toBe(phase);
  });
});

describe("what each phase asks of D1 and the governor", () => {
  it.each([
    ["due", "claim_first", true],
    ["retrying", "claim_retry", true],
    ["in_doubt", "read", false],
    ["unrecorded", "read", false],
    ["waiting", "none", false],
    ["done", "none", false],
  ] as const)("%s → %s, slot %s", (phase, ask, slot) => {
    expect(askFor(phase)).toBe(ask);
    expect(needsSlot(phase)).toBe(slot);
  });

  it("covers every stored phase", () => {
    expect(storedPhases).toHaveLength(5);
    for (const phase of storedPhases) expect(askFor(phase)).toBeDefined();
  });
});

describe("decide", () => {
  const table: [Phase, string, D1Answer, Action][] = [
    // due: the first claim of a message
    ["due", "claim applied", row("processing", { claimed: true, attempts: 1 }), { kind: "send", attempt: 1 }],
    ["due", "already processing, claimed long ago (before a restart)", row("processing"), { kind: "reconcile" }],
    [
      "due",
      "already processing, claimed moments ago: the send may still be under way",
      row("processing", { updatedAt: NOW - 1_000 }),
      { kind: "check_at", at: NOW - 1_000 + SETTLE, attemptAt: NOW - 1_000, attempts: 1 },
    ],
    ["due", "rescheduled later in D1", row("scheduled", { readyAt: NOW + 60_000 }), { kind: "wait_until", at: NOW + 60_000 }],
    ["due", "older message not in the lane yet", row("queued", { olderWaiting: true }), { kind: "pull_older" }],
    ["due", "queued, not claimable this instant", row("queued"), { kind: "hold" }],
    ["due", "scheduled and due, not claimable", row("scheduled"), { kind: "hold" }],
    ["due", "sent already", row("sent"), { kind: "done" }],
    ["due", "canceled", row("canceled"), { kind: "done" }],
    ["due", "failed", row("failed"), { kind: "done" }],
    ["due", "gone", missing, { kind: "done" }],
    // retrying: the previous attempt failed for sure
    ["retrying", "claim applied", row("processing", { claimed: true, attempts: 2 }), { kind: "send", attempt: 2 }],
    ["retrying", "D1 counts an attempt this lane never saw end", row("processing", { attempts: 3 }), { kind: "reconcile" }],
    [
      "retrying",
      "D1 counts an attempt claimed moments ago",
      row("processing", { attempts: 3, updatedAt: NOW - 5 }),
      { kind: "check_at", at: NOW - 5 + SETTLE, attemptAt: NOW - 5, attempts: 3 },
    ],
    ["retrying", "sent meanwhile", row("sent"), { kind: "done" }],
    ["retrying", "delivered meanwhile", row("delivered"), { kind: "done" }],
    ["retrying", "queued again (a replay)", row("queued"), { kind: "requeue" }],
    ["retrying", "gone", missing, { kind: "done" }],
    // in_doubt: ask Evolution before sending again
    ["in_doubt", "still processing, the attempt long over", row("processing"), { kind: "reconcile" }],
    ["in_doubt", "recorded sent by someone else", row("sent"), { kind: "done" }],
    ["in_doubt", "read", row("read"), { kind: "done" }],
    ["in_doubt", "queued again", row("queued"), { kind: "requeue" }],
    ["in_doubt", "gone", missing, { kind: "done" }],
    // unrecorded: Evolution's answer is known, D1 does not have it yet
    ["unrecorded", "still processing", row("processing"), { kind: "record" }],
    ["unrecorded", "already sent", row("sent"), { kind: "done" }],
    ["unrecorded", "failed", row("failed"), { kind: "done" }],
    ["unrecorded", "gone", missing, { kind: "done" }],
    // waiting and done never reach D1
    ["waiting", "not due", missing, { kind: "none" }],
    ["done", "done", row("sent"), { kind: "done" }],
  ];
  it.each(table)("%s, %s", (phase, _name, answer, action) => {
    expect(decide(phase, { attempts: 1 }, answer, NOW, SETTLE)).toEqual(action);
  });

  // in_doubt goes by the lane's own start of the attempt when it has one (D1's row may be older).
  const inDoubt: [string, number, D1Answer, Action][] = [
    [
      "timed out moments ago: wait until it cannot be in flight",
      NOW - 3_000,
      row("processing"),
      { kind: "check_at", at: NOW - 3_000 + SETTLE, attemptAt: NOW - 3_000, attempts: 1 },
    ],
    ["started exactly SETTLE ago: ask now", NOW - SETTLE, row("processing"), { kind: "reconcile" }],
    ["no start known: D1's last change, long ago", 0, row("processing"), { kind: "reconcile" }],
    [
      "no start known: D1's last change, moments ago",
      0,
      row("processing", { updatedAt: NOW - 10 }),
      { kind: "check_at", at: NOW - 10 + SETTLE, attemptAt: NOW - 10, attempts: 1 },
    ],
    ["timed out moments ago but recorded sent meanwhile", NOW - 3_000, row("sent"), { kind: "done" }],
    ["timed out moments ago, queued again", NOW - 3_000, row("queued"), { kind: "requeue" }],
  ];
  it.each(inDoubt)("in_doubt, %s", (_name, attemptAt, answer, action) => {
    expect(decide("in_doubt", { attempts: 1, attemptAt }, answer, NOW, SETTLE)).toEqual(action);
  });

  it("an attempt still possibly in flight is never reconciled, in any phase", () => {
    for (const phase of ["due", "retrying", "in_doubt"] as const)
      for (let age = 0; age < SETTLE; age += 7_000)
        expect(decide(phase, { attempts: 1, attemptAt: NOW - age }, row("processing", { updatedAt: NOW - age }), NOW, SETTLE).kind).toBe("check_at");
  });

  it("the table covers every phase", () => {
    const phases = new Set(table.map(([p]) => p));
    expect([...phases].sort()).toEqual(["done", "due", "in_doubt", "retrying", "unrecorded", "waiting"]);
  });

  it("a claim never counts as a send unless D1 says it applied", () => {
    for (const status of ["scheduled", "queued", "processing", "sent", "failed", "canceled"] as const) {
      expect(decide("due", { attempts: 0 }, row(status), NOW, SETTLE).kind).not.toBe("send");
      expect(decide("retrying", { attempts: 1 }, row(status), NOW, SETTLE).kind).not.toBe("send");
    }
  });
});

describe("afterSend", () => {
  it.each([
    ["201", { kind: "sent", providerMessageId: "3EB0" }, 1, 3, { next: "record", outcome: { kind: "sent", providerMessageId: "3EB0" } }],
    ["permanent", { kind: "permanent", error: "Evolution 400" }, 1, 3, { next: "record", outcome: { kind: "failed", error: "Evolution 400" } }],
    ["5xx, attempts left", { kind: "transient", error: "Evolution 503", doubt: false }, 1, 3, { next: "retrying", delayMs: 2000, error: "Evolution 503" }],
    [
      "5xx with Retry-After",
      { kind: "transient", error: "Evolution 429", retryAfterMs: 9000, doubt: false },
      1,
      3,
      { next: "retrying", delayMs: 9000, error: "Evolution 429" },
    ],
    [
      "5xx, last attempt",
      { kind: "transient", error: "Evolution 503", doubt: false },
      3,
      3,
      { next: "record", outcome: { kind: "failed", error: "Evolution 503 (gave up after 3 attempts)" } },
    ],
    [
      "timeout: in doubt, checked once it settles",
      { kind: "transient", error: "timed out", doubt: true },
      1,
      3,
      { next: "in_doubt", delayMs: 30_000, error: "timed out" },
    ],
    [
      "timeout on the last attempt: still checked",
      { kind: "transient", error: "timed out", doubt: true },
      3,
      3,
      { next: "in_doubt", delayMs: 30_000, error: "timed out" },
    ],
  ] as const)("%s", (_name, result, attempt, max, expected) => {
    expect(afterSend(result, attempt, max, 2000, 30_000)).toEqual(expected);
  });

  it("an in-doubt check waits for the attempt to settle, not for the retry backoff", () => {
    expect(afterSend({ kind: "transient", error: "x", doubt: true }, 1, 3, 500, 31_000)).toMatchObject({ next: "in_doubt", delayMs: 31_000 });
    expect(afterSend({ kind: "transient", error: "x", doubt: true }, 1, 3, 500, -5)).toMatchObject({ next: "in_doubt", delayMs: 0 });
  });
});

describe("Evolution's error answers: certainly not sent, or in doubt", () => {
  // Evolution and the proxies in front of it answer 500/502/504/52x after Baileys relayed the
  // message (its own database write failed, the proxy gave up): asked about before any resend.
  const asLane = (status: number, retryAfter: string | null = null) => {
    const outcome = classify(status, JSON.stringify({ status, error: "x", response: { message: "boom" } }), retryAfter);
    if (outcome.kind !== "transient") throw new Error(`expected transient, got ${outcome.kind}`);
    return afterSend({ ...outcome, doubt: outcome.doubt ?? false }, 1, 3, 2_000, 30_000).next;
  };
  it.each([500, 502, 504, 520, 522, 524, 503])("%i: in doubt, reconciled first", (status) => {
    expect(asLane(status)).toBe("in_doubt");
  });
  it.each([
    [408, null],
    [429, null],
    [503, "5"],
  ] as const)("%i (Retry-After %s): certainly not sent, retried", (status, retryAfter) => {
    expect(asLane(status, retryAfter)).toBe("retrying");
  });
});

describe("afterReconcile", () => {
  it("found: recorded sent with Evolution's id, never sent again", () => {
    expect(afterReconcile({ kind: "found", providerMessageId: "3EB0X" }, 1, 3)).toEqual({
      next: "record",
      outcome: { kind: "sent", providerMessageId: "3EB0X", detail: "reconciled: found in Evolution as 3EB0X; not sent again" },
    });
  });
  it("not found at the first question: asked once more later (a send may complete late), never sent yet", () => {
    expect(afterReconcile({ kind: "not_found" }, 1, 3, 0, 3_000)).toEqual({
      next: "check_again",
      delayMs: 3_000,
      detail: "reconcile: not found in Evolution's messages yet; asking once more in 3000 ms (a send may complete late)",
    });
  });
  it("not found again: sent again", () => {
    expect(afterReconcile({ kind: "not_found" }, 1, 3, 1)).toEqual({ next: "retrying", detail: "reconcile: not found in Evolution's messages; sending again" });
  });
  it("Evolution keeps no messages: asked once more, then sent again, saying so", () => {
    expect(afterReconcile({ kind: "unanswerable", reason: "it keeps no messages", retry: false }, 1, 3, 0, 3_000)).toMatchObject({
      next: "check_again",
      delayMs: 3_000,
    });
    const next = afterReconcile({ kind: "unanswerable", reason: "it keeps no messages", retry: false }, 1, 3, 1);
    expect(next).toMatchObject({ next: "retrying" });
    expect(next.next === "retrying" && next.detail).toMatch(/could not answer \(it keeps no messages\); sending again without proof/);
  });
  it.each([
    [0, 5_000],
    [1, 10_000],
    [2, 20_000],
    [3, 40_000],
    [4, 80_000],
  ])("the question failed (check %i so far): asked again in %i ms, never sent", (checks, delayMs) => {
    const next = afterReconcile({ kind: "unanswerable", reason: "findMessages failed: timed out", retry: true }, 1, 3, checks);
    expect(next).toMatchObject({ next: "check_again", delayMs });
    expect(next.next === "check_again" && next.detail).toMatch(`asking again in ${delayMs} ms (check ${checks + 1} of 5)`);
  });
  it("the question failed every time: sent again, the history says it may arrive twice", () => {
    const next = afterReconcile({ kind: "unanswerable", reason: "findMessages answered 500", retry: true }, 1, 3, RECONCILE_CHECKS);
    expect(next).toMatchObject({ next: "retrying" });
    expect(next.next === "retrying" && next.detail).toMatch(
      /could not answer \(findMessages answered 500\) after 6 checks; sending again without proof, it may arrive twice/,
    );
  });
  it("the question failed on the last attempt, checks used up: failed with the reason", () => {
    expect(afterReconcile({ kind: "unanswerable", reason: "x", retry: true }, 3, 3, RECONCILE_CHECKS)).toMatchObject({
      next: "record",
      outcome: { kind: "failed", error: expect.stringMatching(/could not answer \(x\).*gave up after 3/) },
    });
  });
  it("cannot tell (a look-alike, several candidates): sent again at once, the history says it may arrive twice", () => {
    expect(afterReconcile({ kind: "cannot_tell", reason: "2 messages in Evolution's store could be this one" }, 1, 3, 0)).toEqual({
      next: "retrying",
      detail: "reconcile: cannot tell whether it went (2 messages in Evolution's store could be this one); sending again, it may arrive twice",
    });
    expect(afterReconcile({ kind: "cannot_tell", reason: "x" }, 3, 3, 0)).toMatchObject({
      next: "record",
      outcome: { kind: "failed", error: expect.stringMatching(/cannot tell whether it went \(x\).*gave up after 3/) },
    });
  });
  it("no attempts left: failed, with the reason", () => {
    expect(afterReconcile({ kind: "not_found" }, 3, 3, 1)).toMatchObject({
      next: "record",
      outcome: { kind: "failed", error: expect.stringMatching(/gave up after 3/) },
    });
  });
});

describe("what the lane stores after a step", () => {
  const waiting: StoredItem = { phase: "waiting", attempts: 0, readyAt: NOW - 10, nextAt: 0 };
  const retrying: StoredItem = { phase: "retrying", attempts: 2, attemptAt: NOW - 5_000, nextAt: NOW - 1 };
  const inDoubt: StoredItem = { phase: "in_doubt", attempts: 1, attemptAt: NOW - 90_000, nextAt: NOW - 1, checks: 2 };

  it("a wait keeps the phase and moves only the time; a done item stays done", () => {
    expect(waitUntil(retrying, NOW + 500)).toEqual({ ...retrying, nextAt: NOW + 500 });
    expect(waitUntil({ phase: "done" }, NOW + 500)).toEqual({ phase: "done" });
  });

  it("storage-only actions: each to its phase; actions that need D1 or the provider store nothing yet", () => {
    expect(storedAfter({ kind: "check_at", at: NOW + 60_000, attemptAt: NOW - 1_000, attempts: 3 }, waiting, NOW - 10, NOW, 1_000)).toEqual({
      phase: "in_doubt",
      attempts: 3,
      attemptAt: NOW - 1_000,
      nextAt: NOW + 60_000,
      checks: 0,
    });
    // A check already counted keeps its count.
    expect(storedAfter({ kind: "check_at", at: NOW + 1, attemptAt: NOW - 1, attempts: 1 }, inDoubt, 0, NOW, 1_000)).toMatchObject({ checks: 2 });
    expect(storedAfter({ kind: "wait_until", at: NOW + 3_600_000 }, waiting, NOW - 10, NOW, 1_000)).toEqual({
      phase: "waiting",
      attempts: 0,
      readyAt: NOW + 3_600_000,
      nextAt: 0,
    });
    expect(storedAfter({ kind: "hold" }, waiting, NOW - 10, NOW, 1_000)).toEqual({ ...waiting, nextAt: NOW + 1_000 });
    // Back in line from a retry: its attempts start over, its due time is its own.
    expect(storedAfter({ kind: "requeue" }, retrying, NOW - 10, NOW, 1_000)).toEqual({ phase: "waiting", attempts: 0, readyAt: NOW - 10, nextAt: 0 });
    expect(storedAfter({ kind: "done" }, inDoubt, 0, NOW, 1_000)).toEqual({ phase: "done" });
    expect(storedAfter({ kind: "none" }, waiting, 0, NOW, 1_000)).toEqual({ phase: "done" });
    for (const kind of ["send", "reconcile", "record", "pull_older"] as const) {
      const action = (kind === "send" ? { kind, attempt: 1 } : { kind }) as Action;
      expect(storedAfter(action, waiting, 0, NOW, 1_000)).toBeUndefined();
    }
  });

  it("after a send: the answer kept (unrecorded) before D1 hears it; a retry or a doubt waits; throttling gives the attempt back", () => {
    const sent = { kind: "sent" as const, providerMessageId: "p1" };
    expect(storedAfterSend({ next: "record", outcome: sent }, 1, NOW, NOW + 200, waiting)).toEqual({
      phase: "unrecorded",
      attempts: 1,
      attemptAt: NOW,
      nextAt: 0,
      outcome: sent,
    });
    expect(storedAfterSend({ next: "retrying", delayMs: 4_000, error: "x" }, 2, NOW, NOW + 200, retrying)).toEqual({
      phase: "retrying",
      attempts: 2,
      attemptAt: NOW,
      nextAt: NOW + 4_200,
    });
    expect(storedAfterSend({ next: "in_doubt", delayMs: 60_000, error: "timeout" }, 1, NOW, NOW + 200, waiting)).toEqual({
      phase: "in_doubt",
      attempts: 1,
      attemptAt: NOW,
      nextAt: NOW + 60_200,
      checks: 0,
    });
    expect(storedAfterSend({ next: "throttled", afterMs: 3_000 }, 1, NOW, NOW + 200, waiting)).toEqual({
      phase: "retrying",
      attempts: 0,
      attemptAt: NOW,
      nextAt: NOW + 3_200,
    });
  });

  it("after asking the provider: recorded, asked again (one more check, D1's claim time standing in), or sent again", () => {
    const found = { kind: "sent" as const, providerMessageId: "p9", detail: "reconciled" };
    expect(storedAfterReconcile({ next: "record", outcome: found }, inDoubt, 1, NOW - 80_000, NOW)).toEqual({
      phase: "unrecorded",
      attempts: 1,
      attemptAt: NOW - 90_000,
      nextAt: NOW - 1,
      outcome: found,
    });
    const lostClaim: StoredItem = { phase: "waiting", attempts: 0, readyAt: NOW - 10, nextAt: 0 };
    expect(storedAfterReconcile({ next: "check_again", delayMs: 5_000, detail: "d" }, lostClaim, 1, NOW - 80_000, NOW)).toEqual({
      phase: "in_doubt",
      attempts: 1,
      attemptAt: NOW - 80_000,
      checks: 1,
      nextAt: NOW + 5_000,
    });
    expect(storedAfterReconcile({ next: "check_again", delayMs: 5_000, detail: "d" }, inDoubt, 1, NOW - 80_000, NOW)).toMatchObject({
      attemptAt: NOW - 90_000,
      checks: 3,
    });
    expect(storedAfterReconcile({ next: "retrying", detail: "d" }, inDoubt, 1, NOW - 80_000, NOW)).toEqual({
      phase: "retrying",
      attempts: 1,
      attemptAt: NOW - 90_000,
      nextAt: 0,
    });
  });
});

describe("remoteJidsOf", () => {
  it.each([
    ["5511987654321", ["5511987654321@s.whatsapp.net", "551187654321@s.whatsapp.net"]],
    ["553187654321", ["553187654321@s.whatsapp.net", "5531987654321@s.whatsapp.net"]],
    ["5215512345678", ["5215512345678@s.whatsapp.net", "525512345678@s.whatsapp.net"]],
    ["14155550100", ["14155550100@s.whatsapp.net"]],
    ["120363041234567890@g.us", ["120363041234567890@g.us"]],
  ])("%s", (to, jids) => {
    expect(remoteJidsOf(to)).toEqual(jids);
  });
});
