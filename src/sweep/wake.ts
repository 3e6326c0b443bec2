// Wake on start: the first event an isolate handles re-arms the lanes that hold pending work.
// Deployed alarms are durable, but a restarted local runtime only fires an object's alarm once
// something touches the object; this makes schedules that fell due while it was down go at once.
import { sql } from "drizzle-orm";
import { database } from "../db/client.ts";
import { errorField, log } from "../observability/log.ts";
import { wakeAutomationLanes } from "../automation/wake.ts";

let woken = false;
const MAX_LANES = 1000;

export function wakeOnce(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }) {
  if (woken) return;
  woken = true;
  ctx.waitUntil(
    Promise.all([wakeLanes(env), wakeAutomationLanes(env)]).catch((err) => {
      woken = false;
      log("warn", "lane wake failed", { error: errorField(err) });
    }),
  );
}

export async function wakeLanes(env: Env): Promise<number> {
  const db = database(env.DB);
  const lanes = await db.all<{ lane_key: string }>(sql`
    SELECT lane_key FROM messages WHERE status IN ('scheduled', 'queued', 'processing')
    GROUP BY lane_key ORDER BY MIN(ready_at) LIMIT ${MAX_LANES}`);
  await Promise.all(lanes.map((l) => env.LANES.get(env.LANES.idFromName(l.lane_key)).wake(l.lane_key)));
  return lanes.length;
}
