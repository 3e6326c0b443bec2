// The automation lane's machine: debounce, the batch's phases as stored, and the way a failure ends.
import { describe, expect, it } from "vitest";
import {
  DEBOUNCE_CAP,
  MAX_BATCH,
  afterFailure,
  answered,
  attempting,
  batchOf,
  formed,
  nextBatch,
  rowOf,
  waitsHere,
  type StoredBatch,
} from "../../src/automation/lane-machine.ts";

const NOW = 1_000_000;
const item = (id: string, arrivedAt: number) => ({ id, arrivedAt });

describe("nextBatch", () => {
  it("nothing pending: nothing to call", () => {
    expect(nextBatch([], 1_000, NOW)).toEqual({ kind: "none" });
  });
  it("without debounce: the first message alone, at once", () => {
    expect(nextBatch([item("a", NOW), item("b", NOW)], 0, NOW)).toEqual({ kind: "form", ids: ["a"] });
  });
  it("a contact still typing: waits until quiet for debounceMs", () => {
    expect(nextBatch([item("a", NOW - 500), item("b", NOW - 100)], 1_000, NOW)).toEqual({ kind: "wait", at: NOW + 900 });
  });
  it("quiet long enough: the whole burst in order", () => {
    expect(nextBatch([item("a", NOW - 3_000), item("b", NOW - 1_000)], 1_000, NOW)).toEqual({ kind: "form", ids: ["a", "b"] });
  });
  it("a burst that never pauses is sent DEBOUNCE_CAP × debounceMs after its first message", () => {
    const first = NOW - 2_000;
    expect(nextBatch([item("a", first), item("b", NOW)], 1_000, NOW)).toEqual({ kind: "wait", at: first + DEBOUNCE_CAP * 1_000 });
  });
  it("a stored end that has come calls the burst, whatever the setting says now", () => {
    expect(nextBatch([item("a", NOW - 100), item("b", NOW - 50)], 10_000, NOW, NOW)).toEqual({ kind: "form", ids: ["a", "b"] });
  });
  it("before its stored end the end is computed again: a new message moves it", () => {
    expect(nextBatch([item("a", NOW - 500), item("b", NOW)], 1_000, NOW, NOW + 500)).toEqual({ kind: "wait", at: NOW + 1_000 });
  });
  it("MAX_BATCH messages are sent without waiting", () => {
    const many = Array.from({ length: MAX_BATCH }, (_, k) => item(`m${k}`, NOW));
    const next = nextBatch(many, 1_000, NOW);
    expect(next.kind).toBe("form");
    expect(next.kind === "form" && next.ids).toHaveLength(MAX_BATCH);
  });
});

describe("the batch as stored", () => {
  const batch = attempting(formed(["a", "b"], "call_1"));
  it("a new batch is named after its last message and called at once", () => {
    expect(formed(["a", "b"], "call_1")).toMatchObject({ phase: "calling", id: "b", attempts: 0, webhookId: "call_1" });
  });
  it("each phase survives its row", () => {
    const phases: StoredBatch[] = [
      batch,
      { ...batch, phase: "retrying", nextAt: NOW + 5, lastError: "HTTP 500" },
      answered(batch, { replies: [], dropped: 0, attempts: 1 }),
    ];
    for (const b of phases) expect(batchOf(rowOf(b), NOW)).toEqual(b);
  });
  it("a retry whose time has come is called again, keeping its webhook id and error", () => {
    const row = rowOf({ ...batch, phase: "retrying", nextAt: NOW, lastError: "HTTP 500" });
    expect(batchOf(row, NOW)).toEqual({ ...batch, lastError: "HTTP 500" });
  });
  it("a batch from before webhook ids were kept reads as such", () => {
    expect(batchOf({ ...rowOf(batch), webhook_id: null }, NOW).webhookId).toBeNull();
  });
});

describe("after a failed call", () => {
  it("retries while attempts remain", () => {
    expect(afterFailure(attempting(formed(["a"], "c")), 3, "timeout", NOW + 1_000)).toEqual({
      kind: "retry",
      batch: { phase: "retrying", id: "a", itemIds: ["a"], attempts: 1, webhookId: "c", nextAt: NOW + 1_000, lastError: "timeout" },
    });
  });
  it("the last attempt makes a dead letter", () => {
    const third = attempting(attempting(attempting(formed(["a"], "c"))));
    expect(afterFailure(third, 3, "timeout", NOW + 1_000)).toEqual({ kind: "dead" });
  });
});

describe("messages' states", () => {
  it("only pending and batched messages wait here", () => {
    expect(["pending", "batched", "done", "dead", "dropped", undefined].map((s) => waitsHere(s as never))).toEqual([true, true, false, false, false, false]);
  });
});
