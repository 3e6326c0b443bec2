// From Evolution's webhooks to automation: an inbound message of an instance with automation is
// stored, recorded (automation_deliveries) and placed in its contact's AutomationLane in one D1
// round trip and one call to the lane (storeAndOffer). The webhook route does it before answering
// Evolution (applyNow); the webhooks consumer does it for what the route queued (a hand-off that
// failed) before acking the job; the cron offers again what stayed pending (wake.ts).
// Duplicates are harmless: the record is keyed by the inbound id and the lane ignores ids it has
// seen, so a redelivered webhook or job also repairs a hand-off a crash cut short.
import { type SQL, sql } from "drizzle-orm";
import { upsertData } from "../contracts/evolution-webhooks.ts";
import { changes, runBatch } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { reportedNumber } from "../webhooks/inbound.ts";
import { type Outcome, processWebhook, storeInboundStatements, type WebhookJob } from "../webhooks/process.ts";
import { automationLane, automationLaneKey } from "./config.ts";
import { humanSql } from "./handoff.ts";
import type { LaneInfo } from "./handler.ts";
import type { OfferedItem } from "./lane.ts";

/** An inbound message's columns as the automation lane is offered them (also read by replay). */
export type InboundRow = {
  id: string;
  contact: string;
  remote_jid: string;
  participant: string | null;
  push_name: string | null;
  text: string | null;
  media: string | null;
  timestamp: number;
};

type Row = InboundRow & { enabled: number; include_groups: number };

const phone = /^[1-9]\d{7,14}$/;

/** Where replies to this contact go: the group JID; the number as Evolution reported the chat (its
 *  lane is the contact's all the same: lanes are keyed by the chat); a @lid contact's number when
 *  Evolution gave it (contactOf used it); null when there is no address. */
export function replyAddress(contact: string, remoteJid: string): string | null {
  if (remoteJid.endsWith("@g.us")) return remoteJid;
  const reported = reportedNumber(remoteJid);
  if (reported && phone.test(reported)) return reported;
  return phone.test(contact) ? contact : null;
}

/** Stores a messages.upsert and offers it to automation in one D1 round trip (what
 *  processWebhook + offerToAutomation do in two). Other events: processWebhook alone. */
export async function storeAndOffer(env: Env, db: Db, job: WebhookJob): Promise<{ outcome: Outcome; offered: boolean }> {
  if (job.event !== "messages.upsert") return { outcome: await processWebhook(db, job), offered: false };
  const store = storeInboundStatements(job);
  const offer = offerStatements(job) ?? [];
  const results = await runBatch<Row & { status: string | null }>(db, [...store, ...offer]);
  const outcome = changes(results[0]) > 0 ? "stored" : "duplicate";
  if (offer.length === 0) return { outcome, offered: false };
  return { outcome, offered: await handOver(env, job, results.at(-1)?.results[0]) };
}

// The record goes in only for a message the automation takes (switched on, groups only when asked,
// something a handler could answer: reactions and protocol messages carry nothing), and the message
// comes back with its record's status. undefined: not a message automation could take.
function offerStatements(job: WebhookJob): SQL[] | undefined {
  if (job.event !== "messages.upsert") return undefined;
  const data = upsertData.safeParse(job.data);
  if (!data.success || data.data.key.fromMe) return undefined;
  const now = Date.now();
  const inbound = sql`inbound_messages i JOIN automations a ON a.instance_id = i.instance_id`;
  const mine = sql`i.instance_id = ${job.instanceId} AND i.provider_message_id = ${data.data.key.id} AND i.from_me = 0`;
  return [
    // A contact with a person: recorded as `human` (context for the handler later), not offered.
    sql`INSERT INTO automation_deliveries (inbound_id, tenant_id, instance_id, lane_key, contact, status, created_at, updated_at)
      SELECT i.id, ${job.tenantId}, i.instance_id, ${job.tenantId} || ':' || i.instance_id || ':' || i.contact, i.contact,
        CASE WHEN ${humanSql(sql`i.instance_id`, sql`i.contact`, now)} THEN 'human' ELSE 'pending' END, ${now}, ${now}
      FROM ${inbound} WHERE ${mine} AND a.enabled = 1 AND (a.include_groups = 1 OR substr(i.remote_jid, -5) != '@g.us')
        AND (i.text IS NOT NULL OR i.media IS NOT NULL)
      ON CONFLICT DO NOTHING`,
    sql`SELECT i.id, i.contact, i.remote_jid, i.participant, i.push_name, i.text, i.media, i.timestamp, a.enabled, a.include_groups, d.status
      FROM ${inbound} LEFT JOIN automation_deliveries d ON d.inbound_id = i.id WHERE ${mine}`,
  ];
}

async function handOver(env: Env, job: WebhookJob, row: (Row & { status: string | null }) | undefined): Promise<boolean> {
  if (row?.enabled !== 1) return false;
  if (row.remote_jid.endsWith("@g.us") && row.include_groups !== 1) return false;
  if (row.text === null && row.media === null) return false;
  // Delivered, dead or canceled long ago: a very late duplicate, not new work.
  if (row.status !== "pending") return false;
  const laneKey = automationLaneKey(job.tenantId, job.instanceId, row.contact);
  const info: LaneInfo = {
    laneKey,
    tenantId: job.tenantId,
    instanceId: job.instanceId,
    instanceName: job.instanceName,
    contact: row.contact,
    replyTo: replyAddress(row.contact, row.remote_jid),
  };
  await automationLane(env, laneKey).offer(info, [itemOf(row)]);
  return true;
}

export function itemOf(row: Pick<Row, "id" | "text" | "media" | "push_name" | "participant" | "timestamp" | "remote_jid">): OfferedItem {
  let media: Record<string, unknown> | null = null;
  if (row.media) {
    const parsed: unknown = JSON.parse(row.media);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) media = Object.fromEntries(Object.entries(parsed));
  }
  return {
    id: row.id,
    ts: row.timestamp,
    message: {
      id: row.id,
      text: row.text,
      media,
      pushName: row.push_name,
      ...(row.remote_jid.endsWith("@g.us") ? { participant: row.participant } : {}),
      at: new Date(row.timestamp).toISOString(),
    },
  };
}

/** The webhook route's path for an inbound message: stored (and, for an instance with automation,
 *  in its contact's lane) before Evolution gets its 200, no queue. undefined: not an inbound message
 *  (the route queues it). A throw: nothing is lost either, the route queues it and the consumer's
 *  pass is idempotent (the stored message is a duplicate, the record and the lane ignore a second
 *  offer). */
export async function applyNow(env: Env, db: Db, job: WebhookJob): Promise<Outcome | undefined> {
  if (job.event !== "messages.upsert") return undefined;
  // Every inbound message goes through storeAndOffer, automation or not: whether the automation is
  // on is read in the same D1 batch that stores the message, never from a per-isolate memory, which
  // would keep storing messages without offering them after another isolate switched it on.
  return (await storeAndOffer(env, db, job)).outcome;
}
