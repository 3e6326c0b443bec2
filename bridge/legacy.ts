// Legacy Kafka values → v1 send items. Each topic has its contract in src/contracts/legacy.ts;
// whatever fails to parse is poison, named with a reason for the DLQ header.
import type { z } from "zod";
import {
  fromMessagingSend,
  fromWhatsappSchedule,
  fromWhatsappSend,
  messagingSend,
  whatsappScheduleMessage,
  whatsappSendMessage,
} from "../src/contracts/legacy.ts";
import { sendMessageSchema, type SendMessageRequest } from "../src/contracts/messages.ts";

export type LegacyKind = "whatsapp-send-message" | "whatsapp-schedule-message" | "messaging.send";

export type PoisonReason = "not_json" | "invalid_shape" | "gateway_rejected" | "batch_refused";
export type Decoded = { ok: true; item: SendMessageRequest; sourceId: string } | { ok: false; reason: PoisonReason; detail: string };

/** Where a record came from: its own event id when it has one, else its Kafka coordinates. */
export const coordinates = (topic: string, partition: number, offset: string) => `${topic}/${partition}/${offset}`;

const issues = (e: z.ZodError) => e.issues.map((i) => `${i.path.join(".") || "(value)"}: ${i.message}`).join("; ");

export function decodeLegacy(kind: LegacyKind, value: Buffer | null, where: { topic: string; partition: number; offset: string }): Decoded {
  let json: unknown;
  try {
    json = JSON.parse(value?.toString("utf8") ?? "");
  } catch {
    return { ok: false, reason: "not_json", detail: value === null ? "The record has no value." : "The value is not valid JSON." };
  }
  const fallbackId = coordinates(where.topic, where.partition, where.offset);
  const mapped = toItem(kind, json, fallbackId);
  if (!mapped.ok) return mapped;
  // The v1 contract too: a record the gateway would refuse for its shape goes to the DLQ before the post.
  // Per-message idempotency at the gateway: a record posted twice (however the batch was cut) is one message.
  const item = sendMessageSchema.safeParse({ ...mapped.item, idempotencyKey: `${kind}:${mapped.sourceId}` });
  if (!item.success) return { ok: false, reason: "invalid_shape", detail: issues(item.error) };
  return { ok: true, item: item.data, sourceId: mapped.sourceId };
}

type Mapped = { ok: true; item: Record<string, unknown>; sourceId: string } | { ok: false; reason: "invalid_shape"; detail: string };

// Metadata keeps the legacy fields the older services correlate on (userId, scheduleId, messageId),
// plus sourceId: the per-message identity a consumer of message.status can dedupe or join on.
function toItem(kind: LegacyKind, json: unknown, fallbackId: string): Mapped {
  switch (kind) {
    case "whatsapp-send-message": {
      const m = whatsappSendMessage.safeParse(json);
      if (!m.success) return { ok: false, reason: "invalid_shape", detail: issues(m.error) };
      const sourceId = fallbackId;
      return {
        ok: true,
        sourceId,
        item: { ...fromWhatsappSend(m.data), metadata: definedOnly({ source: kind, sourceId, userId: m.data.userId, timestamp: m.data.timestamp }) },
      };
    }
    case "whatsapp-schedule-message": {
      const m = whatsappScheduleMessage.safeParse(json);
      if (!m.success) return { ok: false, reason: "invalid_shape", detail: issues(m.error) };
      const sourceId = m.data.scheduleId ?? fallbackId;
      return {
        ok: true,
        sourceId,
        // The older services expect delivery even when the bridge lagged past scheduledFor: send it late, noted.
        item: {
          ...fromWhatsappSchedule(m.data),
          ifLate: "send",
          metadata: definedOnly({ source: kind, sourceId, scheduleId: m.data.scheduleId, userId: m.data.userId }),
        },
      };
    }
    case "messaging.send": {
      const m = messagingSend.safeParse(json);
      if (!m.success) return { ok: false, reason: "invalid_shape", detail: issues(m.error) };
      const sourceId = m.data.messageId ?? fallbackId;
      return {
        ok: true,
        sourceId,
        item: { ...fromMessagingSend(m.data), metadata: definedOnly({ source: kind, sourceId, messageId: m.data.messageId }) },
      };
    }
  }
}

function definedOnly(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
