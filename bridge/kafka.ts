// The only file that knows kafkajs: the relays see records, batches and a few verbs, so the
// client can be swapped (node-rdkafka, a test double) without touching them.
import { Kafka, logLevel as kafkaLogLevel, Partitioners, type Admin, type Consumer, type IHeaders, type LogEntry, type Producer } from "kafkajs";
import type { Logger } from "./log.ts";
import { type OutRecord, splitByBytes } from "./produce-batches.ts";

export type InRecord = { offset: string; key: Buffer | null; value: Buffer | null; headers: Record<string, string> };
export type { OutRecord };
export type PartitionBatch = { topic: string; partition: number; records: InRecord[] };

export type BatchControl = {
  /** The record at `offset` is done: the next fetch of this partition starts after it. */
  resolve(offset: string): void;
  /** Commits `offset` (the next one to read) for this partition, with an optional note kept by the broker. */
  commit(offset: string, note: string | null): Promise<void>;
  /** Stops fetching this partition; the returned function resumes it. */
  pause(): () => void;
  /** Keeps this member in the group. Never throws: a failed heartbeat (the group is rebalancing,
   *  the member was evicted) makes `active()` false, and the batch is abandoned. */
  heartbeat(): Promise<void>;
  /** False once the consumer stops, a heartbeat failed (partitions may have moved), or it was seeked. */
  active(): boolean;
};

export type Committed = { partition: number; offset: string; note: string | null };
export type PartitionLag = { topic: string; partition: number; committed: string; end: string; lag: number };

export type ConsumeOptions = {
  groupId: string;
  topics: string[];
  concurrency: number;
  onBatch(batch: PartitionBatch, control: BatchControl): Promise<void>;
  /** Called when this member (re)joins the group: partitions may have moved. */
  onAssignment(): void;
};

export interface KafkaLink {
  /** Writes all records with acks from all in-sync replicas; throws if Kafka did not take them. */
  publish(records: OutRecord[]): Promise<void>;
  /** Runs a consumer until close() (resolves) or until it crashed for good (rejects: start another). */
  consume(opts: ConsumeOptions): Promise<void>;
  committed(groupId: string, topic: string): Promise<Committed[]>;
  lag(groupId: string, topics: string[]): Promise<PartitionLag[]>;
  ensureTopics(topics: string[]): Promise<void>;
  close(): Promise<void>;
}

/** What a produce request may carry: Kafka's default message.max.bytes is 1,048,588. */
export const DEFAULT_MAX_BATCH_BYTES = 1_000_000;

export function connectKafka(opts: { brokers: string[]; clientId: string; log: Logger; maxBatchBytes?: number; sessionTimeoutMs?: number }): KafkaLink {
  const maxBatchBytes = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  const kafka = new Kafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    connectionTimeout: 3_000,
    requestTimeout: 15_000,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5_000 },
    logLevel: kafkaLogLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...fields } = entry.log;
      opts.log(entry.level <= kafkaLogLevel.ERROR ? "error" : "warn", `kafkajs: ${message}`, { namespace: entry.namespace, ...fields });
    },
  });
  const consumers = new Map<Consumer, () => void>();
  const sessionTimeout = opts.sessionTimeoutMs ?? 30_000;

  // One client each, shared by both relays: two callers arriving together wait for the same connect
  // (else one client is left connected and never closed); a failed connect is tried again next time.
  const once = <T extends Producer | Admin>(make: () => T) => {
    let client: { made: T; connected: Promise<T> } | undefined;
    return {
      get: () => {
        if (!client) {
          const made = make();
          const connected = made.connect().then(() => made);
          client = { made, connected };
          connected.catch(() => {
            if (client?.made === made) client = undefined;
          });
        }
        return client.connected;
      },
      close: async () => {
        const c = client;
        client = undefined;
        await c?.made.disconnect();
      },
    };
  };
  const producer = once(() =>
    kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner, retry: { retries: 5 } }),
  );
  const admin = once(() => kafka.admin());
  const connectedProducer = producer.get;
  const connectedAdmin = admin.get;

  return {
    async publish(records) {
      if (records.length === 0) return;
      const p = await connectedProducer();
      // One request per group, in order; if a later group fails the caller retries all of them, so an
      // earlier group may be written twice (at-least-once, as any produce retry).
      for (const group of splitByBytes(records, maxBatchBytes)) {
        const byTopic = new Map<string, OutRecord[]>();
        for (const r of group) {
          const list = byTopic.get(r.topic) ?? [];
          list.push(r);
          byTopic.set(r.topic, list);
        }
        await p.sendBatch({
          acks: -1,
          topicMessages: [...byTopic].map(([topic, rs]) => ({ topic, messages: rs.map((r) => ({ key: r.key, value: r.value, headers: r.headers })) })),
        });
      }
    },

    async consume({ groupId, topics, concurrency, onBatch, onAssignment }) {
      const consumer = kafka.consumer({
        groupId,
        sessionTimeout,
        heartbeatInterval: Math.max(1000, Math.floor(sessionTimeout / 10)),
        maxBytesPerPartition: 10 * 1024 * 1024,
        maxWaitTimeInMs: 250,
        retry: { retries: 10 },
      });
      // Settles when the consumer is closed (resolve) or crashed beyond kafkajs's own restart (reject).
      let stopped!: () => void;
      let crashed!: (err: Error) => void;
      const ended = new Promise<void>((resolve, reject) => {
        stopped = resolve;
        crashed = reject;
      });
      consumers.set(consumer, stopped);
      consumer.on(consumer.events.GROUP_JOIN, () => onAssignment());
      consumer.on(consumer.events.CRASH, (e) => {
        opts.log("error", "kafka consumer crashed", { error: e.payload.error.message, restart: e.payload.restart });
        // kafkajs restarts it itself on retriable errors; otherwise it is disconnected for good.
        if (!e.payload.restart) {
          consumers.delete(consumer);
          crashed(new Error(`kafka consumer crashed for good: ${e.payload.error.message}`));
        }
      });
      await consumer.connect();
      await consumer.subscribe({ topics, fromBeginning: true });
      await consumer.run({
        autoCommit: false, // offsets are committed by the relay, after the gateway answered
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: concurrency,
        eachBatch: async ({ batch, resolveOffset, heartbeat, pause, isRunning, isStale }) => {
          const records = batch.messages.map((m) => ({ offset: m.offset, key: m.key ?? null, value: m.value ?? null, headers: headerText(m.headers) }));
          // A failed heartbeat means this member may no longer own the partition: the batch is
          // abandoned (nothing committed) and kafkajs rejoins on its next fetch.
          let lost = false;
          await onBatch(
            { topic: batch.topic, partition: batch.partition, records },
            {
              resolve: resolveOffset,
              commit: (offset, note) => consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset, metadata: note }]),
              pause,
              heartbeat: async () => {
                // Once stopping there is nothing to keep: a heartbeat then would only reconnect.
                if (lost || !isRunning()) return;
                try {
                  await heartbeat();
                } catch (err) {
                  lost = true;
                  opts.log("warn", "kafka heartbeat failed; abandoning the batch (the group rebalances)", {
                    topic: batch.topic,
                    partition: batch.partition,
                    error: err instanceof Error ? err.message : String(err),
                  });
                }
              },
              active: () => !lost && isRunning() && !isStale(),
            },
          );
        },
      });
      await ended;
    },

    async committed(groupId, topic) {
      const a = await connectedAdmin();
      const [found] = await a.fetchOffsets({ groupId, topics: [topic] });
      return (found?.partitions ?? []).map((p) => ({ partition: p.partition, offset: p.offset, note: p.metadata }));
    },

    async lag(groupId, topics) {
      const a = await connectedAdmin();
      const committed = await a.fetchOffsets({ groupId, topics });
      const rows: PartitionLag[] = [];
      for (const { topic, partitions } of committed) {
        const ends = await a.fetchTopicOffsets(topic);
        for (const end of ends) {
          const c = partitions.find((p) => p.partition === end.partition)?.offset ?? "-1";
          const from = Number(c) >= 0 ? Number(c) : Number(end.low);
          rows.push({ topic, partition: end.partition, committed: c, end: end.high, lag: Math.max(0, Number(end.high) - from) });
        }
      }
      return rows;
    },

    async ensureTopics(topics) {
      const a = await connectedAdmin();
      const existing = new Set(await a.listTopics());
      const missing = [...new Set(topics)].filter((t) => !existing.has(t));
      if (missing.length > 0) await a.createTopics({ waitForLeaders: true, topics: missing.map((topic) => ({ topic })) });
    },

    async close() {
      // Consumers first: they leave the group so their partitions move at once.
      await Promise.allSettled([...consumers.keys()].map((c) => c.disconnect()));
      for (const stopped of consumers.values()) stopped();
      consumers.clear();
      await Promise.allSettled([producer.close(), admin.close()]);
    },
  };
}

function headerText(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.map(String).join(",") : v.toString();
  }
  return out;
}
