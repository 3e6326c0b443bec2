// Evolution API v2 send client: builds Evolution's flat bodies and classifies its answers
// into sent / transient (retry) / permanent (fail now), keeping Evolution's error verbatim.
import { z } from "zod";
import type { MediaJson } from "../db/schema.ts";
import { redact } from "../redact.ts";

export type EvolutionInstance = { name: string; url: string; apiKey: string };
export type Outgoing = { to: string; text?: string | null; media?: MediaJson | null };

// `signal`: what the answer says about the number itself, for its governor (pause on
// rate-overlimit, count "not on WhatsApp" answers towards a spike pause).
export type NumberSignal = "rate-overlimit" | "invalid-number";

export type SendOutcome =
  | { kind: "sent"; providerMessageId: string; remoteJid: string }
  // doubt: the request may have reached Evolution and gone out (timeout, dropped connection, a 5xx
  // but a 503 with Retry-After).
  | { kind: "transient"; error: string; retryAfterMs?: number; signal?: NumberSignal; doubt?: boolean }
  | { kind: "permanent"; error: string; signal?: NumberSignal };

/** The URL of one of Evolution's per-instance routes, e.g. `message/sendText`. */
export function evolutionUrl(instance: EvolutionInstance, route: string): string {
  return `${instance.url.replace(/\/+$/, "")}/${route}/${encodeURIComponent(instance.name)}`;
}

/** A JSON POST to Evolution with the instance's key, given up after `timeoutMs`. */
export function postToEvolution(instance: EvolutionInstance, url: string, body: unknown, timeoutMs: number): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", apikey: instance.apiKey },
    body: JSON.stringify(body),
    // Never followed: a redirect would hand the apikey header to wherever it points. A 3xx is an
    // answer like any other (not a success).
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
  });
}

export function sendRequest(instance: EvolutionInstance, msg: Outgoing): { url: string; body: Record<string, unknown> } {
  const media = msg.media;
  if (!media) return { url: evolutionUrl(instance, "message/sendText"), body: { number: msg.to, text: msg.text } };
  if (media.type === "audio") return { url: evolutionUrl(instance, "message/sendWhatsAppAudio"), body: { number: msg.to, audio: media.url } };
  return {
    url: evolutionUrl(instance, "message/sendMedia"),
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

// 400s that are really a broken session, not a bad request.
const transient400 = /SessionError|Connection Closed|rate-overlimit|Timed Out|not-acceptable/i;

function describe(status: number, text: string): string {
  return `Evolution ${status}: ${text.slice(0, 1000)}`;
}

// Retry-After as seconds or an HTTP date; undefined when absent or unreadable.
function retryAfterOf(header: string | null): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.max(seconds * 1000, 1) : undefined;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(at - Date.now(), 1) : undefined;
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
    return { kind: "permanent", error: `Number is not on WhatsApp. ${describe(status, text)}`, signal: "invalid-number" };
  }
  // WhatsApp throttling this number: wait (the governor pauses the number), never fail for it.
  if (/rate-overlimit/i.test(JSON.stringify(message ?? text))) {
    return { kind: "transient", error: describe(status, text), signal: "rate-overlimit" };
  }
  const retryAfterMs = retryAfterOf(retryAfter);
  // Certainly not sent: a request timeout, a rate limit, or "unavailable, come back later".
  if (status === 429 || status === 408 || (status === 503 && retryAfterMs !== undefined)) {
    return { kind: "transient", error: describe(status, text), retryAfterMs };
  }
  // Any other 5xx may come after Baileys relayed the message (Evolution's own database write
  // failing, a proxy in front of it timing out or giving up): in doubt, asked about before a resend.
  if (status >= 500) return { kind: "transient", error: describe(status, text), retryAfterMs, doubt: true };
  if (status === 400 && transient400.test(JSON.stringify(message ?? text))) return { kind: "transient", error: describe(status, text) };
  return { kind: "permanent", error: describe(status, text) };
}

export async function sendThroughEvolution(instance: EvolutionInstance, msg: Outgoing, timeoutMs: number): Promise<SendOutcome> {
  const outcome = await callEvolution(instance, msg, timeoutMs);
  // The error becomes lastError, history and log lines: the instance's key never goes with it.
  return outcome.kind === "sent" ? outcome : { ...outcome, error: redact(outcome.error, [instance.apiKey]) };
}

async function callEvolution(instance: EvolutionInstance, msg: Outgoing, timeoutMs: number): Promise<SendOutcome> {
  const { url, body } = sendRequest(instance, msg);
  try {
    const res = await postToEvolution(instance, url, body, timeoutMs);
    return classify(res.status, await res.text(), res.headers.get("retry-after"));
  } catch (err) {
    const reason = err instanceof Error && err.name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : String(err);
    return { kind: "transient", error: `Evolution unreachable: ${reason}`, doubt: true };
  }
}

// GET /instance/connect/{instance}: `open`, or the pairing QR code to scan (which also starts pairing).
const connectAnswer = z.union([
  z.object({ instance: z.object({ state: z.string() }) }),
  z.object({ base64: z.string().startsWith("data:image/").max(200_000), code: z.string().nullish(), count: z.number().int().nullish() }),
]);

export type ConnectOutcome =
  | { kind: "open" }
  | { kind: "qr"; base64: string; count: number | null }
  // Evolution answered, and refused: the instance's name or key is wrong there (a 4xx).
  | { kind: "refused"; error: string }
  | { kind: "error"; error: string };

export async function connectInstance(instance: EvolutionInstance, timeoutMs: number): Promise<ConnectOutcome> {
  try {
    const res = await fetch(evolutionUrl(instance, "instance/connect"), {
      headers: { apikey: instance.apiKey },
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status >= 300 && res.status <= 399)
      return { kind: "refused", error: `Evolution ${res.status}: a redirect (not followed); set evolutionUrl to the address Evolution answers at` };
    // A 4xx (but a timeout or rate limit) is Evolution refusing this instance as configured here.
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) return { kind: "refused", error: describe(res.status, text) };
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

// Evolution answers sendPresence only after its `delay` (it holds "composing" that long, then
// sends "paused"). The lane does not wait for that: it stops listening after this long, and its
// own alarm times the text. The request is not cancelled on Evolution's side by the disconnect.
export const PRESENCE_ACK_MS = 1_500;

export type PresenceOutcome = { kind: "ok" } | { kind: "failed"; error: string };

/** `POST /chat/sendPresence/{instance}`: shows "typing…" to the contact for `durationMs`. */
export async function sendPresence(instance: EvolutionInstance, to: string, durationMs: number, ackMs = PRESENCE_ACK_MS): Promise<PresenceOutcome> {
  try {
    const res = await postToEvolution(instance, evolutionUrl(instance, "chat/sendPresence"), { number: to, presence: "composing", delay: durationMs }, ackMs);
    const text = await res.text();
    return res.ok ? { kind: "ok" } : { kind: "failed", error: describe(res.status, text) };
  } catch (err) {
    // Still held by Evolution for its delay: the presence is on, which is what was asked.
    if (err instanceof Error && err.name === "TimeoutError") return { kind: "ok" };
    return { kind: "failed", error: `Evolution unreachable: ${String(err)}` };
  }
}
