// Test and benchmark plumbing around a real broker: topics, a producer, an observer that collects
// what the bridge writes, and the simulator's record of sends. Not used by the bridge itself.
import { serve, type ServerType } from "@hono/node-server";
import type { Hono } from "hono";
import { Kafka, logLevel, Partitioners, type Consumer, type Producer } from "kafkajs";
import { z } from "zod";
import { freePort } from "./gateway.ts";

export type Seen = { topic: string; partition: number; offset: string; key: string | null; value: string | null; headers: Record<string, string> };

export type KafkaTools = {
  createTopics(topics: string[], partitions?: number): Promise<void>;
  produce(
    topic: string,
    messages: { key?: string | null; partition?: number; value: string | Buffer | null; headers?: Record<string, string> }[],
  ): Promise<void>;
  observe(topics: string[]): Promise<Observer>;
  close(): Promise<void>;
};

export type Observer = { seen(topic: string): Seen[]; close(): Promise<void> };

export async function kafkaTools(brokers: string): Promise<KafkaTools> {
  const kafka = new Kafka({ clientId: "bridge-harness", brokers: [brokers], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const producer: Producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  const consumers: Consumer[] = [];
  return {
    async createTopics(topics, partitions = 1) {
      await admin.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions: partitions })) });
    },
    async produce(topic, messages) {
      for (let i = 0; i < messages.length; i += 1000) await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 1000) });
    },
    async observe(topics) {
      const seen = new Map<string, Seen[]>();
      const consumer = kafka.consumer({ groupId: `observer-${Date.now()}-${Math.random().toString(36).slice(2)}`, maxWaitTimeInMs: 100 });
      consumers.push(consumer);
      await consumer.connect();
      await consumer.subscribe({ topics, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
          const list = seen.get(topic) ?? [];
          list.push({ topic, partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers });
          seen.set(topic, list);
        },
      });
      return { seen: (topic) => seen.get(topic) ?? [], close: () => consumer.disconnect() };
    },
    async close() {
      await Promise.allSettled(consumers.map((c) => c.disconnect()));
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}

/** A bridge's environment with per-run topic names and group, for the production parser (loadConfig). */
export function bridgeEnv(opts: { brokers: string; gatewayUrl: string; apiKey: string; tag: string; env?: Record<string, string> }): Record<string, string> {
  return {
    KAFKA_BROKERS: opts.brokers,
    GATEWAY_URL: opts.gatewayUrl,
    GATEWAY_API_KEY: opts.apiKey,
    ...topicEnv(opts.tag),
    BRIDGE_GROUP_ID: `bridge-${opts.tag}`,
    BRIDGE_CONSUMER_NAME: `bridge-${opts.tag}`,
    BRIDGE_PORT: "0",
    BRIDGE_EVENTS_WAIT_SECONDS: "2",
    LOG_LEVEL: "warn",
    ...opts.env,
  };
}

export function topicEnv(tag: string): Record<string, string> {
  return {
    TOPIC_SEND_MESSAGE: `whatsapp-send-message.${tag}`,
    TOPIC_SCHEDULE_MESSAGE: `whatsapp-schedule-message.${tag}`,
    TOPIC_MESSAGING_SEND: `messaging.send.${tag}`,
    TOPIC_MESSAGE_STATUS: `whatsapp-message-status.${tag}`,
    TOPIC_INSTANCE_STATUS: `whatsapp-instance-status.${tag}`,
    TOPIC_MESSAGE_RECEIVED: `whatsapp-message-received.${tag}`,
    TOPIC_EVENTS_DLQ: `mensageiro-events.dlq.${tag}`,
  };
}

/** The topic names of a bridge configuration (the part of it this harness reads). */
type Topics = {
  topics: Record<"sendMessage" | "scheduleMessage" | "messagingSend" | "messageStatus" | "instanceStatus" | "messageReceived" | "eventsDlq", string>;
};

export function allTopics(config: Topics): string[] {
  const t = config.topics;
  const legacy = [t.sendMessage, t.scheduleMessage, t.messagingSend];
  return [...legacy, ...legacy.map((x) => `${x}.dlq`), t.messageStatus, t.instanceStatus, t.messageReceived, t.eventsDlq];
}

// The simulator's record of sends lives with the other stand-ins' readers.
export { type SimCall, simulatorCalls } from "./simulator.ts";

/** A stand-in gateway on a free loopback port: a fake, or a proxy in front of the real one. */
export async function serveStandIn(app: Hono): Promise<{ url: string; close(): Promise<void> }> {
  const port = await freePort();
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    // The bridge keeps connections open (keep-alive, long polls): cut them, or close() waits for them.
    close: () =>
      new Promise<void>((resolve) => {
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Passes a request on to `target` as it came; the answer comes back without its hop-by-hop headers. */
export async function passOn(target: string, req: Request): Promise<{ status: number; headers: Headers; text: string }> {
  const url = new URL(req.url);
  const headers = new Headers(req.headers);
  headers.delete("host");
  const body = req.method === "GET" ? undefined : await req.arrayBuffer();
  const res = await fetch(`${target}${url.pathname}${url.search}`, { method: req.method, headers, body });
  const out = new Headers(res.headers);
  for (const h of ["content-encoding", "content-length", "transfer-encoding", "connection"]) out.delete(h);
  return { status: res.status, headers: out, text: await res.text() };
}
