// An Evolution webhook event as the route takes it in and the webhooks queue carries it: parsed once
// into its event's shape (a queue body is parsed again at the consumer, as every boundary is), then
// read into the inbound door's terms (apply.ts).
import { z } from "zod";
import { connectionData, qrcodeData, sendMessageData, updateData, upsertData } from "../contracts/evolution-webhooks.ts";
import type { Db } from "../db/client.ts";
import { receiptStatus } from "../messages/receipts.ts";
import { type Applied, applyInbound, type InboundJob } from "./apply.ts";
import { evolutionMessage } from "./inbound.ts";

const ids = { tenantId: z.string(), instanceId: z.string(), instanceName: z.string(), receivedAt: z.number() };

export const webhookJob = z.discriminatedUnion("event", [
  z.object({ ...ids, event: z.literal("messages.upsert"), data: upsertData }),
  z.object({ ...ids, event: z.literal("messages.update"), data: updateData }),
  z.object({ ...ids, event: z.literal("send.message"), data: sendMessageData }),
  z.object({ ...ids, event: z.literal("connection.update"), data: connectionData }),
  z.object({ ...ids, event: z.literal("qrcode.updated"), data: qrcodeData }),
]);
export type WebhookJob = z.infer<typeof webhookJob>;

/** What an Evolution event means to the gateway. */
export function inboundJobOf(job: WebhookJob): InboundJob {
  const at = job.receivedAt;
  switch (job.event) {
    case "messages.upsert":
      return {
        kind: "message",
        target: { tenantId: job.tenantId, instanceId: job.instanceId, instanceName: job.instanceName, channel: "whatsapp" },
        message: evolutionMessage(job.data, at),
        receivedAt: at,
      };
    case "messages.update": {
      const status = receiptStatus(job.data.status ?? "");
      // Receipts on messages the contact sent us (fromMe false), and PENDING/SERVER_ACK, change nothing here.
      if (!status || job.data.fromMe === false) return { kind: "ignored" };
      return { kind: "receipt", instanceId: job.instanceId, providerMessageId: job.data.keyId, status, at };
    }
    case "send.message":
      return { kind: "send_confirmed", instanceId: job.instanceId, providerMessageId: job.data.key.id, at };
    case "connection.update":
      return {
        kind: "connection",
        tenantId: job.tenantId,
        instanceId: job.instanceId,
        instanceName: job.instanceName,
        state: job.data.state,
        statusReason: job.data.statusReason ?? null,
        at,
      };
    case "qrcode.updated":
      return { kind: "qr_code", instanceId: job.instanceId, base64: job.data.qrcode.base64, count: job.data.qrcode.count ?? null, at };
  }
}

export const applyWebhookJob = (env: Env, db: Db, job: WebhookJob): Promise<Applied> => applyInbound(env, db, inboundJobOf(job));
