// The public shape of a message (GET /v1/messages/:id; its schema is messageAnswer in src/contracts/messages.ts).
import { z } from "zod";
import type { messages } from "../db/schema.ts";

type Row = typeof messages.$inferSelect;
type HistoryRow = { status: string; at: number; attempt: number | null; detail: string | null };

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? undefined : new Date(ms).toISOString());

export function messageView(row: Row, history?: HistoryRow[]) {
  return {
    id: row.id,
    status: row.status,
    instance: row.instanceName,
    channel: row.channel,
    to: row.to,
    text: row.text ?? undefined,
    media: row.media ?? undefined,
    priority: row.priority,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    lastError: row.lastError ?? undefined,
    providerMessageId: row.providerMessageId ?? undefined,
    createdAt: iso(row.createdAt),
    sendAt: iso(row.sendAt),
    sentAt: iso(row.sentAt),
    deliveredAt: iso(row.deliveredAt),
    readAt: iso(row.readAt),
    failedAt: iso(row.failedAt),
    canceledAt: iso(row.canceledAt),
    metadata: row.metadata ?? undefined,
    callbackUrl: row.callbackUrl ?? undefined,
    idempotencyKey: row.idempotencyKey ?? undefined,
    ...(history
      ? {
          history: history.map((h) => ({
            status: h.status,
            at: iso(h.at),
            attempt: h.attempt ?? undefined,
            detail: h.detail ?? undefined,
          })),
        }
      : {}),
  };
}

export function acceptedView(row: {
  id: string;
  status: string;
  instanceName: string;
  to: string;
  createdAt: number;
  sendAt?: number | null;
}): Record<string, unknown> {
  return { id: row.id, status: row.status, instance: row.instanceName, to: row.to, createdAt: iso(row.createdAt), sendAt: iso(row.sendAt) };
}

const historyRows = z.array(
  z.object({ status: z.string(), at: z.number(), attempt: z.number().nullish().default(null), detail: z.string().nullish().default(null) }),
);

/** The history kept in the message row (messages.history), oldest first. */
export function historyOf(row: { history: string }): HistoryRow[] {
  return historyRows.parse(JSON.parse(row.history));
}
