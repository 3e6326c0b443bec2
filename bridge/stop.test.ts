// stop() while the relays wait on the gateway: it must end at once, not when the gateway answers,
// and commit nothing it did not finish. Before the fix a batch POST still out held stop() until the
// POST's timeout (up to 5 minutes), and with it every test's clean-up. A real broker; the gateway
// is a stand-in that never answers.
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { startBridge } from "./bridge.ts";
import { loadConfig } from "./config.ts";
import { allTopics, bridgeEnv, kafkaTools, standInGateway, type KafkaTools } from "../tools/harness/bridge.ts";
import { waitUntil } from "../test/support/wait.ts";
import type { Logger } from "./log.ts";

const RUN = `stop-${Date.now().toString(36)}`;
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

const value = (text: string) => JSON.stringify({ userId: 7, instanceName: "loja", phoneNumber: "5511955550002", message: text, timestamp: Date.now() });

/** Ends with "stopped", or says what it was still waiting for after 30 s (the POST would hold it 5 minutes). */
const stopOf = (stop: () => Promise<void>) =>
  Promise.race([stop().then(() => "stopped"), new Promise<string>((resolve) => setTimeout(() => resolve("still stopping after 30 s"), 30_000))]);

describe("stop() while the gateway does not answer", () => {
  it("a batch POST still out: stop ends without its answer and the chunk stays uncommitted under its note", async () => {
    const gateway = await standInGateway({ holdPost: () => true });
    closing.push(gateway.close);
    const config = loadConfig(
      bridgeEnv({
        brokers,
        gatewayUrl: gateway.url,
        apiKey: "k",
        tag: `${RUN}-post`,
        env: { BRIDGE_OUTBOUND: "false", BRIDGE_GATEWAY_TIMEOUT_MS: "300000" },
      }),
    );
    await kafka.createTopics(allTopics(config));
    await kafka.produce(
      config.topics.sendMessage,
      [0, 1, 2].map((i) => ({ key: "c", value: value(`parado ${i}`) })),
    );
    const bridge = await startBridge(config, { log });
    closing.push(bridge.stop);
    await waitUntil("the batch POST out at the gateway", () => (gateway.posts > 0 ? true : undefined));

    expect(await stopOf(bridge.stop)).toBe("stopped");
    // Still one POST, unanswered: stop did not wait for it, and nothing was posted again.
    expect(gateway.posts).toBe(1);
    // The note written before the POST, nothing past it: a successor posts the same chunk, same key.
    expect(await kafka.committed(config)).toEqual({ offset: "0", metadata: "pending:0-2" });
  });

  it("an outbox read whose answer never ends: stop ends without it and acks nothing", async () => {
    const gateway = await standInGateway({ holdPost: () => true });
    closing.push(gateway.close);
    const config = loadConfig(bridgeEnv({ brokers, gatewayUrl: gateway.url, apiKey: "k", tag: `${RUN}-read`, env: { BRIDGE_INBOUND: "false" } }));
    const bridge = await startBridge(config, { log });
    closing.push(bridge.stop);
    await waitUntil("the outbox read out at the gateway", () => (gateway.reads > 0 ? true : undefined));

    expect(await stopOf(bridge.stop)).toBe("stopped");
    expect(gateway.reads).toBe(1);
    expect(gateway.acks).toBe(0);
  });
});
