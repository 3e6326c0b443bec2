// /v1/messages: send, batch, read, list, cancel, reschedule, retry.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { messageStatus } from "../contracts/events.ts";
import {
  acceptedMessage,
  batchAnswer,
  isoWithOffset,
  messageAnswer,
  MAX_BATCH,
  messageRecipient,
  sendBatchSchema,
  sendMessageSchema,
  type SendMessageRequest,
} from "../contracts/messages.ts";
import { messages } from "../db/queries/index.ts";
import { ApiError, toApiError } from "../errors.ts";
import { channel } from "../contracts/channels.ts";
import { MAX_BATCH_BODY_BYTES } from "../http/body.ts";
import { listPage } from "../http/cursor.ts";
import { refusePrivateMessageUrls } from "../http/outbound-url.ts";
import { acceptMessages, checkSendAt, dueWithinHorizon, enqueueJobs, findInstances, laneItemOf, prepareMessage, type Prepared } from "../messages/accept.ts";
import { chargeMessages } from "../limits/rate-limit.ts";
import { replayFailed } from "../messages/replay.ts";
import { applyTransition } from "../messages/transitions.ts";
import { idempotent, type Answer } from "../messages/idempotency.ts";
import { acceptedView, historyOf, messageView } from "../messages/view.ts";
import { preferredWait, waitUntilFinished } from "../messages/wait.ts";
import { documented } from "../openapi/describe.ts";

const tags = ["Messages"];
const idempotencyHeader = {
  "Idempotency-Key": "1-255 characters. The same key and body answer the first answer again (with Idempotent-Replayed: true); another body is 409.",
};
const messageId = z.object({ id: z.string().describe("A message id (msg_…).") });

const listQuery = z.object({
  status: messageStatus.optional(),
  instance: z.string().min(1).optional(),
  channel: channel.optional(),
  to: messageRecipient.optional().describe("One contact: a number, group, Telegram chat or web chat visitor id."),
  since: isoWithOffset.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(/^msg_[0-9a-z]{26}$/, "Not a cursor from this API.")
    .optional(),
});

const listAnswer = z.object({ data: z.array(messageAnswer), nextCursor: z.string().nullable() });

async function ownMessage(c: { var: AppEnv["Variables"] }, id: string) {
  const row = await messages.owned(c.var.db, c.var.tenant.id, id);
  if (!row) throw new ApiError("not_found", `No message ${id}.`);
  return row;
}

const laneOf = (env: Env, laneKey: string) => env.LANES.get(env.LANES.idFromName(laneKey));

const patchBody = z.strictObject({ sendAt: isoWithOffset });

export const messageRoutes = new Hono<AppEnv>()
  .post(
    "/",
    documented({
      summary: "Send a message (now or at sendAt)",
      description:
        "Text, media, or both, to a phone number (E.164 digits) or a group JID. Per contact, messages go out in the order accepted. " +
        "With `Prefer: wait=N` (N ≤ 30 seconds) the answer waits for the send and returns the finished message (200).",
      tags,
      caller: "apiKey",
      body: sendMessageSchema,
      headers: { ...idempotencyHeader, Prefer: "wait=N: wait up to N seconds (≤ 30) for the send before answering." },
      responses: {
        200: { description: "Sent within the Prefer: wait time.", schema: messageAnswer },
        202: { description: "Accepted: queued, or scheduled for sendAt.", schema: acceptedMessage, headers: { Location: "The message's URL." } },
      },
      errors: ["conflict", "unprocessable"],
    }),
    async (c) => {
      const parsed = c.req.valid("json");
      // The body as sent (the capped reader's value): an Idempotency-Key compares it with the first.
      const body = await c.req.json();
      // An operator's answer from the console names the operator's key, stamped here so a page cannot name another.
      const input = parsed.metadata?.source === "console" ? { ...parsed, metadata: { ...parsed.metadata, keyId: c.var.apiKeyId } } : parsed;
      refusePrivateMessageUrls(c.env, input);
      const wait = preferredWait(c.req.header("prefer"));
      await chargeMessages(c, 1);
      // Without a body idempotencyKey the answer is known before the write (the message is new), so an
      // Idempotency-Key is taken in the message's own batch with it: one D1 round trip, not three.
      return idempotent(
        c,
        "messages",
        body,
        async (attempt): Promise<Answer> => {
          const instances = await findInstances(c.var.db, c.var.tenant.id, [input.instance]);
          const prepared = prepareMessage(c.var.tenant, instances, input, attempt.now, "api", "", attempt.messageId(0));
          // The message goes straight to its lane (one call; the queue's hop and its consumer would cost
          // more, and the sends queue stays the fallback). A request that waits for the send waits for
          // the hand-off too; otherwise it may follow the answer.
          const waitsForSend = wait !== undefined && !input.sendAt;
          const accepted = acceptedView({ ...prepared.row, sendAt: prepared.row.sendAt ?? null });
          const [outcome] = await acceptMessages(
            c.env,
            c.var.db,
            c.var.tenant.id,
            [{ prepared, input }],
            waitsForSend ? { direct: true } : { direct: true, defer: (work) => c.executionCtx.waitUntil(work) },
            attempt.inBatch?.({ status: 202, body: accepted }, !waitsForSend),
          );
          if (outcome?.kind === "conflict")
            throw new ApiError("conflict", "This idempotencyKey was already used with a different message.", [
              { path: "idempotencyKey", message: outcome.key },
            ]);
          if (outcome?.kind === "replay") return { status: 202, body: acceptedView(outcome.message), headers: { "idempotent-replayed": "true" } };
          if (waitsForSend) {
            await attempt.provisional({ status: 202, body: accepted });
            const lane = c.env.LANES.get(c.env.LANES.idFromName(prepared.row.laneKey));
            const done = await waitUntilFinished(c.var.db, prepared.row.id, wait, lane);
            if (done) return { status: 200, body: messageView(done, historyOf(done)), headers: { "preference-applied": `wait=${wait}` } };
          }
          return { status: 202, body: accepted, headers: { location: `/v1/messages/${prepared.row.id}` } };
        },
        { inOneBatch: !input.idempotencyKey },
      );
    },
  )
  .post(
    "/batch",
    documented({
      summary: "Send up to 500 messages in one request",
      description: "Each item is a send request, validated on its own: the answer has one result per item, in order (an id, or an error).",
      tags,
      caller: "apiKey",
      body: sendBatchSchema.extend({ messages: z.array(sendMessageSchema).min(1).max(MAX_BATCH) }),
      bodyCheck: sendBatchSchema,
      maxBodyBytes: MAX_BATCH_BODY_BYTES,
      headers: idempotencyHeader,
      responses: { 200: { description: "One result per item.", schema: batchAnswer } },
      errors: ["conflict"],
    }),
    async (c) => {
      const { messages: items } = c.req.valid("json");
      const body = await c.req.json();
      await chargeMessages(c, items.length);
      return idempotent(c, "messages/batch", body, async (attempt) => {
        const parsed = items.map((item) => sendMessageSchema.safeParse(item));
        const names = parsed.flatMap((p) => (p.success ? [p.data.instance] : []));
        const instances = await findInstances(c.var.db, c.var.tenant.id, names);
        const results: unknown[] = [];
        const valid: { index: number; prepared: Prepared; input: SendMessageRequest }[] = [];
        parsed.forEach((p, index) => {
          try {
            if (!p.success) throw p.error;
            refusePrivateMessageUrls(c.env, p.data);
            valid.push({ index, prepared: prepareMessage(c.var.tenant, instances, p.data, attempt.now, "api", "", attempt.messageId(index)), input: p.data });
          } catch (err) {
            const apiError = toApiError(err);
            if (!apiError) throw err;
            results[index] = { index, error: apiError.body().error };
          }
        });
        // Straight to the lanes after the answer, one call per lane (at most one per item, well inside a
        // request's subrequests); the sends queue is the fallback.
        const outcomes = await acceptMessages(c.env, c.var.db, c.var.tenant.id, valid, { direct: true, defer: (work) => c.executionCtx.waitUntil(work) });
        outcomes.forEach((o, i) => {
          const index = valid[i]!.index;
          if (o.kind === "created") results[index] = { index, id: o.prepared.row.id, status: o.prepared.row.status };
          else if (o.kind === "replay") results[index] = { index, id: o.message.id, status: o.message.status, replayed: true };
          else
            results[index] = {
              index,
              error: new ApiError("conflict", "This idempotencyKey was already used with a different message.", [
                { path: "idempotencyKey", message: o.key },
              ]).body().error,
            };
        });
        return { status: 200, body: { results } };
      });
    },
  )
  .get(
    "/",
    documented({
      summary: "List messages, newest first",
      tags,
      caller: "apiKey",
      query: listQuery,
      responses: { 200: { description: "A page; pass nextCursor as cursor for the next.", schema: listAnswer } },
    }),
    async (c) => {
      const q = c.req.valid("query");
      const rows = await messages.page(c.var.db, c.var.tenant.id, {
        status: q.status,
        instance: q.instance,
        channel: q.channel,
        to: q.to,
        since: q.since ? Date.parse(q.since) : undefined,
        before: q.cursor,
        limit: q.limit,
      });
      return c.json(
        listPage(
          rows,
          q.limit,
          (r) => messageView(r),
          (last) => last.id,
        ),
      );
    },
  )
  .get(
    "/:id",
    documented({
      summary: "One message with its history",
      tags,
      caller: "apiKey",
      params: messageId,
      responses: { 200: { description: "The message.", schema: messageAnswer } },
      errors: ["not_found"],
    }),
    async (c) => {
      const row = await ownMessage(c, c.req.valid("param").id);
      return c.json(messageView(row, historyOf(row)));
    },
  )
  .delete(
    "/:id",
    documented({
      summary: "Cancel a scheduled or queued message",
      tags,
      caller: "apiKey",
      params: messageId,
      responses: { 200: { description: "The canceled message.", schema: messageAnswer } },
      errors: ["not_found", "conflict"],
    }),
    async (c) => {
      const row = await ownMessage(c, c.req.valid("param").id);
      const canceled = await applyTransition(c.var.db, {
        messageId: row.id,
        from: ["scheduled", "queued"],
        to: "canceled",
        at: Date.now(),
        detail: "canceled by API",
      });
      if (!canceled) {
        const now = await ownMessage(c, row.id);
        throw new ApiError("conflict", `Message is ${now.status}; only scheduled or queued messages can be canceled.`, [
          { path: "status", message: now.status },
        ]);
      }
      // The lane would skip it anyway at dispatch (D1 says canceled); removing it now frees its alarm.
      await laneOf(c.env, row.laneKey)
        .cancel(row.id)
        .catch(() => false);
      const after = await ownMessage(c, row.id);
      return c.json(messageView(after, historyOf(after)));
    },
  )
  .patch(
    "/:id",
    documented({
      summary: "Move a scheduled message to another time",
      tags,
      caller: "apiKey",
      params: messageId,
      body: patchBody,
      responses: { 200: { description: "The rescheduled message.", schema: messageAnswer } },
      errors: ["not_found", "conflict", "unprocessable"],
    }),
    async (c) => {
      const input = c.req.valid("json");
      const row = await ownMessage(c, c.req.valid("param").id);
      const at = checkSendAt(input.sendAt, Date.now());
      if (row.status !== "scheduled")
        throw new ApiError("conflict", `Message is ${row.status}; only scheduled messages can be moved.`, [{ path: "status", message: row.status }]);
      const now = Date.now();
      if (!(await messages.reschedule(c.var.db, row.id, at!, now, `rescheduled to ${input.sendAt}`)))
        throw new ApiError("conflict", "Message is no longer scheduled.");
      const lane = laneOf(c.env, row.laneKey);
      // One its lane does not hold yet (it was due beyond the horizon) goes to the lane now if its new
      // time is near; further out, the sweep hands it over when it comes near.
      if (!(await lane.reschedule(row.id, at!)) && dueWithinHorizon({ readyAt: at!, createdAt: now })) {
        const job = { messageId: row.id, laneKey: row.laneKey, instanceId: row.instanceId, priority: row.priority, readyAt: at!, createdAt: row.createdAt };
        // The sends queue carries it should the lane's call fail.
        await lane.enqueue(row.laneKey, [laneItemOf(job)]).catch(() => enqueueJobs(c.env, [job]));
      }
      const after = await ownMessage(c, row.id);
      return c.json(messageView(after, historyOf(after)));
    },
  )
  // Dead-letter replay of one message (POST /v1/dead-letters/replay does many the same way).
  .post(
    "/:id/retry",
    documented({
      summary: "Send a failed message again, with a fresh attempt budget",
      tags,
      caller: "apiKey",
      params: messageId,
      responses: { 202: { description: "Queued again.", schema: acceptedMessage } },
      errors: ["not_found", "conflict"],
    }),
    async (c) => {
      const row = await ownMessage(c, c.req.valid("param").id);
      const [requeued] = await replayFailed(c.env, c.var.db, [row], "retry requested");
      if (!requeued)
        throw new ApiError("conflict", `Message is ${row.status}; only failed messages can be retried.`, [{ path: "status", message: row.status }]);
      return c.json(acceptedView({ ...(await ownMessage(c, row.id)) }), 202);
    },
  );
