// One call to the tenant's handler: the signed automation.inbound body, the contact's recent
// conversation, and the answer read into replies that are valid outbound messages.
import type { SQL } from "drizzle-orm";
import { inboundMessages } from "../db/queries/index.ts";
import { type AutomationInbound, type HandlerHandoff, repliesOf } from "../contracts/automation.ts";
import type { Channel } from "../contracts/channels.ts";
import { sendMessageSchema, type SendMessageRequest } from "../contracts/messages.ts";
import { privateMessageUrl, type UrlPolicy } from "../http/outbound-url.ts";
import { contactForms } from "../messages/contact-key.ts";
import { signWebhook } from "../signing/standard-webhooks.ts";
import { type AutomationConfig, signingSecrets } from "./config.ts";

export type LaneInfo = {
  laneKey: string;
  tenantId: string;
  instanceId: string;
  instanceName: string;
  contact: string;
  replyTo: string | null;
  /** Absent on lanes written before channels: WhatsApp. */
  channel?: Channel;
};

export type InboundView = AutomationInbound["messages"][number];

export type ConversationRow = inboundMessages.HistoryRow;

const parseMedia = (media: string | null): Record<string, unknown> | null => {
  if (!media) return null;
  try {
    const value: unknown = JSON.parse(media);
    return value && typeof value === "object" && !Array.isArray(value) ? Object.fromEntries(Object.entries(value)) : null;
  } catch {
    return null;
  }
};

/** The contact's messages on this instance, both directions, newest first: `limit` rows (a number,
 *  or an expression the lane reads from the automation row in the same batch) plus `extra`. Both
 *  ways a Brazilian mobile is written: messages sent to it under either are the contact's. */
export function conversationStatement(info: LaneInfo, limit: SQL | number, extra: number): SQL {
  return inboundMessages.history(
    { tenantId: info.tenantId, instanceId: info.instanceId, contacts: contactForms(info.contact), to: contactForms(info.replyTo ?? info.contact) },
    limit,
    extra,
  );
}

/** The last `limit` of those rows, oldest first, without the ones this call carries. */
export function conversationFrom(rows: ConversationRow[], limit: number, exclude: string[]): AutomationInbound["conversation"] {
  if (limit === 0) return [];
  const skip = new Set(exclude);
  return rows
    .filter((r) => !skip.has(r.id))
    .slice(0, limit)
    .reverse()
    .map((r) => ({ direction: r.direction, id: r.id, text: r.text, media: parseMedia(r.media), status: r.status, at: new Date(r.at).toISOString() }));
}

export type CallOutcome =
  | { ok: true; replies: SendMessageRequest[]; dropped: number; ms: number; handoff?: HandlerHandoff }
  | { ok: false; error: string; ms: number };

/** POSTs one batch to the handler. `webhookId` stays the same across the batch's retries, so a
 *  handler that saw a call before a crash can recognise it; a replayed dead letter gets a new one.
 *  Replies are held to the rules of an API send, private-address check included (`urls`: the
 *  Worker's setting). */
export async function callHandler(
  config: AutomationConfig,
  webhookId: string,
  payload: AutomationInbound,
  inReplyTo: string,
  urls: UrlPolicy,
): Promise<CallOutcome> {
  const body = JSON.stringify(payload);
  const headers = await signWebhook({ id: webhookId, body, secrets: signingSecrets(config) });
  const started = Date.now();
  let res: Response;
  let text: string;
  try {
    res = await fetch(config.url, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json", "user-agent": "mensageiro-automation" },
      body,
      // A redirect is an error, not followed: it would carry the signed call to another address.
      redirect: "manual",
      signal: AbortSignal.timeout(config.timeoutMs),
    });
    text = await res.text();
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    return { ok: false, error: timedOut ? `no answer within ${config.timeoutMs} ms` : `network error: ${String(err).slice(0, 300)}`, ms: Date.now() - started };
  }
  const ms = Date.now() - started;
  if (res.status >= 300 && res.status <= 399)
    return {
      ok: false,
      error: `HTTP ${res.status}: redirects are not followed (to ${res.headers.get("location")?.slice(0, 200) ?? "?"}); set the handler URL to the final address`,
      ms,
    };
  if (res.status < 200 || res.status > 299) return { ok: false, error: `HTTP ${res.status}: ${text.slice(0, 300)}`, ms };
  const answer = res.status === 204 ? { ok: true as const, replies: [] } : repliesOf(text);
  if (!answer.ok) return { ok: false, error: answer.error, ms };
  const handoff = answer.handoff ? { handoff: answer.handoff } : {};
  const replies: SendMessageRequest[] = [];
  // An @lid contact whose phone number Evolution did not give cannot be written to.
  if (!payload.replyTo) return { ok: true, replies: [], dropped: answer.replies.length, ms, ...handoff };
  for (const [i, reply] of answer.replies.entries()) {
    const message = sendMessageSchema.safeParse({
      instance: payload.instance,
      to: payload.replyTo,
      ...reply,
      metadata: { inReplyTo },
      idempotencyKey: `automation:${inReplyTo}:${i}`,
    });
    if (!message.success) return { ok: false, error: `reply ${i} is not a valid message: ${message.error.issues.map((x) => x.message).join("; ")}`, ms };
    const privateUrl = privateMessageUrl(urls, message.data);
    if (privateUrl) return { ok: false, error: `reply ${i} is not a valid message: ${privateUrl.path}: ${privateUrl.message}`, ms };
    replies.push(message.data);
  }
  return { ok: true, replies, dropped: 0, ms, ...handoff };
}
