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
import { sql } from "drizzle-orm";
import { changes, runBatch } from "../db/batch.ts";
import { database, type Db } from "../db/client.ts";
import { errorField, log } from "../observability/log.ts";
import { automationLane } from "./config.ts";
import { handBackStatements, humanSql } from "./handoff.ts";
import type { LaneInfo } from "./handler.ts";
import { channelOf } from "../providers/registry.ts";
import { type InboundRow, itemOf, replyAddress } from "./offer.ts";

const MAX_LANES = 100;

export async function wakeAutomationLanes(env: Env): Promise<number> {
  const lanes = await database(env.DB).all<{ lane_key: string }>(
    sql`SELECT DISTINCT lane_key FROM automation_deliveries WHERE status = 'pending' LIMIT ${MAX_LANES}`,
  );
  await Promise.all(lanes.map((l) => automationLane(env, l.lane_key).kick()));
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

type PendingRow = InboundRow & { lane_key: string; tenant_id: string; instance_id: string; instance_name: string; channel: string };

const pendingColumns = sql`d.lane_key, d.tenant_id, i.instance_id, i.instance_name, i.channel, i.id, i.contact, i.remote_jid, i.participant, i.push_name,
  i.text, i.media, i.timestamp`;

export async function catchUpAutomation(env: Env, now = Date.now()): Promise<{ recorded: number; offered: number; lanes: number; handedBack: number }> {
  const db = database(env.DB);
  // Automations outermost (CROSS JOIN), each one's window through inbound_instance_received.
  // Received while the automation was on as it is now (after its last change, so never while it was
  // off), something a handler can answer, and without a record.
  const recorded = await db.all<{ inbound_id: string }>(sql`
    INSERT OR IGNORE INTO automation_deliveries (inbound_id, tenant_id, instance_id, lane_key, contact, status, created_at, updated_at)
    SELECT i.id, i.tenant_id, i.instance_id, i.tenant_id || ':' || i.instance_id || ':' || i.contact, i.contact,
      CASE WHEN ${humanSql(sql`i.instance_id`, sql`i.contact`, now)} THEN 'human' ELSE 'pending' END, ${now}, ${now}
    FROM automations a CROSS JOIN inbound_messages i ON i.instance_id = a.instance_id
      AND i.received_at >= MAX(a.updated_at, ${now - CATCH_UP_WINDOW_MS}) AND i.received_at < ${now - CATCH_UP_GRACE_MS}
    WHERE a.enabled = 1 AND i.from_me = 0 AND (a.include_groups = 1 OR (substr(i.remote_jid, -5) != '@g.us' AND NOT (i.channel = 'telegram' AND substr(i.remote_jid, 1, 1) = '-')))
      AND (i.text IS NOT NULL OR i.media IS NOT NULL) AND i.message_type != 'edited_message'
      AND NOT EXISTS (SELECT 1 FROM automation_deliveries d WHERE d.inbound_id = i.id)
    LIMIT ${RECORD_PAGE}
    RETURNING inbound_id`);
  if (recorded.length > 0) log("warn", "inbound messages never offered to automation; offering them now", { count: recorded.length });
  const fresh =
    recorded.length === 0
      ? []
      : await db.all<PendingRow>(sql`SELECT ${pendingColumns} FROM automation_deliveries d JOIN inbound_messages i ON i.id = d.inbound_id
        WHERE d.inbound_id IN (${sql.join(
          recorded.map((r) => sql`${r.inbound_id}`),
          sql`, `,
        )})`);
  // Through automation_deliveries_instance (instance, status, updated_at), for switched-on automations.
  const stale = await db.all<PendingRow>(sql`
    SELECT ${pendingColumns} FROM automations a
    CROSS JOIN automation_deliveries d ON d.instance_id = a.instance_id AND d.status = 'pending' AND d.updated_at < ${now - STALE_PENDING_MS}
    JOIN inbound_messages i ON i.id = d.inbound_id
    WHERE a.enabled = 1 ORDER BY d.updated_at LIMIT ${OFFER_PAGE}`);
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
async function touch(db: Db, ids: string[], now: number): Promise<void> {
  for (let k = 0; k < ids.length; k += 50) {
    await db.run(
      sql`UPDATE automation_deliveries SET updated_at = ${now} WHERE status = 'pending' AND inbound_id IN (${sql.join(
        ids.slice(k, k + 50).map((id) => sql`${id}`),
        sql`, `,
      )})`,
    );
  }
}

// Through conversation_handoffs_until. Each hand-back is conditional on the phase's until, so a lane
// recording it at the same time writes it once.
async function handBackOverdue(db: Db, now: number): Promise<number> {
  const overdue = await db.all<{ instance_id: string; contact: string; tenant_id: string; until: number; name: string }>(sql`
    SELECT h.instance_id, h.contact, h.tenant_id, h.until, n.name FROM conversation_handoffs h JOIN instances n ON n.id = h.instance_id
    WHERE h.until < ${now - OVERDUE_HANDOFF_MS} LIMIT ${HANDOFF_PAGE}`);
  let handedBack = 0;
  for (const h of overdue) {
    const conversation = { tenantId: h.tenant_id, instanceId: h.instance_id, instanceName: h.name, contact: h.contact };
    const [event] = await runBatch(db, handBackStatements(conversation, { by: "timeout", now, until: h.until }));
    handedBack += changes(event);
  }
  if (handedBack > 0) log("warn", "hand-offs past their until handed back by the cron", { count: handedBack });
  return handedBack;
}
