// Kafka → gateway: legacy send topics in, /v1/messages/batch out. A chunk's offsets are committed
// only after the gateway answered for it and its poison records are in the DLQ.
import { Backoff, sleep, unlessStopped } from "./backoff.ts";
import { batchKey, nextOffset, parseNote, pendingNote, planChunk, type Range } from "./chunks.ts";
import { dlqTopic, type BridgeConfig } from "./config.ts";
import type { BatchOutcome, GatewayClient } from "./gateway-client.ts";
import type { BatchControl, InRecord, KafkaLink, OutRecord, PartitionBatch } from "./kafka.ts";
import { decodeLegacy, type LegacyKind, type PoisonReason } from "./legacy.ts";
import { errorText, type Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

export type InboundDeps = { config: BridgeConfig; kafka: KafkaLink; gateway: GatewayClient; log: Logger; metrics: Metrics; signal: AbortSignal };

// The gateway's batch body limit is 5 MiB; stay well under it.
const MAX_CHUNK_BYTES = 3 * 1024 * 1024;
const HEARTBEAT_EVERY_MS = 2_000;

type Poison = { record: InRecord; reason: PoisonReason; detail: string; code?: string };

export function inboundTopics(config: BridgeConfig): Map<string, LegacyKind> {
  return new Map<string, LegacyKind>([
    [config.topics.sendMessage, "whatsapp-send-message"],
    [config.topics.scheduleMessage, "whatsapp-schedule-message"],
    [config.topics.messagingSend, "messaging.send"],
  ]);
}

export async function startInbound(deps: InboundDeps): Promise<void> {
  const { config, kafka, log, signal } = deps;
  const kinds = inboundTopics(config);
  // Per topic-partition: the range posted but not yet committed. Kafka's copy (the commit note)
  // is read once per partition after each (re)join; this one avoids re-reading it every batch.
  const pending = new Map<string, Range | undefined>();
  const loaded = new Set<string>();

  const pendingOf = async (topic: string, partition: number): Promise<Range | undefined> => {
    const tp = `${topic}:${partition}`;
    if (!loaded.has(tp)) {
      for (const c of await kafka.committed(config.kafka.groupId, topic)) {
        const range = parseNote(c.note);
        const id = `${topic}:${c.partition}`;
        if (loaded.has(id)) continue;
        // A note is meaningful only while the committed offset is still its first offset.
        pending.set(id, range && range.first === c.offset ? range : undefined);
        loaded.add(id);
      }
      loaded.add(tp);
    }
    return pending.get(tp);
  };

  await kafka.consume({
    groupId: config.kafka.groupId,
    topics: [...kinds.keys()],
    concurrency: config.kafka.partitionsConcurrently,
    onAssignment: () => {
      pending.clear();
      loaded.clear();
    },
    onBatch: async (batch, control) => {
      const kind = kinds.get(batch.topic);
      if (!kind) return;
      const tp = `${batch.topic}:${batch.partition}`;
      let records = batch.records;
      while (records.length > 0 && control.active() && !signal.aborted) {
        const read = await unlessStopped(pendingOf(batch.topic, batch.partition), signal);
        if (!read) return;
        const range = read.value;
        const plan = planChunk(records, range, { maxItems: config.inbound.batchSize, maxBytes: MAX_CHUNK_BYTES });
        if (!plan.complete) {
          // Only if records vanished (retention) since the note was written: fall back to at-least-once.
          log("warn", "pending range not fully redelivered; cutting a fresh chunk, duplicates possible", {
            topic: batch.topic,
            partition: batch.partition,
            pending: range,
          });
          pending.set(tp, undefined);
          continue;
        }
        const done = await relayChunk(deps, kind, batch, plan.chunk, control, pending);
        if (!done) return; // abandoned: nothing resolved or committed, Kafka will hand it out again
        records = records.slice(plan.chunk.length);
      }
    },
  });
}

/** Posts one chunk and commits it; false when it was abandoned (stopping or partition lost). */
async function relayChunk(
  deps: InboundDeps,
  kind: LegacyKind,
  batch: PartitionBatch,
  chunk: InRecord[],
  control: BatchControl,
  pending: Map<string, Range | undefined>,
): Promise<boolean> {
  const { gateway, log, metrics, signal } = deps;
  const { topic, partition } = batch;
  const tp = `${topic}:${partition}`;
  const first = chunk[0];
  const lastRecord = chunk.at(-1);
  if (!first || !lastRecord) return true;
  const range: Range = { first: first.offset, last: lastRecord.offset };
  const alive = () => control.active() && !signal.aborted;

  const poison: Poison[] = [];
  const items: { record: InRecord; item: unknown; sourceId: string }[] = [];
  for (const record of chunk) {
    const d = decodeLegacy(kind, record.value, { topic, partition, offset: record.offset });
    if (d.ok) items.push({ record, item: d.item, sourceId: d.sourceId });
    else poison.push({ record, reason: d.reason, detail: d.detail });
  }

  if (items.length > 0) {
    const current = pending.get(tp);
    if (current?.first !== range.first || current.last !== range.last) {
      // Written before the post: a successor must cut this same chunk (see chunks.ts).
      await control.commit(range.first, pendingNote(range));
      pending.set(tp, range);
      // kafkajs skips commits once the consumer stops: never post without the note in place.
      if (!alive()) return false;
    }
    const key = batchKey(
      topic,
      partition,
      range,
      items.map((i) => i.sourceId),
    );
    const backoff = new Backoff(250, 15_000);
    let resume: (() => void) | undefined;
    const postStarted = performance.now();
    // A slow gateway must not cost the partition: heartbeat while the POST is out. A stop does not
    // wait for the answer: the chunk stays uncommitted under its note, and a successor posts it again
    // with the same key (the gateway replays what it took).
    const post = () =>
      unlessStopped(
        heartbeating(
          gateway.sendBatch(
            items.map((i) => i.item),
            key,
          ),
          control,
          signal,
        ),
        signal,
      );
    let outcome: BatchOutcome;
    try {
      const first = await post();
      if (!first) return false;
      outcome = first.value;
      while (outcome.kind === "retry" || outcome.kind === "misconfigured") {
        metrics.inc("bridge_gateway_failures_total", { relay: "inbound" });
        metrics.state.gatewayUp = false;
        // Pause the partition while the gateway is away or misconfigured; nothing is resolved or committed meanwhile.
        resume ??= control.pause();
        const wait = backoff.next(outcome.retryAfterMs);
        if (outcome.kind === "misconfigured") {
          metrics.inc("bridge_gateway_config_errors_total", { status: String(outcome.status) });
          metrics.state.gatewayProblem = `configuration: ${outcome.reason}`.slice(0, 300);
        }
        log(
          "error",
          outcome.kind === "misconfigured"
            ? "gateway configuration error (check GATEWAY_URL, GATEWAY_API_KEY, proxies); partition paused, nothing committed"
            : "gateway send failed; partition paused, will retry",
          {
            topic,
            partition,
            first: range.first,
            last: range.last,
            key,
            ...(outcome.kind === "misconfigured" ? { status: outcome.status } : {}),
            error: outcome.reason,
            retryInMs: wait,
            attempt: backoff.failures,
          },
        );
        await sleepHeartbeating(wait, control, signal);
        if (!alive()) return false;
        const again = await post();
        if (!again) return false;
        outcome = again.value;
      }
    } finally {
      // Always: a partition left paused (an exception, a lost member) is never fetched again by
      // this process, even after it rejoins the group.
      resume?.();
    }
    metrics.state.gatewayUp = true;
    metrics.state.gatewayProblem = undefined;
    metrics.inc("bridge_gateway_post_seconds_total", { topic }, (performance.now() - postStarted) / 1000);
    metrics.inc("bridge_gateway_posts_total", { topic });
    if (outcome.kind === "refused") {
      log("error", "gateway refused the whole batch; its messages go to the DLQ", {
        topic,
        partition,
        first: range.first,
        last: range.last,
        key,
        status: outcome.status,
        error: outcome.error.message,
        code: outcome.error.code,
      });
      for (const i of items) poison.push({ record: i.record, reason: "batch_refused", detail: outcome.error.message, code: outcome.error.code });
    } else {
      let accepted = 0;
      for (const r of outcome.results) {
        const i = items[r.index];
        if (!i) continue;
        if ("error" in r) poison.push({ record: i.record, reason: "gateway_rejected", detail: errorDetail(r.error), code: r.error.code });
        else accepted++;
      }
      metrics.inc("bridge_inbound_accepted_total", { topic }, accepted);
      if (outcome.replayed) metrics.inc("bridge_inbound_replayed_batches_total", { topic });
      log("debug", "batch answered", { topic, partition, first: range.first, last: range.last, accepted, replayed: outcome.replayed });
    }
  }

  if (poison.length > 0) {
    poison.sort((a, b) => (BigInt(a.record.offset) < BigInt(b.record.offset) ? -1 : 1));
    const published = await publishRetrying(
      deps,
      poison.map((p) => dlqRecord(topic, partition, p)),
      control,
    );
    if (!published) return false;
    for (const p of poison) {
      metrics.inc("bridge_inbound_dlq_total", { topic, reason: p.reason });
      log("warn", "poison message sent to the DLQ", {
        topic,
        partition,
        offset: p.record.offset,
        reason: p.reason,
        code: p.code,
        detail: p.detail.slice(0, 300),
      });
    }
  }

  // SIGTERM between the answer and here: abandon without committing; the successor replays the key.
  if (!alive()) return false;
  await control.commit(nextOffset(range.last), null);
  control.resolve(range.last);
  pending.set(tp, undefined);
  return true;
}

function errorDetail(e: { message: string; details: { path: string; message: string }[] }): string {
  return [e.message, ...e.details.map((d) => `${d.path}: ${d.message}`)].join(" | ");
}

function dlqRecord(topic: string, partition: number, p: Poison): OutRecord {
  return {
    topic: dlqTopic(topic),
    key: p.record.key,
    value: p.record.value,
    headers: {
      ...p.record.headers,
      "x-dlq-reason": p.reason,
      "x-dlq-detail": p.detail.slice(0, 1000),
      ...(p.code ? { "x-dlq-error-code": p.code } : {}),
      "x-dlq-source-topic": topic,
      "x-dlq-source-partition": String(partition),
      "x-dlq-source-offset": p.record.offset,
    },
  };
}

async function publishRetrying(deps: InboundDeps, records: OutRecord[], control: BatchControl): Promise<boolean> {
  const backoff = new Backoff(250, 15_000);
  for (;;) {
    try {
      // Stopping mid-produce: the chunk is not committed, so a successor dead-letters it again.
      if (!(await unlessStopped(deps.kafka.publish(records), deps.signal))) return false;
      deps.metrics.state.kafkaUp = true;
      return true;
    } catch (err) {
      deps.metrics.inc("bridge_kafka_failures_total", { relay: "inbound" });
      deps.metrics.state.kafkaUp = false;
      const wait = backoff.next();
      deps.log("error", "DLQ produce failed; will retry", { topic: records[0]?.topic, count: records.length, error: errorText(err), retryInMs: wait });
      await sleepHeartbeating(wait, control, deps.signal);
      if (!control.active() || deps.signal.aborted) return false;
    }
  }
}

/** Awaits `work`, heartbeating every couple of seconds meanwhile (until the bridge stops). */
async function heartbeating<T>(work: Promise<T>, control: BatchControl, stopping: AbortSignal): Promise<T> {
  const over = new AbortController();
  const done = AbortSignal.any([over.signal, stopping]);
  const beat = (async () => {
    for (;;) {
      await sleep(HEARTBEAT_EVERY_MS, done);
      if (done.aborted) return;
      await control.heartbeat();
    }
  })();
  try {
    return await work;
  } finally {
    over.abort();
    await beat;
  }
}

async function sleepHeartbeating(ms: number, control: BatchControl, signal: AbortSignal): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until && !signal.aborted && control.active()) {
    await sleep(Math.min(HEARTBEAT_EVERY_MS, until - Date.now()), signal);
    await control.heartbeat();
  }
}
