// The web chat: a website's visitors over WebSocket, behind the provider seam. Sending is storing the
// message in the visitor's conversation object (VisitorChat), which pushes it to every open tab and
// keeps it until a tab acknowledges it; so `sent` means stored for the visitor, and the visitor's
// `ack` and `read` frames are the receipts.
import type { Provider, SendOutcome } from "../provider.ts";
import { chatOf } from "./chat.ts";
import { MAX_TEXT, visitorIdFormat } from "./limits.ts";

export const webProvider: Provider = {
  channel: "web",
  capabilities: {
    receipts: ["delivered", "read"],
    // The page shows its own "typing…" while the handler works; the gateway sends none.
    typing: false,
    media: ["image", "video", "audio", "document"],
    maxTextLength: MAX_TEXT,
    maxCaptionLength: MAX_TEXT,
    addressFormat: "a visitor id (letters, digits, '.', '_' and '-', at most 64)",
    // Nothing outside the gateway to protect: the pace is the tenant's own limits.
    defaultRatePerMinute: 6_000,
    defaultBurst: null,
  },
  address(to) {
    return visitorIdFormat.test(to)
      ? { ok: true, to }
      : { ok: false, message: "Must be a visitor id: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit." };
  },
  refuseContent(msg) {
    if (msg.text && msg.text.length > MAX_TEXT) return { path: "text", message: `The web chat takes at most ${MAX_TEXT} characters of text.` };
    return undefined;
  },
  async send(conn, msg): Promise<SendOutcome> {
    if (!conn.gateway || !msg.messageId) return { kind: "refused", reason: "the web chat sends only from a contact lane" };
    const { env, tenantId, instanceId } = conn.gateway;
    try {
      // Keyed by the message id: a second attempt stores nothing new and pushes nothing twice.
      await chatOf(env, tenantId, instanceId, msg.to).deliver({
        messageId: msg.messageId,
        text: msg.text ?? null,
        media: msg.media ?? null,
        at: Date.now(),
      });
      return { kind: "sent", providerMessageId: msg.messageId };
    } catch (err) {
      // The store is idempotent, so a failed call is simply tried again.
      return { kind: "retry", reason: `the visitor's conversation could not store the message: ${String(err)}`, countsAsAttempt: true };
    }
  },
  // Storing is idempotent, so an attempt in doubt is settled by asking the conversation.
  inDoubt: {
    kind: "reconcile",
    async reconcile(conn, attempt) {
      if (!conn.gateway || !attempt.content.messageId) return { kind: "unanswerable", reason: "no conversation to ask", retry: false };
      const { env, tenantId, instanceId } = conn.gateway;
      try {
        const held = await chatOf(env, tenantId, instanceId, attempt.to).holds(attempt.content.messageId);
        return held ? { kind: "found", providerMessageId: attempt.content.messageId } : { kind: "not_found" };
      } catch (err) {
        return { kind: "unanswerable", reason: String(err), retry: true };
      }
    },
  },
  async typing() {
    return { kind: "ok" };
  },
  chatGapMs: () => 0,
  async handling({ env, tenantId, instanceId }, contact, inboundIds) {
    await chatOf(env, tenantId, instanceId, contact).processing(inboundIds);
  },
};
