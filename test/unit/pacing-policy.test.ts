// The pacing policy alone, on a hand-set clock: gaps, rate + burst, daily cap, warm-up, quiet
// hours, fairness, idempotency, typing time and spike detection.
import { describe, expect, it } from "vitest";
import { type AcquireRequest, capOn, grantKey, PacingPolicy, quietUntil, TURN_CLAIM_MS, typingMsFor } from "../../src/lanes/pacing/policy.ts";
import { defaultPacing, type Pacing } from "../../src/lanes/pacing/settings.ts";

const pacing = (over: Partial<Pacing>): Pacing => ({ ...defaultPacing(60), ...over });
const req = (messageId: string, priority = 5, over: Partial<AcquireRequest> = {}): AcquireRequest => ({
  laneKey: `ten:ins:${messageId}`,
  messageId,
  priority,
  ratePerMinute: 60,
  ...over,
});
// A deterministic "random" so failures reproduce.
const seeded = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};

// Drives `contacts` lanes with one message each through the policy, each asking again at its
// retryAt, like lanes re-arming their alarms, each call answered at once (a number with gaps
// gets its turn back); returns the grant times in order.
function drive(policy: PacingPolicy, p: Pacing, contacts: number, start: number, priority = (_i: number) => 5) {
  const due = new Map<string, number>();
  for (let i = 0; i < contacts; i++) due.set(`m${i}`, start);
  const sends: { id: string; at: number }[] = [];
  let guard = 0;
  while (due.size > 0 && guard++ < 100_000) {
    const [id, at] = [...due].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0]!;
    const answer = policy.decide(req(id, priority(Number(id.slice(1)))), p, at);
    if (answer.go) {
      sends.push({ id, at });
      policy.release(grantKey(id), p, at);
      due.delete(id);
    } else {
      expect(answer.retryAt).toBeGreaterThan(at);
      due.set(id, answer.retryAt);
    }
  }
  expect(due.size).toBe(0);
  return sends;
}

const T0 = Date.UTC(2026, 10, 23, 15, 0, 0); // 12:00 in São Paulo

describe("rate, burst and gaps", () => {
  it("keeps every gap within [min, max] when the number is busy", () => {
    const p = pacing({ ratePerMinute: 600, burst: 1, gapMs: { min: 3_000, max: 9_000 } });
    const sends = drive(new PacingPolicy(seeded(7)), p, 60, T0);
    expect(sends).toHaveLength(60);
    const gaps = sends.slice(1).map((s, i) => s.at - sends[i]!.at);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(3_000);
    // Lanes come back at their ticket; a ticket never lands later than the drawn gap plus one spacing.
    expect(Math.max(...gaps)).toBeLessThanOrEqual(9_000 + 6_000);
    expect(new Set(gaps).size).toBeGreaterThan(10);
  });

  it("never sends more than ratePerMinute + burst in any 60 s window", () => {
    const p = pacing({ ratePerMinute: 30, burst: 5 });
    const sends = drive(new PacingPolicy(), p, 200, T0);
    let most = 0;
    for (let i = 0; i < sends.length; i++) {
      let j = i;
      while (j < sends.length && sends[j]!.at < sends[i]!.at + 60_000) j++;
      most = Math.max(most, j - i);
    }
    expect(most).toBeGreaterThan(30);
    expect(most).toBeLessThanOrEqual(30 + 5);
    // The burst goes at once, then one every 2 s.
    expect(sends.slice(0, 5).map((s) => s.at)).toEqual([T0, T0, T0, T0, T0]);
    expect(sends[5]!.at - T0).toBe(2_000);
  });

  it("answers go again for a message already granted, without using a slot", () => {
    const policy = new PacingPolicy();
    const p = pacing({ ratePerMinute: 1, burst: 1 });
    expect(policy.decide(req("a"), p, T0)).toEqual({ go: true });
    expect(policy.decide(req("a"), p, T0 + 10)).toEqual({ go: true });
    expect(policy.durable.count).toBe(1);
    const other = policy.decide(req("b"), p, T0 + 20);
    expect(other).toMatchObject({ go: false, retryAt: T0 + 60_000 });
    // A retry of the same message is another send: it needs its own slot.
    expect(policy.decide(req("a", 5, { attempt: 2 }), p, T0 + 30)).toMatchObject({ go: false, reason: "rate" });
  });
});

describe("daily cap and warm-up", () => {
  const tz = "America/Sao_Paulo";

  it("holds past the cap until the next local day, with one note, then resumes", () => {
    const policy = new PacingPolicy();
    const p = pacing({ ratePerMinute: 6000, burst: 100, dailyCap: 3, timeZone: tz });
    for (const id of ["a", "b", "c"]) expect(policy.decide(req(id), p, T0).go).toBe(true);
    const held = policy.decide(req("d"), p, T0 + 1_000);
    const midnight = Date.UTC(2026, 10, 24, 3, 0, 0); // 00:00 in São Paulo (UTC-3)
    expect(held).toMatchObject({ go: false, reason: "daily-cap", retryAt: midnight });
    expect(held.go === false && held.note).toContain("daily cap of 3 reached");
    const again = policy.decide(req("d"), p, T0 + 60_000);
    expect(again.go === false && again.note).toBeUndefined();
    // A second waiter is staggered behind the first.
    const second = policy.decide(req("e"), p, T0 + 2_000);
    expect(second.go === false && second.retryAt).toBeGreaterThan(midnight);
    expect(policy.decide(req("d"), p, midnight).go).toBe(true);
    expect(policy.today(p, midnight).sent).toBe(1);
  });

  it("grows the cap from startPerDay to dailyCap over the warm-up days", () => {
    const since = Date.UTC(2026, 10, 20, 12, 0, 0);
    const p = pacing({ ratePerMinute: 6000, burst: 100, dailyCap: 50, timeZone: tz, warmup: { days: 4, startPerDay: 10, since } });
    const caps = [0, 1, 2, 3, 4, 9].map((d) => capOn(since + d * 86_400_000, p));
    expect(caps).toEqual([10, 20, 30, 40, 50, 50]);
    // Enforced: day 0 stops at 10.
    const policy = new PacingPolicy();
    const sends = [];
    for (let i = 0; i < 12; i++) sends.push(policy.decide(req(`w${i}`), p, since + i).go);
    expect(sends.filter(Boolean)).toHaveLength(10);
  });
});

describe("quiet hours", () => {
  const quiet = { start: "21:00", end: "08:00", timeZone: "America/Sao_Paulo" };

  it("holds inside the window (across midnight) until its end, and sends outside it", () => {
    const p = pacing({ quietHours: quiet });
    const policy = new PacingPolicy();
    const night = Date.UTC(2026, 10, 24, 1, 30); // 22:30 local
    const morning = Date.UTC(2026, 10, 24, 11, 0); // 08:00 local
    const held = policy.decide(req("a"), p, night);
    expect(held).toMatchObject({ go: false, reason: "quiet-hours", retryAt: morning });
    expect(held.go === false && held.note).toContain("quiet hours");
    expect(quietUntil(Date.UTC(2026, 10, 24, 10, 59), quiet)).toBe(morning);
    expect(quietUntil(morning, quiet)).toBeNull();
    expect(policy.decide(req("a"), p, morning).go).toBe(true);
  });

  it("moves a daily-cap wait past the quiet hours of the next morning", () => {
    const p = pacing({ ratePerMinute: 6000, burst: 100, dailyCap: 1, timeZone: "America/Sao_Paulo", quietHours: quiet });
    const policy = new PacingPolicy();
    expect(policy.decide(req("a"), p, T0).go).toBe(true);
    expect(policy.decide(req("b"), p, T0 + 1)).toMatchObject({ reason: "daily-cap", retryAt: Date.UTC(2026, 10, 24, 11, 0) });
  });
});

describe("fairness", () => {
  it("gives the next free slot to a transactional waiter before campaign waiters", () => {
    const policy = new PacingPolicy();
    const p = pacing({ ratePerMinute: 6, burst: 1 });
    expect(policy.decide(req("bulk-0", 5), p, T0).go).toBe(true);
    const bulk = policy.decide(req("bulk-1", 5), p, T0 + 100);
    const urgent = policy.decide(req("otp", 1), p, T0 + 200);
    expect(bulk.go || urgent.go).toBe(false);
    const next = T0 + 10_000;
    expect(urgent.go === false && urgent.retryAt).toBe(next);
    expect(bulk.go === false && bulk.retryAt).toBe(next);
    // Even a campaign lane that comes back first at the free slot yields it.
    expect(policy.decide(req("bulk-1", 5), p, next)).toMatchObject({ go: false, reason: "fairness" });
    expect(policy.decide(req("otp", 1), p, next).go).toBe(true);
  });

  it("sends all transactional messages of a busy number before the campaign", () => {
    const p = pacing({ ratePerMinute: 60, burst: 1 });
    const policy = new PacingPolicy();
    // m0..m19: campaign (5) and every fifth transactional (2), all due at once.
    const sends = drive(policy, p, 20, T0, (i) => (i % 5 === 0 && i > 0 ? 2 : 5));
    const order = sends.map((s) => s.id);
    const urgentIdx = ["m5", "m10", "m15"].map((id) => order.indexOf(id));
    expect(Math.max(...urgentIdx)).toBeLessThan(4);
  });
});

describe("typing and signals", () => {
  it("scales typing with the text and reserves the send after it", () => {
    expect(typingMsFor(5)).toBe(1_000);
    expect(typingMsFor(100)).toBe(4_000);
    expect(typingMsFor(10_000)).toBe(12_000);
    const policy = new PacingPolicy(() => 0);
    const p = pacing({ typing: true, gapMs: { min: 2_000, max: 2_000 } });
    expect(policy.decide(req("a", 5, { textLength: 100 }), p, T0)).toEqual({ go: true, typingMs: 4_000, sendAt: T0 + 4_000 });
    // A lane re-running its alarm after the go is told the same send time.
    expect(policy.decide(req("a", 5, { textLength: 100 }), p, T0 + 1_000)).toEqual({ go: true, typingMs: 3_000, sendAt: T0 + 4_000 });
    // While a types, the number's turn is a's.
    expect(policy.decide(req("b"), p, T0 + 2_000)).toMatchObject({ go: false, reason: "sending" });
    // The gap counts from the text's answer, not from the presence.
    policy.release("a#1", p, T0 + 4_000);
    expect(policy.decide(req("b"), p, T0 + 5_000)).toMatchObject({ go: false, retryAt: T0 + 6_000, reason: "gap" });
    expect(policy.decide(req("b"), p, T0 + 6_000).go).toBe(true);
  });

  it("holds every request while paused", () => {
    const policy = new PacingPolicy();
    policy.pause = { reason: "connection-closed", at: T0, until: null };
    expect(policy.decide(req("a"), pacing({}), T0)).toMatchObject({ go: false, reason: "paused", retryAt: T0 + 60_000 });
    policy.pause = { reason: "rate-overlimit", at: T0, until: T0 + 5_000 };
    expect(policy.decide(req("a"), pacing({}), T0 + 1)).toMatchObject({ go: false, reason: "paused", retryAt: T0 + 5_000 });
  });

  it("detects a spike of numbers not on WhatsApp within the window only", () => {
    const policy = new PacingPolicy();
    const p = pacing({ invalidNumberSpike: { count: 3, windowMinutes: 1 } });
    expect(policy.noteInvalidNumber(p, T0)).toBe(false);
    expect(policy.noteInvalidNumber(p, T0 + 61_000)).toBe(false);
    expect(policy.noteInvalidNumber(p, T0 + 62_000)).toBe(false);
    expect(policy.noteInvalidNumber(p, T0 + 63_000)).toBe(true);
  });
});

describe("turns: a number with gaps sends one message at a time", () => {
  const p = pacing({ ratePerMinute: 600, burst: 5, gapMs: { min: 200, max: 200 } });

  it("starts the next turn only after the previous call's answer plus its gap, and wakes the lane next in line", () => {
    const policy = new PacingPolicy(seeded(3));
    expect(policy.decide(req("a"), p, T0).go).toBe(true);
    // a is claiming its message or its call is out: b waits for the turn, whatever the clock says.
    expect(policy.decide(req("b"), p, T0 + 500)).toMatchObject({ go: false, reason: "sending" });
    // a's call is answered at +800: b, first in line, is the lane to wake.
    expect(policy.release("a#1", p, T0 + 800)).toEqual(["ten:ins:b"]);
    expect(policy.decide(req("b"), p, T0 + 810)).toEqual({ go: false, retryAt: T0 + 1_000, reason: "gap" });
    expect(policy.decide(req("b"), p, T0 + 1_000).go).toBe(true);
    // Nobody else waits: the end of b's turn wakes nobody.
    expect(policy.release("b#1", p, T0 + 1_100)).toEqual([]);
  });

  it("wakes a transactional message before the campaign when a turn ends", () => {
    const policy = new PacingPolicy(seeded(3));
    expect(policy.decide(req("a"), p, T0).go).toBe(true);
    expect(policy.decide(req("campaign", 5), p, T0 + 10)).toMatchObject({ go: false, reason: "sending" });
    expect(policy.decide(req("otp", 1), p, T0 + 20)).toMatchObject({ go: false, reason: "sending" });
    expect(policy.release("a#1", p, T0 + 100)).toEqual(["ten:ins:otp", "ten:ins:campaign"]);
  });

  it("gives the turn back without a gap when the lane made no call", () => {
    const policy = new PacingPolicy(seeded(3));
    expect(policy.decide(req("a"), p, T0).go).toBe(true);
    expect(policy.decide(req("b"), p, T0 + 250)).toMatchObject({ go: false, reason: "sending" });
    // a's claim found its message canceled: the turn goes back, no new gap starts.
    expect(policy.release("a#1", p, T0 + 260, false)).toEqual(["ten:ins:b"]);
    expect(policy.decide(req("b"), p, T0 + 260).go).toBe(true);
  });

  it("frees the turn after its lease when a lane never gives it back", () => {
    const policy = new PacingPolicy(seeded(3), 1_000);
    expect(policy.decide(req("a"), p, T0).go).toBe(true);
    const lease = TURN_CLAIM_MS + 1_000;
    expect(policy.decide(req("b"), p, T0 + lease - 1)).toMatchObject({ go: false, reason: "sending" });
    expect(policy.decide(req("b"), p, T0 + lease).go).toBe(true);
    // a's lane comes back late: its turn has moved on, so it waits (its grant is not counted again).
    expect(policy.decide(req("a"), p, T0 + lease + 1)).toMatchObject({ go: false, reason: "sending" });
    policy.release("b#1", p, T0 + lease + 50);
    expect(policy.decide(req("a"), p, T0 + lease + 60)).toMatchObject({ go: false, reason: "gap" });
    expect(policy.decide(req("a"), p, T0 + lease + 250)).toEqual({ go: true });
    expect(policy.durable.count).toBe(2);
  });

  it("lets the sends of a number without gaps overlap, as before", () => {
    const policy = new PacingPolicy(seeded(3));
    const plain = pacing({ ratePerMinute: 600, burst: 2 });
    expect(policy.decide(req("a"), plain, T0).go).toBe(true);
    expect(policy.decide(req("b"), plain, T0).go).toBe(true);
    expect(policy.release("a#1", plain, T0 + 10)).toEqual([]);
  });

  it("gives a refused send's grant and count back", () => {
    const policy = new PacingPolicy(seeded(3));
    const capped = pacing({ dailyCap: 1 });
    expect(policy.decide(req("a"), capped, T0).go).toBe(true);
    expect(policy.decide(req("b"), capped, T0 + 5_000)).toMatchObject({ go: false, reason: "daily-cap" });
    expect(policy.forgetGrant("a#1")).toBe(true);
    expect(policy.forgetGrant("a#1")).toBe(false);
    expect(policy.today(capped, T0).sent).toBe(0);
    expect(policy.decide(req("b"), capped, T0 + 6_000).go).toBe(true);
  });
});

describe("a campaign of 50,000 contacts on one number", () => {
  const id = (i: number) => `m${String(i).padStart(5, "0")}`;
  // Every contact's first ask while the number is busy (a transactional message every thousandth);
  // returns each one's retry time and the policy.
  function campaign(waiters: number) {
    const policy = new PacingPolicy(seeded(5));
    const p = pacing({ ratePerMinute: 60, burst: 1 });
    expect(policy.decide(req("first"), p, T0).go).toBe(true);
    const retryAt: number[] = [];
    for (let i = 0; i < waiters; i++) {
      // A hundred asks a millisecond, all inside the first second (the next slot).
      const answer = policy.decide(req(id(i), i % 1000 === 0 ? 1 : 5), p, T0 + 1 + Math.floor(i / 100));
      if (answer.go) throw new Error(`${id(i)} granted on a busy number`);
      retryAt.push(answer.retryAt);
    }
    return { policy, retryAt, p };
  }

  it("places each waiter in O(log n): 50,000 first asks in a bounded number of steps, in line order", () => {
    const small = campaign(5_000);
    const large = campaign(50_000);

    // Staggered one slot apart in line order: transactional first, then first come first served.
    const slot = (place: number) => T0 + 1_000 + place * 1_000;
    expect(large.retryAt[1]).toBe(slot(1));
    expect(large.retryAt[49_999]).toBe(slot(49_999));
    expect(large.retryAt[2_000]).toBe(slot(2));
    expect(large.policy.today(large.p, T0).waiting).toBe(50_000);
    expect(large.policy.waitingLanes(new Set(["rate"]), 3)).toEqual(["ten:ins:m00000", "ten:ins:m01000", "ten:ins:m02000"]);

    // A pass over the waiters per ask would be 1.25 billion steps for 50,000; a logarithmic
    // structure takes a few dozen per ask, and ten times the waiters cost about ten times the work.
    expect(large.policy.work).toBeLessThan(50_000 * 200);
    expect(large.policy.work / small.policy.work).toBeLessThan(20);
  });

  it("forgets waiters that never came back, and asking again keeps a waiter's place", () => {
    const { policy, p } = campaign(2_000);
    // m00005 asks again before the slot opens: the four campaign messages before it and both
    // transactional ones (m01000 came later, and goes first) are ahead of it.
    expect(policy.decide(req(id(5)), p, T0 + 900)).toMatchObject({ go: false, retryAt: T0 + 1_000 + 6 * 1_000 });
    // Long after every retry time and its grace, only the one that asks is left.
    const late = T0 + 2_000 * 1_000 + 3 * 60_000;
    expect(policy.decide(req(id(1999)), p, late).go).toBe(true);
    expect(policy.decide(req(id(7)), p, late + 1)).toMatchObject({ go: false, retryAt: late + 1_000 });
    expect(policy.today(p, late).waiting).toBe(1);
  });
});
