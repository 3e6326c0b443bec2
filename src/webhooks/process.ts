// Applying one Evolution webhook event. Every step is idempotent, so a duplicate delivery or a
// queue redelivery changes nothing: inbound rows are unique by provider id, receipts only move
// a status forward, and connection events only write when the state really changes.
import { type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import { connectionData, qrcodeData, sendMessageData, updateData, upsertData } from "../contracts/evolution-webhooks.ts";
import { changes, runBatch } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { newId } from "../ids.ts";
import { writeEvent } from "../outbox/write.ts";
import { receiptByProviderStatements, receiptStatus } from "../messages/receipts.ts";
import { contactOf, mediaOf, textOf, timestampOf } from "./inbound.ts";

export const webhookJob = z.object({
  tenantId: z.string(),
  instanceId: z.string(),
  instanceName: z.string(),
  event: z.string(),
  data: z.unknown(),
  receivedAt: z.number(),
});
export type WebhookJob = z.infer<typeof webhookJob>;

export type Outcome = "stored" | "duplicate" | "applied" | "parked" | "ignored";

export async function processWebhook(db: Db, job: WebhookJob): Promise<Outcome> {
  switch (job.event) {
    case "messages.upsert":
      return storeInbound(db, job);
    case "messages.update":
      return applyReceipt(db, job);
    case "send.message":
      return confirmSend(db, job);
    case "connection.update":
      return updateConnection(db, job);
    case "qrcode.updated":
      return storeQrCode(db, job);
    default:
      return "ignored";
  }
}

async function storeInbound(db: Db, job: WebhookJob): Promise<Outcome> {
  const [inserted] = await runBatch(db, storeInboundStatements(job));
  return changes(inserted) > 0 ? "stored" : "duplicate";
}

/** The inbound message and its message.received event; the first statement's changes say whether
 *  it was new. Automation runs these in the same D1 batch as its hand-off (offer.ts). */
export function storeInboundStatements(job: WebhookJob): SQL[] {
  const data = upsertData.parse(job.data);
  const id = newId("in");
  const at = timestampOf(data.messageTimestamp, job.receivedAt);
  const contact = contactOf(data.key);
  const text = textOf(data.message ?? undefined);
  const media = mediaOf(data.message ?? undefined);
  const participant = data.key.participantAlt ?? data.key.participant ?? null;
  return [
    sql`INSERT INTO inbound_messages (id, tenant_id, instance_id, instance_name, contact, remote_jid, participant, provider_message_id,
        from_me, push_name, message_type, text, media, timestamp, received_at)
      VALUES (${id}, ${job.tenantId}, ${job.instanceId}, ${job.instanceName}, ${contact}, ${data.key.remoteJid}, ${participant}, ${data.key.id},
        ${data.key.fromMe ? 1 : 0}, ${data.pushName ?? null}, ${data.messageType}, ${text ?? null}, ${media ? JSON.stringify(media) : null}, ${at}, ${job.receivedAt})
      ON CONFLICT (instance_id, provider_message_id) DO NOTHING`,
    writeEvent("message.received", {
      tenantId: job.tenantId,
      occurredAt: job.receivedAt,
      data: {
        id,
        instance: job.instanceName,
        channel: "whatsapp",
        contact,
        remoteJid: data.key.remoteJid,
        participant,
        providerMessageId: data.key.id,
        fromMe: data.key.fromMe,
        pushName: data.pushName ?? null,
        messageType: data.messageType,
        text: text ?? null,
        media: media ?? null,
        timestamp: new Date(at).toISOString(),
      },
      source: sql`WHERE changes() > 0`,
    }),
  ];
}

/** The statements that apply a receipt or a send confirmation, or undefined for an event that
 *  changes nothing. One D1 round trip each; the webhooks consumer batches a queue batch's worth. */
export function receiptJobStatements(job: WebhookJob): SQL[] | undefined {
  if (job.event === "send.message") return [confirmSendStatement(job)];
  if (job.event !== "messages.update") return undefined;
  const data = updateData.parse(job.data);
  const status = receiptStatus(data.status ?? "");
  // Receipts on messages the contact sent us (fromMe false), and PENDING/SERVER_ACK, change nothing here.
  if (!status || data.fromMe === false) return undefined;
  return receiptByProviderStatements(job.instanceId, data.keyId, status, job.receivedAt);
}

async function applyReceipt(db: Db, job: WebhookJob): Promise<Outcome> {
  const statements = receiptJobStatements(job);
  if (!statements) return "ignored";
  // The transitions (a read may step through delivered first), then the parking insert, last.
  const results = await runBatch(db, statements);
  const parked = results.at(-1);
  if (results.slice(0, -1).some((r) => changes(r) > 0)) return "applied";
  return parked && changes(parked) > 0 ? "parked" : "duplicate";
}

const SEND_CONFIRMED = "send.message confirmed by Evolution";

function confirmSendStatement(job: WebhookJob): SQL {
  const data = sendMessageData.parse(job.data);
  // Evolution handed the message to WhatsApp; the provider id is already ours from the send's answer.
  return sql`UPDATE messages
      SET history = json_insert(history, '$[#]', json_object('status', status, 'at', ${job.receivedAt}, 'attempt', NULL, 'detail', ${SEND_CONFIRMED}))
      WHERE instance_id = ${job.instanceId} AND provider_message_id = ${data.key.id}
        AND NOT EXISTS (SELECT 1 FROM json_each(messages.history) WHERE json_extract(value, '$.detail') = ${SEND_CONFIRMED})`;
}

async function confirmSend(db: Db, job: WebhookJob): Promise<Outcome> {
  const row = await db.run(confirmSendStatement(job));
  return changes(row) > 0 ? "applied" : "duplicate";
}

async function updateConnection(db: Db, job: WebhookJob): Promise<Outcome> {
  const data = connectionData.parse(job.data);
  const [update] = await runBatch(db, connectionStatements({ ...job, state: data.state, statusReason: data.statusReason ?? null, at: job.receivedAt }));
  return changes(update) > 0 ? "applied" : "duplicate";
}

// A state change and its instance.status event; an open connection no longer needs its QR code.
export function connectionStatements(c: {
  tenantId: string;
  instanceId: string;
  instanceName: string;
  state: string;
  statusReason: number | null;
  at: number;
}) {
  const clearQr = c.state === "open" ? sql`, qr_code = NULL, qr_count = NULL, qr_updated_at = NULL` : sql``;
  return [
    sql`UPDATE instances SET state = ${c.state}, state_changed_at = ${c.at}, updated_at = ${c.at} ${clearQr}
      WHERE id = ${c.instanceId} AND state != ${c.state}`,
    writeEvent("instance.status", {
      tenantId: c.tenantId,
      occurredAt: c.at,
      data: { instance: c.instanceName, channel: "whatsapp", state: c.state, statusReason: c.statusReason },
      source: sql`WHERE changes() > 0`,
    }),
  ];
}

// The QR code is kept on the instance only (never in the outbox: whoever holds it can link the number).
// A late refresh never overwrites a newer code, nor revives one on a connected number.
async function storeQrCode(db: Db, job: WebhookJob): Promise<Outcome> {
  const { qrcode } = qrcodeData.parse(job.data);
  const row = await db.run(sql`UPDATE instances SET qr_code = ${qrcode.base64}, qr_count = ${qrcode.count ?? null}, qr_updated_at = ${job.receivedAt}
    WHERE id = ${job.instanceId} AND state != 'open' AND COALESCE(qr_updated_at, 0) <= ${job.receivedAt}`);
  return changes(row) > 0 ? "applied" : "duplicate";
}
