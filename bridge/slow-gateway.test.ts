// A gateway slower than the consumer group's session: batch POSTs that hang past the bridge's
// timeout must not cost the bridge its partition for good. Before the fix the POST ran without a
// heartbeat, the member was evicted, the retry path paused the partition and a failed heartbeat
// threw out of the batch with the partition still paused: after rejoining, that process never
// fetched the partition again and the records after it were never posted. A real broker; the
// gateway is a stand-in whose first two batch POSTs hang.
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { loadConfig } from "./config.ts";
import { startBridge, type RunningBridge } from "./bridge.ts";
import { allTopics, bridgeEnv, kafkaTools, standInGateway, type KafkaTools } from "../tools/harness/bridge.ts";
import { waitUntil } from "../test/support/wait.ts";
import type { Logger } from "./log.ts";

const RUN = `slow-${Date.now().toString(36)}`;
const brokers = inject("kafkaBrokers");
let kafka: KafkaTools;
const closing: (() => Promise<void>)[] = [];
const logLines: string[] = [];
const log: Logger = (level, msg, fields) => logLines.push(JSON.stringify({ level, msg, ...fields }));

beforeAll(async () => {
  kafka = await kafkaTools(brokers);
});
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close().catch(() => {});
});
afterAll(async () => {
  await kafka?.close();
});

describe("a gateway slower than the consumer session", () => {
  it("posts hanging past the timeout: the bridge keeps its partition and every record is posted afterwards", async () => {
    // Session 6 s (the broker's minimum), POST timeout 8 s, the gateway holds the first two posts 20 s.
    const gateway = await standInGateway({ holdPost: (n) => n <= 2, holdMs: 20_000 });
    closing.push(gateway.close);
    const config = loadConfig(
      bridgeEnv({
        brokers,
        gatewayUrl: gateway.url,
        apiKey: "k",
        tag: RUN,
        env: { BRIDGE_OUTBOUND: "false", BRIDGE_SESSION_TIMEOUT_MS: "6000", BRIDGE_GATEWAY_TIMEOUT_MS: "8000", BRIDGE_BATCH_SIZE: "10" },
      }),
    );
    await kafka.createTopics(allTopics(config));
    const texts = Array.from({ length: 40 }, (_, i) => `lento ${i}`);
    const value = (text: string) => JSON.stringify({ userId: 7, instanceName: "loja", phoneNumber: "5511955550001", message: text, timestamp: Date.now() });
    await kafka.produce(
      config.topics.sendMessage,
      texts.slice(0, 10).map((t) => ({ key: "c", value: value(t) })),
    );
    const bridge: RunningBridge = await startBridge(config, { log });
    closing.push(bridge.stop);
    // Both slow posts were given up; then more records arrive while the first batch is retried.
    await waitUntil(
      "two posts timed out",
      () => (gateway.held >= 2 && logLines.filter((l) => l.includes("gateway send failed")).length >= 2 ? true : undefined),
      90_000,
    );
    await kafka.produce(
      config.topics.sendMessage,
      texts.slice(10).map((t) => ({ key: "c", value: value(t) })),
    );
    const accepted = await waitUntil("all forty posted", () => (new Set(gateway.accepted).size >= 40 ? gateway.accepted : undefined), 90_000);
    // In order, and each once: the hung posts were answered with 503, so nothing was accepted twice.
    expect(accepted).toEqual(texts);
    const lag = await waitUntil("lag back to 0", async () => {
      const body = z.object({ inbound: z.object({ lag: z.number().nullable() }) }).parse(await (await fetch(`http://127.0.0.1:${bridge.port}/health`)).json());
      return body.inbound.lag === 0 ? body.inbound.lag : undefined;
    });
    expect(lag).toBe(0);
    // The member stayed in the group through the slow posts: no abandoned batch.
    expect(logLines.filter((l) => l.includes("kafka heartbeat failed"))).toEqual([]);
  }, 180_000);
});
