// GET /v1/events, POST /v1/events/ack — the outbox, read by named consumers (the Kafka bridge).
// Events come in seq order after the consumer's cursor; only an ack moves the cursor, so an
// event is never skipped, and one read but not acked is read again.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { consumerCursors, outboxEvents } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { documented } from "../openapi/describe.ts";
import { eventView } from "../outbox/view.ts";

const consumerName = z.string().regex(/^[A-Za-z0-9._:-]{1,100}$/, "1-100 letters, digits, '.', '_', ':' or '-'.");
const readQuery = z.object({
  consumer: consumerName,
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  wait: z.coerce.number().min(0).max(30).default(0),
});

const tags = ["Events"];
const eventAnswer = z
  .object({
    seq: z.int(),
    eventId: z.string(),
    type: z.string(),
    version: z.int(),
    occurredAt: z.iso.datetime({ offset: true }),
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: "Event" });

const ackBody = z.strictObject({ consumer: consumerName, seq: z.int().min(0) });

export const eventRoutes = new Hono<AppEnv>()
  .get(
    "/",
    documented({
      summary: "Read events after the consumer's cursor",
      description: "message.status and message.received events in seq order. With wait > 0 the request holds until an event arrives or wait seconds pass.",
      tags,
      caller: "apiKey",
      query: readQuery,
      responses: {
        200: {
          description: "Up to limit events; ack the last seq to move on.",
          schema: z.object({ events: z.array(eventAnswer), cursor: z.int(), ackedCursor: z.int() }),
        },
      },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const tenantId = c.var.tenant.id;
      const cursor = await consumerCursors.cursorOf(c.var.db, tenantId, q.consumer);
      const deadline = Date.now() + q.wait * 1000;
      for (;;) {
        const rows = await outboxEvents.tenantEventsAfter(c.var.db, tenantId, cursor, q.limit);
        if (rows.length > 0 || Date.now() >= deadline) {
          return c.json({ events: rows.map(eventView), cursor: rows.at(-1)?.seq ?? cursor, ackedCursor: cursor });
        }
        await new Promise((r) => setTimeout(r, Math.min(250, deadline - Date.now())));
      }
    },
  )
  .post(
    "/ack",
    documented({
      summary: "Move a consumer's cursor forward",
      tags,
      caller: "apiKey",
      body: ackBody,
      responses: { 200: { description: "The cursor now.", schema: z.object({ consumer: z.string(), cursor: z.int() }) } },
      errors: ["unprocessable"],
    }),
    async (c) => {
      const input = c.req.valid("json");
      const tenantId = c.var.tenant.id;
      const last = await outboxEvents.lastSeq(c.var.db, tenantId);
      if (input.seq > last) throw new ApiError("unprocessable", "Cannot ack past the last event.", [{ path: "seq", message: `last is ${last}` }]);
      // The cursor only moves forward: a late or repeated ack cannot make events reappear.
      await consumerCursors.advance(c.var.db, tenantId, input.consumer, input.seq, Date.now());
      return c.json({ consumer: input.consumer, cursor: await consumerCursors.cursorOf(c.var.db, tenantId, input.consumer) });
    },
  );
