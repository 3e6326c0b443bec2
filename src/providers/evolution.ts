// WhatsApp through Evolution API v2, behind the provider seam. The client and the reconciliation
// queries stay in src/evolution/; this adapter only translates their answers into the seam's terms.
import { whatsappRecipient } from "../contracts/messages.ts";
import { sendPresence, sendThroughEvolution, type EvolutionInstance } from "../evolution/client.ts";
import { findSent } from "../evolution/reconcile.ts";
import type { Connection, Provider, SendOutcome } from "./provider.ts";

const evolutionOf = (conn: Connection): EvolutionInstance => ({ name: conn.name, url: conn.url, apiKey: conn.secret });

export const evolutionProvider: Provider = {
  channel: "whatsapp",
  capabilities: {
    receipts: ["delivered", "read"],
    typing: true,
    media: ["image", "video", "audio", "document"],
    maxTextLength: 65_536,
    maxCaptionLength: 4_096,
    addressFormat: "the digits of an E.164 number (country code first, no +) or a group JID ending in @g.us",
    defaultRatePerMinute: 60,
    defaultBurst: null,
  },
  address(to) {
    const ok = whatsappRecipient.safeParse(to);
    return ok.success ? { ok: true, to } : { ok: false, message: ok.error.issues[0]?.message ?? "Not a WhatsApp address." };
  },
  refuseContent: () => undefined,
  async send(conn, msg, timeoutMs): Promise<SendOutcome> {
    const outcome = await sendThroughEvolution(evolutionOf(conn), msg, timeoutMs);
    switch (outcome.kind) {
      case "sent":
        return { kind: "sent", providerMessageId: outcome.providerMessageId };
      case "permanent":
        return { kind: "refused", reason: outcome.error, signal: outcome.signal };
      case "transient":
        if (outcome.doubt) return { kind: "in_doubt", reason: outcome.error };
        // WhatsApp throttling the number is the number's pause (its governor), not this message's failure.
        if (outcome.signal === "rate-overlimit") return { kind: "retry", reason: outcome.error, countsAsAttempt: false, signal: outcome.signal };
        return { kind: "retry", reason: outcome.error, afterMs: outcome.retryAfterMs, countsAsAttempt: true, signal: outcome.signal };
    }
  },
  // Evolution keeps the messages it sent (when its store is on): an attempt in doubt is looked up.
  inDoubt: { kind: "reconcile", reconcile: (conn, attempt, timeoutMs) => findSent(evolutionOf(conn), attempt, timeoutMs) },
  typing: (conn, to, durationMs) => sendPresence(evolutionOf(conn), to, durationMs),
  chatGapMs: () => 0,
};
