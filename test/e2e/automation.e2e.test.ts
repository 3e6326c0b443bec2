// Inbound automation on the local runtime: the simulator plays contacts writing in (real
// messages.upsert webhooks to the gateway), the echo bot is the tenant's handler, and its replies go
// out through the contacts' lanes back to the simulator. Bursts over several contacts with duplicate
// webhooks, the breaker opening and closing, and a runtime restart in the middle of the flow.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EchoBot, startEchoBot } from "../../simulator/echo-bot.ts";
import { type RunningSimulator, startSimulator } from "../../simulator/server.ts";
import { type Gateway, provisionTenant, startGateway } from "../../tools/harness/gateway.ts";
import { eventually } from "../support/wait.ts";

let gateway: Gateway;
let simulator: RunningSimulator;
let bot: EchoBot;

beforeAll(async () => {
  simulator = await startSimulator({ port: 0, latencyMs: 5, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1, webhookMaxAttempts: 20 });
  bot = await startEchoBot();
  // A reply send the restart cuts off is in doubt until its attempt has settled (twice the
  // provider timeout) before the lane asks Evolution: 5 s here, not the default 30 s, so the
  // restart case waits 10 s for it rather than a minute.
  gateway = await startGateway({ vars: { AUTOMATION_RETRY_BASE_MS: "100", AUTOMATION_PROBE_MS: "1500", EVOLUTION_TIMEOUT_MS: "5000" } });
});
afterAll(async () => {
  await gateway?.stop();
  await bot?.close();
  await simulator?.close();
});

async function setup(botPath: string, settings: Record<string, unknown> = {}) {
  const t = await provisionTenant(gateway.url, simulator.url, { webhooks: "single" });
  const res = await fetch(`${gateway.url}/v1/instances/${t.instance}/automation`, {
    method: "PUT",
    headers: { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ url: `${bot.url}/bot/${botPath}`, maxAttempts: 10, ...settings }),
  });
  expect(res.status).toBe(200);
  const { secret } = (await res.json()) as { secret: string };
  await botSettings(botPath, { secret });
  return t;
}

const botSettings = (path: string, settings: Record<string, unknown>) =>
  fetch(`${bot.url}/_bot/${path}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(settings) });

/** A contact writes in: the simulator posts the messages.upsert webhook and answers once it was taken. */
async function write(instance: string, from: string, text: string, id?: string) {
  const res = await fetch(`${simulator.url}/_sim/inbound`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ instance, from, text, wait: true, ...(id ? { id } : {}) }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: { key: { id: string } } }).data.key.id;
}

/** Texts the simulator was asked to send to `number`, in the order the gateway sent them. */
const sentTo = (instance: string, number: string) =>
  simulator.state.calls.filter((c) => c.instance === instance && c.number === number && c.status === 201).map((c) => (c.body as { text: string }).text);

/** The reply messages the gateway holds for a contact, oldest first. */
async function outbound(apiKey: string, contact: string): Promise<string[]> {
  const res = await fetch(`${gateway.url}/v1/contacts/${contact}/messages?limit=200`, { headers: { authorization: `Bearer ${apiKey}` } });
  const { data } = (await res.json()) as { data: { direction: string; text: string }[] };
  return data
    .filter((m) => m.direction === "outbound")
    .map((m) => m.text)
    .reverse();
}

const callsOf = (path: string) => bot.calls.filter((c) => c.path === path);

/** Per contact: the handler saw its texts in order, one call at a time, each id once
 *  (except `allowRepeat` ids: calls a restart cut off, repeated with the same webhook-id). */
function checkContact(path: string, contact: string, expected: string[], allowRepeat = new Set<string>()) {
  const mine = callsOf(path)
    .filter((c) => c.contact === contact && c.status === 200)
    .sort((a, b) => a.start - b.start);
  const seen = new Map<string, string>();
  const order: string[] = [];
  let repeats = 0;
  for (const call of mine) {
    const id = call.ids[0] ?? "";
    if (seen.has(id)) {
      expect(allowRepeat.has(id), `${contact}: ${id} called twice`).toBe(true);
      expect(seen.get(id)).toBe(call.webhookId);
      // One call at a time: at most the one in flight when the runtime stopped.
      expect(++repeats, `${contact}: more than one call repeated`).toBeLessThanOrEqual(1);
      continue;
    }
    seen.set(id, call.webhookId);
    order.push(call.texts[0] ?? "");
  }
  expect(order).toEqual(expected);
  for (let i = 1; i < mine.length; i++) expect(mine[i]!.start).toBeGreaterThanOrEqual(mine[i - 1]!.end);
}

describe("automation through wrangler dev", () => {
  it("a burst from several contacts with duplicate webhooks: each contact in order, one call at a time, each reply sent once", async () => {
    const t = await setup("burst");
    await botSettings("burst", { delayMs: 20 });
    const contacts = Array.from({ length: 6 }, (_, i) => `55119710000${10 + i}`);
    const texts = ["a", "b", "c", "d"];
    await Promise.all(
      contacts.map(async (contact) => {
        for (const text of texts) {
          const id = await write(t.instance, contact, `${contact.slice(-2)}-${text}`);
          // Evolution delivering the same event again.
          if (text === "b") await write(t.instance, contact, `${contact.slice(-2)}-${text}`, id);
        }
      }),
    );
    await eventually(async () => contacts.every((c) => sentTo(t.instance, c).length === texts.length), {
      what: "every reply sent",
      timeout: 45_000,
      interval: 100,
    });
    for (const c of contacts) {
      const expected = texts.map((x) => `${c.slice(-2)}-${x}`);
      checkContact("burst", c, expected);
      expect(sentTo(t.instance, c)).toEqual(expected.map((x) => `echo: ${x}`));
    }
    expect(callsOf("burst").every((c) => c.verified)).toBe(true);
  });

  it("handler down: retries, the breaker opens, waits, probes and closes; nothing lost, all in order", async () => {
    const t = await setup("breaker");
    await botSettings("breaker", { fail: 6 });
    const contacts = ["5511971000101", "5511971000102"];
    await write(t.instance, contacts[0]!, "x1");
    const paused = await eventually(
      async () => {
        const res = await fetch(`${gateway.url}/v1/instances/${t.instance}/automation`, { headers: { authorization: `Bearer ${t.apiKey}` } });
        const body = (await res.json()) as { state: string };
        return body.state === "paused" ? body : undefined;
      },
      { what: "the breaker to open", timeout: 45_000, interval: 100 },
    );
    expect(paused).toMatchObject({ state: "paused" });
    // While paused, both contacts keep writing.
    for (const c of contacts) for (const x of ["y1", "y2"]) await write(t.instance, c, `${c.slice(-1)}${x}`);
    await eventually(async () => sentTo(t.instance, contacts[0]!).length === 3 && sentTo(t.instance, contacts[1]!).length === 2, {
      what: "all replies after resuming",
      timeout: 45_000,
      interval: 100,
    });
    checkContact("breaker", contacts[0]!, ["x1", "1y1", "1y2"]);
    checkContact("breaker", contacts[1]!, ["2y1", "2y2"]);
    const failed = callsOf("breaker").filter((c) => c.status !== 200);
    expect(failed).toHaveLength(6);
    const got = (await (
      await fetch(`${gateway.url}/v1/instances/${t.instance}/automation`, { headers: { authorization: `Bearer ${t.apiKey}` } })
    ).json()) as Record<string, unknown>;
    expect(got).toMatchObject({ state: "active", counts: { delivered: 5, dead: 0, pending: 0, retrying: 0 } });
    const events = (await (await fetch(`${gateway.url}/v1/events?consumer=e2e`, { headers: { authorization: `Bearer ${t.apiKey}` } })).json()) as {
      events: { type: string }[];
    };
    expect(events.events.map((e) => e.type).filter((x) => x.startsWith("automation."))).toEqual(["automation.paused", "automation.resumed"]);
  });

  it("a runtime restart in the middle: nothing lost, order kept, only a call cut off in flight is repeated", async () => {
    const t = await setup("restart");
    await botSettings("restart", { delayMs: 150 });
    const contacts = Array.from({ length: 4 }, (_, i) => `55119720000${10 + i}`);
    const texts = ["r1", "r2", "r3", "r4", "r5"];
    for (const text of texts) await Promise.all(contacts.map((c) => write(t.instance, c, `${c.slice(-2)}-${text}`)));
    // Wait until every webhook job was handed over: the local Queue does not keep unconsumed jobs
    // across a restart (a deployed Queue does), and that loss would not be automation's.
    await eventually(
      async () => {
        const res = await fetch(`${gateway.url}/v1/instances/${t.instance}/automation`, { headers: { authorization: `Bearer ${t.apiKey}` } });
        const { counts } = (await res.json()) as { counts: Record<string, number> };
        return Object.values(counts).reduce((a, b) => a + b, 0) === contacts.length * texts.length && (counts.pending ?? 0) > 0;
      },
      { what: "every inbound message handed to automation, some still waiting", timeout: 45_000, interval: 100 },
    );
    const haltStart = Date.now();
    await gateway.halt();
    const haltEnd = Date.now();
    await gateway.resume();
    await eventually(async () => contacts.every((c) => sentTo(t.instance, c).length === texts.length), {
      what: "every reply after the restart",
      timeout: 60_000,
      interval: 100,
    });
    // In doubt: calls under way when the runtime stopped (their answers may never have been recorded).
    const cutOff = new Set(
      callsOf("restart")
        .filter((c) => c.start <= haltEnd && c.end >= haltStart - 1000)
        .map((c) => c.ids[0] ?? ""),
    );
    for (const c of contacts) {
      const expected = texts.map((x) => `${c.slice(-2)}-${x}`);
      checkContact("restart", c, expected, cutOff);
      // One reply message each, in order. (The simulator may see a reply twice: a send the restart
      // cut off between Evolution's answer and its record is the send lane's in-doubt case.)
      expect(await outbound(t.apiKey, c)).toEqual(expected.map((x) => `echo: ${x}`));
      expect([...new Set(sentTo(t.instance, c))]).toEqual(expected.map((x) => `echo: ${x}`));
    }
  });
});
