// The Evolution v2 routes the gateway uses, with Evolution's guard order (instance exists →
// apikey), validation, number pre-check, status codes and bodies.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { chaosOf, countFault, rememberSend, roll, sendAttemptKey, sendFate } from "./chaos.ts";
import { androidMessageId, iosMessageId, newWebMessageId } from "./ids.ts";
import { digitsOf, recipient, type Recipient } from "./jid.ts";
import { businessRule, sendRoutes, validateSend, type SendRequest, type SendRoute } from "./requests.ts";
import {
  audioMessage,
  connectionClosed,
  defaultFaultBody,
  errorBody,
  instanceNotFound,
  mediaMessage,
  notOnWhatsApp,
  textMessage,
  unauthorized,
  type MessageRaw,
} from "./shapes.ts";
import { presenceRoutes } from "./presence.ts";
import type { Instance, SimulatorState } from "./state.ts";
import { scheduleAfterSend } from "./webhooks.ts";

/** Header on the stand-in answer for a dropped connection; the Node server turns it into a reset. */
export const dropHeader = "x-simulator-drop-connection";

type Answer = { status: number; body: unknown; keyId?: string; relayed?: boolean; headers?: Record<string, string> };

export function evolutionRoutes(state: SimulatorState): Hono {
  const app = new Hono();

  app.post("/message/:action/:instance", async (c) => {
    const route = sendRoutes.find((r) => r === c.req.param("action"));
    if (!route) return c.json(errorBody(404, [`Cannot POST ${c.req.path}`]), 404);
    const name = c.req.param("instance");
    const parsed = await readJson(c);
    const rawNumber = z.object({ number: z.string() }).safeParse(parsed.ok ? parsed.value : undefined);
    const to = rawNumber.success ? recipient(rawNumber.data.number) : undefined;
    const call = state.beginCall({ instance: name, route, number: to?.number ?? "", body: parsed.ok ? parsed.value : parsed.text });
    const answer = parsed.ok ? await answerSend(state, c, name, route, parsed.value, to) : { status: 400, body: errorBody(400, [parsed.error]) };
    call.status = answer.status;
    call.answeredAt = Date.now();
    delete call.pending;
    if (answer.keyId) call.keyId = answer.keyId;
    if (answer.relayed) call.relayed = true;
    if (answer.status === 0) {
      return jsonResponse(503, errorBody(503, "simulated network failure (connection dropped)"), { [dropHeader]: "1" });
    }
    return jsonResponse(answer.status, answer.body, answer.headers);
  });

  app.get("/instance/connectionState/:instance", (c) => {
    const name = c.req.param("instance");
    const instance = state.instances.get(name);
    if (!instance) return c.json(instanceNotFound(name), 404);
    if (!authorised(state, instance, c.req.header("apikey"))) return c.json(unauthorized(), 401);
    return c.json({ instance: { instanceName: instance.name, state: instance.state } });
  });

  presenceRoutes(app, state, {
    authorised: (apikey, name) => {
      const instance = state.instances.get(name);
      return instance !== undefined && authorised(state, instance, apikey);
    },
    isNotOnWhatsApp: (number) => isNotOnWhatsApp(state, recipient(number)),
  });

  return app;
}

async function answerSend(state: SimulatorState, c: Context, name: string, route: SendRoute, body: unknown, to: Recipient | undefined): Promise<Answer> {
  const instance = state.instances.get(name);
  if (!instance) return { status: 404, body: instanceNotFound(name) };
  if (!authorised(state, instance, c.req.header("apikey"))) return { status: 401, body: unauthorized() };

  const fault = state.takeFault({ instance: name, route, number: to?.number ?? "", jid: to?.jid ?? "" });
  // A 2xx fault is a late answer: the send goes through below, only after `delayMs`.
  const lateBy = fault && fault.status >= 200 && fault.status < 300 ? (fault.delayMs ?? 0) : 0;
  // An error fault with `relay`: the send goes through below, then this error is the answer.
  const relayThen = fault?.relay === true && fault.status >= 400 ? fault : undefined;
  if (fault && lateBy === 0 && !relayThen) {
    await state.sleep(latency(state) + (fault.delayMs ?? 0));
    return { status: fault.status, body: fault.body ?? defaultFaultBody(fault.status), ...(fault.headers ? { headers: fault.headers } : {}) };
  }

  const checked = validateSend(route, body);
  if (!checked.ok) return { status: 400, body: errorBody(400, checked.message) };
  const rule = businessRule(checked.request);
  if (rule) return { status: 400, body: errorBody(400, [rule]) };
  const target = recipient(checked.request.body.number);
  const attempt = sendAttemptKey(state, name, body);

  // Media upload and the onWhatsApp pre-check happen before the message goes out.
  await state.sleep(latency(state));
  if (instance.state !== "open" || roll(state, `fail:${attempt}`) < state.config.failureRate) return { status: 500, body: connectionClosed() };
  if (isNotOnWhatsApp(state, target)) return { status: 400, body: notOnWhatsApp(target) };
  // Evolution holds the request open for `delay` ms ("composing…") before sending.
  if (state.config.honourDelay) await state.sleep(checked.request.body.delay ?? 0);
  // Chaos: the answer comes after the client gave up; the message may still have gone out, and
  // meanwhile something that looks like it may land in the store (typed on the phone, or sent by
  // another client of the instance).
  const chaos = chaosOf(state);
  const fate = sendFate(state, attempt);
  const hang = async (ms: number) => {
    if (!fate.lookAlike) return state.sleep(ms);
    await state.sleep(ms / 2);
    plantLookAlike(state, instance, target, checked.request, fate.lookAlike);
    await state.sleep(ms / 2);
  };
  if (chaos.timeoutRate > 0 && roll(state, `timeout:${attempt}`) < chaos.timeoutRate) {
    await hang(chaos.timeoutMs);
    if (!chaos.timeoutStillSends || fate.hangNeverSends) return { status: 500, body: connectionClosed() };
  }
  if (lateBy > 0) await hang(lateBy);

  const raw = buildMessage(state, instance, target, checked.request, newKeyId(state));
  rememberSend(state, raw.key.id, attempt);
  state.remember(raw);
  scheduleAfterSend(state, instance, raw, target.isGroup);
  if (relayThen) {
    await state.sleep(relayThen.delayMs ?? 0);
    return { status: relayThen.status, body: relayThen.body ?? defaultFaultBody(relayThen.status), keyId: raw.key.id, relayed: true };
  }
  // Relayed, then the answer is an error: Evolution's own write failed after Baileys sent, or a
  // proxy in front of it gave up. The message is out; the caller cannot know from the answer.
  if (fate.relayThenFail === 500)
    return {
      status: 500,
      body: errorBody(500, ["PrismaClientKnownRequestError: Timed out fetching a new connection from the connection pool"]),
      relayed: true,
    };
  if (fate.relayThenFail === 502) return { status: 502, body: errorBody(502, "Bad Gateway"), keyId: raw.key.id, relayed: true };
  return { status: 201, body: raw, keyId: raw.key.id, relayed: true };
}

/** A message this request did not send, stored in the same chat: the same text, or for a
 *  caption-less media another file of the same type. From the phone it has a phone's id and
 *  `source` and no `send.message`; from another API client it looks exactly like an API send. */
export function plantLookAlike(state: SimulatorState, instance: Instance, to: Recipient, request: SendRequest, who: "phone" | "client"): MessageRaw {
  const other = `https://files.example.com/other-${Date.now().toString(36)}`;
  const like: SendRequest =
    request.route === "sendMedia" && !request.body.caption
      ? { route: "sendMedia", body: { ...request.body, media: `${other}.bin`, fileName: undefined } }
      : request.route === "sendWhatsAppAudio"
        ? { route: "sendWhatsAppAudio", body: { ...request.body, audio: `${other}.ogg` } }
        : request;
  const phone = roll(state, `phone:${to.jid}:${Date.now()}`) < 0.5 ? "ios" : "android";
  const keyId = who === "client" ? newKeyId(state) : phone === "ios" ? iosMessageId() : androidMessageId();
  const raw: MessageRaw = { ...buildMessage(state, instance, to, like, keyId), ...(who === "phone" ? { source: phone } : {}) };
  state.remember(raw);
  countFault(state, who === "client" ? "look-alikes from another API client" : "look-alikes typed on the phone");
  if (who === "client") scheduleAfterSend(state, instance, raw, to.isGroup);
  return raw;
}

function buildMessage(state: SimulatorState, instance: Instance, to: Recipient, request: SendRequest, keyId: string): MessageRaw {
  const sender = { instance, to, keyId, quotedFrom: (id: string) => state.sentMessage(id) };
  if (request.route === "sendText") return textMessage(sender, request.body);
  if (request.route === "sendMedia") return mediaMessage(sender, request.body);
  return audioMessage(sender, request.body);
}

const newKeyId = (state: SimulatorState) => newWebMessageId(state.messageIds);

function authorised(state: SimulatorState, instance: Instance, apikey: string | undefined): boolean {
  return apikey !== undefined && (apikey === instance.apikey || (state.config.globalApiKey !== null && apikey === state.config.globalApiKey));
}

function isNotOnWhatsApp(state: SimulatorState, to: Recipient): boolean {
  if (!to.jid.endsWith("@s.whatsapp.net")) return false;
  const digits = digitsOf(to.jid);
  return state.config.notOnWhatsApp.some((n) => {
    const listed = digitsOf(n);
    return listed === to.number || listed === digits;
  });
}

function latency(state: SimulatorState): number {
  const { latencyMs, latencyJitterMs } = state.config;
  return latencyMs + Math.floor(Math.random() * (latencyJitterMs + 1));
}

type Parsed = { ok: true; value: unknown } | { ok: false; error: string; text: string };

// Express's json body parser runs before any guard: a non-JSON content type leaves the body
// empty ({}), malformed JSON is a 400.
async function readJson(c: Context): Promise<Parsed> {
  const text = await c.req.text();
  if (!(c.req.header("content-type") ?? "").includes("json")) return { ok: true, value: {} };
  if (text.trim() === "") return { ok: true, value: {} };
  try {
    const value: unknown = JSON.parse(text);
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err), text };
  }
}

// Statuses come from faults as plain numbers, so answer with a plain Response.
function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const empty = status === 204 || status === 205 || status === 304;
  return new Response(empty ? null : JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", ...headers } });
}
