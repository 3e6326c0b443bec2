// /v1/messages: send, batch, read, list, cancel, reschedule, retry.
import { and, desc, eq, gte, lt, sql, type SQL } from "drizzle-orm";
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { messageStatus } from "../contracts/events.ts";
import { isoWithOffset, recipient, sendBatchSchema, sendMessageSchema, type SendMessageRequest } from "../contracts/messages.ts";
import { changes, runBatch } from "../db/batch.ts";
import { messages } from "../db/schema.ts";
import { ApiError, toApiError } from "../errors.ts";
import { MAX_BATCH_BODY_BYTES, parseBody, parseWith, readJson } from "../http/body.ts";
import { acceptMessages, checkSendAt, findInstances, prepareMessage, type Prepared } from "../messages/accept.ts";
import { replayFailed } from "../messages/replay.ts";
import { applyTransition } from "../messages/transitions.ts";
import { idempotent, type Answer } from "../messages/idempotency.ts";
import { acceptedView, historyOf, messageView } from "../messages/view.ts";
import { preferredWait, waitUntilFinished } from "../messages/wait.ts";

export const messageRoutes = new Hono<AppEnv>();

messageRoutes.post("/", async (c) => {
  const body = await readJson(c);
  const input = parseWith(sendMessageSchema, body);
  const wait = preferredWait(c.req.header("prefer"));
  return idempotent(c, "messages", body, async (attempt): Promise<Answer> => {
    const instances = await findInstances(c.var.db, c.var.tenant.id, [input.instance]);
    const prepared = prepareMessage(c.var.tenant, instances, input, attempt.now, "api", "", attempt.messageId(0));
    // With Prefer: wait the job must be on the queue before waiting; otherwise it may follow the answer.
    const [outcome] = await acceptMessages(
      c.env,
      c.var.db,
      c.var.tenant.id,
      [{ prepared, input }],
      wait ? undefined : (work) => c.executionCtx.waitUntil(work),
    );
    if (outcome?.kind === "conflict")
      throw new ApiError("conflict", "This idempotencyKey was already used with a different message.", [{ path: "idempotencyKey", message: outcome.key }]);
    if (outcome?.kind === "replay") return { status: 202, body: acceptedView(outcome.message), headers: { "idempotent-replayed": "true" } };
    const accepted = acceptedView({ ...prepared.row, sendAt: prepared.row.sendAt ?? null });
    if (wait && !input.sendAt) {
      await attempt.provisional({ status: 202, body: accepted });
      const done = await waitUntilFinished(c.var.db, prepared.row.id, wait);
      if (done) return { status: 200, body: messageView(done, await historyOf(c.var.db, done.id)), headers: { "preference-applied": `wait=${wait}` } };
    }
    return { status: 202, body: accepted, headers: { location: `/v1/messages/${prepared.row.id}` } };
  });
});

messageRoutes.post("/batch", async (c) => {
  const body = await readJson(c, MAX_BATCH_BODY_BYTES);
  const { messages: items } = parseWith(sendBatchSchema, body);
  return idempotent(c, "messages/batch", body, async (attempt) => {
    const parsed = items.map((item) => sendMessageSchema.safeParse(item));
    const names = parsed.flatMap((p) => (p.success ? [p.data.instance] : []));
    const instances = await findInstances(c.var.db, c.var.tenant.id, names);
    const results: unknown[] = [];
    const valid: { index: number; prepared: Prepared; input: SendMessageRequest }[] = [];
    parsed.forEach((p, index) => {
      try {
        if (!p.success) throw p.error;
        valid.push({ index, prepared: prepareMessage(c.var.tenant, instances, p.data, attempt.now, "api", "", attempt.messageId(index)), input: p.data });
      } catch (err) {
        const apiError = toApiError(err);
        if (!apiError) throw err;
        results[index] = { index, error: apiError.body().error };
      }
    });
    const outcomes = await acceptMessages(c.env, c.var.db, c.var.tenant.id, valid);
    outcomes.forEach((o, i) => {
      const index = valid[i]!.index;
      if (o.kind === "created") results[index] = { index, id: o.prepared.row.id, status: o.prepared.row.status };
      else if (o.kind === "replay") results[index] = { index, id: o.message.id, status: o.message.status, replayed: true };
      else
        results[index] = {
          index,
          error: new ApiError("conflict", "This idempotencyKey was already used with a different message.", [{ path: "idempotencyKey", message: o.key }]).body()
            .error,
        };
    });
    return { status: 200, body: { results } };
  });
});

const listQuery = z.object({
  status: messageStatus.optional(),
  instance: z.string().min(1).optional(),
  to: recipient.optional(),
  since: isoWithOffset.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(/^msg_[0-9a-z]{26}$/, "Not a cursor from this API.")
    .optional(),
});

messageRoutes.get("/", async (c) => {
  const q = parseWith(listQuery, c.req.query());
  const where: SQL[] = [eq(messages.tenantId, c.var.tenant.id)];
  if (q.status) where.push(eq(messages.status, q.status));
  if (q.instance) where.push(eq(messages.instanceName, q.instance));
  if (q.to) where.push(eq(messages.to, q.to));
  if (q.since) where.push(gte(messages.createdAt, Date.parse(q.since)));
  if (q.cursor) where.push(lt(messages.id, q.cursor));
  const rows = await c.var.db
    .select()
    .from(messages)
    .where(and(...where))
    .orderBy(desc(messages.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return c.json({ data: page.map((r) => messageView(r)), nextCursor: rows.length > q.limit ? (page.at(-1)?.id ?? null) : null });
});

async function ownMessage(c: { var: AppEnv["Variables"] }, id: string) {
  const [row] = await c.var.db
    .select()
    .from(messages)
    .where(and(eq(messages.id, id), eq(messages.tenantId, c.var.tenant.id)));
  if (!row) throw new ApiError("not_found", `No message ${id}.`);
  return row;
}

messageRoutes.get("/:id", async (c) => {
  const row = await ownMessage(c, c.req.param("id"));
  return c.json(messageView(row, await historyOf(c.var.db, row.id)));
});

const laneOf = (env: Env, laneKey: string) => env.LANES.get(env.LANES.idFromName(laneKey));

messageRoutes.delete("/:id", async (c) => {
  const row = await ownMessage(c, c.req.param("id"));
  const canceled = await applyTransition(c.var.db, {
    messageId: row.id,
    from: ["scheduled", "queued"],
    to: "canceled",
    at: Date.now(),
    detail: "canceled by API",
  });
  if (!canceled) {
    const now = await ownMessage(c, row.id);
    throw new ApiError("conflict", `Message is ${now.status}; only scheduled or queued messages can be canceled.`, [{ path: "status", message: now.status }]);
  }
  // The lane would skip it anyway at dispatch (D1 says canceled); removing it now frees its alarm.
  await laneOf(c.env, row.laneKey)
    .cancel(row.id)
    .catch(() => false);
  const after = await ownMessage(c, row.id);
  return c.json(messageView(after, await historyOf(c.var.db, row.id)));
});

const patchBody = z.strictObject({ sendAt: isoWithOffset });

messageRoutes.patch("/:id", async (c) => {
  const input = await parseBody(c, patchBody);
  const row = await ownMessage(c, c.req.param("id"));
  const at = checkSendAt(input.sendAt, Date.now());
  if (row.status !== "scheduled")
    throw new ApiError("conflict", `Message is ${row.status}; only scheduled messages can be moved.`, [{ path: "status", message: row.status }]);
  const [moved] = await runBatch(c.var.db, [
    sql`UPDATE messages SET send_at = ${at}, ready_at = ${at}, updated_at = ${Date.now()} WHERE id = ${row.id} AND status = 'scheduled'`,
    sql`INSERT INTO message_history (message_id, status, at, detail) SELECT ${row.id}, 'scheduled', ${Date.now()}, ${`rescheduled to ${input.sendAt}`} WHERE changes() > 0`,
  ]);
  if (changes(moved) === 0) throw new ApiError("conflict", "Message is no longer scheduled.");
  await laneOf(c.env, row.laneKey).reschedule(row.id, at!);
  const after = await ownMessage(c, row.id);
  return c.json(messageView(after, await historyOf(c.var.db, row.id)));
});

// Dead-letter replay of one message (POST /v1/dead-letters/replay does many the same way).
messageRoutes.post("/:id/retry", async (c) => {
  const row = await ownMessage(c, c.req.param("id"));
  const [requeued] = await replayFailed(c.env, c.var.db, [row], "retry requested");
  if (!requeued) throw new ApiError("conflict", `Message is ${row.status}; only failed messages can be retried.`, [{ path: "status", message: row.status }]);
  return c.json(acceptedView({ ...(await ownMessage(c, row.id)) }), 202);
});
