// Evolution API v2 send client: builds Evolution's flat bodies and classifies its answers
// into sent / transient (retry) / permanent (fail now), keeping Evolution's error verbatim.
import { z } from "zod";
import type { MediaJson } from "../db/schema.ts";

export type EvolutionInstance = { name: string; url: string; apiKey: string };
export type Outgoing = { to: string; text?: string | null; media?: MediaJson | null };

export type SendOutcome =
  | { kind: "sent"; providerMessageId: string; remoteJid: string }
  | { kind: "transient"; error: string; retryAfterMs?: number }
  | { kind: "permanent"; error: string };

export function sendRequest(instance: EvolutionInstance, msg: Outgoing): { url: string; body: Record<string, unknown> } {
  const base = `${instance.url.replace(/\/+$/, "")}/message`;
  const name = encodeURIComponent(instance.name);
  const media = msg.media;
  if (!media) return { url: `${base}/sendText/${name}`, body: { number: msg.to, text: msg.text } };
  if (media.type === "audio") return { url: `${base}/sendWhatsAppAudio/${name}`, body: { number: msg.to, audio: media.url } };
  return {
    url: `${base}/sendMedia/${name}`,
    body: {
      number: msg.to,
      mediatype: media.type,
      media: media.url,
      // Text given with media travels as its caption.
      caption: media.caption ?? msg.text ?? undefined,
      fileName: media.fileName,
      mimetype: media.mimeType,
    },
  };
}

const sentBody = z.object({ key: z.object({ id: z.string().min(1), remoteJid: z.string().default("") }) });
const errorBody = z.object({ response: z.object({ message: z.unknown() }) });

// 400s that are really a broken session, not a bad request (evolution-api.md §1.4).
const transient400 = /SessionError|Connection Closed|rate-overlimit|Timed Out|not-acceptable/i;

function describe(status: number, text: string): string {
  return `Evolution ${status}: ${text.slice(0, 1000)}`;
}

export function classify(status: number, text: string, retryAfter: string | null): SendOutcome {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (status === 200 || status === 201) {
    const ok = sentBody.safeParse(json);
    if (ok.success) return { kind: "sent", providerMessageId: ok.data.key.id, remoteJid: ok.data.key.remoteJid };
    // Accepted but unreadable: the message may be out, so do not send it again.
    return { kind: "permanent", error: describe(status, `unexpected success body: ${text}`) };
  }
  const message = errorBody.safeParse(json).data?.response.message;
  if (status === 400 && Array.isArray(message) && message.some((m) => z.object({ exists: z.literal(false) }).safeParse(m).success)) {
    return { kind: "permanent", error: `Number is not on WhatsApp. ${describe(status, text)}` };
  }
  if (status === 429 || status === 408 || status >= 500) {
    const seconds = Number(retryAfter);
    return { kind: "transient", error: describe(status, text), retryAfterMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined };
  }
  if (status === 400 && transient400.test(JSON.stringify(message ?? text))) return { kind: "transient", error: describe(status, text) };
  return { kind: "permanent", error: describe(status, text) };
}

export async function sendThroughEvolution(instance: EvolutionInstance, msg: Outgoing, timeoutMs: number): Promise<SendOutcome> {
  const { url, body } = sendRequest(instance, msg);
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", apikey: instance.apiKey },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return classify(res.status, await res.text(), res.headers.get("retry-after"));
  } catch (err) {
    const reason = err instanceof Error && err.name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : String(err);
    return { kind: "transient", error: `Evolution unreachable: ${reason}` };
  }
}

// GET /instance/connect/{instance}: `open`, or the pairing QR code to scan (which also starts pairing).
const connectAnswer = z.union([
  z.object({ instance: z.object({ state: z.string() }) }),
  z.object({ base64: z.string().startsWith("data:image/").max(200_000), code: z.string().nullish(), count: z.number().int().nullish() }),
]);

export type ConnectOutcome = { kind: "open" } | { kind: "qr"; base64: string; count: number | null } | { kind: "error"; error: string };

export async function connectInstance(instance: EvolutionInstance, timeoutMs: number): Promise<ConnectOutcome> {
  const url = `${instance.url.replace(/\/+$/, "")}/instance/connect/${encodeURIComponent(instance.name)}`;
  try {
    const res = await fetch(url, { headers: { apikey: instance.apiKey }, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (!res.ok) return { kind: "error", error: describe(res.status, text) };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const answer = connectAnswer.safeParse(json);
    if (!answer.success) return { kind: "error", error: describe(res.status, `unexpected connect body: ${text}`) };
    if ("instance" in answer.data)
      return answer.data.instance.state === "open" ? { kind: "open" } : { kind: "error", error: `Evolution says ${answer.data.instance.state}` };
    return { kind: "qr", base64: answer.data.base64, count: answer.data.count ?? null };
  } catch (err) {
    const reason = err instanceof Error && err.name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : String(err);
    return { kind: "error", error: `Evolution unreachable: ${reason}` };
  }
}
