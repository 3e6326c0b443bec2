// Inbound messages of providers behind the seam (Telegram, the web chat) and those posted through
// the older system's POST /api/messages: each is stored with its message.received event and, for an
// instance with automation, recorded for it and placed in its contact's AutomationLane, in one D1
// round trip before the provider gets its 2xx. Keyed by the provider's dedupe key (Telegram: the
// update_id), so a redelivery stores and offers nothing new.
import { type SQL, sql } from "drizzle-orm";
import { automationLane, automationLaneKey } from "../automation/config.ts";
import type { LaneInfo } from "../automation/handler.ts";
import { type InboundRow, itemOf } from "../automation/offer.ts";
import type { Channel } from "../contracts/channels.ts";
import { changes, runBatch } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { newId } from "../ids.ts";
import { writeEvent } from "../outbox/write.ts";
import type { InboundMessage } from "../providers/provider.ts";

export type InboundTarget = { tenantId: string; instanceId: string; instanceName: string; channel: Channel };

function storeStatements(t: InboundTarget, m: InboundMessage, receivedAt: number): SQL[] {
  const id = newId("in");
  const media = m.media ? JSON.stringify(m.media) : null;
  const metadata = m.metadata ? JSON.stringify(m.metadata) : null;
  return [
    // No conflict target: the dedupe key and the provider id are both unique per instance.
    sql`INSERT INTO inbound_messages (id, tenant_id, instance_id, instance_name, channel, contact, remote_jid, participant, provider_message_id,
        from_me, push_name, message_type, text, media, timestamp, received_at, dedupe_key, metadata)
      VALUES (${id}, ${t.tenantId}, ${t.instanceId}, ${t.instanceName}, ${t.channel}, ${m.contact}, ${m.chat}, ${m.participant}, ${m.providerMessageId},
        0, ${m.pushName}, ${m.messageType}, ${m.text}, ${media}, ${m.timestamp}, ${receivedAt}, ${m.dedupeKey}, ${metadata})
      ON CONFLICT DO NOTHING`,
    writeEvent("message.received", {
      tenantId: t.tenantId,
      occurredAt: receivedAt,
      data: {
        id,
        instance: t.instanceName,
        channel: t.channel,
        contact: m.contact,
        remoteJid: m.chat,
        participant: m.participant,
        providerMessageId: m.providerMessageId,
        fromMe: false,
        pushName: m.pushName,
        messageType: m.messageType,
        text: m.text,
        media: m.media,
        timestamp: new Date(m.timestamp).toISOString(),
      },
      source: sql`WHERE changes() > 0`,
    }),
  ];
}

type Offered = InboundRow & { enabled: number | null; include_groups: number | null; status: string | null };

// The automation record goes in only for what a handler can answer: a new message or a button press
// (an edit is recorded, not answered again), with text or media, from a group only when asked.
function offerStatements(t: InboundTarget, m: InboundMessage, now: number): SQL[] {
  const inbound = sql`inbound_messages i JOIN automations a ON a.instance_id = i.instance_id`;
  const mine = sql`i.instance_id = ${t.instanceId} AND i.dedupe_key = ${m.dedupeKey}`;
  const takes = m.kind !== "edit" && (m.text !== null || m.media !== null) && m.replyTo !== null;
  return [
    sql`INSERT INTO automation_deliveries (inbound_id, tenant_id, instance_id, lane_key, contact, status, created_at, updated_at)
      SELECT i.id, ${t.tenantId}, i.instance_id, ${t.tenantId} || ':' || i.instance_id || ':' || i.contact, i.contact, 'pending', ${now}, ${now}
      FROM ${inbound} WHERE ${mine} AND a.enabled = 1 AND ${takes ? 1 : 0} = 1 AND (a.include_groups = 1 OR ${m.isGroup ? 0 : 1} = 1)
      ON CONFLICT DO NOTHING`,
    // The stored row whether or not the instance has automation: its id is what the caller reports.
    sql`SELECT i.id, i.contact, i.remote_jid, i.participant, i.push_name, i.text, i.media, i.timestamp, a.enabled, a.include_groups, d.status
      FROM inbound_messages i LEFT JOIN automations a ON a.instance_id = i.instance_id
      LEFT JOIN automation_deliveries d ON d.inbound_id = i.id WHERE ${mine}`,
  ];
}

/** `id`: the stored inbound message's id (the first one's, for a duplicate). */
export type Stored = { dedupeKey: string; id: string | undefined; outcome: "stored" | "duplicate"; offered: boolean };

/** Stores the messages (and offers them to automation) before the caller answers the provider. */
export async function storeChannelInbound(env: Env, db: Db, t: InboundTarget, inbound: InboundMessage[], receivedAt: number): Promise<Stored[]> {
  const out: Stored[] = [];
  for (const m of inbound) {
    const store = storeStatements(t, m, receivedAt);
    const offer = offerStatements(t, m, Date.now());
    const results = await runBatch<Offered>(db, [...store, ...offer]);
    const outcome = changes(results[0]) > 0 ? "stored" : "duplicate";
    const row = results.at(-1)?.results[0];
    // Delivered, dead or canceled: a very late duplicate, not new work. A pending one is offered
    // again (the lane ignores ids it has), which repairs a hand-off a crash cut short.
    const offered = row?.status === "pending" && row.enabled === 1;
    if (row && offered) {
      const laneKey = automationLaneKey(t.tenantId, t.instanceId, row.contact);
      const info: LaneInfo = {
        laneKey,
        tenantId: t.tenantId,
        instanceId: t.instanceId,
        instanceName: t.instanceName,
        contact: row.contact,
        replyTo: m.replyTo,
        channel: t.channel,
      };
      await automationLane(env, laneKey).offer(info, [itemOf(row)]);
    }
    out.push({ dedupeKey: m.dedupeKey, id: row?.id, outcome, offered });
  }
  return out;
}
