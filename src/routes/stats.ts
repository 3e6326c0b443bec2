// GET /v1/stats — counts by status (total and per instance), dead letters, oldest queued age,
// and sends in the last minute, for the calling tenant.
import { and, eq, gte, lt } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { messageActivity } from "../db/schema.ts";
import { documented } from "../openapi/describe.ts";
import { messageCounts } from "../messages/counts.ts";

// GET /v1/stats/timeline?range=hour|day — sends, failures, deliveries and reads per time bucket
// (hour: 60 one-minute buckets; day: 96 of 15 minutes), oldest first, for the console's chart.
// From message_activity (per-minute counts kept by triggers): at most a day of rows, however many
// messages the tenant has.
const ranges = { hour: { bucketMs: 60_000, buckets: 60 }, day: { bucketMs: 15 * 60_000, buckets: 96 } } as const;
const timelineQuery = z.object({ range: z.enum(["hour", "day"]).default("hour") });

export const statsRoutes = new Hono<AppEnv>()
  .get(
    "/",
    documented({
      summary: "Message counts for this tenant",
      tags: ["Messages"],
      caller: "apiKey",
      responses: {
        200: {
          description: "Counts by status (total and per instance), dead letters, queue age, recent sends.",
          schema: z.looseObject({ deadLetters: z.int(), sentLastMinute: z.int() }),
        },
      },
    }),
    async (c) => {
      const counts = await messageCounts(c.var.db, c.var.tenant.id);
      const total: Record<string, number> = {};
      const byInstance: Record<string, Record<string, number>> = {};
      for (const r of counts.byStatus) {
        total[r.status] = (total[r.status] ?? 0) + r.n;
        const row = byInstance[r.instance] ?? {};
        row[r.status] = r.n;
        byInstance[r.instance] = row;
      }
      return c.json({
        messages: { total, byInstance },
        sentLastMinuteByInstance: counts.sentLastMinuteByInstance,
        deadLetters: counts.deadLetters,
        oldestQueuedAgeSeconds: Math.round(counts.oldestQueuedAgeSeconds),
        sentLastMinute: counts.sentLastMinute,
      });
    },
  )
  .get(
    "/timeline",
    documented({
      summary: "Sends, failures, deliveries and reads per time bucket",
      tags: ["Messages"],
      caller: "apiKey",
      query: timelineQuery,
      responses: { 200: { description: "Buckets, oldest first.", schema: z.looseObject({ range: z.string(), buckets: z.array(z.unknown()) }) } },
    }),
    async (c) => {
      const { range } = c.req.valid("query");
      const { bucketMs, buckets } = ranges[range];
      // Buckets end at the current bucket's end, so the last one fills as time passes.
      const end = Math.ceil((Date.now() + 1) / bucketMs) * bucketMs;
      const start = end - bucketMs * buckets;
      const rows = await c.var.db
        .select()
        .from(messageActivity)
        .where(and(eq(messageActivity.tenantId, c.var.tenant.id), gte(messageActivity.minute, start / 60_000), lt(messageActivity.minute, end / 60_000)));
      const series = Array.from({ length: buckets }, (_, i) => ({
        at: new Date(start + i * bucketMs).toISOString(),
        sent: 0,
        failed: 0,
        delivered: 0,
        read: 0,
      }));
      for (const r of rows) {
        const bucket = series[Math.floor((r.minute * 60_000 - start) / bucketMs)];
        if (!bucket) continue;
        bucket.sent += r.sent;
        bucket.failed += r.failed;
        bucket.delivered += r.delivered;
        bucket.read += r.read;
      }
      return c.json({ range, bucketSeconds: bucketMs / 1000, from: new Date(start).toISOString(), to: new Date(end).toISOString(), buckets: series });
    },
  );
