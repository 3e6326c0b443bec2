// GET /v1/stats — counts by status (total and per instance), dead letters, oldest queued age,
// and sends in the last minute, for the calling tenant.
import { Hono } from "hono";
import type { AppEnv } from "../app-env.ts";
import { z } from "zod";
import { messageCounts } from "../messages/counts.ts";
import { documented } from "../openapi/describe.ts";

export const statsRoutes = new Hono<AppEnv>();

const countsByStatus = z.record(z.string(), z.int());
const statsAnswer = z.object({
  messages: z.object({ total: countsByStatus, byInstance: z.record(z.string(), countsByStatus) }),
  deadLetters: z.int(),
  oldestQueuedAgeSeconds: z.number(),
  sentLastMinute: z.int(),
});

statsRoutes.get(
  "/",
  documented({
    summary: "Message counts for this tenant",
    tags: ["Messages"],
    caller: "apiKey",
    responses: { 200: { description: "Counts by status (total and per instance), dead letters, queue age, recent sends.", schema: statsAnswer } },
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
      deadLetters: counts.deadLetters,
      oldestQueuedAgeSeconds: Math.round(counts.oldestQueuedAgeSeconds),
      sentLastMinute: counts.sentLastMinute,
    });
  },
);
