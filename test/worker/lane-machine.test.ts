// The lane's state machine, table by table: every phase against every kind of D1 answer.
import { describe, expect, it } from "vitest";
import type { MessageStatus } from "../../src/contracts/events.ts";
import { remoteJidsOf } from "../../src/evolution/reconcile.ts";
import {
  afterReconcile,
  afterSend,
  askFor,
  decide,
  needsSlot,
  phaseOf,
  storedPhases,
  type Action,
  type D1Answer,
  type Phase,
} from "../../src/lanes/lane-machine.ts";

const NOW = 1_000_000;
const row = (status: MessageStatus, extra: Partial<Extract<D1Answer, { found: true }>> = {}): D1Answer => ({
  found: true,
  status,
  claimed: false,
  attempts: 1,
  readyAt: NOW - 1,
  olderWaiting: false,
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
    ["due", "already processing (claimed before a restart)", row("processing"), { kind: "reconcile" }],
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
    ["retrying", "sent meanwhile", row("sent"), { kind: "done" }],
    ["retrying", "delivered meanwhile", row("delivered"), { kind: "done" }],
    ["retrying", "queued again (a replay)", row("queued"), { kind: "requeue" }],
    ["retrying", "gone", missing, { kind: "done" }],
    // in_doubt: ask Evolution before sending again
    ["in_doubt", "still processing", row("processing"), { kind: "reconcile" }],
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
    expect(decide(phase, { attempts: 1 }, answer, NOW)).toEqual(action);
  });

  it("the table covers every phase", () => {
    const phases = new Set(table.map(([p]) => p));
    expect([...phases].sort()).toEqual(["done", "due", "in_doubt", "retrying", "unrecorded", "waiting"]);
  });

  it("a claim never counts as a send unless D1 says it applied", () => {
    for (const status of ["scheduled", "queued", "processing", "sent", "failed", "canceled"] as const) {
      expect(decide("due", { attempts: 0 }, row(status), NOW).kind).not.toBe("send");
      expect(decide("retrying", { attempts: 1 }, row(status), NOW).kind).not.toBe("send");
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
    ["timeout: in doubt", { kind: "transient", error: "timed out", doubt: true }, 1, 3, { next: "in_doubt", delayMs: 2000, error: "timed out" }],
    [
      "timeout on the last attempt: still checked",
      { kind: "transient", error: "timed out", doubt: true },
      3,
      3,
      { next: "in_doubt", delayMs: 2000, error: "timed out" },
    ],
  ] as const)("%s", (_name, result, attempt, max, expected) => {
    expect(afterSend(result, attempt, max, 2000)).toEqual(expected);
  });

  it("an in-doubt check waits no longer than 5 s", () => {
    expect(afterSend({ kind: "transient", error: "x", doubt: true }, 1, 3, 60_000)).toMatchObject({ next: "in_doubt", delayMs: 5000 });
  });
});

describe("afterReconcile", () => {
  it("found: recorded sent with Evolution's id, never sent again", () => {
    expect(afterReconcile({ kind: "found", providerMessageId: "3EB0X" }, 1, 3)).toEqual({
      next: "record",
      outcome: { kind: "sent", providerMessageId: "3EB0X", detail: "reconciled: found in Evolution as 3EB0X; not sent again" },
    });
  });
  it("not found: sent again", () => {
    expect(afterReconcile({ kind: "not_found" }, 1, 3)).toEqual({ next: "retrying", detail: "reconcile: not found in Evolution's messages; sending again" });
  });
  it("Evolution cannot answer: sent again, saying so", () => {
    const next = afterReconcile({ kind: "unanswerable", reason: "findMessages answered 500" }, 1, 3);
    expect(next).toMatchObject({ next: "retrying" });
    expect(next.next === "retrying" && next.detail).toMatch(/could not answer \(findMessages answered 500\); sending again without proof/);
  });
  it("no attempts left: failed, with the reason", () => {
    expect(afterReconcile({ kind: "not_found" }, 3, 3)).toMatchObject({
      next: "record",
      outcome: { kind: "failed", error: expect.stringMatching(/gave up after 3/) },
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
