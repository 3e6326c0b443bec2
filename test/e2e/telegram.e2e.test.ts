// Telegram on the local runtime, the whole loop: the gateway connects a bot at the simulator's Bot API
// (getMe, setWebhook with a secret), people write in through real webhook deliveries (the secret
// header, one chat's updates in sequence), the echo bot answers through the chats' lanes, and API
// sends go out beside them. The runtime stops in the middle: nothing accepted is lost, nothing is
// sent twice (Telegram's in-doubt policy is at most once), and each chat's order holds.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type EchoBot, startEchoBot } from "../../simulator/echo-bot.ts";
import { type RunningSimulator, startSimulator } from "../../simulator/server.ts";
import { type Gateway, startGateway } from "../../tools/harness/gateway.ts";

let gateway: Gateway;
let simulator: RunningSimulator;
let bot: EchoBot;

const TOKEN = "5151515:e2e-telegram-secret-000000000000";

beforeAll(async () => {
  simulator = await startSimulator({ port: 0, latencyMs: 5, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  bot = await startEchoBot();
  gateway = await startGateway({ vars: { AUTOMATION_RETRY_BASE_MS: "100" } });
});
afterAll(async () => {
  await gateway?.stop();
  await bot?.close();
  await simulator?.close();
});

/** Vitest's own poller: the probe's value once it has one (a probe that throws counts as not yet). */
function eventually<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 60_000): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await probe();
      if (!value) throw new Error(`timed out waiting for ${what}`);
      return value;
    },
    { timeout: timeoutMs, interval: 100 },
  );
}

async function sim(path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${simulator.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`simulator ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

type Call = { seq: number; method: string; chatId?: number; params: { text?: string }; status: number; insideRetryAfter: boolean };
const sentTexts = async (chat: number): Promise<string[]> =>
  ((await sim(`/_sim/telegram/calls?token=${encodeURIComponent(TOKEN)}&chatId=${chat}`)).calls as Call[])
    .filter((c) => c.method === "sendMessage" && c.status === 200)
    .map((c) => c.params.text ?? "");

async function setup() {
  const tenantRes = await fetch(`${gateway.url}/v1/admin/tenants`, {
    method: "POST",
    headers: { authorization: "Bearer e2e-admin-token", "content-type": "application/json" },
    body: JSON.stringify({ name: "telegram-e2e", rateLimitPerMinute: 1_000_000 }),
  });
  const { apiKey } = (await tenantRes.json()) as { apiKey: string };
  const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
  await sim("/_sim/telegram/bots", { token: TOKEN, username: "e2e_bot", first_name: "e2e" });
  const put = await fetch(`${gateway.url}/v1/instances/tg`, {
    method: "PUT",
    headers,
    body: JSON.stringify({ channel: "telegram", telegram: { botToken: TOKEN, apiUrl: simulator.url } }),
  });
  expect(put.status).toBe(201);
  const auto = await fetch(`${gateway.url}/v1/instances/tg/automation`, {
    method: "PUT",
    headers,
    body: JSON.stringify({ url: `${bot.url}/bot/tg-e2e`, maxAttempts: 10 }),
  });
  expect(auto.status).toBe(200);
  const { secret } = (await auto.json()) as { secret: string };
  await fetch(`${bot.url}/_bot/tg-e2e`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ secret }) });
  return { apiKey, headers };
}

describe("telegram on the local runtime", () => {
  it("a runtime restart in the middle of inbound, automation and sends loses nothing and sends nothing twice", async () => {
    const { apiKey, headers } = await setup();
    const chats = [616_161_001, 616_161_002, 616_161_003];
    const inbound = ["a", "b", "c", "d"];
    const outbound = ["x1", "x2", "x3", "x4"];
    // People write in (real webhook deliveries with the secret header, retried by the simulator
    // while the gateway is down) and the API sends to the same chats.
    const writes = (texts: string[]) =>
      Promise.all(
        chats.map(async (chat) => {
          for (const text of texts)
            await sim("/_sim/telegram/inbound", { token: TOKEN, chatId: chat, text: `${chat % 100}-${text}`, from: { id: chat, first_name: "P" } });
        }),
      );
    const ids: string[] = [];
    const sends = async (texts: string[]) => {
      for (const text of texts)
        for (const chat of chats) {
          const res = await fetch(`${gateway.url}/v1/messages`, {
            method: "POST",
            headers,
            body: JSON.stringify({ instance: "tg", to: String(chat), text: `${chat % 100}-${text}` }),
          });
          expect(res.status).toBe(202);
          ids.push(((await res.json()) as { id: string }).id);
        }
    };
    await Promise.all([writes(inbound.slice(0, 2)), sends(outbound.slice(0, 2))]);
    await gateway.halt();
    // Updates written while the gateway is down wait at Telegram (pending) and come after.
    await writes(inbound.slice(2));
    await gateway.resume();
    await sends(outbound.slice(2));

    // Every inbound message stored once, and answered.
    for (const chat of chats) {
      const expected = inbound.map((t) => `echo: ${chat % 100}-${t}`);
      await eventually(async () => (await sentTexts(chat)).filter((t) => t.startsWith("echo:")).length >= expected.length, `replies to ${chat}`);
      const res = await fetch(`${gateway.url}/v1/contacts/${chat}/messages?limit=200`, { headers: { authorization: `Bearer ${apiKey}` } });
      const { data } = (await res.json()) as { data: { direction: string; text: string; channel?: string }[] };
      const received = data
        .filter((m) => m.direction === "inbound")
        .map((m) => m.text)
        .reverse();
      expect(received).toEqual(inbound.map((t) => `${chat % 100}-${t}`));
    }
    // Every API message ends: sent, or failed by the documented in-doubt policy (never sent twice).
    const finals = await eventually(async () => {
      const rows = await Promise.all(
        ids.map(async (id) => (await (await fetch(`${gateway.url}/v1/messages/${id}`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as any),
      );
      return rows.every((r) => r.status === "sent" || r.status === "failed") ? rows : undefined;
    }, "every API message to end");
    for (const m of finals) {
      expect(m.channel).toBe("telegram");
      if (m.status === "failed") expect(m.lastError).toContain("in doubt");
    }
    for (const chat of chats) {
      const texts = await sentTexts(chat);
      // At most once, and in order: what Telegram got of this chat's API texts, as sent.
      expect(new Set(texts).size).toBe(texts.length);
      const api = texts.filter((t) => !t.startsWith("echo:"));
      const expectedOrder = outbound.map((t) => `${chat % 100}-${t}`);
      expect(api).toEqual(expectedOrder.filter((t) => api.includes(t)));
      // Every message recorded sent reached Telegram; one failed in doubt may have too (that is the
      // policy's point: it is not sent a second time).
      for (const m of finals.filter((f) => f.to === String(chat) && f.status === "sent")) expect(api).toContain(m.text);
    }
    const calls = (await sim(`/_sim/telegram/calls?token=${encodeURIComponent(TOKEN)}`)).calls as Call[];
    expect(calls.filter((c) => c.insideRetryAfter)).toEqual([]);
  });
});
