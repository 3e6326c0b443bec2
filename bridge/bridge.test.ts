// The bridge end to end: a real broker (inject("kafkaBrokers")), the real Worker under wrangler dev,
// and the Evolution simulator, whose acks come back as webhooks and so as status events.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { instanceStatusEvent, messageReceivedEvent, messageStatusEvent, type MessageStatus } from "../src/contracts/events.ts";
import { startSimulator, type RunningSimulator } from "../simulator/server.ts";
import { freePort, provisionTenant, startGateway, type Gateway } from "../tools/harness/gateway.ts";
import { startBridge, type RunningBridge } from "./bridge.ts";
import { loadConfig, type BridgeConfig } from "./config.ts";
import { allTopics, bridgeEnv, kafkaTools, passOn, serveStandIn, simulatorCalls, type KafkaTools, type Observer } from "../tools/harness/bridge.ts";
import { waitUntil } from "../test/support/wait.ts";
import type { Logger } from "./log.ts";

const RUN = Date.now().toString(36);
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
  simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: 10, deliveredDelayMs: 50, readDelayMs: 100 });
  persistDir = mkdtempSync(path.join(tmpdir(), "mensageiro-bridge-"));
  gateway = await startGateway({ persistDir, port: await freePort() });
  tenant = await provisionTenant(gateway.url, simulator.url, { webhooks: "single" });
  kafka = await kafkaTools(brokers);
});

// One bridge at a time: they share the outbox consumer name.
afterEach(async () => {
  await Promise.allSettled(bridges.splice(0).map((b) => b.stop()));
});

afterAll(async () => {
  if (process.env.BRIDGE_TEST_LOG) writeFileSync(process.env.BRIDGE_TEST_LOG, logLines.join("\n") + "\n");
  await Promise.allSettled(bridges.map((b) => b.stop()));
  await kafka?.close();
  await gateway?.stop();
  await simulator?.close();
  if (persistDir) rmSync(persistDir, { recursive: true, force: true });
});

let testNo = 0;
/** Fresh topics and group for one test, and an observer on what the bridge writes. */
async function scenario(env: Record<string, string> = {}, gatewayUrl = gateway.url, sendPartitions = 1) {
  const tag = `${RUN}-${++testNo}`;
  const config = loadConfig(bridgeEnv({ brokers, gatewayUrl, apiKey: tenant.apiKey, tag, env: { BRIDGE_CONSUMER_NAME: `bridge-${RUN}`, ...env } }));
  await kafka.createTopics([config.topics.sendMessage], sendPartitions);
  await kafka.createTopics(allTopics(config).filter((t) => t !== config.topics.sendMessage));
  const observer = await kafka.observe([
    config.topics.messageStatus,
    config.topics.messageReceived,
    config.topics.instanceStatus,
    `${config.topics.sendMessage}.dlq`,
  ]);
  const contact = (i: number) => `5511${String(testNo).padStart(2, "0")}${String(i).padStart(5, "0")}`;
  return { tag, config, observer, contact };
}

async function bridgeFor(config: BridgeConfig): Promise<RunningBridge> {
  const b = await startBridge(config, { log });
  bridges.push(b);
  return b;
}

const sendValue = (contact: string, text: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    userId: 42,
    instanceName: tenant.instance,
    phoneNumber: `+${contact.slice(0, 2)} ${contact.slice(2)}`,
    message: text,
    timestamp: Date.now(),
    ...extra,
  });

const statusRecord = messageStatusEvent;
type StatusRow = { sourceId: string; status: MessageStatus; eventId: string; messageId: string; metadata: Record<string, unknown> };

function statuses(observer: Observer, config: BridgeConfig): StatusRow[] {
  return observer.seen(config.topics.messageStatus).flatMap((r) => {
    const e = statusRecord.parse(JSON.parse(r.value ?? ""));
    expect(r.key).toBe(e.data.messageId);
    expect(r.headers["x-event-type"]).toBe("message.status");
    expect(r.headers["x-event-version"]).toBe("1");
    const sourceId = z.string().safeParse(e.data.metadata?.sourceId);
    return sourceId.success
      ? [{ sourceId: sourceId.data, status: e.data.status, eventId: e.eventId, messageId: e.data.messageId, metadata: e.data.metadata ?? {} }]
      : [];
  });
}

/** Texts the simulator sent, per number, in arrival order. */
async function sentTexts(numbers: string[]): Promise<Map<string, string[]>> {
  const calls = await simulatorCalls(simulator.url, tenant.instance);
  const byNumber = new Map<string, string[]>(numbers.map((n) => [n, []]));
  for (const c of calls) byNumber.get(c.number)?.push(c.body.text ?? "");
  return byNumber;
}

const total = (m: Map<string, string[]>) => [...m.values()].reduce((s, l) => s + l.length, 0);

function expectStatusesOnce(rows: StatusRow[]) {
  // A status may be produced twice after a restart, but then with the same eventId.
  const ids = new Map<string, Set<string>>();
  for (const r of rows) ids.set(`${r.messageId}/${r.status}`, (ids.get(`${r.messageId}/${r.status}`) ?? new Set()).add(r.eventId));
  expect([...ids.entries()].filter(([, s]) => s.size > 1)).toEqual([]);
}

describe("Kafka → gateway → simulator → Kafka", () => {
  it("relays each legacy kind in order per contact, and sent, delivered and read come back", async () => {
    const { config, observer, contact, tag } = await scenario();
    const [a, b, sched, ms] = [contact(1), contact(2), contact(3), contact(4)];
    await kafka.produce(
      config.topics.sendMessage,
      Array.from({ length: 10 }, (_, i) => ({ key: i % 2 ? b : a, value: sendValue(i % 2 ? b : a, `send ${Math.floor(i / 2)}`) })),
    );
    // Far enough ahead that a slow bridge still posts it before its time (a late one is sent at once, unscheduled).
    const sendAt = new Date(Date.now() + 10_000).toISOString();
    await kafka.produce(
      config.topics.scheduleMessage,
      [0, 1].map((i) => ({
        key: sched,
        value: JSON.stringify({
          scheduleId: `sch-${tag}-${i}`,
          userId: "u-7",
          instanceName: tenant.instance,
          phoneNumber: sched,
          message: `sched ${i}`,
          scheduledFor: sendAt,
        }),
      })),
    );
    await kafka.produce(
      config.topics.messagingSend,
      [0, 1, 2].map((i) => ({
        key: ms,
        value: JSON.stringify({
          channel: "whatsapp_evolution",
          channelInstanceId: tenant.instance,
          remoteJid: `${ms}@s.whatsapp.net`,
          message: `ms ${i}`,
          messageId: `ms-${tag}-${i}`,
        }),
      })),
    );
    await bridgeFor(config);

    const sent = await waitUntil("15 sends at the simulator", async () => {
      const s = await sentTexts([a, b, sched, ms]);
      return total(s) >= 15 ? s : undefined;
    });
    expect(sent.get(a)).toEqual([0, 1, 2, 3, 4].map((i) => `send ${i}`));
    expect(sent.get(b)).toEqual([0, 1, 2, 3, 4].map((i) => `send ${i}`));
    expect(sent.get(sched)).toEqual(["sched 0", "sched 1"]);
    expect(sent.get(ms)).toEqual(["ms 0", "ms 1", "ms 2"]);

    const rows = await waitUntil("sent, delivered and read for all 15", () => {
      const r = statuses(observer, config);
      const bySource = new Map<string, Set<string>>();
      for (const row of r) bySource.set(row.sourceId, (bySource.get(row.sourceId) ?? new Set()).add(row.status));
      const done = [...bySource.values()].filter((s) => s.has("sent") && s.has("delivered") && s.has("read")).length;
      return done >= 15 ? r : undefined;
    });
    expectStatusesOnce(rows);
    const sources = new Set(rows.map((r) => r.sourceId));
    for (const i of [0, 1]) expect(sources).toContain(`sch-${tag}-${i}`);
    for (const i of [0, 1, 2]) expect(sources).toContain(`ms-${tag}-${i}`);
    expect(sources).toContain(`${config.topics.sendMessage}/0/0`);
    // Legacy fields travel in metadata; the scheduled ones went through "scheduled" first.
    expect(rows.find((r) => r.sourceId === `sch-${tag}-0`)?.metadata).toMatchObject({ scheduleId: `sch-${tag}-0`, userId: "u-7" });
    expect(rows.filter((r) => r.sourceId === `sch-${tag}-0`).map((r) => r.status)).toContain("scheduled");
    expect(rows.find((r) => r.sourceId === `${config.topics.sendMessage}/0/0`)?.metadata).toMatchObject({ userId: 42 });

    // An inbound message comes out keyed by contact.
    await fetch(`${simulator.url}/_sim/inbound`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instance: tenant.instance, from: a, text: "oi" }),
    });
    const received = await waitUntil("message.received", () => observer.seen(config.topics.messageReceived).find((r) => r.key === a));
    expect(messageReceivedEvent.parse(JSON.parse(received.value ?? "")).data.text).toBe("oi");
    expect(received.headers["x-event-type"]).toBe("message.received");

    // Connection changes come out keyed by instance.
    for (const state of ["connecting", "open"]) {
      await fetch(`${simulator.url}/_sim/connection`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ instance: tenant.instance, state, wait: true }),
      });
    }
    const states = await waitUntil("instance.status connecting then open", () => {
      const seen = observer
        .seen(config.topics.instanceStatus)
        .filter((r) => r.key === tenant.instance)
        .map((r) => instanceStatusEvent.parse(JSON.parse(r.value ?? "")).data.state);
      return seen.includes("open") ? seen : undefined;
    });
    expect(states.slice(-2)).toEqual(["connecting", "open"]);
  });

  it("sends poison to <topic>.dlq with its reason and keeps the partition flowing", async () => {
    const { config, observer, contact } = await scenario();
    const c = contact(1);
    await kafka.produce(config.topics.sendMessage, [
      { key: c, value: sendValue(c, "before") },
      { key: c, value: "{not json", headers: { "trace-id": "t-1" } },
      { key: c, value: JSON.stringify({ instanceName: tenant.instance, message: "no phone" }) },
      { key: c, value: sendValue(c, "unknown instance", { instanceName: "no-such-instance" }) },
      { key: c, value: sendValue(c, "after") },
    ]);
    await bridgeFor(config);
    const dlq = `${config.topics.sendMessage}.dlq`;
    const dead = await waitUntil("3 DLQ records", () => (observer.seen(dlq).length >= 3 ? observer.seen(dlq) : undefined));
    expect(dead.map((d) => d.headers["x-dlq-reason"])).toEqual(["not_json", "invalid_shape", "gateway_rejected"]);
    expect(dead.map((d) => d.headers["x-dlq-source-offset"])).toEqual(["1", "2", "3"]);
    expect(dead[0]).toMatchObject({
      key: c,
      value: "{not json",
      headers: { "trace-id": "t-1", "x-dlq-source-topic": config.topics.sendMessage, "x-dlq-source-partition": "0" },
    });
    expect(dead[2]?.headers["x-dlq-error-code"]).toBe("unprocessable");
    expect(dead[2]?.headers["x-dlq-detail"]).toContain("no-such-instance");
    const sent = await waitUntil("the good ones sent", async () => {
      const s = await sentTexts([c]);
      return total(s) >= 2 ? s : undefined;
    });
    expect(sent.get(c)).toEqual(["before", "after"]);
    expect(logLines.some((l) => l.includes("poison message sent to the DLQ") && l.includes('"reason":"not_json"'))).toBe(true);
  });
});

describe("faults", () => {
  it("a bridge that died between the gateway's answer and the commit is replayed exactly, even when more arrived", async () => {
    const proxy = await answerLosingProxy(gateway.url);
    try {
      const { config, contact } = await scenario({ BRIDGE_OUTBOUND: "false" }, proxy.url);
      const c = contact(1);
      await kafka.produce(
        config.topics.sendMessage,
        [0, 1, 2, 3, 4].map((i) => ({ key: c, value: sendValue(c, `k${i}`) })),
      );
      proxy.loseAnswers = true;
      const first = await bridgeFor(config);
      // The gateway accepted the five; the bridge saw a 503 and is backing off, offsets uncommitted.
      await waitUntil("a lost answer", () => (proxy.lost > 0 ? true : undefined));
      await first.stop();
      expect(await kafka.committed(config)).toEqual({ offset: "0", metadata: "pending:0-4" });

      // More records arrive: a naive successor would post 0-9 under a new key and send k0-k4 twice.
      await kafka.produce(
        config.topics.sendMessage,
        [5, 6, 7, 8, 9].map((i) => ({ key: c, value: sendValue(c, `k${i}`) })),
      );
      proxy.loseAnswers = false;
      const second = await bridgeFor(config);
      await waitUntil("ten sends", async () => (total(await sentTexts([c])) >= 10 ? true : undefined));
      await waitUntil("offsets committed", async () => ((await kafka.committed(config)).offset === "10" ? true : undefined));
      // A last record on the same contact: once it is sent, any duplicate of k0–k9 (which would sit
      // ahead of it in the partition and in the contact's lane) would have been sent already.
      await kafka.produce(config.topics.sendMessage, [{ key: c, value: sendValue(c, "k10") }]);
      await waitUntil("the last send", async () => ((await sentTexts([c])).get(c)?.includes("k10") ? true : undefined));
      expect((await sentTexts([c])).get(c)).toEqual(Array.from({ length: 11 }, (_, i) => `k${i}`));
      expect(second.metrics.get("bridge_inbound_replayed_batches_total", { topic: config.topics.sendMessage })).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it("killed mid-stream and restarted: every message once at the simulator, every status present", async () => {
    const { config, observer, contact } = await scenario({ BRIDGE_BATCH_SIZE: "10" }, gateway.url, 2);
    const contacts = [1, 2, 3, 4].map(contact);
    const N = 200;
    const records = Array.from({ length: N }, (_, i) => ({
      key: contacts[i % 4] ?? null,
      partition: i % 2,
      value: sendValue(contacts[i % 4] ?? "", `m${Math.floor(i / 4)}`),
    }));
    // A steady trickle, so the kill lands while batches are being posted.
    let produced = 0;
    const producing = (async () => {
      for (let i = 0; i < N; i += 8) {
        await kafka.produce(config.topics.sendMessage, records.slice(i, i + 8));
        produced = Math.min(N, i + 8);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const first = await bridgeFor(config);
    await waitUntil("some sends", async () => (total(await sentTexts(contacts)) >= 40 ? true : undefined), 60_000, 50);
    await first.stop();
    const atKill = total(await sentTexts(contacts));
    // Records arrive while no bridge runs (unless all are out already): the next one finds them behind its commits.
    const producedAtKill = produced;
    await waitUntil("records produced while no bridge runs", () => (produced > producedAtKill || produced === N ? true : undefined), 30_000, 20);
    await bridgeFor(config);
    await producing;
    const sent = await waitUntil(`${N} sends`, async () => {
      const s = await sentTexts(contacts);
      return total(s) >= N ? s : undefined;
    });
    // A last record per contact, on its partition: once each is sent, a duplicate of anything before
    // it would have been sent already (partition order, then the contact's lane order).
    await kafka.produce(
      config.topics.sendMessage,
      contacts.map((c, i) => ({ key: c, partition: i % 2, value: sendValue(c, "end") })),
    );
    const final = await waitUntil("the last send of every contact", async () => {
      const s = await sentTexts(contacts);
      return contacts.every((c) => s.get(c)?.includes("end")) ? s : undefined;
    });
    expect(total(final)).toBe(N + contacts.length);
    for (const c of contacts) expect(final.get(c)).toEqual([...Array.from({ length: N / 4 }, (_, i) => `m${i}`), "end"]);
    expect(total(sent)).toBe(N);
    expect(atKill).toBeLessThan(N);

    const rows = await waitUntil("sent for every message", () => {
      const r = statuses(observer, config);
      return new Set(r.filter((x) => x.status === "sent").map((x) => x.sourceId)).size >= N ? r : undefined;
    });
    expectStatusesOnce(rows);
    expect(new Set(rows.map((r) => r.sourceId.split("/")[1]))).toEqual(new Set(["0", "1"]));
  });

  it("gateway down for a while: the partition pauses, nothing is lost or doubled once it returns", async () => {
    const { config, observer, contact } = await scenario();
    const c = contact(1);
    const bridge = await bridgeFor(config);
    await kafka.produce(
      config.topics.sendMessage,
      [0, 1, 2, 3, 4].map((i) => ({ key: c, value: sendValue(c, `g${i}`) })),
    );
    await waitUntil("five sent", () => (statuses(observer, config).filter((r) => r.status === "sent").length >= 5 ? true : undefined));
    // The statuses can come back before the bridge commits the five: the lag below counts from the commit.
    await waitUntil("five committed", async () => ((await kafka.committed(config)).offset === "5" ? true : undefined));

    await gateway.stop();
    await kafka.produce(
      config.topics.sendMessage,
      Array.from({ length: 15 }, (_, i) => ({ key: c, value: sendValue(c, `g${i + 5}`) })),
    );
    const health = await waitUntil("health degraded", async () => {
      const res = await fetch(`http://127.0.0.1:${bridge.port}/health`);
      const body = z.object({ status: z.string(), gateway: z.string(), inbound: z.object({ lag: z.number().nullable() }) }).parse(await res.json());
      return res.status === 503 && body.gateway === "down" ? body : undefined;
    });
    expect(health.inbound.lag).toBe(15);
    await waitUntil("an error line for the failed send", () =>
      logLines.some((l) => l.includes('"level":"error"') && l.includes("gateway send failed")) ? true : undefined,
    );

    gateway = await startGateway({ persistDir, port: gateway.port });
    const sent = await waitUntil("twenty sent", async () => {
      const s = await sentTexts([c]);
      return total(s) >= 20 ? s : undefined;
    });
    await waitUntil("sent statuses for all", () =>
      new Set(
        statuses(observer, config)
          .filter((r) => r.status === "sent")
          .map((r) => r.sourceId),
      ).size >= 20
        ? true
        : undefined,
    );
    expect(sent.get(c)).toEqual(Array.from({ length: 20 }, (_, i) => `g${i}`));
    expect(total(await sentTexts([c]))).toBe(20);
    const metrics = await (await fetch(`http://127.0.0.1:${bridge.port}/metrics`)).text();
    expect(metrics).toMatch(/bridge_gateway_failures_total\{relay="inbound"\} [1-9]/);
    expect(metrics).toMatch(new RegExp(`bridge_consumer_lag\\{topic="${config.topics.sendMessage.replace(/\./g, "\\.")}",partition="0"\\} 0`));
  });
});

/** Forwards to the gateway; with loseAnswers, batch posts reach it but the bridge gets a 503. */
async function answerLosingProxy(target: string) {
  const state = { loseAnswers: false, lost: 0 };
  const app = new Hono();
  app.all("*", async (c) => {
    const answer = await passOn(target, c.req.raw);
    if (state.loseAnswers && new URL(c.req.url).pathname === "/v1/messages/batch") {
      state.lost++;
      return c.text("answer lost", 503);
    }
    return new Response(answer.text, { status: answer.status, headers: answer.headers });
  });
  return Object.assign(state, await serveStandIn(app));
}
