// GET /health (JSON) and GET /metrics (Prometheus text): consumer lag from Kafka's committed vs end
// offsets, outbox lag from the cursor last seen vs the one last acked.
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import type { KafkaLink, PartitionLag } from "./kafka.ts";
import { errorText } from "./log.ts";
import { labelText, type Metrics } from "./metrics.ts";

export type HealthSource = { kafka: KafkaLink; groupId: string; topics: string[]; metrics: Metrics; inbound: boolean; outbound: boolean };

const LAG_CACHE_MS = 1_000;

/** rows is undefined when Kafka could not be asked. */
type LagReading = { at: number; rows: PartitionLag[] | undefined; error?: string };

export function healthApp(src: HealthSource): Hono {
  let cached: LagReading | undefined;
  const consumerLag = async (): Promise<LagReading> => {
    if (!src.inbound) return { at: Date.now(), rows: [] };
    if (cached && Date.now() - cached.at < LAG_CACHE_MS) return cached;
    try {
      cached = { at: Date.now(), rows: await src.kafka.lag(src.groupId, src.topics) };
    } catch (err) {
      cached = { at: Date.now(), rows: undefined, error: errorText(err) };
    }
    return cached;
  };

  const snapshot = async () => {
    const lag = await consumerLag();
    const { gatewayUp, gatewayProblem, kafkaUp, outbox } = src.metrics.state;
    const outboxLag = Math.max(0, outbox.seenCursor - outbox.ackedCursor);
    const healthy = gatewayUp && !gatewayProblem && kafkaUp && lag.rows !== undefined;
    return {
      status: healthy ? "ok" : "degraded",
      // The outbox reads may go through while sends are refused (a proxy rule on one path): the alert wins.
      gateway: gatewayProblem ? "misconfigured" : gatewayUp ? "up" : "down",
      ...(gatewayProblem ? { alert: gatewayProblem } : {}),
      kafka: kafkaUp && lag.rows !== undefined ? "up" : "down",
      inbound: src.inbound
        ? { lag: lag.rows?.reduce((s, r) => s + r.lag, 0) ?? null, partitions: lag.rows ?? [], ...(lag.error ? { error: lag.error } : {}) }
        : { enabled: false },
      outbound: src.outbound
        ? { seenCursor: outbox.seenCursor, ackedCursor: outbox.ackedCursor, lag: outboxLag, inFlight: outbox.inFlight }
        : { enabled: false },
    };
  };

  const app = new Hono();
  // 503 when degraded, so it serves as a readiness probe; the process itself keeps retrying.
  app.get("/health", async (c) => {
    const s = await snapshot();
    return c.json(s, s.status === "ok" ? 200 : 503);
  });
  app.get("/metrics", async (c) => {
    const s = await snapshot();
    const lines = [
      "# TYPE bridge_up gauge",
      `bridge_up{dependency="gateway"} ${s.gateway === "up" ? 1 : 0}`,
      `bridge_up{dependency="kafka"} ${s.kafka === "up" ? 1 : 0}`,
      "# TYPE bridge_gateway_misconfigured gauge",
      `bridge_gateway_misconfigured ${s.gateway === "misconfigured" ? 1 : 0}`,
      "# TYPE bridge_consumer_lag gauge",
      ...(cached?.rows ?? []).map((r) => `bridge_consumer_lag${labelText({ topic: r.topic, partition: String(r.partition) })} ${r.lag}`),
      "# TYPE bridge_outbox_cursor gauge",
      `bridge_outbox_cursor{cursor="seen"} ${src.metrics.state.outbox.seenCursor}`,
      `bridge_outbox_cursor{cursor="acked"} ${src.metrics.state.outbox.ackedCursor}`,
      "# TYPE bridge_outbox_lag gauge",
      `bridge_outbox_lag ${Math.max(0, src.metrics.state.outbox.seenCursor - src.metrics.state.outbox.ackedCursor)}`,
      ...src.metrics.counterLines(),
    ];
    return c.text(lines.join("\n") + "\n", 200, { "content-type": "text/plain; version=0.0.4" });
  });
  return app;
}

export async function serveHealth(app: Hono, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port, hostname: "0.0.0.0" }, () => resolve(s));
    s.once("error", reject);
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? (address satisfies AddressInfo).port : port;
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
