// Automation lanes that may not run on their own.
// - After a runtime restart (local only): lanes that hold waiting messages run again (a restarted
//   local runtime fires an object's alarm only once something touches the object).
// - The cron (every environment), the safety net under the hand-off and the alarms:
//   an inbound message stored while its automation was on but never recorded for it (a hand-off
//   cut off between the store and the record by an older code path) is recorded and offered; a
//   record still pending long after its last change is offered to its lane again and the lane is
//   kicked (a lost hand-off, a lost alarm). Offering is idempotent: a lane ignores ids it holds.
//   A contact handed to a person whose until passed a while ago without its lane recording the
//   hand-back (its timer never armed) is handed back now, with its event.
import { changes, runBatch } from "../db/batch.ts";
import { database, type Db } from "../db/client.ts";
import { automationDeliveries, conversationHandoffs } from "../db/queries/index.ts";
import { errorField, log } from "../observability/log.ts";
import { automationLane } from "./config.ts";
import { handBackStatements } from "./handoff.ts";
import type { LaneInfo } from "./handler.ts";
import { channelOf } from "../providers/registry.ts";
import { itemOf, replyAddress } from "./offer.ts";

const MAX_LANES = 100;

export async function wakeAutomationLanes(env: Env): Promise<number> {
  const lanes = await automationDeliveries.lanesWithPending(database(env.DB), MAX_LANES);
  await Promise.all(lanes.map((laneKey) => automationLane(env, laneKey).kick()));
  return lanes.length;
}

// Inbound messages younger than this are still on their way (the route, the queue's retries).
const CATCH_UP_GRACE_MS = 60_000;
// How far back the cron looks for never-recorded messages: each run covers the last hour, so a
// message is looked at by many runs before it leaves the window.
const CATCH_UP_WINDOW_MS = 3_600_000;
// A pending record untouched this long is offered again (a lane's retries and answers touch it).
export const STALE_PENDING_MS = 10 * 60_000;
// Per run: records written, records offered again (the oldest first), lanes called at once.
const RECORD_PAGE = 50;
const OFFER_PAGE = 200;
const CONCURRENCY = 10;
// A hand-off's until this far behind: its lane's alarm did not record the hand-back; the cron does.
const OVERDUE_HANDOFF_MS = 60_000;
const HANDOFF_PAGE = 50;

type PendingRow = automationDeliveries.PendingRow;

export async function catchUpAutomation(env: Env, now = Date.now()): Promise<{ recorded: number; offered: number; lanes: number; handedBack: number }> {
  const db = database(env.DB);
  // Received while the automation was on as it is now, and without a record.
  const recorded = await automationDeliveries.recordNeverOffered(db, now, {
    since: now - CATCH_UP_WINDOW_MS,
    before: now - CATCH_UP_GRACE_MS,
    limit: RECORD_PAGE,
  });
  if (recorded.length > 0) log("warn", "inbound messages never offered to automation; offering them now", { count: recorded.length });
  const fresh = recorded.length === 0 ? [] : await automationDeliveries.withInbound(db, recorded);
  const stale = await automationDeliveries.stalePending(db, now - STALE_PENDING_MS, OFFER_PAGE);
  const lanes = new Map<string, PendingRow[]>();
  for (const row of [...fresh, ...stale]) lanes.set(row.lane_key, [...(lanes.get(row.lane_key) ?? []), row]);
  const offered: string[] = [];
  const entries = [...lanes.values()];
  for (let k = 0; k < entries.length; k += CONCURRENCY) {
    await Promise.all(
      entries.slice(k, k + CONCURRENCY).map(async (rows) => {
        try {
          await offerAgain(env, rows);
          offered.push(...rows.map((r) => r.id));
        } catch (err) {
          log("warn", "automation catch-up could not reach a lane", { laneKey: rows[0]?.lane_key, error: errorField(err) });
        }
      }),
    );
  }
  await touch(db, offered, now);
  return { recorded: recorded.length, offered: offered.length, lanes: lanes.size, handedBack: await handBackOverdue(db, now) };
}

// Offered (a no-op for what the lane holds), then kicked: a lane whose alarm was lost runs again.
async function offerAgain(env: Env, rows: PendingRow[]): Promise<void> {
  const first = rows[0];
  if (!first) return;
  const info: LaneInfo = {
    laneKey: first.lane_key,
    tenantId: first.tenant_id,
    instanceId: first.instance_id,
    instanceName: first.instance_name,
    contact: first.contact,
    // A Telegram chat is answered at its id; a WhatsApp contact as Evolution reported it.
    replyTo: channelOf(first.channel) === "whatsapp" ? replyAddress(first.contact, first.remote_jid) : first.contact,
    channel: channelOf(first.channel),
  };
  const lane = automationLane(env, first.lane_key);
  await lane.offer(info, rows.map(itemOf));
  await lane.kick();
}

// The next runs take up other records first; these come round again after STALE_PENDING_MS.
function touch(db: Db, ids: string[], now: number): Promise<void> {
  return automationDeliveries.touchPending(db, ids, now);
}

// Through conversation_handoffs_until. Each hand-back is conditional on the phase's until, so a lane
// recording it at the same time writes it once.
async function handBackOverdue(db: Db, now: number): Promise<number> {
  const overdue = await conversationHandoffs.overdue(db, now - OVERDUE_HANDOFF_MS, HANDOFF_PAGE);
  let handedBack = 0;
  for (const h of overdue) {
    const conversation = { tenantId: h.tenant_id, instanceId: h.instance_id, instanceName: h.name, contact: h.contact };
    const [event] = await runBatch(db, handBackStatements(conversation, { by: "timeout", now, until: h.until }));
    handedBack += changes(event);
  }
  if (handedBack > 0) log("warn", "hand-offs past their until handed back by the cron", { count: handedBack });
  return handedBack;
}
