// Scheduled messages on the local runtime, including a stop and start of wrangler dev with the
// same state: a schedule that fell due while it was down goes at once on wake, a later one on time.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulator, type RunningSimulator } from "../../simulator/server.ts";
import { freePort, provisionTenant, startGateway, type Gateway } from "../../tools/harness/gateway.ts";
import { eventually } from "../support/wait.ts";

let gateway: Gateway;
let simulator: RunningSimulator;
const persistDir = mkdtempSync(path.join(tmpdir(), "mensageiro-schedule-"));

type Call = { number: string; at: number; body: { text: string } };
const calls = async (instance: string): Promise<Call[]> =>
  ((await (await fetch(`${simulator.url}/_sim/calls?instance=${instance}`)).json()) as { calls: Call[] }).calls;

beforeAll(async () => {
  simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  gateway = await startGateway({ persistDir, port: await freePort() });
});
afterAll(async () => {
  await gateway?.stop();
  await simulator?.close();
  rmSync(persistDir, { recursive: true, force: true });
});

describe("scheduled delivery on wrangler dev", () => {
  it("delivers at its time, and across a stop and start of the runtime", async () => {
    const t = await provisionTenant(gateway.url, simulator.url);
    const headers = { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" };
    const schedule = async (to: string, text: string, at: number) => {
      const res = await fetch(`${gateway.url}/v1/messages`, {
        method: "POST",
        headers,
        body: JSON.stringify({ instance: t.instance, to, text, sendAt: new Date(at).toISOString() }),
      });
      expect(res.status).toBe(202);
      return at;
    };

    const onTimeAt = await schedule("5511955550001", "no horário", Date.now() + 3000);
    const [onTime] = await eventually(
      async () => {
        const c = (await calls(t.instance)).filter((x) => x.number === "5511955550001");
        return c.length ? c : undefined;
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(onTime!.at).toBeGreaterThanOrEqual(onTimeAt);
    expect(onTime!.at - onTimeAt).toBeLessThan(2000);

    // Two more, then the runtime stops: one falls due while it is down, one after it is back. The
    // halt may cut the hand-off to the lanes that follows each 202; the rows are stored, and the
    // first request after the start wakes the lanes with work pending.
    const overdueAt = await schedule("5511955550002", "venceu parado", Date.now() + 4000);
    const laterAt = await schedule("5511955550003", "depois do reinício", Date.now() + 12_000);
    await gateway.halt();
    expect(Date.now(), "halted before the first of them fell due").toBeLessThan(overdueAt);
    await eventually(() => Date.now() > overdueAt, { what: "the first one due while the runtime is down", interval: 50 });
    const resumedAt = Date.now();
    await gateway.resume();
    const wokeAt = Date.now();

    const overdue = await eventually(async () => (await calls(t.instance)).find((x) => x.number === "5511955550002"), { timeout: 20_000, interval: 100 });
    // Sent after the start, not before the halt; and at once on wake.
    expect(overdue.at).toBeGreaterThanOrEqual(resumedAt);
    expect(overdue.at - wokeAt).toBeLessThan(5000);
    const later = await eventually(async () => (await calls(t.instance)).find((x) => x.number === "5511955550003"), { timeout: 30_000, interval: 100 });
    expect(later.at).toBeGreaterThanOrEqual(laterAt);
    // On time; or, when the restart itself outlasted it (a loaded machine takes 10 s and more to
    // start wrangler dev again), at once on wake.
    expect(later.at - Math.max(laterAt, wokeAt)).toBeLessThan(2000);
    // Exactly once each.
    const all = await calls(t.instance);
    expect(all.map((c) => c.body.text).sort()).toEqual(["depois do reinício", "no horário", "venceu parado"]);
  });
});
