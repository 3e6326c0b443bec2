// npm run bench:noisy — one tenant floods, another sends as usual: does the quiet one notice?
// On the local runtime (wrangler dev), in one run, two phases of the same length:
//   off: the quiet tenant sends single messages at a steady pace, nothing else runs;
//   on:  the same, while a noisy tenant posts 500-item batches and asks /v1/stats in loops,
//        as fast as the gateway answers (a 429 does not slow it down: it is hostile).
// Both tenants keep the default API request limit. For each phase: the quiet tenant's accept
// latency (p50, p99), its errors, and its drain rate (its messages that reached the simulator
// per second, counted from the phase's start to its last send).
import { startSimulator } from "../simulator/server.ts";
import { gatewayClient } from "../src/client.ts";
import { provisionTenant, startGateway } from "../tools/harness/gateway.ts";
import { percentile, runScript, table } from "../tools/harness/load.ts";

const PHASE_SECONDS = Number(process.env.BENCH_PHASE_SECONDS ?? 30);
const QUIET_PER_SECOND = Number(process.env.BENCH_QUIET_PER_SECOND ?? 5);
const QUIET_CONTACTS = Number(process.env.BENCH_QUIET_CONTACTS ?? 20);
const FLOOD_BATCH_WORKERS = Number(process.env.BENCH_FLOOD_BATCH_WORKERS ?? 4);
const FLOOD_STATS_WORKERS = Number(process.env.BENCH_FLOOD_STATS_WORKERS ?? 4);
// How long a phase's last quiet messages may take to reach the simulator after it ends.
const DRAIN_GRACE_MS = Number(process.env.BENCH_DRAIN_GRACE_SECONDS ?? 45) * 1000;
const BATCH = 500;

type Phase = { name: string; accepted: number; errors: number; p50: number; p99: number; drained: number; drainPerSecond: number; flood: FloodCount };
type FloodCount = { batches: number; batch429: number; messages: number; stats: number; stats429: number };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  // BENCH_MESSAGE_LIMIT: the gateway's MESSAGE_LIMIT_PER_MINUTE (releases without it ignore it).
  const gateway = await startGateway({ vars: process.env.BENCH_MESSAGE_LIMIT ? { MESSAGE_LIMIT_PER_MINUTE: process.env.BENCH_MESSAGE_LIMIT } : {} });
  try {
    const quiet = await provisionTenant(gateway.url, simulator.url, { rateLimitPerMinute: null, instance: "quiet" });
    const noisy = await provisionTenant(gateway.url, simulator.url, { rateLimitPerMinute: null, instance: "noisy", ratePerMinute: 60000 });
    const quietApi = gatewayClient(gateway.url, { apiKey: quiet.apiKey });
    const noisyApi = gatewayClient(gateway.url, { apiKey: noisy.apiKey });

    const phases: Phase[] = [];
    for (const name of ["flood off", "flood on"]) {
      const phase = await runPhase(name, name === "flood on");
      phases.push(phase);
      console.log(`   ${name}: ${phase.accepted} accepted, p99 ${phase.p99.toFixed(0)} ms, ${phase.drained} drained`);
    }

    console.log(
      `\nquiet tenant: ${QUIET_PER_SECOND} single messages/s to ${QUIET_CONTACTS} contacts for ${PHASE_SECONDS} s per phase; ` +
        `flood: ${FLOOD_BATCH_WORKERS} loops of ${BATCH}-item batches + ${FLOOD_STATS_WORKERS} loops of GET /v1/stats`,
    );
    console.log(
      table(
        [
          "phase",
          "quiet accepted",
          "quiet errors",
          "accept p50 ms",
          "accept p99 ms",
          "quiet drained",
          "drain msg/s",
          "flood batches (429)",
          "flood msgs accepted",
          "flood stats (429)",
        ],
        phases.map((p) => [
          p.name,
          p.accepted,
          p.errors,
          p.p50,
          p.p99,
          p.drained,
          p.drainPerSecond,
          `${p.flood.batches} (${p.flood.batch429})`,
          p.flood.messages,
          `${p.flood.stats} (${p.flood.stats429})`,
        ]),
      ),
    );

    async function runPhase(name: string, flood: boolean): Promise<Phase> {
      const tag = name.replace(/\W+/g, "-");
      const count: FloodCount = { batches: 0, batch429: 0, messages: 0, stats: 0, stats429: 0 };
      let flooding = flood;
      const floods = flood
        ? [
            ...Array.from({ length: FLOOD_BATCH_WORKERS }, async (_, w) => {
              let n = 0;
              while (flooding) {
                const messages = Array.from({ length: BATCH }, (_, i) => ({
                  instance: noisy.instance,
                  to: `55319${String(30000000 + ((w * 7919 + n * BATCH + i) % 20000)).padStart(8, "0")}`,
                  text: `flood ${w}/${n}/${i}`,
                }));
                n++;
                try {
                  const res = await noisyApi.v1.messages.batch.$post({ json: { messages } });
                  await res.arrayBuffer();
                  count.batches++;
                  if (res.status === 429) count.batch429++;
                  else if (res.status === 200) count.messages += BATCH;
                } catch {
                  await sleep(100);
                }
              }
            }),
            ...Array.from({ length: FLOOD_STATS_WORKERS }, async () => {
              while (flooding) {
                try {
                  const res = await noisyApi.v1.stats.$get();
                  await res.arrayBuffer();
                  count.stats++;
                  if (res.status === 429) count.stats429++;
                } catch {
                  await sleep(100);
                }
              }
            }),
          ]
        : [];

      // The quiet tenant: an open loop at a steady pace, so a slow answer does not lower the load.
      const latencies: number[] = [];
      let errors = 0;
      let accepted = 0;
      const started = Date.now();
      const total = PHASE_SECONDS * QUIET_PER_SECOND;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < total; i++) {
        const due = started + (i * 1000) / QUIET_PER_SECOND;
        if (due > Date.now()) await sleep(due - Date.now());
        sends.push(
          (async () => {
            const t0 = performance.now();
            try {
              const res = await quietApi.v1.messages.$post({
                json: { instance: quiet.instance, to: `55119${String(10000000 + (i % QUIET_CONTACTS)).padStart(8, "0")}`, text: `${tag} ${i}` },
              });
              await res.arrayBuffer();
              if (res.status === 201 || res.status === 202 || res.status === 200) accepted++;
              else errors++;
            } catch {
              errors++;
            }
            latencies.push(performance.now() - t0);
          })(),
        );
      }
      await Promise.all(sends);
      flooding = false;
      await Promise.all(floods);

      // Drained: the quiet tenant's messages of this phase that reached the simulator.
      const mine = () =>
        simulator.state.calls.filter((c) => c.instance === quiet.instance && c.status >= 200 && c.status < 300 && JSON.stringify(c.body).includes(`"${tag} `));
      const deadline = Date.now() + DRAIN_GRACE_MS;
      while (mine().length < accepted && Date.now() < deadline) await sleep(250);
      const calls = mine();
      const last = Math.max(started, ...calls.map((c) => c.at));
      latencies.sort((a, b) => a - b);
      return {
        name,
        accepted,
        errors,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        drained: calls.length,
        drainPerSecond: calls.length / Math.max(1, (last - started) / 1000),
        flood: count,
      };
    }
  } finally {
    await gateway.stop();
    await simulator.close();
  }
}

runScript(main);
