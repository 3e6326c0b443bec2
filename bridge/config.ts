// Bridge configuration from the environment, checked once at start with one readable message.
import { z } from "zod";
import { MAX_BATCH } from "../src/contracts/messages.ts";
import { DEFAULT_MAX_BATCH_BYTES } from "./kafka.ts";

const topic = (fallback: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,249}$/, "Must be a Kafka topic name (letters, digits, '.', '_', '-').")
    .default(fallback);
const flag = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

const envSchema = z.object({
  KAFKA_BROKERS: z
    .string({ error: "Required: comma-separated host:port list, e.g. 127.0.0.1:9092." })
    .transform((v) =>
      v
        .split(",")
        .map((b) => b.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, "Each broker must be host:port.")).min(1, "Give at least one broker.")),
  KAFKA_CLIENT_ID: z.string().min(1).default("mensageiro-bridge"),
  GATEWAY_URL: z.url({ protocol: /^https?$/, error: "Required: the gateway's base URL, e.g. http://127.0.0.1:8787." }).transform((u) => u.replace(/\/+$/, "")),
  GATEWAY_API_KEY: z.string({ error: "Required: a tenant API key (Bearer token)." }).min(1, "Must not be empty."),
  TOPIC_SEND_MESSAGE: topic("whatsapp-send-message"),
  TOPIC_SCHEDULE_MESSAGE: topic("whatsapp-schedule-message"),
  TOPIC_MESSAGING_SEND: topic("messaging.send"),
  TOPIC_MESSAGE_STATUS: topic("whatsapp-message-status"),
  TOPIC_INSTANCE_STATUS: topic("whatsapp-instance-status"),
  TOPIC_MESSAGE_RECEIVED: topic("whatsapp-message-received"),
  TOPIC_EVENTS_DLQ: topic("mensageiro-events.dlq"),
  BRIDGE_GROUP_ID: z.string().min(1).default("mensageiro-bridge"),
  BRIDGE_CONSUMER_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,100}$/, "1-100 letters, digits, '.', '_', ':' or '-'.")
    .default("kafka-bridge"),
  BRIDGE_PORT: z.coerce.number().int().min(0).max(65535).default(8790),
  BRIDGE_BATCH_SIZE: z.coerce.number().int().min(1).max(MAX_BATCH).default(MAX_BATCH),
  BRIDGE_PARTITIONS_CONCURRENTLY: z.coerce.number().int().min(1).max(64).default(4),
  // Produce requests are split to stay under the broker's message.max.bytes (1 MB by default).
  BRIDGE_MAX_BATCH_BYTES: z.coerce.number().int().min(1024).default(DEFAULT_MAX_BATCH_BYTES),
  // A batch POST that takes longer is given up and posted again (same Idempotency-Key).
  BRIDGE_GATEWAY_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(30_000),
  // The consumer group's session: a member silent for longer loses its partitions. The relay
  // heartbeats during posts, so this only bounds how fast a dead bridge's partitions move.
  BRIDGE_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6000).max(300_000).default(30_000),
  BRIDGE_EVENTS_PAGE: z.coerce.number().int().min(1).max(1000).default(1000),
  BRIDGE_EVENTS_WAIT_SECONDS: z.coerce.number().int().min(0).max(30).default(20),
  BRIDGE_CREATE_TOPICS: flag.default(false),
  BRIDGE_INBOUND: flag.default(true),
  BRIDGE_OUTBOUND: flag.default(true),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
});

export type BridgeConfig = {
  kafka: {
    brokers: string[];
    clientId: string;
    groupId: string;
    createTopics: boolean;
    partitionsConcurrently: number;
    maxBatchBytes: number;
    sessionTimeoutMs: number;
  };
  gateway: { url: string; apiKey: string; timeoutMs: number };
  topics: {
    sendMessage: string;
    scheduleMessage: string;
    messagingSend: string;
    messageStatus: string;
    instanceStatus: string;
    messageReceived: string;
    eventsDlq: string;
  };
  inbound: { enabled: boolean; batchSize: number };
  outbound: { enabled: boolean; consumerName: string; pageSize: number; waitSeconds: number };
  port: number;
  logLevel: "debug" | "info" | "warn" | "error";
};

export class ConfigError extends Error {}

/** Parses the environment; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined>): BridgeConfig {
  // Empty strings count as unset, as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".") || "(env)"}: ${i.message}`);
    throw new ConfigError(`Invalid bridge configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  return {
    kafka: {
      brokers: e.KAFKA_BROKERS,
      clientId: e.KAFKA_CLIENT_ID,
      groupId: e.BRIDGE_GROUP_ID,
      createTopics: e.BRIDGE_CREATE_TOPICS,
      partitionsConcurrently: e.BRIDGE_PARTITIONS_CONCURRENTLY,
      maxBatchBytes: e.BRIDGE_MAX_BATCH_BYTES,
      sessionTimeoutMs: e.BRIDGE_SESSION_TIMEOUT_MS,
    },
    gateway: { url: e.GATEWAY_URL, apiKey: e.GATEWAY_API_KEY, timeoutMs: e.BRIDGE_GATEWAY_TIMEOUT_MS },
    topics: {
      sendMessage: e.TOPIC_SEND_MESSAGE,
      scheduleMessage: e.TOPIC_SCHEDULE_MESSAGE,
      messagingSend: e.TOPIC_MESSAGING_SEND,
      messageStatus: e.TOPIC_MESSAGE_STATUS,
      instanceStatus: e.TOPIC_INSTANCE_STATUS,
      messageReceived: e.TOPIC_MESSAGE_RECEIVED,
      eventsDlq: e.TOPIC_EVENTS_DLQ,
    },
    inbound: { enabled: e.BRIDGE_INBOUND, batchSize: e.BRIDGE_BATCH_SIZE },
    outbound: { enabled: e.BRIDGE_OUTBOUND, consumerName: e.BRIDGE_CONSUMER_NAME, pageSize: e.BRIDGE_EVENTS_PAGE, waitSeconds: e.BRIDGE_EVENTS_WAIT_SECONDS },
    port: e.BRIDGE_PORT,
    logLevel: e.LOG_LEVEL,
  };
}

export const dlqTopic = (topic: string) => `${topic}.dlq`;
