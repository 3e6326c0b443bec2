// GET /metrics — Prometheus text format, all tenants, guarded by METRICS_TOKEN.
import { Hono } from "hono";
import type { AppEnv } from "../app-env.ts";
import { bearer, tokenMatches } from "../auth/api-keys.ts";
import { callbackDeliveries, instances, outboxEvents } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { messageCounts } from "../messages/counts.ts";
import { documented } from "../openapi/describe.ts";
import { z } from "zod";

export const metricsRoutes = new Hono<AppEnv>();

const label = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

metricsRoutes.get(
  "/",
  documented({
    summary: "Prometheus metrics, all tenants",
    tags: ["Operations"],
    caller: "metrics",
    responses: { 200: { description: "Prometheus text format 0.0.4.", schema: z.string(), contentType: "text/plain" } },
  }),
  async (c) => {
    if (!(await tokenMatches(bearer(c.req.header("authorization")), c.env.METRICS_TOKEN))) throw new ApiError("unauthorized", "Metrics token required.");
    const db = c.var.db;
    const [counts, outboxSeq, callbacks, states] = await Promise.all([
      messageCounts(db, undefined),
      outboxEvents.lastSeq(db),
      callbackDeliveries.countsByStatus(db),
      instances.states(db),
    ]);
    const lines = [
      "# HELP mensageiro_messages Messages by instance and status.",
      "# TYPE mensageiro_messages gauge",
      ...counts.byStatus.map((r) => `mensageiro_messages{instance="${label(r.instance)}",status="${r.status}"} ${r.n}`),
      "# HELP mensageiro_dead_letters Failed messages not replayed.",
      "# TYPE mensageiro_dead_letters gauge",
      `mensageiro_dead_letters ${counts.deadLetters}`,
      "# HELP mensageiro_oldest_queued_age_seconds Age of the oldest queued message.",
      "# TYPE mensageiro_oldest_queued_age_seconds gauge",
      `mensageiro_oldest_queued_age_seconds ${counts.oldestQueuedAgeSeconds}`,
      "# HELP mensageiro_sent_last_minute Messages sent in the last 60 seconds.",
      "# TYPE mensageiro_sent_last_minute gauge",
      `mensageiro_sent_last_minute ${counts.sentLastMinute}`,
      "# HELP mensageiro_outbox_seq Highest outbox sequence number written.",
      "# TYPE mensageiro_outbox_seq counter",
      `mensageiro_outbox_seq ${outboxSeq}`,
      "# HELP mensageiro_callback_deliveries Tenant callback deliveries by status.",
      "# TYPE mensageiro_callback_deliveries gauge",
      ...callbacks.map((r) => `mensageiro_callback_deliveries{status="${r.status}"} ${r.n}`),
      "# HELP mensageiro_instance_up Instance connection state (1 when open).",
      "# TYPE mensageiro_instance_up gauge",
      ...states.map((r) => `mensageiro_instance_up{instance="${label(r.name)}",state="${label(r.state)}"} ${r.state === "open" ? 1 : 0}`),
    ];
    return c.text(`${lines.join("\n")}\n`, 200, { "content-type": "text/plain; version=0.0.4" });
  },
);
