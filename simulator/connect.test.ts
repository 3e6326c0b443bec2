// Pairing a number by QR code in the simulator: GET /instance/connect, qrcode.updated refreshes,
// the refresh limit, and POST /_sim/instances/:name/scan.
import { afterEach, describe, expect, it, vi } from "vitest";
import { createSimulator } from "./app.ts";
import type { SimulatorConfig } from "./config.ts";
import { startSimulator, type RunningSimulator } from "./server.ts";

const KEY = "sim-key";
let running: RunningSimulator[] = [];
afterEach(async () => {
  await Promise.all(running.map((s) => s.close()));
  running = [];
});

function setup(config: Partial<SimulatorConfig> = {}) {
  const sim = createSimulator({ instances: [{ name: "loja-centro", apikey: KEY, state: "close" }], ...config });
  const req = async (path: string, init: { method?: string; apikey?: string; json?: unknown } = {}) => {
    const res = await sim.app.request(path, {
      method: init.method ?? "GET",
      headers: { "content-type": "application/json", ...(init.apikey === undefined ? {} : { apikey: init.apikey }) },
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  return { ...sim, req };
}

describe("GET /instance/connect/:instance", () => {
  it("answers a PNG QR code for a closed number and starts pairing; open once scanned", async () => {
    const sim = setup();
    expect((await sim.req("/instance/connect/nope", { apikey: KEY })).status).toBe(404);
    expect((await sim.req("/instance/connect/loja-centro", { apikey: "wrong" })).status).toBe(401);
    expect((await sim.req("/_sim/instances/loja-centro/scan", { method: "POST", json: {} })).status).toBe(409);

    const first = await sim.req("/instance/connect/loja-centro", { apikey: KEY });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ pairingCode: null, code: expect.stringMatching(/^2@[^,]+,[^,]+,[^,]+,[^,]+$/), base64: expect.any(String), count: 1 });
    const png = Buffer.from(first.body.base64.replace(/^data:image\/png;base64,/, ""), "base64");
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(sim.state.instances.get("loja-centro")?.state).toBe("connecting");
    // Asking again during the same pairing shows the same code.
    expect((await sim.req("/instance/connect/loja-centro", { apikey: KEY })).body.code).toBe(first.body.code);

    const scanned = await sim.req("/_sim/instances/loja-centro/scan", { method: "POST", json: {} });
    expect(scanned.status).toBe(202);
    expect(sim.state.instances.get("loja-centro")?.state).toBe("open");
    expect((await sim.req("/instance/connect/loja-centro", { apikey: KEY })).body).toEqual({ instance: { instanceName: "loja-centro", state: "open" } });
  });

  it("posts qrcode.updated as the code refreshes, and gives up to close after qrLimit codes", async () => {
    const hooks: { event: string; data: any }[] = [];
    const receiver = await startSimulator({ port: 0 });
    running.push(receiver);
    // Any HTTP server will do as the webhook target: what counts is what the simulator posted.
    const sim = await startSimulator({ port: 0, qrRefreshMs: 30, qrLimit: 3, webhookRetryDelayMs: 10 });
    running.push(sim);
    sim.state.upsertInstance("loja-centro", { apikey: KEY, state: "close", webhookUrl: `${receiver.url}/_sim/health` });
    const res = await fetch(`${sim.url}/instance/connect/loja-centro`, { headers: { apikey: KEY } });
    expect(res.status).toBe(200);
    await vi.waitFor(() => expect(sim.state.instances.get("loja-centro")?.state).toBe("close"), { timeout: 5000 });
    for (const w of sim.state.webhooks) hooks.push({ event: w.event, data: w.body.data });
    const qr = hooks.filter((h) => h.event === "qrcode.updated");
    expect(qr.map((h) => h.data.qrcode.count)).toEqual([1, 2, 3]);
    expect(new Set(qr.map((h) => h.data.qrcode.code)).size).toBe(3);
    expect(hooks.filter((h) => h.event === "connection.update").map((h) => h.data.state)).toEqual(["connecting", "close"]);
  });
});
