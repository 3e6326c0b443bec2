// Inbound automation inside workerd: the configuration API, signed calls to a handler (the echo
// bot from simulator/echo-bot.ts), replies through the contact's send lane, order and one call at a
// time per contact, retries and dead letters, the breaker, @lid and groups, debounce.
// Retries and probes are made due by hand and their alarms fired: no test waits for a backoff.
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { describe, expect, inject, it } from "vitest";
import worker from "../../src/index.ts";
import { AutomationLane } from "../../src/automation/lane.ts";
import { catchUpAutomation, STALE_PENDING_MS } from "../../src/automation/wake.ts";
import { database } from "../../src/db/client.ts";
import { contactForms, contactKey } from "../../src/messages/contact-key.ts";
import { purge, sweep } from "../../src/sweep/sweeper.ts";
import { runBatch } from "../../src/db/batch.ts";
import { storeStatements } from "../../src/webhooks/apply.ts";
import { inboundJobOf, webhookJob } from "../../src/webhooks/evolution-job.ts";
import textFixture from "../fixtures/evolution/messages.upsert.text.json";
import { ADMIN, api, eventually, json, postWebhook, send, setupTenant, unique, waitForStatus } from "./helpers.ts";

const botUrl = () => inject("botUrl");
type BotCall = {
  contact: string;
  ids: string[];
  texts: (string | null)[];
  conversation: { direction: string; text: string | null }[];
  replyTo: string | null;
  start: number;
  end: number;
  status: number;
  verified: boolean;
  webhookId: string;
  raw: string;
  signed: { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string };
};

async function bot(path: string, settings?: Record<string, unknown>): Promise<BotCall[]> {
  if (settings) {
    const res = await fetch(`${botUrl()}/_bot/${path}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(settings) });
    if (!res.ok) throw new Error(`bot settings: ${res.status}`);
    return [];
  }
  return ((await (await fetch(`${botUrl()}/_bot/${path}`)).json()) as { calls: BotCall[] }).calls;
}

const botHeld = async (path: string): Promise<number> => ((await (await fetch(`${botUrl()}/_bot/${path}`)).json()) as { held: number }).held;

type Setup = Awaited<ReturnType<typeof setupTenant>> & { token: string; botPath: string; secret: string };

/** A tenant, an instance, and its automation pointing at a fresh echo bot path. */
async function withAutomation(settings: Record<string, unknown> = {}): Promise<Setup> {
  const t = await setupTenant();
  const token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!.webhook_token;
  const botPath = unique("bot");
  const res = await api(`/v1/instances/${t.instance}/automation`, { method: "PUT", key: t.key, json: { url: `${botUrl()}/bot/${botPath}`, ...settings } });
  expect(res.status).toBe(200);
  const body = await json(res);
  await bot(botPath, { secret: body.secret });
  return { ...t, token, botPath, secret: body.secret };
}

let seq = 0;
/** A messages.upsert webhook from `from` (digits, a @lid, or a group JID) as Evolution posts it. */
async function inbound(s: Setup, from: string, text: string, opts: { id?: string; ts?: number; alt?: string; participant?: string } = {}) {
  const { body, id } = upsert(s, from, text, opts);
  const res = await api(`/webhooks/evolution/${s.token}`, { method: "POST", json: body });
  expect(res.status).toBe(200);
  return id;
}

function upsert(s: Setup, from: string, text: string, opts: { id?: string; ts?: number; alt?: string; participant?: string } = {}) {
  const body = structuredClone(textFixture);
  body.instance = s.instance;
  const jid = from.includes("@") ? from : `${from}@s.whatsapp.net`;
  const key: Record<string, unknown> = { remoteJid: jid, fromMe: false, id: opts.id ?? `IN${Date.now().toString(16)}${(seq++).toString(16)}`.toUpperCase() };
  if (opts.alt) key.remoteJidAlt = opts.alt;
  if (opts.participant) key.participant = opts.participant;
  const data: Record<string, unknown> = { ...body.data, key, message: { conversation: text }, messageTimestamp: opts.ts ?? Math.floor(Date.now() / 1000) };
  return { body: { ...body, data }, id: key.id as string };
}

const lane = (s: Setup, contact: string) => env.AUTOMATION.get(env.AUTOMATION.idFromName(`${s.id}:${s.instanceId}:${contact}`));

/** Makes the lane's retry due now and fires its alarm. */
async function fireRetry(s: Setup, contact: string) {
  const stub = lane(s, contact);
  await stub.endWaits();
  await runDurableObjectAlarm(stub);
}

const replies = async (s: Setup) =>
  (
    await env.DB.prepare('SELECT id, "to", text, source, metadata, status FROM messages WHERE tenant_id = ? ORDER BY created_at, id').bind(s.id).all<{
      id: string;
      to: string;
      text: string;
      source: string;
      metadata: string;
    }>()
  ).results;

const deliveries = async (s: Setup) =>
  (
    await env.DB.prepare("SELECT inbound_id, status, attempts, last_error FROM automation_deliveries WHERE tenant_id = ?")
      .bind(s.id)
      .all<{ inbound_id: string; status: string; attempts: number; last_error: string | null }>()
  ).results;

const eventsOf = async (s: Setup, type: string) =>
  (await env.DB.prepare("SELECT data FROM outbox_events WHERE tenant_id = ? AND type = ? ORDER BY seq").bind(s.id, type).all<{ data: string }>()).results.map(
    (r) => JSON.parse(r.data),
  );

describe("configuration API", () => {
  it("PUT creates with defaults and a secret shown once; GET shows counts, never the secret; DELETE removes it", async () => {
    const t = await setupTenant();
    const path = `/v1/instances/${t.instance}/automation`;
    const created = await api(path, { method: "PUT", key: t.key, json: { url: "https://agent.example.com/in" } });
    expect(created.status).toBe(200);
    const body = await json(created);
    expect(body).toMatchObject({
      url: "https://agent.example.com/in",
      enabled: true,
      timeoutMs: 10000,
      contextMessages: 10,
      debounceMs: 0,
      includeGroups: false,
      maxAttempts: 5,
      state: "active",
    });
    expect(body.secret).toMatch(/^whsec_/);
    const updated = await json(await api(path, { method: "PUT", key: t.key, json: { url: "https://agent.example.com/v2", maxAttempts: 3 } }));
    expect(updated.secret).toBeUndefined();
    expect(updated.maxAttempts).toBe(3);
    const got = await json(await api(path, { key: t.key }));
    expect(got).toMatchObject({ url: "https://agent.example.com/v2", counts: { pending: 0, retrying: 0, delivered: 0, dead: 0 } });
    expect(JSON.stringify(got)).not.toContain("whsec_");
    const row = await env.DB.prepare("SELECT secret FROM automations WHERE instance_id = ?").bind(t.instanceId).first<{ secret: string }>();
    expect(row?.secret).toBe(body.secret);
    expect((await api(path, { method: "DELETE", key: t.key })).status).toBe(204);
    expect((await api(path, { key: t.key })).status).toBe(404);
    expect((await api(path, { method: "DELETE", key: t.key })).status).toBe(404);
  });

  it("bad input is a 400 in the error shape; another tenant's instance is a 404", async () => {
    const t = await setupTenant();
    const other = await setupTenant();
    const path = `/v1/instances/${t.instance}/automation`;
    const bad = await api(path, { method: "PUT", key: t.key, json: { url: "ftp://x", timeoutMs: 50, contextMessages: 51, extra: 1 } });
    expect(bad.status).toBe(400);
    const paths = (await json(bad)).error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(["url", "timeoutMs", "contextMessages"]));
    expect((await api(path, { method: "PUT", key: other.key, json: { url: "https://a.example.com" } })).status).toBe(404);
    expect((await api(path, { method: "PUT", key: t.key, body: "url=x", headers: { "content-type": "text/plain" } })).status).toBe(415);
    expect((await api(`/v1/instances/${t.instance}-none/automation`, { key: t.key })).status).toBe(404);
    expect((await api(`${path}/dead-letters?limit=0`, { key: t.key })).status).toBe(400);
    expect((await api(`${path}/dead-letters/in_nope/replay`, { method: "POST", key: t.key })).status).toBe(404);
  });
});

describe("inbound → handler → reply", () => {
  it("calls the handler signed, with the conversation; the reply goes out through the contact's lane; a duplicate webhook changes nothing", async () => {
    const s = await withAutomation({ contextMessages: 5 });
    const contact = "5511970000001";
    const keyId = await inbound(s, contact, "oi");
    const first = await eventually(async () => (await replies(s)).find((r) => r.text === "echo: oi"), 15_000, "the echo reply");
    expect(first).toMatchObject({ to: contact, source: "automation" });
    const inboundId = (await env.DB.prepare("SELECT id FROM inbound_messages WHERE provider_message_id = ?").bind(keyId).first<{ id: string }>())!.id;
    expect(JSON.parse(first.metadata)).toEqual({ inReplyTo: inboundId });
    await waitForStatus(first.id, ["sent"]);

    // The same webhook again (a redelivery): nothing new reaches the handler.
    await inbound(s, contact, "oi", { id: keyId });
    await inbound(s, contact, "tudo bem?");
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: tudo bem?"), 15_000, "the second reply");
    const calls = await bot(s.botPath);
    expect(calls.map((c) => c.texts)).toEqual([["oi"], ["tudo bem?"]]);
    expect(calls.every((c) => c.verified && c.replyTo === contact)).toBe(true);
    // The second call saw the first exchange as its context, oldest first.
    expect(calls[1]!.conversation.map((m) => `${m.direction}:${m.text}`)).toEqual(["in:oi", "out:echo: oi"]);
    expect((await deliveries(s)).map((d) => d.status)).toEqual(["delivered", "delivered"]);
    const got = await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }));
    expect(got.counts).toEqual({ pending: 0, retrying: 0, delivered: 2, dead: 0 });
  });

  it("one call at a time per contact, in Evolution's timestamp order; contacts in parallel", async () => {
    const s = await withAutomation({ timeoutMs: 30000 });
    const contacts = ["5511970000011", "5511970000012", "5511970000013"];
    const base = Math.floor(Date.now() / 1000);
    // The first call of each contact is held unanswered, so what comes next is all waiting at once.
    await bot(s.botPath, { hold: true });
    for (const c of contacts) await inbound(s, c, "m0", { ts: base });
    // Three calls open together: contacts do not wait for each other.
    await eventually(async () => (await botHeld(s.botPath)) === 3, 15_000, "the three first calls held");
    // Arrival order differs from timestamp order.
    for (const c of contacts) {
      await inbound(s, c, "m2", { ts: base + 2 });
      await inbound(s, c, "m1", { ts: base + 1 });
      await inbound(s, c, "m3", { ts: base + 3 });
    }
    await eventually(async () => (await deliveries(s)).length === 12, 15_000, "all twelve handed to the lanes");
    await bot(s.botPath, { hold: false });
    const calls = await eventually(
      async () => {
        const all = await bot(s.botPath);
        return all.length === 12 ? all : undefined;
      },
      20_000,
      "twelve handler calls",
    );
    for (const c of contacts) {
      const mine = calls.filter((x) => x.contact === c).sort((a, b) => a.start - b.start);
      expect(mine.map((x) => x.texts[0])).toEqual(["m0", "m1", "m2", "m3"]);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.start).toBeGreaterThanOrEqual(mine[i - 1]!.end);
    }
  });
});

describe("failures", () => {
  it("retries with backoff until the handler answers; later messages of the contact wait", async () => {
    const s = await withAutomation();
    const contact = "5511970000021";
    await bot(s.botPath, { fail: 2 });
    await inbound(s, contact, "primeira");
    await eventually(async () => (await bot(s.botPath)).length === 1, 15_000, "first failed call");
    await inbound(s, contact, "segunda");
    await eventually(
      async () => {
        const rows = await deliveries(s);
        return rows.length === 2 && rows.some((d) => d.attempts === 1 && d.last_error?.startsWith("HTTP 500"));
      },
      15_000,
      "attempt recorded, second message waiting",
    );
    const got = await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }));
    expect(got.counts).toMatchObject({ retrying: 1, pending: 1 });
    await fireRetry(s, contact);
    await eventually(async () => (await bot(s.botPath)).length === 2, 15_000, "second failed call");
    await fireRetry(s, contact);
    await eventually(async () => (await replies(s)).length === 2, 15_000, "both replies");
    const calls = await bot(s.botPath);
    expect(calls.map((c) => `${c.texts[0]}:${c.status}`)).toEqual(["primeira:500", "primeira:500", "primeira:200", "segunda:200"]);
    // Retries carry the same webhook-id; the next message another.
    expect(new Set(calls.slice(0, 3).map((c) => c.webhookId)).size).toBe(1);
    expect(calls[3]!.webhookId).not.toBe(calls[0]!.webhookId);
    expect((await replies(s)).map((r) => r.text)).toEqual(["echo: primeira", "echo: segunda"]);
  });

  it("after maxAttempts: a dead letter, an automation.failed event, the contact moves on; replay delivers it", async () => {
    const s = await withAutomation({ maxAttempts: 2 });
    const contact = "5511970000031";
    await bot(s.botPath, { fail: 2, failStatus: 503 });
    await inbound(s, contact, "perdida");
    await inbound(s, contact, "seguinte");
    await eventually(async () => (await bot(s.botPath)).length === 1, 15_000, "first call");
    await fireRetry(s, contact);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: seguinte"), 15_000, "the next message answered");
    const failed = await eventsOf(s, "automation.failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ instance: s.instance, contact, attempts: 2 });
    const list = await json(await api(`/v1/instances/${s.instance}/automation/dead-letters`, { key: s.key }));
    expect(list.data).toHaveLength(1);
    expect(list.data[0]).toMatchObject({ contact, text: "perdida", attempts: 2 });
    expect(list.data[0].error).toContain("HTTP 503");
    expect(list.data[0].inboundId).toBe(failed[0].inboundIds[0]);

    const replay = await api(`/v1/instances/${s.instance}/automation/dead-letters/${list.data[0].inboundId}/replay`, { method: "POST", key: s.key });
    expect(replay.status).toBe(202);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: perdida"), 15_000, "the replayed message answered");
    // The replay is a new call: a new webhook-id, so a handler that dedupes on it does not drop it
    // as a repeat of the two failed calls (which shared theirs).
    const perdida = (await bot(s.botPath)).filter((c) => c.texts[0] === "perdida");
    expect(perdida.map((c) => c.status)).toEqual([503, 503, 200]);
    expect(perdida[0]!.webhookId).toBe(perdida[1]!.webhookId);
    expect(perdida[2]!.webhookId).not.toBe(perdida[0]!.webhookId);
    expect((await api(`/v1/instances/${s.instance}/automation/dead-letters/${list.data[0].inboundId}/replay`, { method: "POST", key: s.key })).status).toBe(
      409,
    );
    expect((await json(await api(`/v1/instances/${s.instance}/automation/dead-letters`, { key: s.key }))).data).toHaveLength(0);
  });

  it("the breaker pauses after 5 consecutive failures, keeps what arrives, probes, resumes and delivers in order", async () => {
    const s = await withAutomation({ maxAttempts: 10 });
    const a = "5511970000041";
    const b = "5511970000042";
    await bot(s.botPath, { fail: 6 });
    await inbound(s, a, "a1");
    await eventually(async () => (await bot(s.botPath)).length === 1, 15_000, "first call");
    for (let i = 2; i <= 5; i++) {
      await fireRetry(s, a);
      await eventually(async () => (await bot(s.botPath)).length === i, 15_000, `call ${i}`);
    }
    const paused = await eventually(async () => {
      const got = await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }));
      return got.state === "paused" ? got : undefined;
    });
    expect(paused.probeAt).toBeDefined();
    expect(paused.breaker).toBe("paused");
    expect(await eventsOf(s, "automation.paused")).toHaveLength(1);
    // While paused: another contact's messages are kept, not called.
    await inbound(s, b, "b1");
    await inbound(s, b, "b2");
    await eventually(
      async () => (await env.DB.prepare("SELECT 1 FROM automation_parked WHERE lane_key LIKE ?").bind(`%${b}`).first()) !== null,
      15_000,
      "b parked",
    );
    // b's lane holds both and waits for the probe time (its run for b2 is over: a later run would
    // see the probe made due below and take the probe itself).
    await eventually(
      async () => {
        const snap = await lane(s, b).snapshot();
        return snap.pending.length === 2 && snap.alarm !== null && snap.alarm > Date.now() + 1_000;
      },
      15_000,
      "b's lane idle until the probe",
    );
    expect(await bot(s.botPath)).toHaveLength(5);
    // The probe is due: a's lane fires, fails once more (the 6th scripted failure), and stays paused.
    await env.DB.prepare("UPDATE automations SET probe_at = 0 WHERE instance_id = ?").bind(s.instanceId).run();
    await fireRetry(s, a);
    await eventually(async () => (await bot(s.botPath)).length === 6, 15_000, "failed probe");
    expect((await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }))).state).toBe("paused");
    // Next probe succeeds: resumed, and b's lane is woken without waiting for its own alarm.
    // While its call is held open, the breaker reads `probing`.
    await env.DB.prepare("UPDATE automations SET probe_at = 0 WHERE instance_id = ?").bind(s.instanceId).run();
    await bot(s.botPath, { hold: true });
    const probing = fireRetry(s, a);
    await eventually(async () => (await botHeld(s.botPath)) === 1, 15_000, "the probe's call held");
    expect((await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }))).breaker).toBe("probing");
    await bot(s.botPath, { hold: false });
    await probing;
    await eventually(async () => (await replies(s)).length === 3, 15_000, "all three answered");
    const calls = await bot(s.botPath);
    expect(calls.filter((c) => c.status === 200).map((c) => c.texts[0])).toEqual(expect.arrayContaining(["a1", "b1", "b2"]));
    expect(calls.filter((c) => c.contact === b).map((c) => c.texts[0])).toEqual(["b1", "b2"]);
    expect(await eventsOf(s, "automation.resumed")).toHaveLength(1);
    const got = await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }));
    expect(got).toMatchObject({ state: "active", breaker: "closed", consecutiveFailures: 0, counts: { delivered: 3, dead: 0 } });
  });
});

describe("parked webhooks", () => {
  it("an inbound message parked after its retries ran out reaches the handler once an operator replays it", async () => {
    const s = await withAutomation();
    const contact = "5511970000041";
    const { body, id } = upsert(s, contact, "estava no DLQ");
    const job = { tenantId: s.id, instanceId: s.instanceId, instanceName: s.instance, event: "messages.upsert", data: body.data, receivedAt: Date.now() };
    const queueId = unique("dlq-automation");
    const batch = createMessageBatch("mensageiro-webhooks-dlq", [{ id: queueId, timestamp: new Date(), attempts: 5, body: job }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual([queueId]);

    const replay = await api("/v1/admin/webhooks/parked/replay", { method: "POST", key: ADMIN, json: { ids: [queueId] } });
    expect(await json(replay)).toMatchObject({ replayed: [{ id: queueId, outcome: "stored" }], failed: [] });
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: estava no DLQ"), 15_000, "the replayed message answered");
    const calls = await bot(s.botPath);
    expect(calls.map((c) => c.texts)).toEqual([["estava no DLQ"]]);
    const stored = await env.DB.prepare("SELECT contact FROM inbound_messages WHERE instance_id = ? AND provider_message_id = ?")
      .bind(s.instanceId, id)
      .first();
    expect(stored).toEqual({ contact });
  });
});

describe("addresses and bursts", () => {
  it("@lid contacts are answered at their phone number; without one the call still happens, with no reply", async () => {
    const s = await withAutomation();
    await inbound(s, "123456789012345@lid", "via lid", { alt: "5511970000051@s.whatsapp.net" });
    await inbound(s, "987654321098765@lid", "sem número");
    await eventually(async () => (await bot(s.botPath)).length === 2, 15_000, "both calls");
    await eventually(async () => (await deliveries(s)).filter((d) => d.status === "delivered").length === 2, 15_000, "both delivered");
    const calls = await bot(s.botPath);
    expect(calls.find((c) => c.texts[0] === "via lid")).toMatchObject({ contact: "5511970000051", replyTo: "5511970000051" });
    expect(calls.find((c) => c.texts[0] === "sem número")).toMatchObject({ contact: "987654321098765@lid", replyTo: null });
    expect((await replies(s)).map((r) => [r.to, r.text])).toEqual([["5511970000051", "echo: via lid"]]);
    expect((await deliveries(s)).find((d) => d.last_error)?.last_error).toContain("@lid");
  });

  it("groups only with includeGroups, answered at the group JID", async () => {
    const group = "120363025246125486@g.us";
    const participant = "5511970000061@s.whatsapp.net";
    const off = await withAutomation();
    await inbound(off, group, "ignorada", { participant });
    await inbound(off, "5511970000062", "direta");
    await eventually(async () => (await replies(off)).length === 1, 15_000, "the direct message answered");
    expect((await bot(off.botPath)).map((c) => c.texts)).toEqual([["direta"]]);
    expect(await deliveries(off)).toHaveLength(1);

    const on = await withAutomation({ includeGroups: true });
    await inbound(on, group, "no grupo", { participant });
    await eventually(async () => (await replies(on)).length === 1, 15_000, "group reply");
    expect((await replies(on))[0]).toMatchObject({ to: group, text: "echo: no grupo" });
    expect((await bot(on.botPath))[0]).toMatchObject({ contact: group, replyTo: group });
  });

  it("a Brazilian mobile's 12- and 13-digit forms are one contact: one lane for API sends and replies, one conversation, one timeline", async () => {
    const s = await withAutomation();
    const written = "5531987650001"; // as a caller writes it: 55 31 9 8765-0001
    const reported = "553187650001"; // as WhatsApp keys an older account
    const sent = (await json(await send(s.key, { instance: s.instance, to: written, text: "pedido saiu" }))).id;
    await waitForStatus(sent, ["sent"]);
    await inbound(s, reported, "oi");
    const reply = await eventually(async () => (await replies(s)).find((r) => r.text === "echo: oi"), 15_000, "the reply");
    // Answered at the number Evolution reported, in the lane of the API send.
    expect(reply.to).toBe(reported);
    const laneKeys = await env.DB.prepare("SELECT DISTINCT lane_key FROM messages WHERE tenant_id = ?").bind(s.id).all<{ lane_key: string }>();
    expect(laneKeys.results.map((r) => r.lane_key)).toEqual([`${s.id}:${s.instanceId}:${written}`]);
    const [call] = await bot(s.botPath);
    expect(call).toMatchObject({ contact: written, replyTo: reported });
    expect(call!.conversation.map((m) => `${m.direction}:${m.text}`)).toEqual(["out:pedido saiu"]);
    await waitForStatus(reply.id, ["sent"]);
    for (const form of [written, reported]) {
      const timeline = await json(await api(`/v1/contacts/${form}/messages`, { key: s.key }));
      expect(timeline.data.map((m: { direction: string; text: string }) => `${m.direction}:${m.text}`).sort()).toEqual(
        ["inbound:oi", "outbound:echo: oi", "outbound:pedido saiu"].sort(),
      );
    }
  });

  it.each([
    ["553187654321", "5531987654321", ["5531987654321", "553187654321"]],
    ["5531987654321", "5531987654321", ["5531987654321", "553187654321"]],
    ["551132345678", "551132345678", ["551132345678"]],
    ["14155550100", "14155550100", ["14155550100"]],
    ["120363041234567890@g.us", "120363041234567890@g.us", ["120363041234567890@g.us"]],
  ])("contact key of %s is %s", (address, key, forms) => {
    expect(contactKey(address)).toBe(key);
    expect(contactForms(address)).toEqual(forms);
  });

  it("debounce gathers a burst into one call", async () => {
    const s = await withAutomation({ debounceMs: 800 });
    const contact = "5511970000071";
    for (const text of ["um", "dois", "três"]) await inbound(s, contact, text);
    await eventually(async () => (await replies(s)).length === 1, 15_000, "one reply");
    const calls = await bot(s.botPath);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.texts).toEqual(["um", "dois", "três"]);
    expect((await replies(s))[0]!.text).toBe("echo: um / dois / três");
  });
});

describe("secret rotation", () => {
  it("the new secret is shown once; during the overlap each call is signed by both secrets, after it by the new one only", async () => {
    const s = await withAutomation();
    const contact = "5511970000081";
    const rotate = `/v1/instances/${s.instance}/automation/secret/rotate`;
    const res = await api(rotate, { method: "POST", key: s.key });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const rotated = await json(res);
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(s.secret);
    const overlapEnds = Date.parse(rotated.previousSecretValidUntil);
    expect(overlapEnds - Date.parse(rotated.rotatedAt)).toBe(24 * 3600_000);
    const row = await env.DB.prepare("SELECT secret, secret_previous FROM automations WHERE instance_id = ?").bind(s.instanceId).first();
    expect(row).toEqual({ secret: rotated.secret, secret_previous: s.secret });
    // Never shown again.
    const got = await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }));
    expect(JSON.stringify(got)).not.toContain("whsec_");
    expect(got.previousSecretValidUntil).toBe(rotated.previousSecretValidUntil);

    // During the overlap: the call verifies with the old secret and with the new one.
    await inbound(s, contact, "durante");
    const [during] = await eventually(async () => {
      const calls = await bot(s.botPath);
      return calls.length === 1 ? calls : undefined;
    });
    expect(during!.signed["webhook-signature"].split(" ")).toHaveLength(2);
    expect(new Webhook(s.secret).verify(during!.raw, during!.signed)).toMatchObject({ type: "automation.inbound", contact });
    expect(new Webhook(rotated.secret).verify(during!.raw, during!.signed)).toMatchObject({ type: "automation.inbound", contact });

    // The overlap over (its end made past, as 24 h later): only the new secret signs.
    await env.DB.prepare("UPDATE automations SET secret_previous_until = ? WHERE instance_id = ?")
      .bind(Date.now() - 1, s.instanceId)
      .run();
    await bot(s.botPath, { secret: rotated.secret });
    await inbound(s, contact, "depois");
    const after = await eventually(async () => (await bot(s.botPath)).find((c) => c.texts[0] === "depois"));
    expect(after.signed["webhook-signature"].split(" ")).toHaveLength(1);
    expect(new Webhook(rotated.secret).verify(after.raw, after.signed)).toMatchObject({ contact });
    expect(() => new Webhook(s.secret).verify(after.raw, after.signed)).toThrow();
    expect((await json(await api(`/v1/instances/${s.instance}/automation`, { key: s.key }))).previousSecretValidUntil).toBeUndefined();
    await eventually(async () => (await replies(s)).length === 2, 15_000, "both answered");
  });

  it("another tenant's instance, or one without automation, is a 404 in the error shape", async () => {
    const s = await withAutomation();
    const other = await setupTenant();
    const rotate = `/v1/instances/${s.instance}/automation/secret/rotate`;
    const foreign = await api(rotate, { method: "POST", key: other.key });
    expect(foreign.status).toBe(404);
    expect((await json(foreign)).error.code).toBe("not_found");
    const none = await api(`/v1/instances/${other.instance}/automation/secret/rotate`, { method: "POST", key: other.key });
    expect(none.status).toBe(404);
    expect(JSON.stringify(await json(none))).not.toContain("whsec_");
    const row = await env.DB.prepare("SELECT secret, secret_previous FROM automations WHERE instance_id = ?").bind(s.instanceId).first();
    expect(row).toEqual({ secret: s.secret, secret_previous: null });
  });
});

describe("retention", () => {
  it("the sweep's purge removes finished deliveries past retention and keeps pending ones", async () => {
    const s = await withAutomation();
    const contact = "5511970000091";
    const waiting = "5511970000092";
    await inbound(s, contact, "velha");
    await inbound(s, contact, "nova");
    await eventually(async () => (await deliveries(s)).filter((d) => d.status === "delivered").length === 2, 15_000, "two delivered");
    // A message whose handler call failed: pending, waiting for its retry.
    await bot(s.botPath, { fail: 1 });
    await inbound(s, waiting, "pendente");
    await eventually(async () => (await deliveries(s)).some((d) => d.status === "pending" && d.attempts === 1), 15_000, "a pending retry");
    const idOf = async (text: string) =>
      (await env.DB.prepare("SELECT id FROM inbound_messages WHERE tenant_id = ? AND text = ?").bind(s.id, text).first<{ id: string }>())!.id;
    const [old, fresh, pending] = [await idOf("velha"), await idOf("nova"), await idOf("pendente")];
    // The old and the pending one last changed 31 days ago (retention is 30).
    const longAgo = Date.now() - 31 * 86_400_000;
    await env.DB.prepare("UPDATE automation_deliveries SET created_at = ?1, updated_at = ?1 WHERE inbound_id IN (?2, ?3)").bind(longAgo, old, pending).run();

    const report = await purge(env);
    expect(report.automationDeliveries).toBeGreaterThanOrEqual(1);
    const left = await deliveries(s);
    expect(left.map((d) => d.inbound_id).sort()).toEqual([fresh, pending].sort());
    expect(left.find((d) => d.inbound_id === pending)?.status).toBe("pending");
    // The pending one still goes to the handler.
    await fireRetry(s, waiting);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: pendente"), 15_000, "the pending one answered");
  });
});

describe("fast hand-off", () => {
  it("the webhook route stores and hands over an automation instance's inbound message itself, without the queue; a queued copy changes nothing", async () => {
    const s = await withAutomation();
    const contact = "5511970000101";
    // The queue is captured, not consumed: only the route's own hand-off can reach the handler.
    const queued: unknown[] = [];
    const captured = { ...env, WEBHOOKS: { send: async (job: unknown) => void queued.push(job) } } as unknown as Env;
    const post = async (e: Env, text: string, id?: string) => {
      const { body, id: keyId } = upsert(s, contact, text, { id });
      return { res: await postWebhook(e, s.token, body), keyId, body };
    };
    const first = await post(captured, "rápido");
    expect(first.res.status).toBe(200);
    expect(await first.res.json()).toEqual({ received: true, outcome: "stored" });
    expect(queued).toHaveLength(0);
    // Stored before the 200: the message, its record, and its place in the contact's lane.
    expect((await deliveries(s)).map((d) => d.status)).toEqual(["pending"]);
    await eventually(async () => (await replies(s)).find((r) => r.text === "echo: rápido"), 15_000, "the reply");

    // The same message through the queue (a job queued while the route did not know of the
    // automation yet): acked, and nothing happens twice.
    const job = { tenantId: s.id, instanceId: s.instanceId, instanceName: s.instance, event: "messages.upsert", data: first.body.data, receivedAt: Date.now() };
    const batch = createMessageBatch("mensageiro-webhooks", [{ id: "fast-1", timestamp: new Date(), attempts: 1, body: job }]);
    const qctx = createExecutionContext();
    await worker.queue(batch, env, qctx);
    expect((await getQueueResult(batch, qctx)).explicitAcks).toEqual(["fast-1"]);
    expect((await bot(s.botPath)).map((c) => c.texts)).toEqual([["rápido"]]);
    expect((await deliveries(s)).map((d) => d.status)).toEqual(["delivered"]);
    expect(await eventsOf(s, "message.received")).toHaveLength(1);
    expect((await replies(s)).map((r) => r.text)).toEqual(["echo: rápido"]);

    // The lane cannot be reached: the route queues the webhook instead, and the consumer delivers it.
    const broken = {
      ...captured,
      AUTOMATION: { idFromName: env.AUTOMATION.idFromName.bind(env.AUTOMATION), get: () => ({ offer: async () => Promise.reject(new Error("lane down")) }) },
    } as unknown as Env;
    const second = await post(broken, "de novo");
    expect(second.res.status).toBe(200);
    expect(await second.res.json()).toEqual({ received: true });
    expect(queued).toHaveLength(1);
    const retry = createMessageBatch("mensageiro-webhooks", [{ id: "fast-2", timestamp: new Date(), attempts: 1, body: queued[0] }]);
    const rctx = createExecutionContext();
    await worker.queue(retry, env, rctx);
    expect((await getQueueResult(retry, rctx)).explicitAcks).toEqual(["fast-2"]);
    await eventually(async () => (await replies(s)).find((r) => r.text === "echo: de novo"), 15_000, "the second reply");
    expect((await bot(s.botPath)).map((c) => c.texts)).toEqual([["rápido"], ["de novo"]]);
  });

  it("a run cut off after the replies were written hands the same replies to the send lane again, writing none twice", async () => {
    const s = await withAutomation();
    const contact = "5511970000102";
    await inbound(s, contact, "segura");
    const [reply] = await eventually(
      async () => {
        const r = await replies(s);
        return r.length === 1 ? r : undefined;
      },
      15_000,
      "the reply",
    );
    await waitForStatus(reply!.id, ["sent"]);
    // As if the lane had died right after its D1 batch: the answer (with the replies' ids) is back in
    // the lane's batch row, and the send lane never got the reply.
    const sendLane = env.LANES.get(env.LANES.idFromName(`${s.id}:${s.instanceId}:${contact}`));
    const inSendLane = () =>
      runInDurableObject(sendLane, (_i, state) => state.storage.sql.exec("SELECT id FROM lane_items WHERE id = ?", reply!.id).toArray().length);
    await runInDurableObject(sendLane, (_i, state) => void state.storage.sql.exec("DELETE FROM lane_items WHERE id = ?", reply!.id));
    expect(await inSendLane()).toBe(0);
    const stub = lane(s, contact);
    const answer = { replies: [{ instance: s.instance, to: contact, text: "echo: segura" }], dropped: 0, attempts: 1, replyIds: [reply!.id] };
    expect(await stub.cutOffAfterAnswer(answer)).toHaveLength(1);
    await stub.kick();
    // The same id is in the contact's send lane again (its D1 claim refuses a second send); no new row.
    await eventually(async () => (await inSendLane()) === 1, 15_000, "the reply back in the send lane");
    await eventually(async () => (await stub.snapshot()).batch === null, 15_000, "the run finished");
    expect((await replies(s)).map((r) => [r.id, r.text])).toEqual([[reply!.id, "echo: segura"]]);
    expect((await bot(s.botPath)).map((c) => c.texts)).toEqual([["segura"]]);
  });
});

describe("stored waits", () => {
  /** The lane ends as a crash or an eviction between storing a wait and arming the alarm leaves it:
   *  no alarm, nothing in memory. */
  const cutOffBeforeArming = async (s: Setup, contact: string) => {
    await runInDurableObject(lane(s, contact), (_i, state) => state.storage.deleteAlarm());
    expect(await runInDurableObject(lane(s, contact), (_i, state) => state.storage.getAlarm())).toBeNull();
    await runInDurableObject(lane(s, contact), (_i, state) => state.abort("evicted")).catch(() => undefined);
  };

  it("a retry stored by a run cut off before it armed the alarm: the lane's next start arms it, and the retry is made", async () => {
    const s = await withAutomation();
    const contact = "5511970000121";
    await bot(s.botPath, { fail: 1 });
    await inbound(s, contact, "guardada");
    const retrying = await eventually(
      async () => {
        const { batch } = await lane(s, contact).snapshot();
        return batch && batch.next_at > 0 ? batch : undefined;
      },
      15_000,
      "the retry stored",
    );
    // The lane ends (evicted, or crashed) after storing the retry and before arming the alarm.
    await cutOffBeforeArming(s, contact);
    // Its next start (any call) arms the stored wait.
    const restarted = await lane(s, contact).snapshot();
    expect(restarted.alarm).toBe(retrying.next_at);
    expect(restarted.waits).toEqual([{ kind: "retry", due: retrying.next_at }]);
    // The retry's time comes: the alarm calls again.
    await fireRetry(s, contact);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: guardada"), 15_000, "the reply");
    expect((await bot(s.botPath)).map((c) => c.status)).toEqual([500, 200]);
    const done = await eventually(async () => {
      const snap = await lane(s, contact).snapshot();
      return snap.batch === null && snap.waits.length === 0 ? snap : undefined;
    });
    expect(done.alarm).toBeNull();
  });

  it("a debounce's end stored by a run cut off before it armed the alarm: armed on the next start; the burst is called at the stored end", async () => {
    const s = await withAutomation({ debounceMs: 10_000 });
    const contact = "5511970000122";
    await inbound(s, contact, "um");
    await inbound(s, contact, "dois");
    const stored = await eventually(
      async () => {
        const snap = await lane(s, contact).snapshot();
        return snap.pending.length === 2 && snap.waits.length === 1 && snap.waits[0]!.kind === "debounce" ? snap : undefined;
      },
      15_000,
      "the debounce's end stored",
    );
    expect(stored.alarm).toBe(stored.waits[0]!.due);
    await cutOffBeforeArming(s, contact);
    expect((await lane(s, contact).snapshot()).alarm).toBe(stored.waits[0]!.due);
    // The stored end comes (made due now): the burst is called, both messages in one call.
    expect(await lane(s, contact).endWaits()).toBe(true);
    await runDurableObjectAlarm(lane(s, contact));
    await eventually(async () => (await replies(s)).length === 1, 15_000, "one reply");
    expect((await bot(s.botPath)).map((c) => c.texts)).toEqual([["um", "dois"]]);
  });

  it("the alarm is the earliest stored wait: a retry before a hand-off's end, then the hand-off's end alone", async () => {
    const s = await withAutomation();
    const contact = "5511970000123";
    await bot(s.botPath, { fail: 1 });
    await inbound(s, contact, "antes da pessoa");
    const retry = await eventually(async () => (await lane(s, contact).snapshot()).waits.find((w) => w.kind === "retry"), 15_000, "the retry stored");
    const taken = await json(await api(`/v1/instances/${s.instance}/contacts/${contact}/handoff`, { method: "POST", key: s.key, json: { ttlMinutes: 5 } }));
    const until = Date.parse(taken.until);
    const both = await lane(s, contact).snapshot();
    expect(both.waits).toEqual([retry, { kind: "handoff", due: until }]);
    expect(both.alarm).toBe(retry.due);
    // The retry (every wait made due: D1's until puts the hand-off's end back): the call under way
    // finishes though a person has the contact now; then only the hand-off's end waits.
    await fireRetry(s, contact);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: antes da pessoa"), 15_000, "the reply");
    const after = await eventually(async () => {
      const snap = await lane(s, contact).snapshot();
      return snap.batch === null && snap.waits.length === 1 ? snap : undefined;
    });
    expect(after.waits).toEqual([{ kind: "handoff", due: until }]);
    expect(after.alarm).toBe(until);
  });
});

describe("a lane's storage", () => {
  it("a lane made before the CHECK on its messages' state is rebuilt with it, its messages kept", async () => {
    const stub = env.AUTOMATION.get(env.AUTOMATION.idFromName(unique("old-lane")));
    await runInDurableObject(stub, (_i, state) => {
      const exec = (q: string, ...b: unknown[]) => state.storage.sql.exec(q, ...b);
      exec("DROP TABLE items");
      exec(`CREATE TABLE items (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, seq INTEGER NOT NULL, arrived_at INTEGER NOT NULL, message TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', done_at INTEGER)`);
      exec("CREATE INDEX items_order ON items (state, ts, seq)");
      exec(
        "INSERT INTO items (id, ts, seq, arrived_at, message, state, done_at) VALUES ('a', 1, 1, 1, '{}', 'pending', NULL), ('b', 2, 2, 2, '{}', 'done', 5)",
      );
      // The lane as it starts after the update.
      new AutomationLane(state, env);
      const [table] = exec("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'").toArray();
      expect(String(table!.sql)).toContain("CHECK");
      expect(exec("SELECT id, state, done_at FROM items ORDER BY seq").toArray()).toEqual([
        { id: "a", state: "pending", done_at: null },
        { id: "b", state: "done", done_at: 5 },
      ]);
      expect(exec("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'items_order'").toArray()).toHaveLength(1);
      expect(() => exec("INSERT INTO items (id, ts, seq, arrived_at, message, state) VALUES ('c', 3, 3, 3, '{}', 'sending')")).toThrow(/CHECK/);
    });
  });

  it("a lane made before the stored waits: its retry and its hand-off's end become waits, and its alarm is armed from them", async () => {
    const stub = env.AUTOMATION.get(env.AUTOMATION.idFromName(unique("old-lane")));
    const retryAt = Date.now() + 120_000;
    const until = Date.now() + 600_000;
    const conversation = { tenantId: "t", instanceId: "i", instanceName: "n", contact: "5511970000124" };
    await runInDurableObject(stub, async (_i, state) => {
      const exec = (q: string, ...b: unknown[]) => state.storage.sql.exec(q, ...b);
      exec("DROP TABLE waits");
      await state.storage.deleteAlarm();
      exec("INSERT INTO batch (id, item_ids, attempts, next_at, last_error) VALUES ('a', '[\"a\"]', 1, ?, 'HTTP 500')", retryAt);
      state.storage.kv.put("handoff", { conversation, at: until });
      // The lane as it starts after the update.
      new AutomationLane(state, env);
      expect(exec("SELECT kind, due, conversation FROM waits ORDER BY due").toArray()).toEqual([
        { kind: "retry", due: retryAt, conversation: null },
        { kind: "handoff", due: until, conversation: JSON.stringify(conversation) },
      ]);
      expect(state.storage.kv.get("handoff")).toBeUndefined();
      expect(() => exec("INSERT INTO waits (kind, due) VALUES ('later', 1)")).toThrow(/CHECK/);
      expect(() => exec("INSERT INTO waits (kind, due, conversation) VALUES ('debounce', 1, '{}')")).toThrow(/CHECK/);
    });
    await eventually(async () => (await stub.snapshot()).alarm === retryAt, 15_000, "the alarm at the retry");
  });
});

describe("nothing left behind", () => {
  /** A request to the Worker with the bindings given (a lane that cannot be reached). */
  const apiWith = async (bindings: Env, path: string, key: string) => {
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request<unknown, IncomingRequestCfProperties>(`https://gateway.test${path}`, { method: "POST", headers: { authorization: `Bearer ${key}` } }),
      bindings,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    return res;
  };
  const unreachableLanes = {
    ...env,
    AUTOMATION: {
      idFromName: env.AUTOMATION.idFromName.bind(env.AUTOMATION),
      get: () => ({ offer: async () => Promise.reject(new Error("lane down")), replay: async () => Promise.reject(new Error("lane down")) }),
    },
  } as unknown as Env;

  it("an automation switched on in another isolate: this isolate's next inbound message is offered", async () => {
    const s = await withAutomation({ enabled: false });
    const contact = "5511970000111";
    await inbound(s, contact, "antes");
    // Another isolate's PUT: D1 says on, this isolate was not told.
    await env.DB.prepare("UPDATE automations SET enabled = 1, updated_at = ? WHERE instance_id = ?").bind(Date.now(), s.instanceId).run();
    await inbound(s, contact, "depois");
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: depois"), 15_000, "the reply");
    expect((await bot(s.botPath)).map((c) => c.texts)).toEqual([["depois"]]);
    // What came while it was off is not handed over, now or by the cron.
    await catchUpAutomation(env, Date.now() + 2 * 60_000);
    expect((await deliveries(s)).map((d) => d.status)).toEqual(["delivered"]);
  });

  it("the cron records and offers an inbound message stored without its hand-off, once", async () => {
    const s = await withAutomation();
    const contact = "5511970000112";
    // Stored alone, as an isolate that believed the automation off did.
    const { body } = upsert(s, contact, "esquecida");
    const job = inboundJobOf(
      webhookJob.parse({
        tenantId: s.id,
        instanceId: s.instanceId,
        instanceName: s.instance,
        event: "messages.upsert",
        data: body.data,
        receivedAt: Date.now(),
      }),
    );
    if (job.kind !== "message") throw new Error("not a message");
    const [stored] = await runBatch(database(env.DB), storeStatements(job.target, job.message, job.receivedAt));
    expect(stored?.meta.changes).toBeGreaterThan(0);
    expect(await deliveries(s)).toEqual([]);
    // Past the grace a message gets to finish its way through the route and the queue.
    const later = Date.now() + 2 * 60_000;
    const first = await catchUpAutomation(env, later);
    expect(first.recorded).toBeGreaterThanOrEqual(1);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: esquecida"), 15_000, "the reply");
    await eventually(async () => (await deliveries(s))[0]?.status === "delivered", 15_000, "delivered");
    await catchUpAutomation(env, later + 60_000);
    expect((await bot(s.botPath)).map((c) => c.texts)).toEqual([["esquecida"]]);
    expect(await deliveries(s)).toHaveLength(1);
  });

  it("the cron offers again a record left pending without a lane (the hand-off and the queue both failed)", async () => {
    const s = await withAutomation();
    const contact = "5511970000113";
    const { body } = upsert(s, contact, "sem pista");
    // The route stores and records, the lane cannot be reached and the queue refuses: Evolution is told 503.
    const res = await postWebhook(
      { ...unreachableLanes, WEBHOOKS: { send: async () => Promise.reject(new Error("queue down")) } } as unknown as Env,
      s.token,
      body,
    );
    expect(res.status).toBe(503);
    expect((await deliveries(s)).map((d) => d.status)).toEqual(["pending"]);
    expect((await lane(s, contact).snapshot()).pending).toEqual([]);
    await catchUpAutomation(env, Date.now() + STALE_PENDING_MS + 60_000);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: sem pista"), 15_000, "the reply");
    expect((await bot(s.botPath)).map((c) => c.texts)).toEqual([["sem pista"]]);
  });

  it("the cron runs a lane whose alarm was lost while its retry was due", async () => {
    const s = await withAutomation();
    const contact = "5511970000114";
    await bot(s.botPath, { fail: 1 });
    await inbound(s, contact, "parada");
    await eventually(async () => (await deliveries(s))[0]?.attempts === 1, 15_000, "the failed first call recorded");
    await eventually(async () => (await lane(s, contact).snapshot()).batch?.next_at !== 0, 15_000, "the retry scheduled");
    // The retry is due, but the lane's alarm is gone.
    expect(await lane(s, contact).endWaits()).toBe(true);
    await runInDurableObject(lane(s, contact), (_i, state) => state.storage.deleteAlarm());
    expect((await lane(s, contact).snapshot()).alarm).toBeNull();
    // The cron's sweep, as it runs every minute (here as if 11 minutes later).
    const swept = await sweep(env, Date.now() + STALE_PENDING_MS + 60_000);
    expect(swept.automation).toMatchObject({ lanes: expect.any(Number) });
    expect("lanes" in swept.automation && swept.automation.lanes).toBeGreaterThanOrEqual(1);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: parada"), 15_000, "the reply");
    expect((await bot(s.botPath)).map((c) => c.status)).toEqual([500, 200]);
  });

  it("a replay whose lane cannot be reached leaves the dead letter as it was, replayable again", async () => {
    const s = await withAutomation({ maxAttempts: 1 });
    const contact = "5511970000115";
    await bot(s.botPath, { fail: 1 });
    await inbound(s, contact, "de volta");
    const [dead] = await eventually(async () => {
      const rows = await deliveries(s);
      return rows[0]?.status === "dead" ? rows : undefined;
    });
    const path = `/v1/instances/${s.instance}/automation/dead-letters/${dead!.inbound_id}/replay`;
    const failed = await apiWith(unreachableLanes, path, s.key);
    expect(failed.status).toBe(503);
    expect((await json(failed)).error.code).toBe("unavailable");
    expect((await deliveries(s)).map((d) => d.status)).toEqual(["dead"]);
    expect((await api(path, { method: "POST", key: s.key })).status).toBe(202);
    await eventually(async () => (await replies(s)).some((r) => r.text === "echo: de volta"), 15_000, "the replayed message answered");
    await eventually(async () => (await deliveries(s))[0]?.status === "delivered", 15_000, "delivered");
  });
});
