// Where the API path's time goes: a CPU profile of the Worker's isolate under wrangler dev while
// scheduled sends run (the same load as bench:send's "API path alone"), summed per function.
// BENCH_PROFILE_REQUESTS (default 1000), BENCH_CONCURRENCY (32), BENCH_PROFILE_TOP (40);
// BENCH_PROFILE_DRAIN=1 profiles a drain of 2,000 messages over 200 contacts instead;
// BENCH_PROFILE_WAIT=1 times Prefer: wait against a 300 ms simulator (no profile).
//
// wrangler dev's --inspector-port serves the DevTools protocol: GET /json lists the Worker, and its
// webSocketDebuggerUrl takes Profiler.start/stop. The socket refuses a client that sends a
// User-Agent without an Origin, so this one sends Origin: http://127.0.0.1.
import { execFileSync } from "node:child_process";
import { startSimulator } from "../simulator/server.ts";
import { type GatewayClient, gatewayClient } from "../src/client.ts";
import { provisionTenant, sendInBatches, startGateway } from "../tools/harness/gateway.ts";
import { closedLoop, runScript, table } from "../tools/harness/load.ts";

const REQUESTS = Number(process.env.BENCH_PROFILE_REQUESTS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const TOP = Number(process.env.BENCH_PROFILE_TOP ?? 40);
const DRAIN = process.env.BENCH_PROFILE_DRAIN === "1";
const WAIT = process.env.BENCH_PROFILE_WAIT === "1";

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

/** The inspector port of the wrangler dev serving `port` (the harness picks it and does not say). */
function inspectorPortOf(port: number): number {
  const ps = execFileSync("ps", ["-eo", "args"]).toString();
  const line = ps.split("\n").find((l) => l.includes("wrangler") && l.includes(" dev ") && l.includes(`--port ${port} `));
  const match = /--inspector-port (\d+)/.exec(line ?? "");
  if (!match?.[1]) throw new Error(`no wrangler dev on port ${port}`);
  return Number(match[1]);
}

async function connect(inspectorPort: number) {
  const list = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { webSocketDebuggerUrl: string; title: string }[];
  const target = list[0];
  if (!target) throw new Error("the inspector lists no Worker");
  // Node's WebSocket (undici) takes headers beside the standard arguments.
  const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: "http://127.0.0.1" } } as unknown as string[]);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", (e) => reject(new Error(`inspector socket: ${String((e as ErrorEvent).message ?? e.type)}`)), { once: true });
  });
  let next = 1;
  const waiting = new Map<number, (v: unknown) => void>();
  ws.addEventListener("message", (event) => {
    const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.error ? Promise.reject(new Error(JSON.stringify(msg.error))) : msg.result);
  });
  const send = <T>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve) => {
      const id = next++;
      waiting.set(id, resolve as (v: unknown) => void);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => ws.close() };
}

function summarise(profile: Profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const perFunction = new Map<string, number>();
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    const file = f.url.split("/").slice(-2).join("/");
    const key = `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
    perFunction.set(key, (perFunction.get(key) ?? 0) + us);
  }
  // Inclusive time per function name (a node's subtree), for the handler's own steps.
  const inclusive = new Map<string, number>();
  const subtree = (n: Node, seen: Set<string>): number => {
    let t = self.get(n.id) ?? 0;
    for (const c of n.children ?? []) t += subtree(byId.get(c)!, new Set([...seen, n.callFrame.functionName]));
    const name = n.callFrame.functionName;
    if (name && !seen.has(name)) inclusive.set(name, (inclusive.get(name) ?? 0) + t);
    return t;
  };
  subtree(profile.nodes[0]!, new Set());
  const rows = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP)
      .map(([k, us]) => [k, us / 1000, (100 * us) / total]);
  console.log(`\nself time, ${(total / 1000).toFixed(0)} ms sampled over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s`);
  console.log(table(["function", "ms", "%"], rows(perFunction)));
  console.log("\ninclusive time by function name");
  console.log(table(["function", "ms", "%"], rows(inclusive)));
}

/** Prefer: wait=10 with the simulator answering in 300 ms: 60 sends, 4 in flight, each to its own contact. */
async function preferWait(api: GatewayClient, simulatorUrl: string, instance: string) {
  await fetch(`${simulatorUrl}/_sim/config`, { method: "PATCH", headers: { "content-type": "application/json" }, body: JSON.stringify({ latencyMs: 300 }) });
  const run = await closedLoop(60, 4, (i) =>
    api.v1.messages.$post({ json: { instance, to: `55319${String(30000000 + i).padStart(8, "0")}`, text: `wait ${i}` } }, { headers: { prefer: "wait=10" } }),
  );
  console.log(
    `Prefer: wait=10, simulator at 300 ms, 60 sends 4 in flight: p50 ${run.p50.toFixed(0)} ms, p99 ${run.p99.toFixed(0)} ms, statuses ${JSON.stringify(run.statuses)}`,
  );
}

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const gateway = await startGateway({ vars: { MESSAGE_LIMIT_PER_MINUTE: "1000000" } });
  try {
    const t = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: 60000 });
    const api = gatewayClient(gateway.url, { apiKey: t.apiKey });
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const post = (i: number) =>
      api.v1.messages.$post({
        json: { instance: t.instance, to: `55119${String(10000000 + (i % 500)).padStart(8, "0")}`, text: `profile ${i}`, sendAt: tomorrow },
      });
    await closedLoop(100, 8, post);
    if (WAIT) return await preferWait(api, simulator.url, t.instance);
    const inspector = await connect(inspectorPortOf(gateway.port));
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
    await inspector.send("Profiler.start");
    if (DRAIN) {
      // The drain instead: 2,000 messages over 200 contacts through the batch route, until all are sent.
      const started = performance.now();
      const items = Array.from({ length: 2000 }, (_, i) => ({
        instance: t.instance,
        to: `55219${String(20000000 + (i % 200)).padStart(8, "0")}`,
        text: `d ${i}`,
      }));
      await sendInBatches(api, items);
      for (;;) {
        const res = await api.v1.stats.$get();
        if (!res.ok) throw new Error(`stats: ${res.status} ${await res.text()}`);
        const total: Record<string, number> = (await res.json()).messages.total;
        if ((total.sent ?? 0) >= 2000) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      console.log(`drain: 2000 messages over 200 contacts in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } else {
      const run = await closedLoop(REQUESTS, CONCURRENCY, post);
      console.log(
        `${REQUESTS} scheduled sends, ${CONCURRENCY} in flight: ${run.perSecond.toFixed(1)} req/s, p50 ${run.p50.toFixed(0)} ms, errors ${run.errors}`,
      );
    }
    const { profile } = await inspector.send<{ profile: Profile }>("Profiler.stop");
    inspector.close();
    summarise(profile);
  } finally {
    await gateway.stop();
    await simulator.close();
  }
}

runScript(main);
