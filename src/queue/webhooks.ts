// `webhooks` consumer: applies Evolution events one by one; a failure retries that event alone.
import { database } from "../db/client.ts";
import { processWebhook, type WebhookJob, webhookJob } from "../webhooks/process.ts";
import { dispatchCallbacks } from "../callbacks/dispatch.ts";
import { connectionData } from "../contracts/evolution-webhooks.ts";
import { errorField, log } from "../observability/log.ts";
import { offerToAutomation } from "../automation/offer.ts";

export async function consumeWebhooks(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const db = database(env.DB);
  for (const message of batch.messages) {
    const parsed = webhookJob.safeParse(message.body);
    if (!parsed.success) {
      log("error", "malformed webhook job dropped", { queueMessageId: message.id });
      message.ack();
      continue;
    }
    try {
      await processWebhook(db, parsed.data);
      await tellGovernor(env, parsed.data);
      // Before the ack: the contact's automation lane holds the message once this returns.
      await offerToAutomation(env, db, parsed.data);
      message.ack();
    } catch (err) {
      // A body that does not match Evolution's shape will never apply: keep a log line, drop it.
      if (err instanceof Error && err.name === "ZodError") {
        log("warn", "webhook data of an unexpected shape", { event: parsed.data.event, error: errorField(err) });
        message.ack();
      } else {
        log("warn", "webhook apply failed; retrying", { event: parsed.data.event, error: errorField(err) });
        message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
      }
    }
  }
  ctx.waitUntil(dispatchCallbacks(env));
}

// A closed connection pauses the number's sending, `open` resumes it (the governor decides).
async function tellGovernor(env: Env, job: WebhookJob): Promise<void> {
  if (job.event !== "connection.update") return;
  const data = connectionData.safeParse(job.data);
  if (!data.success || (data.data.state !== "open" && data.data.state !== "close")) return;
  const governor = env.GOVERNORS.get(env.GOVERNORS.idFromName(job.instanceId));
  await governor.report({ kind: "connection", instanceId: job.instanceId, state: data.data.state, statusReason: data.data.statusReason, now: job.receivedAt });
}
