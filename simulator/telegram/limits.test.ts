// Flood control (per chat, per group, per bot, with retry_after and the calls made inside it) and
// the faults: scripted errors, sends that went out before a 5xx, sends answered late, and the
// seeded random ones.
import { afterEach, describe, expect, it, vi } from "vitest";
import { dropHeader } from "../evolution.ts";
import { type Json, setup, TOKEN } from "./support.ts";

afterEach(() => {
  vi.useRealTimers();
});

/** Flood control reads Date.now(); a frozen clock makes the buckets exact. */
function frozenClock() {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(new Date("2026-03-02T12:00:00Z"));
  return (ms: number) => vi.setSystemTime(Date.now() + ms);
}

const summary = (calls: Json[]) => calls.map((c) => [c.status, c.retryAfter ?? null, c.insideRetryAfter]);

describe("flood control", () => {
  it("allows a short burst to one chat, then 429 with retry_after; a call inside retry_after is refused and recorded as such", async () => {
    const advance = frozenClock();
    const sim = setup();
    await sim.chat(100);
    for (const n of [1, 2, 3]) expect((await sim.api("sendMessage", { chat_id: 100, text: `m${n}` })).status).toBe(200);
    const limited = await sim.api("sendMessage", { chat_id: 100, text: "m4" });
    expect(limited).toMatchObject({
      status: 429,
      body: { ok: false, error_code: 429, description: "Too Many Requests: retry after 1", parameters: { retry_after: 1 } },
    });
    advance(500);
    expect((await sim.api("sendMessage", { chat_id: 100, text: "m4" })).status).toBe(429);
    // Other chats are not held.
    await sim.chat(101);
    expect((await sim.api("sendMessage", { chat_id: 101, text: "x" })).status).toBe(200);
    advance(500);
    const after = await sim.api("sendMessage", { chat_id: 100, text: "m4" });
    expect(after.body.result.message_id).toBe(4);
    expect(summary(await sim.calls("&chatId=100"))).toEqual([
      [200, null, false],
      [200, null, false],
      [200, null, false],
      [429, 1, false],
      [429, 1, true],
      [200, null, false],
    ]);
  });

  it("limits a group to about 20 messages a minute", async () => {
    const advance = frozenClock();
    const sim = setup();
    await sim.control("PATCH", "/config", { limits: { perChatBurst: 50, perChatPerSecond: 50 } });
    await sim.chat(-1001000000001, { title: "Turma" });
    for (let n = 1; n <= 20; n++) expect((await sim.api("sendMessage", { chat_id: -1001000000001, text: `m${n}` })).status).toBe(200);
    const limited = await sim.api("sendMessage", { chat_id: -1001000000001, text: "m21" });
    expect(limited.body.parameters).toEqual({ retry_after: 3 });
    advance(3000);
    expect((await sim.api("sendMessage", { chat_id: -1001000000001, text: "m21" })).status).toBe(200);
  });

  it("limits a bot to about 30 messages a second across chats, holding every chat during retry_after", async () => {
    frozenClock();
    const sim = setup();
    await sim.control("PATCH", "/config", { anyChat: true });
    for (let chat = 1; chat <= 30; chat++) expect((await sim.api("sendMessage", { chat_id: chat, text: "promo" })).status).toBe(200);
    expect((await sim.api("sendMessage", { chat_id: 31, text: "promo" })).body.parameters).toEqual({ retry_after: 1 });
    expect((await sim.api("sendMessage", { chat_id: 32, text: "promo" })).status).toBe(429);
    expect(summary((await sim.calls()).slice(30))).toEqual([
      [429, 1, false],
      [429, 1, true],
    ]);
  });

  it("is configurable and can be switched off", async () => {
    frozenClock();
    const sim = setup();
    await sim.chat(5);
    const patched = await sim.control("PATCH", "/config", { limits: { perChatBurst: 1 } });
    expect(patched.body.limits).toEqual({ enabled: true, perChatPerSecond: 1, perChatBurst: 1, perGroupPerMinute: 20, perBotPerSecond: 30 });
    expect((await sim.api("sendMessage", { chat_id: 5, text: "a" })).status).toBe(200);
    expect((await sim.api("sendMessage", { chat_id: 5, text: "b" })).status).toBe(429);
    await sim.control("DELETE", "/calls");
    await sim.control("PATCH", "/config", { limits: { enabled: false } });
    for (let n = 0; n < 10; n++) expect((await sim.api("sendMessage", { chat_id: 5, text: `${n}` })).status).toBe(200);
    expect((await sim.control("PATCH", "/config", { limits: { perChatBurst: 0 } })).status).toBe(400);
  });

  it("a scripted 429 holds the chat for its retry_after like a real one", async () => {
    const advance = frozenClock();
    const sim = setup();
    await sim.chat(5);
    await sim.control("POST", "/faults", { chatId: 5, method: "sendMessage", status: 429, parameters: { retry_after: 7 } });
    expect((await sim.api("sendMessage", { chat_id: 5, text: "a" })).body).toEqual({
      ok: false,
      error_code: 429,
      description: "Too Many Requests: retry after 7",
      parameters: { retry_after: 7 },
    });
    advance(6000);
    expect((await sim.api("sendMessage", { chat_id: 5, text: "a" })).body.parameters).toEqual({ retry_after: 1 });
    // Flagged whatever it is answered.
    await sim.control("POST", "/faults", { chatId: 5, status: 502 });
    expect((await sim.api("sendMessage", { chat_id: 5, text: "a" })).status).toBe(502);
    advance(1000);
    expect((await sim.api("sendMessage", { chat_id: 5, text: "a" })).status).toBe(200);
    expect(summary(await sim.calls())).toEqual([
      [429, 7, false],
      [429, 1, true],
      [502, null, true],
      [200, null, false],
    ]);
  });
});

describe("faults", () => {
  it("scripted 5xx: not sent; sent then 5xx: the message exists though the answer was an error", async () => {
    const sim = setup();
    await sim.chat(5);
    await sim.control("POST", "/faults", [
      { method: "sendMessage", status: 502 },
      { chatId: 5, status: 500, sent: true },
    ]);
    expect(await sim.api("sendMessage", { chat_id: 5, text: "a" })).toMatchObject({
      status: 502,
      body: { ok: false, error_code: 502, description: "Bad Gateway" },
    });
    expect(await sim.api("sendMessage", { chat_id: 5, text: "a" })).toMatchObject({
      status: 500,
      body: { ok: false, error_code: 500, description: "Internal Server Error" },
    });
    // The second call's message took id 1, so the next is 2.
    expect((await sim.api("sendMessage", { chat_id: 5, text: "a" })).body.result.message_id).toBe(2);
    expect((await sim.calls()).map((c) => [c.status, c.sent, c.messageId ?? null])).toEqual([
      [502, false, null],
      [500, true, 1],
      [200, true, 2],
    ]);
    expect((await sim.control("GET", "/faults")).body.faults).toEqual([]);
  });

  it("a hung send goes out at once and is answered only after the delay", async () => {
    const sim = setup();
    await sim.chat(5);
    await sim.control("POST", "/faults", { chatId: 5, status: 200, delayMs: 120_000 });
    const hung = sim.api("sendMessage", { chat_id: 5, text: "lento" });
    // In flight, and already sent.
    await expect
      .poll(async () => (await sim.control("GET", "/calls?pending=true")).body.calls.map((c: Json) => [c.pending ?? false, c.sent, c.messageId]), {
        timeout: 10_000,
      })
      .toEqual([[true, true, 1]]);
    expect((await sim.api("sendMessage", { chat_id: 5, text: "depois" })).body.result.message_id).toBe(2);
    // Stopping the simulator ends the wait: the late answer carries the message that went out first.
    sim.state.stop();
    expect((await hung).body.result).toMatchObject({ message_id: 1, text: "lento" });
    expect((await sim.calls()).map((c) => [c.status, c.sent, c.messageId])).toEqual([
      [200, true, 1],
      [200, true, 2],
    ]);
  });

  it("status 0 drops the connection", async () => {
    const sim = setup();
    await sim.chat(5);
    await sim.control("POST", "/faults", { status: 0 });
    const res = await sim.request(`/bot${TOKEN}/sendMessage`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ chat_id: 5, text: "x" }),
    });
    expect(res.headers.get(dropHeader)).toBe("1");
    expect((await sim.calls())[0]).toMatchObject({ status: 0, sent: false });
  });

  it("random faults follow the chaos seed: the same seed meets the same faults", async () => {
    const run = async () => {
      const sim = setup();
      await sim.request("/_sim/chaos", { method: "PATCH", headers: { "content-type": "application/json" }, body: JSON.stringify({ seed: 7 }) });
      await sim.control("PATCH", "/config", { limits: { enabled: false }, faults: { serverErrorRate: 0.5 } });
      await sim.chat(5);
      const statuses: number[] = [];
      for (let n = 0; n < 16; n++) statuses.push((await sim.api("sendMessage", { chat_id: 5, text: `m${n}` })).status);
      return statuses;
    };
    const first = await run();
    expect(await run()).toEqual(first);
    expect(first).toContain(200);
    expect(first.some((s) => s === 500 || s === 502)).toBe(true);
  });

  it("random sent-then-5xx and hang faults send the message", async () => {
    const sim = setup();
    await sim.control("PATCH", "/config", { limits: { enabled: false }, faults: { sentThenErrorRate: 1 } });
    await sim.chat(5);
    expect((await sim.api("sendMessage", { chat_id: 5, text: "a" })).status).toBe(502);
    await sim.control("PATCH", "/config", { faults: { sentThenErrorRate: 0, hangRate: 1, hangMs: 200 } });
    const started = Date.now();
    expect((await sim.api("sendMessage", { chat_id: 5, text: "b" })).body.result.message_id).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    // Chat actions are not sends: no random faults.
    expect((await sim.api("sendChatAction", { chat_id: 5, action: "typing" })).status).toBe(200);
    expect((await sim.calls()).map((c) => [c.method, c.status, c.sent])).toEqual([
      ["sendMessage", 502, true],
      ["sendMessage", 200, true],
      ["sendChatAction", 200, false],
    ]);
  });
});
