// npm run bench:webhooks — Evolution webhook ingest on the local runtime (wrangler dev): throughput
// and latency of POST /webhooks/evolution/:token beside the bare Hono route, and how long until
// the queued events are applied (inbound rows and message.received events written).
import upsertFixture from "../test/fixtures/evolution/messages.upsert.text.json" with { type: "json" };
import { startSimulator } from "../simulator/server.ts";
import { gatewayClient } from "../src/client.ts";
import { provisionTenant, startGateway } from "../tools/harness/gateway.ts";
import { startBare } from "./bare.ts";
import { closedLoop, runScript, table } from "../tools/harness/load.ts";

const REQUESTS = Number(process.env.BENCH_WEBHOOK_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);

function upsert(i: number, instance: string) {
  const body = structuredClone(upsertFixture);
  // The webhook URL refuses a body of another instance.
  body.instance = instance;
  body.data.key.id = `BENCH${String(i).padStart(27, "0")}`;
  body.data.key.remoteJid = `55119${String(40000000 + (i % 200))}@s.whatsapp.net`;
  body.data.message.conversation = `inbound ${i}`;
  return JSON.stringify(body);
}

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const gateway = await startGateway();
  const bare = await startBare();
  try {
    const t = await provisionTenant(gateway.url, simulator.url);
    const json = { "content-type": "application/json" };
    // Warm-up, then the same bodies to both. The webhook is posted as Evolution does, to the URL the
    // gateway gave for the instance (not the client API).
    await closedLoop(100, 8, (i) => fetch(`${bare.url}/v1/messages`, { method: "POST", headers: json, body: upsert(1_000_000 + i, t.instance) }));
    await closedLoop(100, 8, (i) => fetch(t.webhookUrl, { method: "POST", headers: json, body: upsert(1_000_000 + i, t.instance) }));
    const bareRun = await closedLoop(REQUESTS, CONCURRENCY, (i) =>
      fetch(`${bare.url}/v1/messages`, { method: "POST", headers: json, body: upsert(i, t.instance) }),
    );
    const started = performance.now();
    const hookRun = await closedLoop(REQUESTS, CONCURRENCY, (i) => fetch(t.webhookUrl, { method: "POST", headers: json, body: upsert(i, t.instance) }));

    // Applied: every inbound message has its message.received event in the outbox.
    const api = gatewayClient(gateway.url, { apiKey: t.apiKey });
    let received = 0;
    const deadline = Date.now() + 180_000;
    while (received < REQUESTS + 100 && Date.now() < deadline) {
      const res = await api.v1.events.$get({ query: { consumer: "bench", limit: "1000" } });
      if (!res.ok) throw new Error(`events: ${res.status} ${await res.text()}`);
      const page = await res.json();
      received += page.events.filter((e) => e.type === "message.received").length;
      if (page.events.length > 0) {
        const ack = await api.v1.events.ack.$post({ json: { consumer: "bench", seq: page.cursor } });
        if (!ack.ok) throw new Error(`ack: ${ack.status} ${await ack.text()}`);
      } else await new Promise((r) => setTimeout(r, 200));
    }
    const appliedSeconds = (performance.now() - started) / 1000;

    console.log(`\nwebhook ingest: ${REQUESTS} messages.upsert deliveries, ${CONCURRENCY} in flight, wrangler dev on this machine`);
    console.log(
      table(
        ["route", "req/s", "p50 ms", "p99 ms", "errors", "ratio to bare"],
        [
          ["bare Hono POST (same body)", bareRun.perSecond, bareRun.p50, bareRun.p99, bareRun.errors, "1.00"],
          ["POST /webhooks/evolution/:token", hookRun.perSecond, hookRun.p50, hookRun.p99, hookRun.errors, (hookRun.perSecond / bareRun.perSecond).toFixed(2)],
        ],
      ),
    );
    console.log(
      `\napplied (stored + message.received in the outbox): ${received - 100} of ${REQUESTS} after ${appliedSeconds.toFixed(1)} s → ${((received - 100) / appliedSeconds).toFixed(0)} events/s end to end`,
    );
  } finally {
    bare.stop();
    await gateway.stop();
    await simulator.close();
  }
}

runScript(main);
