// Waking lanes whose alarm may not fire on its own.
// - Local runtime only (WAKE_LANES_ON_START=true, set by `npm start` and the end-to-end runs): a
//   restarted `wrangler dev` fires an object's alarm only once something touches the object, so the
//   first event after a start re-arms the lanes that hold pending work. Deployed alarms are durable:
//   production never does this per isolate (a deploy or scale-out would flood D1 and the lanes).
// - The cron (every environment): lanes with a message `processing` untouched for a long time are
//   woken, a bounded few per run, as a safety net under the alarms.
import { config } from "../config.ts";
import { database } from "../db/client.ts";
import { messages } from "../db/queries/index.ts";
import { errorField, log } from "../observability/log.ts";
import { wakeAutomationLanes } from "../automation/wake.ts";

let woken = false;
const START_LANES = 100;
const CRON_LANES = 20;
const CONCURRENCY = 10;

/** True when this call started the wake (once per isolate, and only where configured). */
export function wakeOnce(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }): boolean {
  if (woken || !config(env).WAKE_LANES_ON_START) return false;
  woken = true;
  ctx.waitUntil(
    Promise.all([wakeLanes(env), wakeAutomationLanes(env)]).catch((err) => {
      woken = false;
      log("warn", "lane wake failed", { error: errorField(err) });
    }),
  );
  return true;
}

/** Lanes with pending work, earliest due first (bounded). */
export async function wakeLanes(env: Env, limit = START_LANES): Promise<number> {
  const lanes = await messages.activeLanes(database(env.DB), limit);
  await wake(env, lanes);
  return lanes.length;
}

/** From the cron: lanes whose message has sat in `processing` far longer than any retry waits
 *  (through messages_active_ready; a message was ready before it was last updated). */
export async function wakeStuckLanes(env: Env, now = Date.now()): Promise<number> {
  const threshold = now - 2 * config(env).STUCK_QUEUED_MINUTES * 60_000;
  const lanes = await messages.stuckLanes(database(env.DB), threshold, CRON_LANES);
  await wake(env, lanes);
  return lanes.length;
}

async function wake(env: Env, lanes: string[]) {
  for (let i = 0; i < lanes.length; i += CONCURRENCY) {
    await Promise.all(lanes.slice(i, i + CONCURRENCY).map((laneKey) => env.LANES.get(env.LANES.idFromName(laneKey)).wake(laneKey)));
  }
}
