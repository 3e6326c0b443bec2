// The chaos harness's verdict rules, on made-up observations: each goal can fail.
import { describe, expect, it } from "vitest";
import { judge, regressed, type Observed, type Planned } from "../../scripts/chaos/verdict.ts";

describe("verdict rules", () => {
  const plan: Planned[] = [0, 1, 2].map((n) => ({ n, text: `t${n}`, contact: 0, k: n, channel: "api", scheduled: false }));
  const base = (): Observed => ({
    acceptedApi: new Map(plan.map((p) => [p.n, `m${p.n}`])),
    producedKafka: new Set(),
    deadLettered: new Map(),
    messages: plan.map((p) => ({ id: `m${p.n}`, text: p.text, status: "read", history: [{ status: "queued" }, { status: "sent" }, { status: "read" }] })),
    calls: plan.map((p) => ({ text: p.text, number: "1", status: 201, answeredAt: p.n })),
    statusEvents: plan.map((p) => ({ messageId: `m${p.n}`, status: "read" })),
    requests: [{ at: 5, status: 503 }],
    restartWindows: [{ from: 0, to: 10 }],
  });

  it("a clean run meets every goal", () => {
    expect(judge(plan, base())).toMatchObject({
      lost: 0,
      sentTwice: 0,
      outOfOrder: 0,
      regressions: 0,
      missingEvents: 0,
      serverErrors: { outside: 0, inside: 1 },
    });
  });

  it("counts each kind of failure", () => {
    const o = base();
    o.messages[0]!.status = "processing";
    o.calls.push({ text: "t1", number: "1", status: 201, answeredAt: 9 });
    o.calls[2]!.answeredAt = -1;
    o.messages[1]!.history.push({ status: "delivered" });
    o.statusEvents = o.statusEvents.slice(1);
    o.requests.push({ at: 50, status: 500 });
    const v = judge(plan, o);
    // m0 back in processing after read: stuck (lost) and a regression; m1 delivered after read: a regression.
    expect(v).toMatchObject({
      lost: 1,
      notTerminal: 1,
      sentTwice: 1,
      outOfOrder: 2,
      regressions: 2,
      missingEvents: 1,
      serverErrors: { outside: 1, inside: 1 },
    });
    expect(regressed(["queued", "sent", "processing", "sent"])).toBe(true);
    expect(regressed(["queued", "processing", "queued", "processing", "sent", "failed"])).toBe(false);
  });
});
