// `webhooks` consumer: applies Evolution events one by one; a failure retries that event alone.
import { database } from "../db/client.ts";
import { processWebhook, webhookJob } from "../webhooks/process.ts";
import { dispatchCallbacks } from "../callbacks/dispatch.ts";
import { offerToAutomation } from "../automation/offer.ts";

export async function consumeWebhooks(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const db = database(env.DB);
  for (const message of batch.messages) {
    const parsed = webhookJob.safeParse(message.body);
    if (!parsed.success) {
      console.error(JSON.stringify({ level: "error", msg: "malformed webhook job dropped", id: message.id }));
      message.ack();
      continue;
    }
    try {
      await processWebhook(db, parsed.data);
      // Before the ack: the contact's automation lane holds the message once this returns.
      await offerToAutomation(env, db, parsed.data);
      message.ack();
    } catch (err) {
      // A body that does not match Evolution's shape will never apply: keep a log line, drop it.
      if (err instanceof Error && err.name === "ZodError") {
        console.error(
          JSON.stringify({ level: "warn", msg: "webhook data of an unexpected shape", event: parsed.data.event, error: err.message.slice(0, 500) }),
        );
        message.ack();
      } else {
        console.error(JSON.stringify({ level: "warn", msg: "webhook apply failed; retrying", event: parsed.data.event, error: String(err) }));
        message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
      }
    }
  }
  ctx.waitUntil(dispatchCallbacks(env));
}
