// Automation's offer: an inbound message of an instance with automation is recorded
// (automation_deliveries) in the same D1 batch that stores it, and placed in its contact's
// AutomationLane. The inbound door (src/webhooks/apply.ts) stores and calls this; the cron offers
// again what stayed pending (wake.ts); a dead letter is offered again on replay.
// Duplicates are harmless: the record is keyed by the inbound id and the lane ignores ids it has
// seen, so a redelivered webhook or job also repairs a hand-off a crash cut short.
import type { SQL } from "drizzle-orm";
import { automationDeliveries } from "../db/queries/index.ts";
import type { Channel } from "../contracts/channels.ts";
import { reportedNumber } from "../messages/contact-key.ts";
import type { InboundMessage } from "../providers/provider.ts";
import { automationLane, automationLaneKey } from "./config.ts";
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

const phone = /^[1-9]\d{7,14}$/;

/** Where replies to this WhatsApp contact go: the group JID; the number as Evolution reported the
 *  chat (its lane is the contact's all the same: lanes are keyed by the chat); a @lid contact's
 *  number when Evolution gave it (contactOf used it); null when there is no address. */
export function replyAddress(contact: string, remoteJid: string): string | null {
  if (remoteJid.endsWith("@g.us")) return remoteJid;
  const reported = reportedNumber(remoteJid);
  if (reported && phone.test(reported)) return reported;
  return phone.test(contact) ? contact : null;
}

type Target = { tenantId: string; instanceId: string; instanceName: string; channel: Channel };

/** The record, for a message the automation takes: switched on, groups only when asked, something a
 *  handler could answer (an edit is recorded, not answered again; reactions and protocol messages
 *  carry nothing). A contact with a person is recorded as `human` (context for the handler later),
 *  not offered. Runs after the statement that stores the message. */
export function offerStatement(t: Target, m: InboundMessage, now: number): SQL {
  const takes = m.kind !== "edit" && (m.text !== null || m.media !== null);
  return automationDeliveries.recordOffer(t, { providerMessageId: m.providerMessageId, isGroup: m.isGroup, takes }, now);
}

/** Places a recorded message in its contact's lane. */
export async function offerToLane(env: Env, t: Target, row: InboundRow, replyTo: string | null): Promise<void> {
  const laneKey = automationLaneKey(t.tenantId, t.instanceId, row.contact);
  const info: LaneInfo = {
    laneKey,
    tenantId: t.tenantId,
    instanceId: t.instanceId,
    instanceName: t.instanceName,
    contact: row.contact,
    replyTo,
    channel: t.channel,
  };
  await automationLane(env, laneKey).offer(info, [itemOf(row)]);
}

export function itemOf(row: Pick<InboundRow, "id" | "text" | "media" | "push_name" | "participant" | "timestamp" | "remote_jid">): OfferedItem {
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
