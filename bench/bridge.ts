// Relay throughput of the Kafka bridge in both directions, against a real broker, the local
// gateway (wrangler dev) and the simulator (no latency, no ack webhooks).
//   npm run bench:bridge            (KAFKA_BROKERS=host:port to use a running broker)
//   BENCH_SENDS=5000 BENCH_EVENTS=10000 BENCH_PARTITIONS=4
import { startKafka } from "../tools/harness/kafka.ts";
import { startSimulator } from "../simulator/server.ts";
import { gatewayClient } from "../src/client.ts";
import { provisionTenant, sendInBatches, startGateway } from "../tools/harness/gateway.ts";
import { loadConfig } from "../bridge/config.ts";
import { startBridge } from "../bridge/bridge.ts";
import { allTopics, bridgeEnv, kafkaTools } from "../tools/harness/bridge.ts";
import type { Logger } from "../bridge/log.ts";
import { table } from "../tools/harness/load.ts";
import { waitFor } from "../tools/harness/wait.ts";

// A plain loop: this script runs outside Vitest (tests wait with vi.waitFor).
const SENDS = Number(process.env.BENCH_SENDS ?? 5_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 4);
const CONTACTS = 200;

const broker = await startKafka();
const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
const gateway = await startGateway();
const kafka = await kafkaTools(broker.brokers);
const run = Date.now().toString(36);
const rows: (string | number)[][] = [];
const log: Logger = (level, msg, fields) => {
  if (level === "error" || level === "warn") console.error(JSON.stringify({ level, msg, ...fields }));
};
const ms = (seconds: number, n: number) => `${((seconds * 1000) / Math.max(1, n)).toFixed(0)} ms`;

/** The bridge one way only (the other switched off), on topics and a consumer group of its own. */
function benchConfig(apiKey: string, direction: "in" | "out", env: Record<string, string> = {}) {
  const off: Record<string, string> = direction === "in" ? { BRIDGE_OUTBOUND: "false" } : { BRIDGE_INBOUND: "false" };
  return loadConfig(bridgeEnv({ brokers: broker.brokers, gatewayUrl: gateway.url, apiKey, tag: `bench-${direction}-${run}`, env: { ...off, ...env } }));
}

try {
  // Kafka → gateway: legacy send events already waiting, timed until all are accepted.
  {
    const t = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: 60_000 });
    const config = benchConfig(t.apiKey, "in");
    await kafka.createTopics([config.topics.sendMessage], PARTITIONS);
    await kafka.createTopics(allTopics(config).filter((x) => x !== config.topics.sendMessage));
    const contact = (i: number) => `5511${String(90000000 + (i % CONTACTS))}`;
    await kafka.produce(
      config.topics.sendMessage,
      Array.from({ length: SENDS }, (_, i) => ({
        key: contact(i),
        value: JSON.stringify({ userId: i, instanceName: t.instance, phoneNumber: contact(i), message: `bench ${i}`, timestamp: Date.now() }),
      })),
    );
    const started = performance.now();
    const bridge = await startBridge(config, { log });
    await waitFor("all accepted", () => (bridge.metrics.total("bridge_inbound_accepted_total") >= SENDS ? true : undefined), {
      timeoutMs: 600_000,
      intervalMs: 20,
    });
    const seconds = (performance.now() - started) / 1000;
    await bridge.stop();
    const posts = bridge.metrics.total("bridge_gateway_posts_total");
    rows.push([
      `Kafka → accepted (whatsapp-send-message, ${PARTITIONS} partitions, ≤ 500 a batch)`,
      SENDS,
      seconds,
      SENDS / seconds,
      `${posts} posts, ${ms(bridge.metrics.total("bridge_gateway_post_seconds_total"), posts)} a post`,
      "≥ 500/s",
    ]);
  }

  // Outbox → Kafka: a tenant whose outbox already holds EVENTS events (one "scheduled" per message).
  {
    const t = await provisionTenant(gateway.url, simulator.url);
    const sendAt = new Date(Date.now() + 86_400_000).toISOString();
    await sendInBatches(
      gatewayClient(gateway.url, { apiKey: t.apiKey }),
      Array.from({ length: EVENTS }, (_, i) => ({ instance: t.instance, to: `5521${String(90000000 + (i % CONTACTS))}`, text: `later ${i}`, sendAt })),
    );
    await new Promise((r) => setTimeout(r, 5_000)); // let the lanes take the scheduled jobs off the queue first
    const config = benchConfig(t.apiKey, "out", { BRIDGE_EVENTS_WAIT_SECONDS: "1" });
    await kafka.createTopics(allTopics(config));
    const started = performance.now();
    const bridge = await startBridge(config, { log });
    await waitFor(
      "all relayed and acked",
      () => {
        const s = bridge.metrics.state.outbox;
        return bridge.metrics.total("bridge_outbound_events_total") >= EVENTS && s.inFlight === 0 && s.ackedCursor === s.seenCursor ? true : undefined;
      },
      { timeoutMs: 600_000, intervalMs: 20 },
    );
    const seconds = (performance.now() - started) / 1000;
    await bridge.stop();
    const pages = Math.ceil(EVENTS / config.outbound.pageSize);
    const phase = (p: string) => ms(bridge.metrics.get("bridge_outbound_seconds_total", { phase: p }), pages);
    rows.push([
      `outbox → Kafka (message.status, pages of ${config.outbound.pageSize})`,
      EVENTS,
      seconds,
      EVENTS / seconds,
      `${pages} pages; a page: read ${phase("read")}, produce ${phase("produce")}, ack ${phase("ack")}`,
      "≥ 1,000/s",
    ]);
  }

  console.log(table(["relay", "events", "seconds", "events/s", "notes", "goal"], rows));
} finally {
  await kafka.close();
  await gateway.stop();
  await simulator.close();
  await broker.stop();
}
