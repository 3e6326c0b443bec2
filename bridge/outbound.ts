// Gateway → Kafka: long-polls the outbox as a named consumer and produces each event to its topic.
// The cursor is acked only after Kafka acknowledged the whole page, so an event is never lost;
// after a crash a page may be produced twice, with the same eventId.
import { Backoff, sleep, unlessStopped } from "./backoff.ts";
import type { BridgeConfig } from "./config.ts";
import { GatewayUnavailable, type EventsPage, type GatewayClient, type PageEvent } from "./gateway-client.ts";
import type { KafkaLink, OutRecord } from "./kafka.ts";
import { errorText, type Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

const LAST_ACK_MS = 2_000;

export type OutboundDeps = { config: BridgeConfig; kafka: KafkaLink; gateway: GatewayClient; log: Logger; metrics: Metrics; signal: AbortSignal };

export function outboundRecord(config: BridgeConfig, e: PageEvent): OutRecord {
  if (!e.event) {
    // An event this bridge cannot read (newer type or version): kept aside, never dropped.
    return {
      topic: config.topics.eventsDlq,
      key: null,
      value: JSON.stringify(e.raw),
      headers: { "x-dlq-reason": "invalid_event", "x-dlq-detail": (e.problem ?? "").slice(0, 1000), "x-event-seq": String(e.seq) },
    };
  }
  const { eventId, type, version, occurredAt, data } = e.event;
  const value = JSON.stringify({ eventId, type, version, occurredAt, data });
  const headers = { "x-event-type": type, "x-event-version": String(version), "x-event-id": eventId, "content-type": "application/json" };
  switch (e.event.type) {
    case "message.status":
      return { topic: config.topics.messageStatus, key: e.event.data.messageId, value, headers };
    case "instance.status":
      return { topic: config.topics.instanceStatus, key: e.event.data.instance, value, headers };
    case "message.received":
      return { topic: config.topics.messageReceived, key: e.event.data.contact, value, headers };
    // Automation events are about the instance's handler: they travel with the instance's status.
    case "automation.failed":
    case "automation.paused":
    case "automation.resumed":
      return { topic: config.topics.instanceStatus, key: e.event.data.instance, value, headers };
    // A hand-off travels with the contact's messages (same key): consumers see it between them, in order.
    case "conversation.handoff":
      return { topic: config.topics.messageReceived, key: e.event.data.contact, value, headers };
  }
}

/** Runs until `signal` aborts. */
export async function runOutbound(deps: OutboundDeps): Promise<void> {
  const { config, gateway, log, metrics, signal } = deps;
  const { consumerName, pageSize, waitSeconds } = config.outbound;
  const readBackoff = new Backoff(250, 15_000);
  while (!signal.aborted) {
    let page: EventsPage;
    const readStarted = performance.now();
    try {
      page = await gateway.readEvents(consumerName, pageSize, waitSeconds, signal);
      if (page.events.length > 0) metrics.inc("bridge_outbound_seconds_total", { phase: "read" }, (performance.now() - readStarted) / 1000);
      readBackoff.reset();
      metrics.state.gatewayUp = true;
    } catch (err) {
      if (signal.aborted) break;
      metrics.inc("bridge_gateway_failures_total", { relay: "outbound" });
      metrics.state.gatewayUp = false;
      const wait = readBackoff.next(err instanceof GatewayUnavailable ? err.retryAfterMs : 0);
      log("error", "outbox read failed; will retry", { consumer: consumerName, error: errorText(err), retryInMs: wait });
      await sleep(wait, signal);
      continue;
    }
    if (page.ackedCursor !== undefined) metrics.state.outbox.ackedCursor = page.ackedCursor;
    metrics.state.outbox.seenCursor = Math.max(metrics.state.outbox.seenCursor, page.cursor);
    if (page.events.length === 0) continue;
    metrics.state.outbox.inFlight = page.events.length;

    const records = page.events.map((e) => outboundRecord(config, e));
    const produceStarted = performance.now();
    if (!(await produceRetrying(deps, records))) break; // stopping: nothing acked, the page is read again next time
    metrics.inc("bridge_outbound_seconds_total", { phase: "produce" }, (performance.now() - produceStarted) / 1000);
    for (const r of records) metrics.inc("bridge_outbound_events_total", { topic: r.topic });
    for (const e of page.events) if (!e.event) log("warn", "unreadable outbox event sent to the events DLQ", { seq: e.seq, problem: e.problem?.slice(0, 300) });

    const ackStarted = performance.now();
    await ackRetrying(deps, page.cursor);
    metrics.inc("bridge_outbound_seconds_total", { phase: "ack" }, (performance.now() - ackStarted) / 1000);
    metrics.state.outbox.inFlight = 0;
  }
}

async function produceRetrying(deps: OutboundDeps, records: OutRecord[]): Promise<boolean> {
  const backoff = new Backoff(250, 15_000);
  while (!deps.signal.aborted) {
    try {
      // Stopping mid-produce: the page is not acked, so it is read and produced again next time.
      if (!(await unlessStopped(deps.kafka.publish(records), deps.signal))) return false;
      deps.metrics.state.kafkaUp = true;
      return true;
    } catch (err) {
      deps.metrics.inc("bridge_kafka_failures_total", { relay: "outbound" });
      deps.metrics.state.kafkaUp = false;
      const wait = backoff.next();
      deps.log("error", "produce to Kafka failed; cursor not acked, will retry", { count: records.length, error: errorText(err), retryInMs: wait });
      await sleep(wait, deps.signal);
    }
  }
  return false;
}

/** Acks after Kafka took the page. On stop one short last attempt is made: it only saves duplicates. */
async function ackRetrying(deps: OutboundDeps, seq: number): Promise<void> {
  const backoff = new Backoff(250, 15_000);
  for (;;) {
    try {
      const until = deps.signal.aborted ? AbortSignal.timeout(LAST_ACK_MS) : deps.signal;
      deps.metrics.state.outbox.ackedCursor = await deps.gateway.ack(deps.config.outbound.consumerName, seq, until);
      return;
    } catch (err) {
      deps.metrics.inc("bridge_gateway_failures_total", { relay: "outbound" });
      const wait = backoff.next(err instanceof GatewayUnavailable ? err.retryAfterMs : 0);
      deps.log("error", "outbox ack failed; will retry", { seq, error: errorText(err), retryInMs: wait, stopping: deps.signal.aborted });
      if (deps.signal.aborted) return;
      await sleep(wait, deps.signal);
    }
  }
}
