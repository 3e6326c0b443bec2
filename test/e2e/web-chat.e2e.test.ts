// The web chat on the local runtime: two visitors with sockets open talk to the echo bot and receive
// an operator's messages; the runtime is killed (SIGKILL) and started again on the same state; the
// visitors reconnect. Nothing is lost and nothing is duplicated: each visitor message is stored and
// answered once, each message frame arrives once (all were acknowledged before the kill), in order.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EchoBot, startEchoBot } from "../../simulator/echo-bot.ts";
import { type Gateway, startGateway } from "../../tools/harness/gateway.ts";
import { type Frame, openVisitor, type Visitor } from "../../tools/harness/visitor.ts";
import { eventually as waitFor } from "../support/wait.ts";

let gateway: Gateway;
let bot: EchoBot;

beforeAll(async () => {
  bot = await startEchoBot();
  gateway = await startGateway({ vars: { AUTOMATION_RETRY_BASE_MS: "100" } });
});
afterAll(async () => {
  await gateway?.stop();
  await bot?.close();
});

/** The shared waiting idiom, with this file's argument order (what, then a longer default timeout). */
const eventually = <T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeout = 60_000) =>
  waitFor(probe, { what, timeout, interval: 100 });

async function setup() {
  const tenantRes = await fetch(`${gateway.url}/v1/admin/tenants`, {
    method: "POST",
    headers: { authorization: "Bearer e2e-admin-token", "content-type": "application/json" },
    body: JSON.stringify({ name: "web-e2e", rateLimitPerMinute: 1_000_000 }),
  });
  const { apiKey } = (await tenantRes.json()) as { apiKey: string };
  const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
  const put = await fetch(`${gateway.url}/v1/instances/site`, { method: "PUT", headers, body: JSON.stringify({ channel: "web" }) });
  expect(put.status).toBe(201);
  const auto = await fetch(`${gateway.url}/v1/instances/site/automation`, {
    method: "PUT",
    headers,
    body: JSON.stringify({ url: `${bot.url}/bot/web-e2e`, maxAttempts: 10 }),
  });
  expect(auto.status).toBe(200);
  const { secret } = (await auto.json()) as { secret: string };
  await fetch(`${bot.url}/_bot/web-e2e`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ secret }) });
  const urlOf = async (visitorId: string) => {
    const res = await fetch(`${gateway.url}/v1/instances/site/visitors`, { method: "POST", headers, body: JSON.stringify({ visitorId }) });
    expect(res.status).toBe(201);
    const { token } = (await res.json()) as { token: string };
    // The token's URL names the public origin; the test reaches the local runtime.
    return `${gateway.url.replace(/^http/, "ws")}/v1/chat?token=${token}`;
  };
  return { headers, urlOf };
}

const messages = (v: Visitor) => v.frames.filter((f): f is Frame => f.type === "message");
const texts = (v: Visitor) => messages(v).map((f) => String(f.data.message));

describe("web chat on the local runtime", () => {
  it("a runtime killed with sockets open: the visitors reconnect, nothing is lost or duplicated, order kept", async () => {
    const { headers, urlOf } = await setup();
    const ids = ["v-ana", "v-bia"];
    const visitors = new Map<string, Visitor>();
    for (const id of ids) visitors.set(id, openVisitor(await urlOf(id)));
    await eventually(() => [...visitors.values()].every((v) => v.isOpen()), "both sockets open");

    const operatorIds: string[] = [];
    const operator = async (to: string, text: string) => {
      const res = await fetch(`${gateway.url}/v1/messages`, { method: "POST", headers, body: JSON.stringify({ instance: "site", to, text }) });
      expect(res.status).toBe(202);
      operatorIds.push(((await res.json()) as { id: string }).id);
    };
    // Each visitor writes one message at a time and waits for its answer (as a person would).
    const talk = async (round: string[]) => {
      await Promise.all(
        ids.map(async (id) => {
          const v = visitors.get(id)!;
          for (const word of round) {
            v.say(`${id}-${word}`, `${id}-${word}`);
            await eventually(() => texts(v).includes(`echo: ${id}-${word}`), `the answer to ${id}-${word}`);
          }
        }),
      );
    };
    await talk(["um", "dois"]);
    for (const id of ids) await operator(id, `op-${id}-1`);
    await eventually(() => ids.every((id) => texts(visitors.get(id)!).includes(`op-${id}-1`)), "the operator's messages");

    // Everything received so far was acknowledged (delivered) before the kill: never shown again.
    const before = new Set(ids.flatMap((id) => messages(visitors.get(id)!).map((f) => String(f.data.messageId))));
    await eventually(async () => {
      const rows = await Promise.all([...before].map(async (m) => (await (await fetch(`${gateway.url}/v1/messages/${m}`, { headers })).json()) as any));
      return rows.every((r) => r.status === "delivered");
    }, "every message received so far to be delivered");
    const connectsBefore = ids.map((id) => visitors.get(id)!.connects);

    // One message each in flight as the runtime dies; the page sends it again until it is queued.
    for (const id of ids) visitors.get(id)!.say(`${id}-três`, `${id}-três`);
    await gateway.crash();
    // While it is down, the operator's messages cannot be accepted; the visitors keep trying to reconnect.
    await gateway.resume();
    await eventually(() => ids.every((id, i) => visitors.get(id)!.connects > connectsBefore[i]! && visitors.get(id)!.isOpen()), "both visitors to reconnect");
    for (const id of ids) await operator(id, `op-${id}-2`);
    await talk(["quatro"]);
    await eventually(
      () => ids.every((id) => texts(visitors.get(id)!).includes(`echo: ${id}-três`) && texts(visitors.get(id)!).includes(`op-${id}-2`)),
      "the in-flight message's answer and the operator's second message",
    );

    for (const id of ids) {
      const v = visitors.get(id)!;
      const frames = messages(v);
      // Each message frame exactly once, across the restart.
      const seen = frames.map((f) => String(f.data.messageId));
      expect(new Set(seen).size).toBe(seen.length);
      // Each visitor message answered once, in order; the operator's in theirs.
      const echoes = texts(v).filter((t) => t.startsWith("echo:"));
      expect(echoes).toEqual(["um", "dois", "três", "quatro"].map((w) => `echo: ${id}-${w}`));
      expect(texts(v).filter((t) => t.startsWith("op-"))).toEqual([`op-${id}-1`, `op-${id}-2`]);
      // Stored once each: the visitor's timeline has each message once, in order.
      const res = await fetch(`${gateway.url}/v1/contacts/${id}/messages?instance=site&limit=200`, { headers });
      expect(res.status).toBe(200);
      const { data } = (await res.json()) as { data: { direction: string; text: string }[] };
      const inbound = data
        .filter((m) => m.direction === "inbound")
        .map((m) => m.text)
        .reverse();
      expect(inbound).toEqual(["um", "dois", "três", "quatro"].map((w) => `${id}-${w}`));
      // The handler was asked once per message (a call cut by the kill may come again under its webhook-id).
      const answered = bot.calls.filter((c) => c.contact === id && c.status === 200);
      const calls = [...new Map(answered.map((c) => [c.webhookId, c.texts])).values()].flat();
      expect(calls).toEqual(["um", "dois", "três", "quatro"].map((w) => `${id}-${w}`));
    }
    for (const v of visitors.values()) v.close();
  });
});
