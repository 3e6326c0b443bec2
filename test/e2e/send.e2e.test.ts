// End to end on the local runtime: wrangler dev (workerd with local D1, Queues, Durable Objects)
// and the Evolution simulator as a separate process-level server.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startSimulator, type RunningSimulator } from "../../simulator/server.ts";
import { provisionTenant, startGateway, type Gateway } from "../../tools/harness/gateway.ts";

let gateway: Gateway;
let simulator: RunningSimulator;

beforeAll(async () => {
  simulator = await startSimulator({ port: 0, latencyMs: 20, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  gateway = await startGateway();
});
afterAll(async () => {
  await gateway?.stop();
  await simulator?.close();
});

describe("200 messages to 20 contacts through wrangler dev", () => {
  it("all end sent, each contact's order kept, each seen exactly once by the simulator", async () => {
    const t = await provisionTenant(gateway.url, simulator.url);
    const headers = { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" };
    const contacts = Array.from({ length: 20 }, (_, i) => `55119800000${String(i).padStart(2, "0")}`);
    const ids: string[] = [];
    // Individual POSTs, 10 in flight, interleaving contacts: order per contact is the order of acceptance.
    const bodies = Array.from({ length: 200 }, (_, i) => ({ instance: t.instance, to: contacts[i % 20]!, text: `seq ${Math.floor(i / 20)}` }));
    for (let i = 0; i < bodies.length; i += 20) {
      const round = await Promise.all(
        bodies.slice(i, i + 20).map((b) => fetch(`${gateway.url}/v1/messages`, { method: "POST", headers, body: JSON.stringify(b) })),
      );
      for (const res of round) {
        expect(res.status).toBe(202);
        ids.push(((await res.json()) as { id: string }).id);
      }
    }
    await vi.waitFor(
      async () => {
        const statuses = await Promise.all(
          ids.map(async (id) => ((await (await fetch(`${gateway.url}/v1/messages/${id}`, { headers })).json()) as { status: string }).status),
        );
        expect(statuses.filter((s) => s !== "sent")).toEqual([]);
      },
      { timeout: 60_000, interval: 500 },
    );
    const calls = (
      (await (await fetch(`${simulator.url}/_sim/calls?instance=${t.instance}`)).json()) as {
        calls: { number: string; body: { text: string }; status: number }[];
      }
    ).calls;
    expect(calls).toHaveLength(200);
    for (const to of contacts) {
      expect(calls.filter((c) => c.number === to).map((c) => c.body.text)).toEqual(Array.from({ length: 10 }, (_, i) => `seq ${i}`));
    }
  });
});
