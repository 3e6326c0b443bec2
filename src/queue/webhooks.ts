// `webhooks` consumer: applies Evolution events through the inbound door; receipts many to a D1
// round trip, the rest one by one. A failure retries that event alone.
import type { SQL } from "drizzle-orm";
import { dispatchInBackground } from "../callbacks/dispatch.ts";
import { runBatch } from "../db/batch.ts";
import { database } from "../db/client.ts";
import { errorField, log } from "../observability/log.ts";
import { applyInbound, type InboundJob, receiptStatements } from "../webhooks/apply.ts";
import { inboundJobOf, type WebhookJob, webhookJob } from "../webhooks/evolution-job.ts";

// Jobs per combined D1 batch: at most 3 statements each, well within one invocation's queries.
const RECEIPT_CHUNK = 50;

type Taken = { message: Message<unknown>; job: WebhookJob; inbound: InboundJob };

export async function consumeWebhooks(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const db = database(env.DB);
  const rest: Taken[] = [];
  const receipts: (Taken & { statements: SQL[] })[] = [];
  for (const message of batch.messages) {
    // The queue body is parsed once here, its event's data with it.
    const parsed = webhookJob.safeParse(message.body);
    if (!parsed.success) {
      // A body that does not match Evolution's shape will never apply: keep a log line, drop it.
      log("warn", "malformed webhook job dropped", { queueMessageId: message.id, error: errorField(parsed.error) });
      message.ack();
      continue;
    }
    const inbound = inboundJobOf(parsed.data);
    const statements = receiptStatements(inbound);
    if (statements) receipts.push({ message, job: parsed.data, inbound, statements });
    else rest.push({ message, job: parsed.data, inbound });
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
      rest.push(...chunk);
    }
  }
  for (const { message, job, inbound } of rest) {
    try {
      // Before the ack: the contact's automation lane holds the message once this returns.
      await applyInbound(env, db, inbound);
      await tellGovernor(env, job);
      message.ack();
    } catch (err) {
      log("warn", "webhook apply failed; retrying", { event: job.event, error: errorField(err) });
      message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
    }
  }
  dispatchInBackground(env, ctx);
}

// A closed connection pauses the number's sending, `open` resumes it (the governor decides).
async function tellGovernor(env: Env, job: WebhookJob): Promise<void> {
  if (job.event !== "connection.update") return;
  const { state, statusReason } = job.data;
  if (state !== "open" && state !== "close") return;
  const governor = env.GOVERNORS.get(env.GOVERNORS.idFromName(job.instanceId));
  await governor.report({ kind: "connection", instanceId: job.instanceId, state, statusReason, now: job.receivedAt });
}
