// The bridge against a misconfigured gateway path (wrong URL, a proxy's 413), legacy schedules that
// arrive late, and produce requests over Kafka's size limit: a real broker, wrangler dev, the simulator.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { messageStatusEvent } from "../src/contracts/events.ts";
import { startSimulator, type RunningSimulator } from "../simulator/server.ts";
import { provisionTenant, startGateway, type Gateway } from "../tools/harness/gateway.ts";
import { startBridge, type RunningBridge } from "./bridge.ts";
import { loadConfig, type BridgeConfig } from "./config.ts";
import { allTopics, bridgeEnv, kafkaTools, passOn, serveStandIn, simulatorCalls, type KafkaTools, type Observer } from "../tools/harness/bridge.ts";
import { waitUntil } from "../test/support/wait.ts";
import { connectKafka } from "./kafka.ts";
import type { Logger } from "./log.ts";

const RUN = `ops-${Date.now().toString(36)}`;
const brokers = inject("kafkaBrokers");

let simulator: RunningSimulator;
let gateway: Gateway;
let persistDir: string;
let tenant: Awaited<ReturnType<typeof provisionTenant>>;
let kafka: KafkaTools;
const bridges: RunningBridge[] = [];
const logLines: string[] = [];
const log: Logger = (level, msg, fields) => logLines.push(JSON.stringify({ level, msg, ...fields }));

beforeAll(async () => {
  simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: 10, deliveredDelayMs: -1, readDelayMs: -1 });
  persistDir = mkdtempSync(path.join(tmpdir(), "mensageiro-bridge-ops-"));
  gateway = await startGateway({ persistDir });
  tenant = await provisionTenant(gateway.url, simulator.url, { webhooks: "single" });
  kafka = await kafkaTools(brokers);
});

afterEach(async () => {
  await Promise.allSettled(bridges.splice(0).map((b) => b.stop()));
});

afterAll(async () => {
  await kafka?.close();
  await gateway?.stop();
  await simulator?.close();
  if (persistDir) rmSync(persistDir, { recursive: true, force: true });
});

let testNo = 0;
async function scenario(env: Record<string, string> = {}, gatewayUrl = gateway.url) {
  const tag = `${RUN}-${++testNo}`;
  const config = loadConfig(bridgeEnv({ brokers, gatewayUrl, apiKey: tenant.apiKey, tag, env: { BRIDGE_CONSUMER_NAME: `bridge-${RUN}`, ...env } }));
  await kafka.createTopics(allTopics(config));
  const observer = await kafka.observe([config.topics.messageStatus, `${config.topics.sendMessage}.dlq`]);
  const contact = (i: number) => `5512${String(testNo).padStart(2, "0")}${String(i).padStart(5, "0")}`;
  return { config, observer, contact };
}

async function bridgeFor(config: BridgeConfig): Promise<RunningBridge> {
  const b = await startBridge(config, { log });
  bridges.push(b);
  return b;
}

const sendValue = (contact: string, text: string) =>
  JSON.stringify({ userId: 42, instanceName: tenant.instance, phoneNumber: contact, message: text, timestamp: Date.now() });

function statuses(observer: Observer, config: BridgeConfig) {
  return observer.seen(config.topics.messageStatus).flatMap((r) => {
    const e = messageStatusEvent.parse(JSON.parse(r.value ?? ""));
    const sourceId = z.string().safeParse(e.data.metadata?.sourceId);
    return sourceId.success ? [{ sourceId: sourceId.data, status: e.data.status, messageId: e.data.messageId }] : [];
  });
}

async function sentTexts(numbers: string[]): Promise<Map<string, string[]>> {
  const calls = await simulatorCalls(simulator.url, tenant.instance);
  const byNumber = new Map<string, string[]>(numbers.map((n) => [n, []]));
  for (const c of calls) byNumber.get(c.number)?.push(c.body.text ?? "");
  return byNumber;
}

const total = (m: Map<string, string[]>) => [...m.values()].reduce((s, l) => s + l.length, 0);

/** Forwards to the gateway; with refuseWith, batch posts get that status and an HTML page, as from a proxy. */
async function answerLosingProxy(target: string) {
  const state = { refuseWith: undefined as number | undefined, refused: new Map<number, number>() };
  const app = new Hono();
  app.all("*", async (c) => {
    const url = new URL(c.req.url);
    if (state.refuseWith !== undefined && url.pathname === "/v1/messages/batch") {
      state.refused.set(state.refuseWith, (state.refused.get(state.refuseWith) ?? 0) + 1);
      return c.html(`<html><body><h1>${state.refuseWith}</h1>nginx</body></html>`, state.refuseWith as 404);
    }
    const answer = await passOn(target, c.req.raw);
    return new Response(answer.text, { status: answer.status, headers: answer.headers });
  });
  return Object.assign(state, await serveStandIn(app));
}

describe("configuration errors, late schedules, big produce requests", () => {
  it("a wrong GATEWAY_URL (404) or a proxy's 413 pauses and alerts: nothing dead-lettered or committed, all sent once fixed", async () => {
    const proxy = await answerLosingProxy(gateway.url);
    try {
      proxy.refuseWith = 404;
      const { config, observer, contact } = await scenario({}, proxy.url);
      const c = contact(1);
      await kafka.produce(
        config.topics.sendMessage,
        [0, 1, 2].map((i) => ({ key: c, value: sendValue(c, `cfg${i}`) })),
      );
      const bridge = await bridgeFor(config);
      const health = z.object({ status: z.string(), gateway: z.string(), alert: z.string().optional() });
      const alerted = await waitUntil(
        "misconfigured alert",
        async () => {
          const res = await fetch(`http://127.0.0.1:${bridge.port}/health`);
          const body = health.parse(await res.json());
          return res.status === 503 && body.gateway === "misconfigured" ? body : undefined;
        },
        120_000,
      );
      expect(alerted.alert).toContain("404");
      proxy.refuseWith = 413;
      await waitUntil("a 413 seen", () => ((proxy.refused.get(413) ?? 0) >= 1 ? true : undefined), 120_000);
      // Both refusals were answered by the bridge: still nothing in the DLQ, the offset not moved past the records.
      expect(observer.seen(`${config.topics.sendMessage}.dlq`)).toEqual([]);
      expect(["-1", "0"]).toContain((await kafka.committed(config)).offset);
      expect(logLines.some((l) => l.includes("gateway configuration error") && l.includes('"status":413'))).toBe(true);

      proxy.refuseWith = undefined;
      const sent = await waitUntil(
        "three sent",
        async () => {
          const s = await sentTexts([c]);
          return total(s) >= 3 ? s : undefined;
        },
        120_000,
      );
      expect(sent.get(c)).toEqual(["cfg0", "cfg1", "cfg2"]);
      await waitUntil("committed past the three", async () => ((await kafka.committed(config)).offset === "3" ? true : undefined), 120_000);
      const after = health.parse(await (await fetch(`http://127.0.0.1:${bridge.port}/health`)).json());
      expect(after.gateway).toBe("up");
      expect(observer.seen(`${config.topics.sendMessage}.dlq`)).toEqual([]);
    } finally {
      await proxy.close();
    }
  }, 400_000);

  it("a schedule whose time passed while the bridge lagged is sent now, the lateness in its history", async () => {
    const { config, observer, contact } = await scenario();
    const c = contact(2);
    const dlq = await kafka.observe([`${config.topics.scheduleMessage}.dlq`]);
    const scheduledFor = new Date(Date.now() - 10 * 60_000).toISOString();
    const scheduleId = `late-${RUN}`;
    await kafka.produce(config.topics.scheduleMessage, [
      { key: c, value: JSON.stringify({ scheduleId, instanceName: tenant.instance, phoneNumber: c, message: "atrasada", scheduledFor }) },
    ]);
    await bridgeFor(config);
    const sent = await waitUntil("the late schedule sent", async () => {
      const s = await sentTexts([c]);
      return total(s) >= 1 ? s : undefined;
    });
    expect(sent.get(c)).toEqual(["atrasada"]);
    const row = await waitUntil("its sent event", () => statuses(observer, config).find((r) => r.sourceId === scheduleId && r.status === "sent"));
    const headers = { authorization: `Bearer ${tenant.apiKey}` };
    const message = z
      .object({ status: z.string(), history: z.array(z.object({ status: z.string(), detail: z.string().optional() })) })
      .parse(await (await fetch(`${gateway.url}/v1/messages/${row.messageId}`, { headers })).json());
    expect(message.history[0]).toMatchObject({
      status: "queued",
      detail: expect.stringMatching(new RegExp(`^scheduled for ${scheduledFor}, arrived \\d+ s late; sent now$`)),
    });
    expect(dlq.seen(`${config.topics.scheduleMessage}.dlq`)).toEqual([]);
    await dlq.close();
  });

  it("splits produce requests by bytes: 3 MB in one publish reaches Kafka whole and in order", async () => {
    const topic = `big-${RUN}`;
    await kafka.createTopics([topic]);
    const link = connectKafka({ brokers: [brokers], clientId: "big-batch", log });
    const records = Array.from({ length: 30 }, (_, i) => ({ topic, key: "k", value: `${i}:${"x".repeat(100_000)}` }));
    try {
      await link.publish(records);
    } finally {
      await link.close();
    }
    const observer = await kafka.observe([topic]);
    const seen = await waitUntil("30 records", () => (observer.seen(topic).length >= 30 ? observer.seen(topic) : undefined));
    expect(seen.map((r) => r.value?.split(":")[0])).toEqual(records.map((_, i) => String(i)));
    await observer.close();
  });
});
