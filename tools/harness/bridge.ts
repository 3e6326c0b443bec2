// Test and benchmark plumbing around a real broker: topics, a producer, an observer that collects
// what the bridge writes, committed offsets, the simulator's record of sends, and stand-in gateways.
// Not used by the bridge itself.
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
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
  /** A bridge group's committed offset on its send topic's partition 0, with the note kept beside it. */
  committed(config: { kafka: { groupId: string }; topics: { sendMessage: string } }): Promise<{ offset: string; metadata: string | null }>;
  /** A consumer group's state as the broker sees it ("Stable" once its members have joined), and how many members it has. */
  group(groupId: string): Promise<{ state: string; members: number }>;
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
    async committed(config) {
      const [t] = await admin.fetchOffsets({ groupId: config.kafka.groupId, topics: [config.topics.sendMessage] });
      const p = t?.partitions.find((x) => x.partition === 0);
      return { offset: p?.offset ?? "?", metadata: p?.metadata ?? null };
    },
    async group(groupId) {
      const { groups } = await admin.describeGroups([groupId]);
      return { state: groups[0]?.state ?? "Unknown", members: groups[0]?.members.length ?? 0 };
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

const batchPost = z.object({ messages: z.array(z.looseObject({ text: z.string().optional() })) });

export type StandInGateway = {
  url: string;
  /** Batch POSTs received, and how many of them were held. */
  posts: number;
  held: number;
  /** The texts of the items accepted, in the order they were posted. */
  accepted: string[];
  /** Outbox reads and acks received. */
  reads: number;
  acks: number;
  close(): Promise<void>;
};

/**
 * A gateway that plays only the bridge's routes. A batch POST gets 200 with one `queued` result per
 * item, unless `holdPost(n)` (n counts the posts from 1) holds it: then it gets a 503 after `holdMs`,
 * or at close() when no time is given, too late for a bridge that gave up on it. An outbox read sends
 * its headers and no end of body until close(); acks are counted.
 */
export async function standInGateway(opts: { holdPost?: (n: number) => boolean; holdMs?: number } = {}): Promise<StandInGateway> {
  const state = { posts: 0, held: 0, accepted: [] as string[], reads: 0, acks: 0 };
  let release!: () => void;
  const closed = new Promise<void>((resolve) => {
    release = resolve;
  });
  const hold = () => {
    if (opts.holdMs === undefined) return closed;
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, opts.holdMs)))]).finally(() => clearTimeout(timer));
  };
  const app = new Hono();
  app.post("/v1/messages/batch", async (c) => {
    const body = batchPost.parse(await c.req.json());
    if (opts.holdPost?.(++state.posts)) {
      state.held++;
      await hold();
      return c.json({ error: { code: "unavailable", message: "nobody is listening any more", details: [] } }, 503);
    }
    const results = body.messages.map((m, index) => {
      state.accepted.push(m.text ?? "");
      return { index, id: `msg_${state.accepted.length}`, status: "queued" };
    });
    return c.json({ results });
  });
  app.get("/v1/events", () => {
    state.reads++;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"events":['));
        void closed.then(() => controller.close());
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  app.post("/v1/events/ack", (c) => {
    state.acks++;
    return c.json({ cursor: 0 });
  });
  const served = await serveStandIn(app);
  return Object.assign(state, {
    url: served.url,
    close: async () => {
      release();
      await served.close();
    },
  });
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
