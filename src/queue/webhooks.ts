// `webhooks` consumer: applies Evolution events; receipts many to a D1 round trip, the rest one by one.
// A failure retries that event alone.
import { database } from "../db/client.ts";
import { receiptJobStatements, type WebhookJob, webhookJob } from "../webhooks/process.ts";
import { runBatch } from "../db/batch.ts";
import type { SQL } from "drizzle-orm";
import { dispatchInBackground } from "../callbacks/dispatch.ts";
import { connectionData } from "../contracts/evolution-webhooks.ts";
import { errorField, log } from "../observability/log.ts";
import { storeAndOffer } from "../automation/offer.ts";

// Jobs per combined D1 batch: at most 3 statements each, well within one invocation's queries.
const RECEIPT_CHUNK = 50;

export async function consumeWebhooks(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const db = database(env.DB);
  const rest: { message: Message<unknown>; job: WebhookJob }[] = [];
  const receipts: { message: Message<unknown>; job: WebhookJob; statements: SQL[] }[] = [];
  for (const message of batch.messages) {
    const parsed = webhookJob.safeParse(message.body);
    if (!parsed.success) {
      log("error", "malformed webhook job dropped", { queueMessageId: message.id });
      message.ack();
      continue;
    }
    let statements: SQL[] | undefined;
    try {
      statements = receiptJobStatements(parsed.data);
    } catch {
      // A misshapen body: the one-by-one path below logs and drops it.
    }
    if (statements) receipts.push({ message, job: parsed.data, statements });
    else rest.push({ message, job: parsed.data });
  }
  // Receipts and send confirmations are the bulk of the traffic (two or three per message sent):
  // one D1 round trip for many. Each is idempotent and independent, so a failed combined batch is
  // simply applied again one by one, where a failure retries that event alone.
  for (let i = 0; i < receipts.length; i += RECEIPT_CHUNK) {
    const chunk = receipts.slice(i, i + RECEIPT_CHUNK);
    try {
      await runBatch(
        db,
        chunk.flatMap((r) => r.statements),
      );
      for (const r of chunk) r.message.ack();
    } catch (err) {
      log("warn", "combined receipt batch failed; applying one by one", { error: errorField(err) });
      for (const r of chunk) rest.push({ message: r.message, job: r.job });
    }
  }
  for (const { message, job } of rest) {
    try {
      // Before the ack: the contact's automation lane holds the message once this returns.
      await storeAndOffer(env, db, job);
      await tellGovernor(env, job);
      message.ack();
    } catch (err) {
      // A body that does not match Evolution's shape will never apply: keep a log line, drop it.
      if (err instanceof Error && err.name === "ZodError") {
        log("warn", "webhook data of an unexpected shape", { event: job.event, error: errorField(err) });
        message.ack();
      } else {
        log("warn", "webhook apply failed; retrying", { event: job.event, error: errorField(err) });
        message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
      }
    }
  }
  dispatchInBackground(env, ctx);
}

// A closed connection pauses the number's sending, `open` resumes it (the governor decides).
async function tellGovernor(env: Env, job: WebhookJob): Promise<void> {
  if (job.event !== "connection.update") return;
  const data = connectionData.safeParse(job.data);
  if (!data.success || (data.data.state !== "open" && data.data.state !== "close")) return;
  const governor = env.GOVERNORS.get(env.GOVERNORS.idFromName(job.instanceId));
  await governor.report({ kind: "connection", instanceId: job.instanceId, state: data.data.state, statusReason: data.data.statusReason, now: job.receivedAt });
}
