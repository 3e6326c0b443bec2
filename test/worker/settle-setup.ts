// Setup of every Worker test file: before a file ends, wait until the gateway holds no work that is
// due now. A test's last send leaves its lane working after the answer (the hand-off in waitUntil,
// the lane's alarm, the governor, the simulator call, callbacks through the queue). Each of those
// steps is a Durable Object or Worker invocation, and the test runtime loads the Worker's module
// for every invocation through Vitest's RPC: one that starts while Vitest closes the file fails
// with "Closing rpc while 'resolve' was pending", an unhandled error that turns a green run red.
// Waiting on the rows that say "due now" ends each file on a quiet runtime. Work that is due later
// (a retry 60 s away, a scheduled send) is not waited for: its alarm fires long after the file ends.
import { env } from "cloudflare:workers";
import { afterAll } from "vitest";

/** What is due now, by kind: a lane step, a callback delivery, an automation hand-off. */
async function dueWork(now: number) {
  const row = await env.DB.prepare(
    `SELECT
       (SELECT COUNT(*) FROM messages WHERE status = 'processing'
          OR (status IN ('scheduled', 'queued') AND ready_at <= ?1)) AS lanes,
       (SELECT COUNT(*) FROM callback_deliveries WHERE status IN ('pending', 'retrying')
          AND (next_at IS NULL OR next_at <= ?1)) AS callbacks,
       (SELECT COUNT(*) FROM automation_deliveries WHERE status = 'pending') AS automation`,
  )
    .bind(now)
    .first<{ lanes: number; callbacks: number; automation: number }>();
  return row ?? { lanes: 0, callbacks: 0, automation: 0 };
}

afterAll(async () => {
  const started = Date.now();
  for (;;) {
    const due = await dueWork(started);
    if (due.lanes + due.callbacks + due.automation === 0) return;
    // Paced lanes, a hung provider or an open breaker can keep work due for minutes; past this bound
    // the file ends anyway (the work is not the test's to finish, and nothing is asserted here).
    if (Date.now() - started > 10_000) {
      console.warn(`[settle] the file ends with work still due: ${JSON.stringify(due)}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}, 15_000);
