// POST /webhooks/evolution/:token[/:event] — Evolution's webhooks in. The token names and
// authenticates the instance. The route validates; it stores inbound messages itself and queues
// the rest (receipts, confirmations, connection changes), which the queue consumer applies.
import { Hono, type Context } from "hono";
import type { AppEnv } from "../app-env.ts";
import { eventName, handledEvents, webhookEnvelope } from "../contracts/evolution-webhooks.ts";
import { instances } from "../db/queries/index.ts";
import { ApiError } from "../errors.ts";
import { parseWith, readJson } from "../http/body.ts";
import { applyWebhookJob, type WebhookJob, webhookJob } from "../webhooks/evolution-job.ts";
import { documented } from "../openapi/describe.ts";
import { z } from "zod";
import { dispatchInBackground } from "../callbacks/dispatch.ts";
import { errorField, log } from "../observability/log.ts";

export const webhookRoutes = new Hono<AppEnv>();

// Media webhooks with base64 on can be megabytes; the file itself is never stored.
const MAX_WEBHOOK_BYTES = 32 * 1024 * 1024;
// A queue message holds at most 128 KB; bigger events are applied in the request instead.
const MAX_QUEUED_BYTES = 100 * 1024;

// Token → instance, remembered per isolate (a token never moves to another instance); unknown
// tokens are not remembered, so a new instance's webhooks are accepted at once. `callbacks`: its
// tenant has a callback URL (a URL set meanwhile is served by the cron until the entry expires).
const TOKEN_CACHE_MS = 60_000;
const tokenCache = new Map<string, { instance: instances.WebhookInstance; at: number }>();

async function instanceFor(c: Context<AppEnv>, token: string) {
  const hit = tokenCache.get(token);
  if (hit && Date.now() - hit.at < TOKEN_CACHE_MS) return hit.instance;
  const instance = await instances.byWebhookToken(c.var.db, token);
  if (instance) tokenCache.set(token, { instance, at: Date.now() });
  return instance;
}

async function accept(c: Context<AppEnv>, token: string, pathEvent?: string) {
  const instance = await instanceFor(c, token);
  if (!instance) throw new ApiError("unauthorized", "Unknown webhook token.");
  const envelope = parseWith(webhookEnvelope, await readJson(c, MAX_WEBHOOK_BYTES));
  // A global webhook posts every instance's events to one URL: an event of another instance would
  // be filed under this token's tenant. 403 (Evolution does not retry it), and a log line for the operator.
  if (envelope.instance !== undefined && envelope.instance !== instance.name) {
    log("warn", "webhook for another instance refused", { instance: instance.name, bodyInstance: envelope.instance.slice(0, 100), event: envelope.event });
    throw new ApiError("forbidden", `This webhook URL belongs to instance ${instance.name}, not ${envelope.instance}.`, [
      { path: "instance", message: "Must be the instance this webhook URL was made for." },
    ]);
  }
  // Payloads carry dotted names (messages.upsert); some setups send the config spelling (MESSAGES_UPSERT).
  const event = eventName(envelope.event);
  if (pathEvent && eventName(pathEvent) !== event) {
    throw new ApiError("invalid_request", `The path says ${pathEvent} but the body is ${envelope.event}.`, [{ path: "event", message: "mismatch" }]);
  }
  if (!handledEvents.has(event)) return c.json({ received: true, ignored: true });
  // The one parse of the event's data: a body of the wrong shape is refused here (400), not
  // discovered later in the queue.
  const job = stripBase64(
    parseWith(webhookJob, {
      tenantId: instance.tenant_id,
      instanceId: instance.id,
      instanceName: instance.name,
      event,
      data: envelope.data,
      receivedAt: Date.now(),
    }),
  );
  // Bytes, not characters: a long non-ASCII text is up to three bytes a character.
  if (new TextEncoder().encode(JSON.stringify(job)).byteLength > MAX_QUEUED_BYTES) {
    const { outcome } = await applyWebhookJob(c.env, c.var.db, job);
    return c.json({ received: true, outcome });
  }
  // Inbound messages are stored here, before the 200 (one D1 round trip, the same one the consumer
  // would make), and an automation instance's are handed to their contact's lane: the queue's batch
  // window would be most of a contact's wait for an answer, and a message Evolution was told we
  // have is in D1, not in a queue. If that fails, the queue takes the job as usual.
  if (job.event === "messages.upsert") {
    // Every inbound message goes through the door, automation or not: whether the automation is on
    // is read in the same D1 batch that stores the message, never from a per-isolate memory.
    const applied = await applyWebhookJob(c.env, c.var.db, job).then(
      (a) => a.outcome,
      (err) => {
        log("warn", "storing an inbound message in the request failed; queued instead", { error: errorField(err) });
        return undefined;
      },
    );
    if (applied) {
      // Its message.received callback goes out now, as the consumer would send it after its batch
      // (only for a tenant with a callback URL: otherwise there is nothing to hand out).
      if (applied === "stored" && instance.callbacks === 1) dispatchInBackground(c.env, c.executionCtx);
      return c.json({ received: true, outcome: applied });
    }
  }
  try {
    await c.env.WEBHOOKS.send(job, { contentType: "json" });
  } catch {
    // 503 makes Evolution retry later, rather than dropping the event as it does on a 4xx.
    throw new ApiError("unavailable", "Could not queue the webhook; retry.");
  }
  return c.json({ received: true });
}

// A media message's file, when Evolution sends it inline: never stored, never queued.
function stripBase64(job: WebhookJob): WebhookJob {
  if (job.event !== "messages.upsert" || !job.data.message || !("base64" in job.data.message)) return job;
  const { base64: _dropped, ...message } = job.data.message;
  return { ...job, data: { ...job.data, message } };
}

const received = z.object({ received: z.literal(true), ignored: z.literal(true).optional(), outcome: z.unknown().optional() });
const webhookDoc = (byEvents: boolean) =>
  documented({
    summary: byEvents ? "Evolution webhook, one URL per event (webhook_by_events)" : "Evolution webhook",
    description:
      "Evolution posts its events here; the token in the path (the instance's webhookUrl) names and authenticates the instance. " +
      "Handled: messages.upsert, messages.update, send.message, connection.update; others are acknowledged and ignored.",
    tags: ["Webhooks"],
    caller: "public",
    body: webhookEnvelope,
    responses: {
      200: { description: "Taken: inbound messages are stored at once (outcome), other events queued (or applied at once when large).", schema: received },
    },
    errors: ["unauthorized", "forbidden", "unavailable"],
  });

webhookRoutes.post("/:token", webhookDoc(false), (c) => accept(c, c.req.param("token")));
webhookRoutes.post("/:token/:event", webhookDoc(true), (c) => accept(c, c.req.param("token"), c.req.param("event")));
