// Setup of every Worker test file: the file ends on a quiet runtime. A test's last send leaves its
// lane working after the answer (the hand-off in waitUntil, the lane's alarm, the governor, the
// provider call, callbacks through the queue). Each of those steps is a Durable Object or Worker
// invocation, and the test runtime loads the Worker's module for every invocation through Vitest's
// RPC: one that starts while Vitest closes the file fails with "Closing rpc while 'resolve' was
// pending", an unhandled error that turns a green run red. So, before the file closes:
// 1. the work due now finishes (rows say so), or stops moving (it waits on something that is not
//    running: a disconnected instance, an open breaker, a paced lane's next slot);
// 2. the objects' alarms are deleted, so what is due later does not start in the closing window.
import { listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, expect } from "vitest";

const QUIET_MS = 1_500;
const BOUND_MS = 20_000;

/** What is due now, by kind, and a mark that moves whenever the gateway records a step. */
async function dueWork(now: number) {
  const row = await env.DB.prepare(
    `SELECT
       (SELECT COUNT(*) FROM messages WHERE status = 'processing'
          OR (status IN ('scheduled', 'queued') AND ready_at <= ?1)) AS lanes,
       (SELECT COUNT(*) FROM callback_deliveries WHERE status IN ('pending', 'retrying')
          AND (next_at IS NULL OR next_at <= ?1)) AS callbacks,
       (SELECT COUNT(*) FROM automation_deliveries WHERE status = 'pending') AS automation,
       (SELECT COALESCE(MAX(seq), 0) FROM outbox_events) || '/' ||
       (SELECT COALESCE(MAX(updated_at), 0) FROM messages) || '/' ||
       (SELECT COALESCE(MAX(updated_at), 0) FROM callback_deliveries) AS mark`,
  )
    .bind(now)
    .first<{ lanes: number; callbacks: number; automation: number; mark: string }>();
  return row ?? { lanes: 0, callbacks: 0, automation: 0, mark: "" };
}

async function settle(file: string) {
  const started = Date.now();
  let mark = "";
  let movedAt = started;
  for (;;) {
    const { mark: now, ...due } = await dueWork(started);
    if (due.lanes + due.callbacks + due.automation === 0) return;
    if (now !== mark) {
      mark = now;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > QUIET_MS) return;
    if (Date.now() - started > BOUND_MS) {
      console.warn(`[settle] ${file} ends with work still moving: ${JSON.stringify(due)}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function deleteAlarms() {
  const namespaces: DurableObjectNamespace[] = [env.LANES, env.GOVERNORS, env.AUTOMATION, env.RATE_LIMITER, env.STREAMS, env.WEB_CHATS];
  for (const namespace of namespaces) {
    for (const id of await listDurableObjectIds(namespace)) {
      await runInDurableObject(namespace.get(id), (_: unknown, state: DurableObjectState) => state.storage.deleteAlarm());
    }
  }
}

afterAll(async () => {
  await settle(expect.getState().testPath ?? "a file");
  await deleteAlarms();
}, BOUND_MS + 10_000);
