// VisitorChat, the web chat's conversation object (its sockets and frames: src/providers/web/chat.ts),
// with the inbound door: a visitor's message and receipts are applied like any provider's.
import { database } from "../db/client.ts";
import type { InboundMessage, ReceiptKind } from "../providers/provider.ts";
import { type VisitorTarget, VisitorChatRoom } from "../providers/web/chat.ts";
import { applyInbound } from "./apply.ts";

export class VisitorChat extends VisitorChatRoom {
  protected async received(target: VisitorTarget, message: InboundMessage): Promise<string | undefined> {
    const now = Date.now();
    const applied = await applyInbound(this.env, database(this.env.DB), { kind: "message", target: { ...target, channel: "web" }, message, receivedAt: now });
    return applied.id;
  }

  protected async receipted(instanceId: string, messageId: string, status: ReceiptKind, at: number): Promise<void> {
    // The message's provider id is its own id (see the provider's send).
    await applyInbound(this.env, database(this.env.DB), { kind: "receipt", instanceId, providerMessageId: messageId, status, at });
  }
}
