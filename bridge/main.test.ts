// The entry point as operators run it: configuration errors are readable, SIGTERM exits 0.
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";
import { kafkaTools, topicEnv, type KafkaTools } from "../tools/harness/bridge.ts";
import { waitUntil } from "../test/support/wait.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const TSX = path.join(ROOT, "node_modules/.bin/tsx");

function runMain(env: Record<string, string>, onStdout?: (text: string, kill: () => void) => void) {
  // Only PATH and HOME from this process: the bridge must see exactly the variables given.
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(clean)) if (k !== "PATH" && k !== "HOME") delete clean[k];
  const child = spawn(TSX, ["bridge/main.ts"], { cwd: ROOT, env: Object.assign(clean, env), stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
    onStdout?.(stdout, () => child.kill("SIGTERM"));
  });
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
}

describe("configuration", () => {
  it("names every missing or bad variable", () => {
    const attempt = () => loadConfig({ KAFKA_BROKERS: "localhost", GATEWAY_URL: "not a url", BRIDGE_PORT: "70000", TOPIC_MESSAGE_STATUS: "bad topic!" });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/KAFKA_BROKERS.*host:port/);
    expect(attempt).toThrow(/GATEWAY_URL/);
    expect(attempt).toThrow(/GATEWAY_API_KEY: Required/);
    expect(attempt).toThrow(/BRIDGE_PORT/);
    expect(attempt).toThrow(/TOPIC_MESSAGE_STATUS/);
  });

  it("has defaults for everything but the brokers, the gateway and its key", () => {
    const c = loadConfig({ KAFKA_BROKERS: "a:9092, b:9092", GATEWAY_URL: "http://gw:8787/", GATEWAY_API_KEY: "k" });
    expect(c.kafka.brokers).toEqual(["a:9092", "b:9092"]);
    expect(c.gateway.url).toBe("http://gw:8787");
    expect(c.topics).toMatchObject({ sendMessage: "whatsapp-send-message", messageStatus: "whatsapp-message-status", messagingSend: "messaging.send" });
    expect(c.outbound.consumerName).toBe("kafka-bridge");
    expect(c.port).toBe(8790);
  });

  it("main.ts prints the problem and exits 2 without starting", async () => {
    const { code, stderr } = await runMain({});
    expect(code).toBe(2);
    expect(stderr).toContain("Invalid bridge configuration");
    expect(stderr).toContain("KAFKA_BROKERS");
  });
});

describe("shutdown", () => {
  let kafka: KafkaTools;
  beforeAll(async () => {
    kafka = await kafkaTools(inject("kafkaBrokers"));
  });
  afterAll(async () => {
    await kafka?.close();
  });

  it("main.ts stops on SIGTERM, disconnects and exits 0", async () => {
    const tag = `main-${Date.now().toString(36)}`;
    let kill: (() => void) | undefined;
    let outboxRetrying = false;
    const exited = runMain(
      {
        KAFKA_BROKERS: inject("kafkaBrokers"),
        GATEWAY_URL: "http://127.0.0.1:9", // nothing listens: the outbound relay retries meanwhile
        GATEWAY_API_KEY: "k",
        BRIDGE_PORT: "0",
        BRIDGE_GROUP_ID: tag,
        BRIDGE_CREATE_TOPICS: "true",
        KAFKAJS_NO_PARTITIONER_WARNING: "1",
        ...topicEnv(tag),
      },
      (out, k) => {
        kill = k;
        outboxRetrying ||= out.includes('"msg":"outbox read failed; will retry"');
      },
    );
    // SIGTERM once the bridge runs: its consumer has joined the group, the outbox relay is retrying.
    const sigterm = await waitUntil("the consumer joined and the outbox relay retrying", async () => {
      if (!kill || !outboxRetrying) return undefined;
      const group = await kafka.group(tag);
      return group.state === "Stable" && group.members > 0 ? kill : undefined;
    });
    sigterm();
    const { code, stdout } = await exited;
    expect(code).toBe(0);
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toContain("bridge stopped");
  });
});
