// The simulator's sendPresence: Evolution's guards, body validation, pre-check and delay.
import { describe, expect, it } from "vitest";
import { createSimulator } from "./app.ts";

const KEY = "sim-key";

function setup(honourDelay = false) {
  const sim = createSimulator({ honourDelay, notOnWhatsApp: ["5511900000009"], instances: [{ name: "loja-centro", apikey: KEY }] });
  const presence = async (body: unknown, opts: { instance?: string; apikey?: string } = {}) => {
    const res = await sim.app.request(`/chat/sendPresence/${opts.instance ?? "loja-centro"}`, {
      method: "POST",
      headers: { "content-type": "application/json", apikey: opts.apikey ?? KEY },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  return { sim, presence };
}

describe("sendPresence", () => {
  it("answers 201 with the presence and records the call", async () => {
    const { sim, presence } = setup();
    expect(await presence({ number: "5511912340001", presence: "composing", delay: 1200 })).toEqual({ status: 201, body: { presence: "composing" } });
    expect(sim.state.calls.at(-1)).toMatchObject({ route: "sendPresence", number: "5511912340001", status: 201, body: { delay: 1200 } });
  });

  it("guards instance, apikey, body and number like Evolution", async () => {
    const { presence } = setup();
    expect((await presence({ number: "5511912340001", presence: "composing", delay: 0 }, { instance: "nope" })).status).toBe(404);
    expect((await presence({ number: "5511912340001", presence: "composing", delay: 0 }, { apikey: "wrong" })).status).toBe(401);
    expect((await presence({ number: "5511912340001", presence: "composing" })).status).toBe(400);
    const missing = await presence({ number: "5511900000009", presence: "composing", delay: 0 });
    expect(missing).toMatchObject({ status: 400, body: { response: { message: [{ exists: false, number: "5511900000009" }] } } });
  });

  it("holds the answer for the delay when asked to honour it", async () => {
    const { presence } = setup(true);
    const started = performance.now();
    expect((await presence({ number: "5511912340001", presence: "composing", delay: 150 })).status).toBe(201);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });
});
