// The one inbound door. Whatever comes in from a provider (Evolution's webhooks, Telegram's updates,
// a web chat visitor's frames, a message posted through the older system's API) arrives here as a
// typed job, parsed once on its way in, and is applied: an inbound message is stored with its
// message.received event and, for an instance with automation, recorded and offered to its
// contact's AutomationLane in the same D1 round trip; receipts, send confirmations, connection
// changes and QR codes are written. Automation hangs below this door: it is offered, never asked.
//
// Every step is idempotent, so a redelivery changes nothing: inbound rows are unique by provider id
// (and dedupe key), receipts only move a status forward, connection events only write when the
// state really changes.
import type { SQL } from "drizzle-orm";
import { offerStatement, offerToLane } from "../automation/offer.ts";
import type { Channel } from "../contracts/channels.ts";
import { changes, firstRow, runBatch, runNamed } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { inboundMessages, instances, messages, outboxEvents } from "../db/queries/index.ts";
import { newId } from "../ids.ts";
import { type ReceiptStatus, receiptByProviderStatements } from "../messages/receipts.ts";
import { writeEvent } from "../outbox/write.ts";
import type { InboundMessage } from "../providers/provider.ts";

export type InboundTarget = { tenantId: string; instanceId: string; instanceName: string; channel: Channel };

/** One thing a provider told the gateway, already read into the gateway's terms. */
export type InboundJob =
  | { kind: "message"; target: InboundTarget; message: InboundMessage; receivedAt: number }
  /** A receipt for a message the gateway sent, by the provider's id of it. */
  | { kind: "receipt"; instanceId: string; providerMessageId: string; status: ReceiptStatus; at: number }
  /** The provider handed a sent message on (Evolution's send.message): a history line, once. */
  | { kind: "send_confirmed"; instanceId: string; providerMessageId: string; at: number }
  | { kind: "connection"; tenantId: string; instanceId: string; instanceName: string; state: string; statusReason: number | null; at: number }
  | { kind: "qr_code"; instanceId: string; base64: string; count: number | null; at: number }
  /** Nothing to apply (a receipt the gateway does not track, a message the phone itself sent…). */
  | { kind: "ignored" };

export type Outcome = "stored" | "duplicate" | "applied" | "parked" | "ignored";

/** `id`: the stored inbound message's id (the first one's, for a duplicate); `offered`: it went to
 *  the contact's automation lane. */
export type Applied = { outcome: Outcome; id?: string; offered: boolean };

export async function applyInbound(env: Env, db: Db, job: InboundJob): Promise<Applied> {
  switch (job.kind) {
    case "message":
      return storeAndOffer(env, db, job.target, job.message, job.receivedAt);
    case "receipt":
    case "send_confirmed":
      return { outcome: await applyReceipt(db, job), offered: false };
    case "connection": {
      const [update] = await runBatch(db, connectionStatements(job));
      return { outcome: changes(update) > 0 ? "applied" : "duplicate", offered: false };
    }
    case "qr_code":
      return { outcome: changes(await db.run(qrCodeStatement(job))) > 0 ? "applied" : "duplicate", offered: false };
    case "ignored":
      return { outcome: "ignored", offered: false };
  }
}

/** Stores a provider's inbound messages (and offers them to automation) before the caller answers
 *  the provider, one after the other. */
export async function storeInbound(env: Env, db: Db, target: InboundTarget, inbound: InboundMessage[], receivedAt: number) {
  const out: (Applied & { dedupeKey: string; outcome: "stored" | "duplicate" })[] = [];
  for (const message of inbound) {
    const applied = await storeAndOffer(env, db, target, message, receivedAt);
    out.push({ ...applied, outcome: applied.outcome === "stored" ? "stored" : "duplicate", dedupeKey: message.dedupeKey ?? message.providerMessageId });
  }
  return out;
}

// The message, its event, the automation record (when the automation takes it) and the stored row
// with its record's status: one D1 round trip, then the lane.
async function storeAndOffer(env: Env, db: Db, t: InboundTarget, m: InboundMessage, receivedAt: number): Promise<Applied> {
  const now = Date.now();
  const r = await runNamed(db, {
    store: storeStatements(t, m, receivedAt),
    // The phone's own messages (Evolution's fromMe) are kept, never answered.
    offer: m.fromMe ? [] : [offerStatement(t, m, now)],
    row: inboundMessages.storedWithRecord(t.instanceId, m.providerMessageId),
  });
  const outcome = changes(r.store[0]) > 0 ? "stored" : "duplicate";
  const found = firstRow<unknown>(r.row);
  const row = found === undefined ? undefined : inboundMessages.storedWithRecordRow.parse(found);
  // Delivered, dead, canceled or with a person: not new work. A pending one is offered again (the
  // lane ignores ids it has), which repairs a hand-off a crash cut short.
  const offered = !m.fromMe && row?.status === "pending" && row.enabled === 1;
  if (row && offered) await offerToLane(env, t, row, m.replyTo);
  return { outcome, id: row?.id, offered };
}

/** The inbound message and its message.received event; the first statement's changes say whether
 *  it was new. */
export function storeStatements(t: InboundTarget, m: InboundMessage, receivedAt: number): SQL[] {
  const id = newId("in");
  const media = m.media ? JSON.stringify(m.media) : null;
  const metadata = m.metadata ? JSON.stringify(m.metadata) : null;
  const fromMe = m.fromMe === true;
  return [
    inboundMessages.store({
      id,
      tenantId: t.tenantId,
      instanceId: t.instanceId,
      instanceName: t.instanceName,
      channel: t.channel,
      contact: m.contact,
      remoteJid: m.chat,
      participant: m.participant,
      providerMessageId: m.providerMessageId,
      fromMe,
      pushName: m.pushName,
      messageType: m.messageType,
      text: m.text,
      media,
      timestamp: m.timestamp,
      receivedAt,
      dedupeKey: m.dedupeKey,
      metadata,
    }),
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
        fromMe,
        pushName: m.pushName,
        messageType: m.messageType,
        text: m.text,
        media: m.media,
        timestamp: new Date(m.timestamp).toISOString(),
      },
      source: outboxEvents.whenChangedJustBefore,
    }),
  ];
}

/** The statements of a receipt or a send confirmation: the webhooks consumer runs many of them in
 *  one D1 round trip. undefined: not such a job. */
export function receiptStatements(job: InboundJob): SQL[] | undefined {
  if (job.kind === "send_confirmed") return [confirmSendStatement(job)];
  if (job.kind === "receipt") return receiptByProviderStatements(job.instanceId, job.providerMessageId, job.status, job.at);
  return undefined;
}

async function applyReceipt(db: Db, job: Extract<InboundJob, { kind: "receipt" | "send_confirmed" }>): Promise<Outcome> {
  if (job.kind === "send_confirmed") return changes(await db.run(confirmSendStatement(job))) > 0 ? "applied" : "duplicate";
  // The transitions (a read may step through delivered first), then the parking insert, last.
  const statements = receiptByProviderStatements(job.instanceId, job.providerMessageId, job.status, job.at);
  const parking = statements.pop();
  const r = await runNamed(db, { transitions: statements, parking: parking ? [parking] : [] });
  if (r.transitions.some((x) => changes(x) > 0)) return "applied";
  return changes(r.parking[0]) > 0 ? "parked" : "duplicate";
}

// The provider handed the message to WhatsApp; the provider id is already ours from the send's answer.
function confirmSendStatement(job: { instanceId: string; providerMessageId: string; at: number }): SQL {
  return messages.confirmSend(job.instanceId, job.providerMessageId, job.at);
}

/** A state change and its instance.status event; an open connection no longer needs its QR code. */
export function connectionStatements(c: {
  tenantId: string;
  instanceId: string;
  instanceName: string;
  state: string;
  statusReason: number | null;
  at: number;
}) {
  return [
    instances.changeState(c.instanceId, c.state, c.at),
    writeEvent("instance.status", {
      tenantId: c.tenantId,
      occurredAt: c.at,
      data: { instance: c.instanceName, channel: "whatsapp", state: c.state, statusReason: c.statusReason },
      source: outboxEvents.whenChangedJustBefore,
    }),
  ];
}

// The QR code is kept on the instance only (never in the outbox: whoever holds it can link the number).
// A late refresh never overwrites a newer code, nor revives one on a connected number.
function qrCodeStatement(job: Extract<InboundJob, { kind: "qr_code" }>): SQL {
  return instances.refreshQrCode(job.instanceId, { base64: job.base64, count: job.count, at: job.at });
}
