// Provider receipts (Evolution messages.update) move a sent message forward, never back.
import type { SQL } from "drizzle-orm";
import type { MessageStatus } from "../contracts/events.ts";
import { runBatch } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { messages, pendingReceipts } from "../db/queries/index.ts";
import { transitionStatements } from "./transitions.ts";

export type ReceiptStatus = "delivered" | "read" | "failed";

// Which current statuses a receipt may move from: the monotonic order of the lifecycle.
export const receiptFrom: Record<ReceiptStatus, MessageStatus[]> = {
  delivered: ["sent"],
  read: ["sent", "delivered"],
  failed: ["sent"],
};

// Evolution ack strings (Baileys and the Cloud API variants; see docs/webhooks.md).
export function receiptStatus(ack: string): ReceiptStatus | undefined {
  switch (ack.toUpperCase()) {
    case "DELIVERY_ACK":
    case "DELIVERED":
      return "delivered";
    case "READ":
    case "PLAYED":
      return "read";
    case "ERROR":
    case "FAILED":
      return "failed";
    default:
      return undefined;
  }
}

/** A receipt as one D1 round trip, by Evolution's id: the transition when the send is recorded,
 *  else the receipt parked for the send's own record to apply (the lane's `sent` batch looks for
 *  it). D1 runs a batch as one transaction, so exactly one of the two happens. */
export function receiptByProviderStatements(instanceId: string, providerMessageId: string, status: ReceiptStatus, at: number): SQL[] {
  return [
    ...receiptStatements(messages.messageByProviderId(instanceId, providerMessageId), status, at),
    pendingReceipts.park(instanceId, providerMessageId, status, at),
  ];
}

export function receiptStatements(messageId: string | SQL, status: ReceiptStatus, at: number, detail?: string) {
  // A read implies delivery. When READ arrives first (DELIVERY_ACK lost, late, or parked behind the
  // send's own record), the message steps through `delivered` in the same batch, so consumers
  // always see sent, delivered, read, each once; the late DELIVERY_ACK then changes nothing.
  const implied =
    status === "read"
      ? transitionStatements({
          messageId,
          from: ["sent"],
          to: "delivered",
          at,
          detail: detail ? `${detail}; implied by the read receipt` : "implied by the read receipt",
        })
      : [];
  return [
    ...implied,
    ...transitionStatements({
      messageId,
      from: receiptFrom[status],
      to: status,
      at,
      ...(detail ? { detail } : {}),
      ...(status === "failed" ? { lastError: "WhatsApp reported an error ack (ERROR).", detail: "ERROR ack" } : {}),
    }),
  ];
}

// Receipts that raced ahead of the send's own record are parked; applied once the provider id is
// known. One read (the parked receipts with their message) and one batch.
export async function applyPendingReceipts(db: Db, instanceId: string, providerMessageId: string): Promise<void> {
  const pending = await pendingReceipts.parkedFor(db, instanceId, providerMessageId);
  if (pending.length === 0) return;
  const order: ReceiptStatus[] = ["delivered", "read", "failed"];
  pending.sort((a, b) => order.indexOf(a.status) - order.indexOf(b.status) || a.at - b.at);
  await runBatch(db, [...pending.flatMap((p) => receiptStatements(p.id, p.status, p.at)), pendingReceipts.clear(instanceId, providerMessageId)]);
}
