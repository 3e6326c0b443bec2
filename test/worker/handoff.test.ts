// Hand-off to a person inside workerd: by an operator (the routes), by the handler (its answer), by
// timeout (the lane's alarm, fired by hand); the call in flight finishes; messages of the human
// phase are stored, never offered, and reach the handler as context after the hand-back; every
// change is a conversation.handoff event; another tenant's instance is a 404.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { catchUpAutomation } from "../../src/automation/wake.ts";
import { gatewayEvent } from "../../src/contracts/events.ts";
import textFixture from "../fixtures/evolution/messages.upsert.text.json";
import { api, eventually, json, setupTenant, unique, waitForStatus } from "./helpers.ts";

const botUrl = () => inject("botUrl");
type BotCall = { contact: string; ids: string[]; texts: (string | null)[]; conversation: { direction: string; id: string; text: string | null }[] };

async function bot(path: string, settings?: Record<string, unknown>): Promise<BotCall[]> {
  if (settings) {
    const res = await fetch(`${botUrl()}/_bot/${path}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(settings) });
    if (!res.ok) throw new Error(`bot settings: ${res.status}`);
    return [];
  }
  return ((await (await fetch(`${botUrl()}/_bot/${path}`)).json()) as { calls: BotCall[] }).calls;
}
const botHeld = async (path: string): Promise<number> => ((await (await fetch(`${botUrl()}/_bot/${path}`)).json()) as { held: number }).held;

type Setup = Awaited<ReturnType<typeof setupTenant>> & { token: string; botPath: string };

async function withAutomation(settings: Record<string, unknown> = {}): Promise<Setup> {
  const t = await setupTenant();
  const token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!.webhook_token;
  const botPath = unique("bot");
  const res = await api(`/v1/instances/${t.instance}/automation`, { method: "PUT", key: t.key, json: { url: `${botUrl()}/bot/${botPath}`, ...settings } });
  expect(res.status).toBe(200);
  await bot(botPath, { secret: (await json(res)).secret });
  return { ...t, token, botPath };
}

let seq = 0;
/** A messages.upsert from `from`; answers the inbound message's id (in_…) once stored. */
async function inbound(s: Setup, from: string, text: string): Promise<string> {
  const body = structuredClone(textFixture);
  body.instance = s.instance;
  const id = `HO${Date.now().toString(16)}${(seq++).toString(16)}`.toUpperCase();
  const data = {
    ...body.data,
    key: { remoteJid: `${from}@s.whatsapp.net`, fromMe: false, id },
    message: { conversation: text },
    messageTimestamp: Math.floor(Date.now() / 1000),
  };
  const res = await api(`/webhooks/evolution/${s.token}`, { method: "POST", json: { ...body, data } });
  expect(res.status).toBe(200);
  return (await env.DB.prepare("SELECT id FROM inbound_messages WHERE provider_message_id = ?").bind(id).first<{ id: string }>())!.id;
}

const deliveryOf = async (inboundId: string) =>
  (await env.DB.prepare("SELECT status FROM automation_deliveries WHERE inbound_id = ?").bind(inboundId).first<{ status: string }>())?.status;

const handoffEvents = async (s: { id: string }) =>
  (
    await env.DB.prepare("SELECT data FROM outbox_events WHERE tenant_id = ? AND type = 'conversation.handoff' ORDER BY seq").bind(s.id).all<{ data: string }>()
  ).results.map((r) => JSON.parse(r.data) as Record<string, unknown>);

const replyTexts = async (s: Setup) =>
  (await env.DB.prepare("SELECT text FROM messages WHERE tenant_id = ? ORDER BY created_at, id").bind(s.id).all<{ text: string }>()).results.map((r) => r.text);

const handoffPath = (s: { instance: string }, contact: string) => `/v1/instances/${s.instance}/contacts/${contact}/handoff`;

const lane = (s: Setup, contact: string) => env.AUTOMATION.get(env.AUTOMATION.idFromName(`${s.id}:${s.instanceId}:${contact}`));

/** The next call the handler gets, once it has `count` calls. */
const callNumber = (s: Setup, count: number) =>
  eventually(
    async () => {
      const calls = await bot(s.botPath);
      return calls.length >= count ? calls : undefined;
    },
    15_000,
    `handler call ${count}`,
  );

describe("hand-off by an operator", () => {
  it("holds the contact's messages while human; after the hand-back the next message is offered with them as context", async () => {
    const s = await withAutomation();
    const contact = "5531998765432";
    await inbound(s, contact, "oi");
    await callNumber(s, 1);

    // The path's contact goes through the contact key: the 12-digit form is the same chat.
    const taken = await api(handoffPath(s, "553198765432"), { method: "POST", key: s.key, json: { reason: "pediu um atendente" } });
    expect(taken.status).toBe(200);
    const state = await json(taken);
    expect(state).toMatchObject({ state: "human", reason: "pediu um atendente", by: "operator" });
    expect(Date.parse(state.since)).toBeGreaterThan(0);
    expect(state.until).toBeUndefined();
    expect(await json(await api(handoffPath(s, contact), { key: s.key }))).toMatchObject({ state: "human", reason: "pediu um atendente" });

    const held = await inbound(s, contact, "quero falar com uma pessoa");
    expect(await deliveryOf(held)).toBe("human");
    const timeline = await json(await api(`/v1/contacts/${contact}/messages`, { key: s.key }));
    expect(timeline.data.map((m: { id: string }) => m.id)).toContain(held);

    const back = await api(handoffPath(s, contact), { method: "DELETE", key: s.key });
    expect(back.status).toBe(200);
    expect(await json(back)).toEqual({ state: "bot" });
    const after = await inbound(s, contact, "voltei");
    const calls = await callNumber(s, 2);
    expect(calls.map((c) => c.texts)).toEqual([["oi"], ["voltei"]]);
    expect(calls[1]!.ids).toEqual([after]);
    // (Evolution's timestamps are whole seconds: the order within one second is not the point here.)
    expect(calls[1]!.conversation.map((m) => `${m.direction}:${m.text}`).sort()).toEqual(["in:oi", "in:quero falar com uma pessoa", "out:echo: oi"]);
    expect(await deliveryOf(held)).toBe("human");

    const events = await handoffEvents(s);
    expect(events).toEqual([
      { instance: s.instance, contact, channel: "whatsapp", state: "human", reason: "pediu um atendente", by: "operator", until: null },
      { instance: s.instance, contact, channel: "whatsapp", state: "bot", reason: null, by: "operator", until: null },
    ]);
    // A second DELETE changes nothing and writes no event.
    expect((await api(handoffPath(s, contact), { method: "DELETE", key: s.key })).status).toBe(200);
    expect(await handoffEvents(s)).toHaveLength(2);
  });

  it("events are readable as the gateway's contract; the timeline lists the changes on request", async () => {
    const t = await setupTenant();
    const contact = "5511970000101";
    expect((await api(handoffPath(t, contact), { method: "POST", key: t.key })).status).toBe(200);
    expect((await api(handoffPath(t, contact), { method: "DELETE", key: t.key })).status).toBe(200);
    const page = await json(await api("/v1/events?consumer=handoff&limit=100", { key: t.key }));
    const handoffs = page.events.filter((e: { type: string }) => e.type === "conversation.handoff");
    expect(handoffs).toHaveLength(2);
    for (const e of handoffs) expect(gatewayEvent.safeParse(e).success).toBe(true);

    const plain = await json(await api(`/v1/contacts/${contact}/messages`, { key: t.key }));
    expect(plain.data).toEqual([]);
    const listed = await json(await api(`/v1/contacts/${contact}/messages?include=handoffs`, { key: t.key }));
    expect(listed.data.map((m: { direction: string; handoff: { state: string; by: string } }) => [m.direction, m.handoff.state, m.handoff.by])).toEqual([
      ["handoff", "bot", "operator"],
      ["handoff", "human", "operator"],
    ]);
  });
});

describe("the stream", () => {
  it("carries the contact's hand-offs to a client that asked for them", async () => {
    const t = await setupTenant();
    const contact = "5511970000102";
    const res = await exports.default.fetch(
      new Request(`https://gateway.test/v1/events/stream?types=conversation.handoff&contact=${contact}`, {
        headers: { upgrade: "websocket", authorization: `Bearer ${t.key}` },
      }),
    );
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const got: { type: string; data: Record<string, unknown> }[] = [];
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((r) => (ready = r));
    ws.addEventListener("message", (m) => {
      const msg = JSON.parse(String(m.data));
      if (msg.type === "stream.ready") ready();
      else got.push(msg);
    });
    await isReady;
    await api(handoffPath(t, "5511970000999"), { method: "POST", key: t.key });
    await api(handoffPath(t, contact), { method: "POST", key: t.key, json: { reason: "vip" } });
    await eventually(async () => got.length >= 1, 10_000, "the hand-off on the stream");
    ws.close(1000, "done");
    expect(got.map((e) => [e.type, e.data.contact, e.data.state, e.data.reason])).toEqual([["conversation.handoff", contact, "human", "vip"]]);
  });
});

describe("the call in flight", () => {
  it("finishes and its reply is sent; what waited behind it is kept as context, not called", async () => {
    const s = await withAutomation({ timeoutMs: 30000 });
    const contact = "5511970000201";
    await bot(s.botPath, { hold: true });
    await inbound(s, contact, "primeira");
    await eventually(async () => (await botHeld(s.botPath)) === 1, 15_000, "the first call held");
    // Offered before the hand-off, waiting behind the call.
    const waiting = await inbound(s, contact, "segunda");
    expect(await deliveryOf(waiting)).toBe("pending");
    expect((await api(handoffPath(s, contact), { method: "POST", key: s.key, json: {} })).status).toBe(200);
    const during = await inbound(s, contact, "terceira");
    await bot(s.botPath, { hold: false });

    const reply = await eventually(
      async () =>
        (await env.DB.prepare("SELECT id FROM messages WHERE tenant_id = ? AND text = 'echo: primeira'").bind(s.id).first<{ id: string }>()) ?? undefined,
      15_000,
      "the in-flight call's reply",
    );
    await waitForStatus(reply.id, ["sent"]);
    await eventually(async () => (await deliveryOf(waiting)) === "human", 15_000, "the waiting message held for the person");
    expect(await deliveryOf(during)).toBe("human");

    expect((await api(handoffPath(s, contact), { method: "DELETE", key: s.key })).status).toBe(200);
    await inbound(s, contact, "quarta");
    const calls = await callNumber(s, 2);
    expect(calls.map((c) => c.texts)).toEqual([["primeira"], ["quarta"]]);
    expect(calls[1]!.conversation.map((m) => m.text).sort()).toEqual(["echo: primeira", "primeira", "segunda", "terceira"]);
    // The handler is called before its answer is written: wait for the second reply.
    await eventually(async () => (await replyTexts(s)).length === 2, 15_000, "the second reply");
    expect(await replyTexts(s)).toEqual(["echo: primeira", "echo: quarta"]);
  });
});

describe("hand-off by the handler", () => {
  it("its replies are sent, then the contact is with a person", async () => {
    const s = await withAutomation();
    const contact = "5511970000301";
    await bot(s.botPath, { handoff: { reason: "cliente pediu humano" } });
    await inbound(s, contact, "quero um humano");
    const reply = await eventually(
      async () =>
        (await env.DB.prepare("SELECT id FROM messages WHERE tenant_id = ? AND text = 'echo: quero um humano'").bind(s.id).first<{ id: string }>()) ??
        undefined,
      15_000,
      "the handler's reply",
    );
    await waitForStatus(reply.id, ["sent"]);
    const state = await eventually(
      async () => {
        const got = await json(await api(handoffPath(s, contact), { key: s.key }));
        return got.state === "human" ? got : undefined;
      },
      15_000,
      "the contact with a person",
    );
    expect(state).toMatchObject({ reason: "cliente pediu humano", by: "handler" });
    expect(await handoffEvents(s)).toEqual([
      { instance: s.instance, contact, channel: "whatsapp", state: "human", reason: "cliente pediu humano", by: "handler", until: null },
    ]);
    const held = await inbound(s, contact, "alô?");
    expect(await deliveryOf(held)).toBe("human");

    // "handoff": true works too, and the next call after the hand-back carries the held message.
    expect((await api(handoffPath(s, contact), { method: "DELETE", key: s.key })).status).toBe(200);
    await bot(s.botPath, { handoff: true });
    await inbound(s, contact, "de novo");
    const calls = await callNumber(s, 2);
    expect(calls[1]!.texts).toEqual(["de novo"]);
    expect(calls[1]!.conversation.map((m) => m.text)).toContain("alô?");
    await eventually(async () => (await handoffEvents(s)).length === 3, 15_000, "the second hand-off's event");
    expect((await handoffEvents(s)).map((e) => `${e.state}:${e.by}:${e.reason}`)).toEqual([
      "human:handler:cliente pediu humano",
      "bot:operator:null",
      "human:handler:null",
    ]);
  });
});

describe("hand-off with ttlMinutes", () => {
  it("the handler's ttlMinutes arms the lane's alarm for until", async () => {
    const s = await withAutomation();
    const contact = "5511970000405";
    await bot(s.botPath, { handoff: { reason: "fora do horário", ttlMinutes: 30 } });
    await inbound(s, contact, "oi");
    const state = await eventually(
      async () => {
        const got = await json(await api(handoffPath(s, contact), { key: s.key }));
        return got.state === "human" ? got : undefined;
      },
      15_000,
      "the contact with a person",
    );
    expect(state).toMatchObject({ by: "handler", reason: "fora do horário" });
    const until = Date.parse(state.until);
    expect(until - Date.parse(state.since)).toBe(30 * 60_000);
    await eventually(async () => (await runInDurableObject(lane(s, contact), (_i, st) => st.storage.getAlarm())) === until, 15_000, "the alarm at until");
    expect((await handoffEvents(s))[0]).toMatchObject({ by: "handler", until: new Date(until).toISOString() });
  });

  it("hands back by itself on the lane's alarm", async () => {
    const s = await withAutomation();
    const contact = "5511970000401";
    const taken = await json(await api(handoffPath(s, contact), { method: "POST", key: s.key, json: { ttlMinutes: 5, reason: "almoço" } }));
    expect(taken.state).toBe("human");
    const until = Date.parse(taken.until);
    expect(until - Date.parse(taken.since)).toBe(5 * 60_000);
    const stub = lane(s, contact);
    // The lane's alarm is armed for until: no poll.
    expect(await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())).toBe(until);
    const held = await inbound(s, contact, "tem alguém?");
    expect(await deliveryOf(held)).toBe("human");

    // Time passes: until is now behind, in D1 and in the lane's stored wait; the alarm fires.
    await env.DB.prepare("UPDATE conversation_handoffs SET until = ? WHERE instance_id = ?")
      .bind(Date.now() - 1000, s.instanceId)
      .run();
    expect(await stub.endWaits()).toBe(true);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await stub.snapshot()).waits).toEqual([]);

    expect(await json(await api(handoffPath(s, contact), { key: s.key }))).toEqual({ state: "bot" });
    expect((await handoffEvents(s)).map((e) => `${e.state}:${e.by}`)).toEqual(["human:operator", "bot:timeout"]);
    await inbound(s, contact, "oi de novo");
    const calls = await callNumber(s, 1);
    expect(calls[0]!.texts).toEqual(["oi de novo"]);
    expect(calls[0]!.conversation.map((m) => m.text)).toEqual(["tem alguém?"]);
  });

  it("a timer left from an earlier phase hands nothing back", async () => {
    const s = await withAutomation();
    const contact = "5511970000402";
    await api(handoffPath(s, contact), { method: "POST", key: s.key, json: { ttlMinutes: 5 } });
    // The operator takes over again without a ttl: the old timer must not end this phase.
    await api(handoffPath(s, contact), { method: "POST", key: s.key, json: { reason: "sem prazo" } });
    const stub = lane(s, contact);
    expect(await stub.endWaits()).toBe(true);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await stub.snapshot()).waits).toEqual([]);
    expect(await json(await api(handoffPath(s, contact), { key: s.key }))).toMatchObject({ state: "human", reason: "sem prazo" });
    expect((await handoffEvents(s)).map((e) => `${e.state}:${e.by}`)).toEqual(["human:operator", "human:operator"]);
  });
});

describe("a lost timer, a lost lane", () => {
  it("the cron hands back a hand-off past its until whose lane never recorded it", async () => {
    const s = await withAutomation();
    const contact = "5511970000403";
    await api(handoffPath(s, contact), { method: "POST", key: s.key, json: { ttlMinutes: 5 } });
    // The lane's timer is gone (its arming failed); until passed two minutes ago.
    await runInDurableObject(lane(s, contact), (_i, state) => {
      state.storage.sql.exec("DELETE FROM waits WHERE kind = 'handoff'");
    });
    await env.DB.prepare("UPDATE conversation_handoffs SET until = ? WHERE instance_id = ?")
      .bind(Date.now() - 2 * 60_000, s.instanceId)
      .run();
    const run = await catchUpAutomation(env);
    expect(run.handedBack).toBeGreaterThanOrEqual(1);
    expect((await handoffEvents(s)).map((e) => `${e.state}:${e.by}`)).toEqual(["human:operator", "bot:timeout"]);
    expect(await env.DB.prepare("SELECT 1 FROM conversation_handoffs WHERE instance_id = ?").bind(s.instanceId).first()).toBeNull();
  });

  it("a restart keeps the state: the restarted lane still holds the contact's messages", async () => {
    const s = await withAutomation();
    const contact = "5511970000404";
    await inbound(s, contact, "antes");
    await eventually(async () => (await replyTexts(s)).includes("echo: antes"), 15_000, "the first reply");
    await api(handoffPath(s, contact), { method: "POST", key: s.key, json: { reason: "restart" } });
    // The lane restarts: its memory is gone, its storage stays.
    await runInDurableObject(lane(s, contact), (_i, state) => state.abort("restart")).catch(() => undefined);
    const held = await inbound(s, contact, "depois do restart");
    expect(await deliveryOf(held)).toBe("human");
    expect(await json(await api(handoffPath(s, contact), { key: s.key }))).toMatchObject({ state: "human", reason: "restart" });
    await api(handoffPath(s, contact), { method: "DELETE", key: s.key });
    await inbound(s, contact, "de volta");
    const calls = await callNumber(s, 2);
    expect(calls.map((c) => c.texts)).toEqual([["antes"], ["de volta"]]);
    expect(calls[1]!.conversation.map((m) => m.text)).toContain("depois do restart");
  });
});

describe("the routes", () => {
  it("bad input is a 400 in the error shape; another tenant's instance is a 404 and changes nothing", async () => {
    const t = await setupTenant();
    const other = await setupTenant();
    const contact = "5511970000501";
    const bad = await api(handoffPath(t, contact), { method: "POST", key: t.key, json: { ttlMinutes: 4, extra: 1 } });
    expect(bad.status).toBe(400);
    const body = await json(bad);
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.details.map((d: { path: string }) => d.path)).toEqual(expect.arrayContaining(["ttlMinutes"]));
    expect((await api(handoffPath(t, contact), { method: "POST", key: t.key, json: { ttlMinutes: 10081 } })).status).toBe(400);
    expect((await api(handoffPath(t, "not-a-contact"), { key: t.key })).status).toBe(400);
    expect((await api(handoffPath(t, contact), { method: "POST", key: t.key, body: "x", headers: { "content-type": "text/plain" } })).status).toBe(415);

    for (const method of ["POST", "GET", "DELETE"]) {
      const res = await api(handoffPath(t, contact), { method, key: other.key, ...(method === "POST" ? { json: {} } : {}) });
      expect(res.status).toBe(404);
      expect((await json(res)).error.code).toBe("not_found");
    }
    expect(await handoffEvents(other)).toEqual([]);
    expect(await handoffEvents(t)).toEqual([]);
    expect(await json(await api(handoffPath(t, contact), { key: t.key }))).toEqual({ state: "bot" });
    expect((await api(handoffPath(t, contact), { key: "bad-key" })).status).toBe(401);
  });

  it("are in the OpenAPI document", async () => {
    const doc = await json(await api("/openapi.json"));
    const path = doc.paths["/v1/instances/{name}/contacts/{contact}/handoff"];
    expect(Object.keys(path ?? {}).sort()).toEqual(["delete", "get", "post"]);
  });
});
