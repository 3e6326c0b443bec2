// Asking Evolution what really happened (reconciliation): did an in-doubt attempt go out
// (POST /chat/findMessages), and which receipts did a sent message get (POST /chat/findStatusMessage).
// Evolution answers from its own message store; when that store is off its lists are empty,
// so an empty answer for a contact is "cannot say", not "not sent".
import { z } from "zod";
import type { MediaJson } from "../db/schema.ts";
import { readCapped } from "../http/capped-body.ts";
import { evolutionUrl, postToEvolution, type EvolutionInstance, type Outgoing } from "./client.ts";
import type { Reconciled } from "../lanes/lane-machine.ts";

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

/** Whether a stored message carries the content of the outgoing one. */
export function sameContent(stored: StoredMessage, msg: Outgoing): boolean {
  const message = stored.message ?? {};
  if (msg.media) {
    if (!(mediaKey[msg.media.type] in message)) return false;
    const label = msg.media.caption ?? msg.text ?? msg.media.fileName;
    return label ? textsOf(message).includes(label) : true;
  }
  return msg.text !== null && msg.text !== undefined && textsOf(message).includes(msg.text);
}

export type FindSent = {
  to: string;
  content: Outgoing;
  /** The attempt's time window, epoch ms. */
  from: number;
  until: number;
  /** Provider ids already recorded for other messages of this contact: never matched again. */
  taken: (ids: string[]) => Promise<Set<string>>;
};

/** Did the attempt go out? Found by contact, fromMe, time window and content. */
export async function findSent(instance: EvolutionInstance, q: FindSent, timeoutMs: number): Promise<Reconciled> {
  const jids = remoteJidsOf(q.to);
  const candidates: string[] = [];
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
      if (m.success && m.data.key.fromMe !== false && sameContent(m.data, q.content)) candidates.push(m.data.key.id);
    }
  }
  if (candidates.length > 0) {
    const taken = await q.taken(candidates);
    // Newest first: the latest matching message not already someone else's.
    const id = candidates.find((c) => !taken.has(c));
    if (id) return { kind: "found", providerMessageId: id };
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
