// Parked webhook jobs: the webhooks DLQ consumer writes them to D1 (durable, listable), and an
// operator replays them once the cause (a D1 incident, a bug) is gone. Applying is idempotent,
// so replaying a job that did apply after all changes nothing.
import { z } from "zod";
import type { Db } from "../db/client.ts";
import { database } from "../db/client.ts";
import { parkedWebhooks } from "../db/queries/index.ts";
import { doubling } from "../lanes/backoff.ts";
import { errorField, log } from "../observability/log.ts";
import { applyWebhookJob, webhookJob } from "./evolution-job.ts";

// Whose and which event a parked job is, read loosely: a job of an unexpected shape is parked too.
const parkedLabel = z.object({ tenantId: z.string(), event: z.string() });

export async function parkWebhooks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const db = database(env.DB);
  for (const message of batch.messages) {
    const job = parkedLabel.safeParse(message.body);
    try {
      await parkedWebhooks.park(db, {
        id: message.id,
        tenantId: job.success ? job.data.tenantId : null,
        event: job.success ? job.data.event : null,
        job: message.body,
        attempts: message.attempts,
        parkedAt: Date.now(),
      });
      log("error", "webhook job parked after its retries ran out", { queueMessageId: message.id, event: job.data?.event });
      message.ack();
    } catch (err) {
      // D1 still away: keep it in the DLQ and try again later (max_retries in wrangler.toml).
      log("error", "could not park a webhook job; retrying", { queueMessageId: message.id, error: errorField(err) });
      message.retry({ delaySeconds: doubling(message.attempts, 30, 3600) });
    }
  }
}

export type ParkedView = { id: string; tenantId: string | null; event: string | null; attempts: number; parkedAt: string; lastError?: string };

export async function listParked(db: Db, limit: number): Promise<ParkedView[]> {
  const rows = await parkedWebhooks.waiting(db, limit);
  return rows.map((r) => ({
    id: r.id,
    tenantId: r.tenantId,
    event: r.event,
    attempts: r.attempts,
    parkedAt: new Date(r.parkedAt).toISOString(),
    ...(r.lastError ? { lastError: r.lastError } : {}),
  }));
}

export type ReplayResult = { replayed: { id: string; outcome: string }[]; failed: { id: string; error: string }[] };

/** Applies parked jobs (the oldest first, or the ids given), marking each one replayed once applied.
 *  An inbound message goes to its instance's automation too, as it would have on arrival. */
export async function replayParked(env: Env, db: Db, opts: { ids?: string[]; limit: number }): Promise<ReplayResult> {
  const rows = await parkedWebhooks.waiting(db, opts.limit, opts.ids);
  const result: ReplayResult = { replayed: [], failed: [] };
  for (const row of rows) {
    const job = webhookJob.safeParse(row.job);
    let error: string | undefined;
    if (!job.success) error = `not a webhook job: ${job.error.message.slice(0, 300)}`;
    else {
      try {
        const { outcome } = await applyWebhookJob(env, db, job.data);
        await parkedWebhooks.markReplayed(db, row.id, Date.now());
        result.replayed.push({ id: row.id, outcome });
        continue;
      } catch (err) {
        error = errorField(err);
      }
    }
    await parkedWebhooks.markFailed(db, row.id, error);
    result.failed.push({ id: row.id, error });
  }
  return result;
}

export const countParked = (db: Db): Promise<number> => parkedWebhooks.countWaiting(db);
