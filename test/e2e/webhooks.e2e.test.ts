// On the local runtime with the simulator sending Evolution's webhooks back: a message goes all the
// way to `read`, inbound messages land in the contact's timeline, and events reach the outbox in order.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startSimulator, type RunningSimulator } from "../../simulator/server.ts";
import { provisionTenant, startGateway, type Gateway } from "../../tools/harness/gateway.ts";

let gateway: Gateway;
let simulator: RunningSimulator;

beforeAll(async () => {
  simulator = await startSimulator({ port: 0, latencyMs: 10, sendMessageDelayMs: 50, deliveredDelayMs: 300, readDelayMs: 700 });
  gateway = await startGateway();
});
afterAll(async () => {
  await gateway?.stop();
  await simulator?.close();
});

describe("webhooks through wrangler dev", () => {
  it("sent → delivered → read from the simulator's webhooks; inbound in the timeline; events in order", async () => {
    const t = await provisionTenant(gateway.url, simulator.url, { webhooks: "byEvents" });
    const headers = { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" };
    const res = await fetch(`${gateway.url}/v1/messages`, {
      method: "POST",
      headers,
      body: JSON.stringify({ instance: t.instance, to: "5511944443333", text: "até o fim" }),
    });
    const { id } = (await res.json()) as { id: string };
    const message = await vi.waitFor(
      async () => {
        const m = (await (await fetch(`${gateway.url}/v1/messages/${id}`, { headers })).json()) as { status: string; history: { status: string }[] };
        expect(m.status).toBe("read");
        return m;
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(message.history.map((h) => h.status)).toEqual(["queued", "processing", "sent", "sent", "delivered", "read"]);

    // The contact writes back.
    const inbound = await fetch(`${simulator.url}/_sim/inbound`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instance: t.instance, from: "5511944443333", text: "recebi, obrigado", wait: true }),
    });
    expect(inbound.status).toBeLessThan(300);
    const timeline = await vi.waitFor(
      async () => {
        const t = (await (await fetch(`${gateway.url}/v1/contacts/5511944443333/messages`, { headers })).json()) as {
          data: { direction: string; text?: string }[];
        };
        expect(t.data.length).toBeGreaterThanOrEqual(2);
        return t;
      },
      { timeout: 10_000, interval: 200 },
    );
    expect(timeline.data.map((m) => [m.direction, m.text])).toEqual([
      ["inbound", "recebi, obrigado"],
      ["outbound", "até o fim"],
    ]);

    const events = (await (await fetch(`${gateway.url}/v1/events?consumer=e2e&limit=100`, { headers })).json()) as {
      events: { seq: number; type: string; data: { status?: string } }[];
    };
    expect(events.events.map((e) => (e.type === "message.status" ? e.data.status : e.type))).toEqual([
      "queued",
      "processing",
      "sent",
      "delivered",
      "read",
      "message.received",
    ]);
    const seqs = events.events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });
});
