// Evolution's real failure modes in the simulator, each switched on alone and seeded: a send
// relayed and then answered 500/502, a hung send that never goes out, look-alikes landing in the
// store while a send hangs (typed on the phone, or by another API client of the instance), and
// `send.message` webhooks late, twice or never.
import { afterEach, describe, expect, it, vi } from "vitest";
import { createSimulator } from "./app.ts";
import { setChaos, type chaosSettings } from "./chaos.ts";
import type { z } from "zod";

const KEY = "sim-key";
const jid = "5511987654321@s.whatsapp.net";

type Posted = { at: number; event: string; keyId: string | undefined };
// Stopped after each test, so no late webhook of one test reaches the next one's stub.
const running: { stop: () => void }[] = [];

function setup(chaos: z.infer<typeof chaosSettings>) {
  // Webhooks go to a stubbed fetch: each POST is recorded with its time, and answered 200.
  const posted: Posted[] = [];
  const realFetch = globalThis.fetch;
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
    if (String(input).startsWith("http://hooks.test/")) {
      const body = JSON.parse(String(init?.body)) as { event: string; data: { key?: { id: string }; keyId?: string } };
      posted.push({ at: Date.now(), event: body.event, keyId: body.data.key?.id ?? body.data.keyId });
      return new Response("{}", { status: 200 });
    }
    return realFetch(input, init);
  });
  const sim = createSimulator({
    sendMessageDelayMs: 0,
    deliveredDelayMs: -1,
    readDelayMs: -1,
    webhookMaxAttempts: 1,
    instances: [{ name: "loja", apikey: KEY, webhookUrl: "http://hooks.test/evolution" }],
  });
  running.push(sim.state);
  setChaos(sim.state, { seed: 7, ...chaos });
  const call = async (path: string, json: unknown) => {
    const res = await sim.app.request(path, { method: "POST", headers: { "content-type": "application/json", apikey: KEY }, body: JSON.stringify(json) });
    return { status: res.status, body: (await res.json()) as any };
  };
  const stored = async () =>
    (await call("/chat/findMessages/loja", { where: { key: { remoteJid: jid, fromMe: true } } })).body.messages.records as {
      key: { id: string };
      source: string;
      message: Record<string, any>;
    }[];
  return { ...sim, call, stored, posted };
}

afterEach(() => {
  for (const s of running.splice(0)) s.stop();
  vi.unstubAllGlobals();
});

describe("a send relayed to WhatsApp, then answered with an error", () => {
  it("answers 500 or 502, yet the message is stored, send.message is emitted and the call counts as relayed", async () => {
    const sim = setup({ relayThenFailRate: 1 });
    const statuses = new Set<number>();
    for (let i = 0; i < 8; i++) {
      const res = await sim.call("/message/sendText/loja", { number: "5511987654321", text: `olá ${i}` });
      statuses.add(res.status);
    }
    // Both answers occur (seeded 50/50), never a 201.
    expect([...statuses].sort()).toEqual([500, 502]);
    const stored = await sim.stored();
    expect(stored).toHaveLength(8);
    expect(sim.state.calls.every((c) => c.relayed === true && (c.status === 500 || c.status === 502))).toBe(true);
    await vi.waitFor(() => expect(sim.posted.filter((p) => p.event === "send.message")).toHaveLength(8));
    expect(new Set(sim.posted.map((p) => p.keyId))).toEqual(new Set(stored.map((s) => s.key.id)));
  });

  it("as a scripted fault (`relay: true`): the message goes out, then the fault's status is answered", async () => {
    const sim = setup({});
    await sim.call("/_sim/faults", { number: "5511987654321", status: 504, relay: true });
    const res = await sim.call("/message/sendText/loja", { number: "5511987654321", text: "via proxy" });
    expect(res.status).toBe(504);
    expect((await sim.stored()).map((s) => s.message.conversation)).toEqual(["via proxy"]);
    expect(sim.state.calls[0]).toMatchObject({ status: 504, relayed: true });
  });

  it("is seeded: the same seed fails the same sends", async () => {
    const run = async () => {
      const sim = setup({ relayThenFailRate: 0.5 });
      const out: number[] = [];
      for (let i = 0; i < 12; i++) out.push((await sim.call("/message/sendText/loja", { number: "5511987654321", text: `n${i}` })).status);
      vi.unstubAllGlobals();
      return out;
    };
    const first = await run();
    expect(first).toContain(201);
    expect(first.some((s) => s >= 500)).toBe(true);
    expect(await run()).toEqual(first);
  });
});

describe("look-alikes in the store while a send hangs", () => {
  it("typed on the phone: same chat and text, a phone's id and source, no send.message", async () => {
    const sim = setup({ timeoutRate: 1, timeoutMs: 40, lookAlikeRate: 1, lookAlikeClientShare: 0 });
    const res = await sim.call("/message/sendText/loja", { number: "5511987654321", text: "Bom dia!" });
    expect(res.status).toBe(201);
    const stored = await sim.stored();
    expect(stored).toHaveLength(2);
    const [ours, phone] = [stored.find((s) => s.key.id === res.body.key.id)!, stored.find((s) => s.key.id !== res.body.key.id)!];
    expect(ours.source).toBe("web");
    expect(phone.message).toMatchObject({ conversation: "Bom dia!" });
    expect(phone.source).toMatch(/^(ios|android)$/);
    expect(phone.key.id).not.toMatch(/^3EB0/);
    // Typed while the send hung: stored before ours went out.
    expect(stored.map((s) => s.key.id)).toEqual([ours.key.id, phone.key.id]);
    await vi.waitFor(() => expect(sim.posted.filter((p) => p.event === "send.message").map((p) => p.keyId)).toEqual([ours.key.id]));
    expect(sim.state.calls.filter((c) => c.relayed)).toHaveLength(1);
  });

  it("sent by another API client of the instance: a Baileys id, source web, and its own send.message", async () => {
    const sim = setup({ timeoutRate: 1, timeoutMs: 40, lookAlikeRate: 1, lookAlikeClientShare: 1 });
    const res = await sim.call("/message/sendText/loja", { number: "5511987654321", text: "Promoção!" });
    const stored = await sim.stored();
    expect(stored).toHaveLength(2);
    const other = stored.find((s) => s.key.id !== res.body.key.id)!;
    expect(other.source).toBe("web");
    expect(other.key.id).toMatch(/^3EB0[0-9A-F]{18}$/);
    expect(other.message).toMatchObject({ conversation: "Promoção!" });
    await vi.waitFor(() =>
      expect(new Set(sim.posted.filter((p) => p.event === "send.message").map((p) => p.keyId))).toEqual(new Set([res.body.key.id, other.key.id])),
    );
    // Only our request was relayed by a call.
    expect(sim.state.calls.filter((c) => c.relayed)).toHaveLength(1);
  });

  it("a caption-less image: the look-alike is another image, same type, no text to tell them apart", async () => {
    const sim = setup({ timeoutRate: 1, timeoutMs: 40, lookAlikeRate: 1, lookAlikeClientShare: 1 });
    const res = await sim.call("/message/sendMedia/loja", { number: "5511987654321", mediatype: "image", media: "https://files.example.com/a.png" });
    expect(res.status).toBe(201);
    const stored = await sim.stored();
    expect(stored).toHaveLength(2);
    expect(stored.every((s) => "imageMessage" in s.message && s.message.imageMessage.caption === undefined)).toBe(true);
  });

  it("a hung send that never goes out: answered 500 late, only the look-alike is stored, the call is not relayed", async () => {
    const sim = setup({ timeoutRate: 1, timeoutMs: 40, hungNeverSendsRate: 1, lookAlikeRate: 1, lookAlikeClientShare: 0 });
    const res = await sim.call("/message/sendText/loja", { number: "5511987654321", text: "Oi" });
    expect(res.status).toBe(500);
    const stored = await sim.stored();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.source).not.toBe("web");
    expect(sim.state.calls[0]).toMatchObject({ status: 500 });
    expect(sim.state.calls[0]!.relayed).toBeUndefined();
  });

  it("planted on demand through /_sim/chat/look-alike", async () => {
    const sim = setup({});
    const res = await sim.call("/_sim/chat/look-alike", { instance: "loja", who: "phone", body: { number: "5511987654321", text: "digitado" } });
    expect(res.status).toBe(201);
    expect(res.body.source).toMatch(/^(ios|android)$/);
    expect((await sim.stored()).map((s) => s.key.id)).toEqual([res.body.key.id]);
    expect(sim.state.calls).toHaveLength(0);
  });
});

describe("send.message webhooks late, twice or never", () => {
  const sendOne = async (sim: ReturnType<typeof setup>) =>
    (await sim.call("/message/sendText/loja", { number: "5511987654321", text: "x" })).body.key.id as string;

  it("never: recorded as dropped, nothing posted", async () => {
    const sim = setup({ sendMessageDropRate: 1 });
    const id = await sendOne(sim);
    await vi.waitFor(() => expect(sim.state.webhooks.find((w) => w.keyId === id)?.outcome).toBe("dropped"));
    expect(sim.posted).toHaveLength(0);
  });

  it("twice: the same send.message posted two times", async () => {
    const sim = setup({ sendMessageDuplicateRate: 1 });
    const id = await sendOne(sim);
    await vi.waitFor(() => expect(sim.posted.filter((p) => p.event === "send.message" && p.keyId === id)).toHaveLength(2));
  });

  it("late: posted only after sendMessageLateMs", async () => {
    const sim = setup({ sendMessageLateRate: 1, sendMessageLateMs: 150 });
    const sentAt = Date.now();
    const id = await sendOne(sim);
    await vi.waitFor(() => expect(sim.posted.find((p) => p.keyId === id)).toBeDefined());
    expect(sim.posted[0]!.at - sentAt).toBeGreaterThanOrEqual(150);
  });
});
