// Asking Evolution what really happened (reconciliation): did an in-doubt attempt go out
// (POST /chat/findMessages), and which receipts did a sent message get (POST /chat/findStatusMessage).
// Evolution answers from its own message store; when that store is off its lists are empty,
// so an empty answer for a contact is "cannot say", not "not sent".
//
// The store holds every message of the chat, whoever sent it: the phone, Evolution's integrations,
// other clients of the same instance. A stored message counts as this attempt's only with proof:
// it has the content, it was sent through Baileys (an API send's id, `source: "web"`), it lies in the
// attempt's own window, nobody on that Evolution instance has claimed it, and it is the only one.
// Anything less is "cannot tell", never "found": recording another message's id loses this one.
import { z } from "zod";
import type { MediaJson } from "../db/schema.ts";
import { readCapped } from "../http/capped-body.ts";
import { evolutionUrl, postToEvolution, type EvolutionInstance, type Outgoing } from "./client.ts";

/** The JIDs Evolution may key a chat by: a JID as given; for a number, `<digits>@s.whatsapp.net`
 *  and, where Evolution tries both forms against WhatsApp (Brazil's 9th digit, the 13-digit forms
 *  of Mexico and Argentina), the other form too. */
export function remoteJidsOf(to: string): string[] {
  if (to.includes("@")) return [to];
  const forms = [to];
  if (to.startsWith("55") && to.length === 13 && to[4] === "9") forms.push(to.slice(0, 4) + to.slice(5));
  if (to.startsWith("55") && to.length === 12) forms.push(`${to.slice(0, 4)}9${to.slice(4)}`);
  if ((to.startsWith("52") || to.startsWith("54")) && to.length === 13) forms.push(to.slice(0, 2) + to.slice(3));
  return forms.map((f) => `${f}@s.whatsapp.net`);
}

const record = z.object({
  key: z.object({ id: z.string().min(1), fromMe: z.boolean().optional(), remoteJid: z.string().optional() }),
  message: z.record(z.string(), z.unknown()).nullish(),
  messageType: z.string().nullish(),
  messageTimestamp: z.union([z.number(), z.string()]).nullish(),
  source: z.string().nullish(),
});
const findMessagesAnswer = z.object({
  messages: z.object({ total: z.number(), records: z.array(z.unknown()) }),
});
export type StoredMessage = z.infer<typeof record>;

const statusRow = z.object({ keyId: z.string().optional(), status: z.string() });
const findStatusAnswer = z.array(z.unknown());

async function post(
  instance: EvolutionInstance,
  route: string,
  body: unknown,
  timeoutMs: number,
): Promise<{ ok: true; json: unknown } | { ok: false; why: string }> {
  try {
    const res = await postToEvolution(instance, evolutionUrl(instance, `chat/${route}`), body, timeoutMs);
    const text = await readCapped(res);
    if (!res.ok) return { ok: false, why: `${route} answered ${res.status}: ${text.slice(0, 200)}` };
    return { ok: true, json: JSON.parse(text) };
  } catch (err) {
    return { ok: false, why: `${route} failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

const textsOf = (message: Record<string, unknown> | null | undefined): string[] => {
  if (!message) return [];
  const found: string[] = [];
  for (const [key, value] of Object.entries(message)) {
    if (key === "conversation" && typeof value === "string") found.push(value);
    const inner = z.object({ text: z.string().optional(), caption: z.string().optional(), fileName: z.string().optional() }).safeParse(value);
    if (inner.success) for (const v of [inner.data.text, inner.data.caption, inner.data.fileName]) if (v !== undefined) found.push(v);
  }
  return found;
};

const mediaKey: Record<MediaJson["type"], string> = { image: "imageMessage", video: "videoMessage", audio: "audioMessage", document: "documentMessage" };

/** How a stored message's content compares with the outgoing one: `same` (its text, caption or
 *  file name), `type_only` (a media of the same type, nothing to compare: no caption, text or file
 *  name was sent), or `different`. */
export type ContentMatch = "same" | "type_only" | "different";

export function contentMatch(stored: StoredMessage, msg: Outgoing): ContentMatch {
  const message = stored.message ?? {};
  if (msg.media) {
    if (!(mediaKey[msg.media.type] in message)) return "different";
    const label = msg.media.caption ?? msg.text ?? msg.media.fileName;
    if (!label) return "type_only";
    return textsOf(message).includes(label) ? "same" : "different";
  }
  return msg.text !== null && msg.text !== undefined && textsOf(message).includes(msg.text) ? "same" : "different";
}

// Baileys' own ids, so every message sent through Evolution's API: `3E` + 20 characters (3EB0 + 18
// hex), which Evolution stores as `source: "web"`. A phone's ids (3A…, 32 hex, …) never match.
const baileysId = /^3E[0-9A-F]{20}$/i;

/** Whether a stored message was sent through Baileys (an API client), not typed on a phone. */
export function sentThroughApi(stored: StoredMessage): boolean {
  if (!baileysId.test(stored.key.id)) return false;
  return stored.source === undefined || stored.source === null || stored.source === "web";
}

export type FindSent = {
  to: string;
  content: Outgoing;
  /** The attempt's own time window, epoch ms. */
  from: number;
  until: number;
  /** Provider ids already recorded for another message on the same Evolution instance (by any
   *  tenant using it): never matched again. */
  taken: (ids: string[]) => Promise<Set<string>>;
};

/** Did the attempt go out? Found only when exactly one unclaimed message sent through the API, in the
 *  attempt's window, carries its content; "cannot tell" when more than one could be it, or when only
 *  the media type matches. */
/** What Evolution's store says of an attempt (the provider seam's answer to "did it go out?"):
 *  `unanswerable` when the question failed (`retry`: worth asking again), `cannot_tell` when a
 *  stored message may be this attempt's but nothing proves it. */
export type Found =
  | { kind: "found"; providerMessageId: string }
  | { kind: "not_found" }
  | { kind: "unanswerable"; reason: string; retry: boolean }
  | { kind: "cannot_tell"; reason: string };

export async function findSent(instance: EvolutionInstance, q: FindSent, timeoutMs: number): Promise<Found> {
  const jids = remoteJidsOf(q.to);
  const candidates: { id: string; match: ContentMatch }[] = [];
  for (const remoteJid of jids) {
    const windowed = await post(
      instance,
      "findMessages",
      {
        where: {
          key: { remoteJid, fromMe: true },
          messageTimestamp: { gte: new Date(q.from).toISOString(), lte: new Date(q.until).toISOString() },
        },
        page: 1,
        offset: 50,
      },
      timeoutMs,
    );
    if (!windowed.ok) return { kind: "unanswerable", reason: windowed.why, retry: true };
    const parsed = findMessagesAnswer.safeParse(windowed.json);
    if (!parsed.success) return { kind: "unanswerable", reason: "findMessages answered an unexpected body", retry: true };
    for (const r of parsed.data.messages.records) {
      const m = record.safeParse(r);
      if (!m.success || m.data.key.fromMe === false || !sentThroughApi(m.data)) continue;
      const match = contentMatch(m.data, q.content);
      if (match !== "different" && !candidates.some((c) => c.id === m.data.key.id)) candidates.push({ id: m.data.key.id, match });
    }
  }
  if (candidates.length > 0) {
    const taken = await q.taken(candidates.map((c) => c.id));
    const open = candidates.filter((c) => !taken.has(c.id));
    if (open.length > 1) return { kind: "cannot_tell", reason: `${open.length} messages in Evolution's store could be this one` };
    const [only] = open;
    if (only?.match === "same") return { kind: "found", providerMessageId: only.id };
    if (only) return { kind: "cannot_tell", reason: "a media message of the same type, without caption, text or file name to compare" };
  }
  // Nothing matched. Evolution only knows what it stores: if it holds nothing at all for this
  // contact, absence proves nothing.
  let total = 0;
  for (const remoteJid of jids) {
    const any = await post(instance, "findMessages", { where: { key: { remoteJid, fromMe: true } }, page: 1, offset: 1 }, timeoutMs);
    if (!any.ok) return { kind: "unanswerable", reason: any.why, retry: true };
    total += findMessagesAnswer.safeParse(any.json).data?.messages.total ?? 0;
  }
  if (total === 0) return { kind: "unanswerable", reason: "it keeps no messages for this contact (message store off?)", retry: false };
  return { kind: "not_found" };
}

const receiptRank: Record<string, number> = { DELIVERY_ACK: 1, DELIVERED: 1, READ: 2, PLAYED: 2 };

/** The furthest receipt Evolution saw for a sent message: DELIVERY_ACK, READ, or none. */
export async function findReceipt(
  instance: EvolutionInstance,
  providerMessageId: string,
  timeoutMs: number,
): Promise<{ ok: true; status: string | null } | { ok: false; why: string }> {
  // By key id alone: it is unique in the instance, and the chat's JID form may differ from `to`.
  const answer = await post(instance, "findStatusMessage", { where: { id: providerMessageId }, page: 1, offset: 50 }, timeoutMs);
  if (!answer.ok) return answer;
  const rows = findStatusAnswer.safeParse(answer.json);
  if (!rows.success) return { ok: false, why: "findStatusMessage answered an unexpected body" };
  let best: string | null = null;
  for (const r of rows.data) {
    const row = statusRow.safeParse(r);
    if (!row.success || (row.data.keyId !== undefined && row.data.keyId !== providerMessageId)) continue;
    const status = row.data.status.toUpperCase();
    if ((receiptRank[status] ?? 0) > (best ? (receiptRank[best] ?? 0) : 0)) best = status;
  }
  return { ok: true, status: best };
}
