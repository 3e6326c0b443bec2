// Wires the two relays, the Kafka link, the gateway client and the health port together.
import { Backoff, settlesWithin, sleep } from "./backoff.ts";
import { dlqTopic, type BridgeConfig } from "./config.ts";
import { gatewayClient } from "./gateway-client.ts";
import { healthApp, serveHealth } from "./health.ts";
import { inboundTopics, startInbound } from "./inbound.ts";
import { connectKafka, type KafkaLink } from "./kafka.ts";
import { errorText, jsonLogger, type Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { runOutbound } from "./outbound.ts";

// How long stop() waits for Kafka to close and for the relays to end. Every wait inside them ends on
// stop, so this only bounds what the client library does (leaving the group, closing sockets).
const STOP_GRACE_MS = 10_000;

export type RunningBridge = { port: number; metrics: Metrics; stop(): Promise<void> };

export async function startBridge(config: BridgeConfig, opts: { log?: Logger } = {}): Promise<RunningBridge> {
  const log = opts.log ?? jsonLogger(config.logLevel);
  const metrics = new Metrics();
  const stopping = new AbortController();
  const signal = stopping.signal;
  const kafka = connectKafka({
    brokers: config.kafka.brokers,
    clientId: config.kafka.clientId,
    log,
    maxBatchBytes: config.kafka.maxBatchBytes,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
  });
  const gateway = gatewayClient(config.gateway.url, config.gateway.apiKey, config.gateway.timeoutMs);
  const deps = { config, kafka, gateway, log, metrics, signal };
  const legacyTopics = [...inboundTopics(config).keys()];

  const health = await serveHealth(
    healthApp({ kafka, groupId: config.kafka.groupId, topics: legacyTopics, metrics, inbound: config.inbound.enabled, outbound: config.outbound.enabled }),
    config.port,
  );

  // Both relays start in the background and retry until Kafka is reachable.
  const started = (async () => {
    if (config.kafka.createTopics) {
      const t = config.topics;
      const all = [...legacyTopics, ...legacyTopics.map(dlqTopic), t.messageStatus, t.instanceStatus, t.messageReceived, t.eventsDlq];
      await retrying("create topics", log, signal, () => kafka.ensureTopics(all));
    }
    const tasks: Promise<void>[] = [];
    // startInbound returns only when its consumer stops: a consumer kafkajs gave up on (a crash it
    // does not restart) is replaced by a new one here, so consuming always resumes.
    if (config.inbound.enabled) tasks.push(retrying("run the Kafka consumer", log, signal, () => startInbound(deps)));
    if (config.outbound.enabled) tasks.push(runOutbound(deps).catch((err) => log("error", "outbound relay stopped", { error: errorText(err) })));
    await Promise.all(tasks);
  })();
  log("info", "bridge started", {
    port: health.port,
    inbound: config.inbound.enabled,
    outbound: config.outbound.enabled,
    consumer: config.outbound.consumerName,
    groupId: config.kafka.groupId,
  });

  let stopped: Promise<void> | undefined;
  return {
    port: health.port,
    metrics,
    stop: () =>
      (stopped ??= (async () => {
        log("info", "bridge stopping");
        stopping.abort();
        // Closing Kafka waits for an in-flight batch to return (it commits nothing once stopping)
        // and cuts short a connect that is still retrying. Past the grace the bridge stops anyway:
        // what was not finished was not committed, and a successor takes it up again.
        if (!(await settlesWithin(kafka.close(), STOP_GRACE_MS))) log("warn", "Kafka did not close in time; stopping without waiting for it");
        if (!(await settlesWithin(started, STOP_GRACE_MS))) log("warn", "a relay did not end in time; stopping without waiting for it");
        await health.close();
        log("info", "bridge stopped");
      })()),
  };
}

async function retrying(what: string, log: Logger, signal: AbortSignal, work: () => Promise<void>): Promise<void> {
  const backoff = new Backoff(500, 15_000);
  while (!signal.aborted) {
    try {
      await work();
      return;
    } catch (err) {
      const wait = backoff.next();
      log("error", `could not ${what}; will retry`, { error: errorText(err), retryInMs: wait });
      await sleep(wait, signal);
    }
  }
}

export type { KafkaLink };
