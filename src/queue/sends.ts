// `sends` consumer: hands each job to its contact's lane. Acked or retried one by one;
// after max_retries the queue moves a message to its dead-letter queue (wrangler.toml).
import { sendJob, type SendJob } from "../contracts/send-job.ts";
import { laneItemOf } from "../messages/accept.ts";
import { errorField, log } from "../observability/log.ts";

export async function consumeSends(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const lanes = new Map<string, { job: SendJob; message: Message<unknown> }[]>();
  for (const message of batch.messages) {
    const parsed = sendJob.safeParse(message.body);
    if (!parsed.success) {
      // A body no lane can use would fail forever: log it and drop it.
      log("error", "malformed sends job dropped", {
        queueMessageId: message.id,
        issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      });
      message.ack();
      continue;
    }
    const group = lanes.get(parsed.data.laneKey) ?? [];
    group.push({ job: parsed.data, message });
    lanes.set(parsed.data.laneKey, group);
  }
  await Promise.all(
    [...lanes].map(async ([laneKey, group]) => {
      try {
        const lane = env.LANES.get(env.LANES.idFromName(laneKey));
        await lane.enqueue(
          laneKey,
          group.map(({ job }) => laneItemOf(job)),
        );
        for (const { message } of group) message.ack();
      } catch (err) {
        log("warn", "lane enqueue failed; retrying", { laneKey, error: errorField(err) });
        for (const { message } of group) message.retry({ delaySeconds: Math.min(60, 2 ** message.attempts) });
      }
    }),
  );
}
