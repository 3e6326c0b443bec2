// Evolution webhooks in, and the outbox and its cursor API (tenant callbacks: callbacks.test.ts).
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import connectingFixture from "../fixtures/evolution/connection.update.connecting.json";
import openFixture from "../fixtures/evolution/connection.update.open.json";
import deliveredFixture from "../fixtures/evolution/messages.update.delivered.json";
import readFixture from "../fixtures/evolution/messages.update.read.json";
import documentFixture from "../fixtures/evolution/messages.upsert.document.json";
import fromMeFixture from "../fixtures/evolution/messages.upsert.fromme-phone.json";
import textFixture from "../fixtures/evolution/messages.upsert.text.json";
import sendMessageFixture from "../fixtures/evolution/send.message.text.json";
import { type Db, database } from "../../src/db/client.ts";
import worker from "../../src/index.ts";
import { applyPendingReceipts } from "../../src/messages/receipts.ts";
import { applyWebhookJob, webhookJob } from "../../src/webhooks/evolution-job.ts";
import { api, eventually, json, messageRow, postWebhook, send, setupTenant, unique, waitForStatus } from "./helpers.ts";

// A job as the route takes it in (parsed once), applied through the inbound door: its outcome.
const processWebhook = async (db: Db, job: unknown) => (await applyWebhookJob(env, db, webhookJob.parse(job))).outcome;

let t: Awaited<ReturnType<typeof setupTenant>>;
let token: string;
beforeAll(async () => {
  t = await setupTenant();
  token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!.webhook_token;
});

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));
/** Posts a body as Evolution does for this file's instance (the fixtures name another). */
const hook = (body: object, path = "") => api(`/webhooks/evolution/${token}${path}`, { method: "POST", json: { ...body, instance: t.instance } });

async function sentMessage(to: string) {
  const id = (await json(await send(t.key, { instance: t.instance, to, text: "rastreada" }))).id;
  const row = await waitForStatus(id, ["sent"]);
  return { id, keyId: row.provider_message_id as string };
}

const receipt = (keyId: string, status: string, fixture = deliveredFixture) => {
  const body = clone(fixture);
  body.instance = t.instance;
  body.data.keyId = keyId;
  body.data.status = status;
  return body;
};

/** The job the route enqueues for this body, applied directly: its outcome is the positive signal
 *  that a duplicate or a stale event was seen, and ignored. */
const applyDirectly = (body: { event: string; data: unknown }) =>
  processWebhook(database(env.DB), {
    tenantId: t.id,
    instanceId: t.instanceId,
    instanceName: t.instance,
    event: body.event,
    data: body.data,
    receivedAt: Date.now(),
  });

const historyOf = async (id: string) =>
  (await env.DB.prepare("SELECT status FROM message_history WHERE message_id = ? ORDER BY id").bind(id).all<{ status: string }>()).results.map((r) => r.status);
const statusEventsOf = async (id: string) =>
  (
    await env.DB.prepare(
      "SELECT json_extract(data, '$.status') AS s FROM outbox_events WHERE type = 'message.status' AND json_extract(data, '$.messageId') = ? ORDER BY seq",
    )
      .bind(id)
      .all<{ s: string }>()
  ).results.map((r) => r.s);

describe("authentication and bad input", () => {
  it("401 for an unknown token, 400 for broken or misshapen bodies, 200 for unknown events", async () => {
    const unknown = await api("/webhooks/evolution/not-a-token", { method: "POST", json: textFixture });
    expect(unknown.status).toBe(401);
    const notJson = await api(`/webhooks/evolution/${token}`, { method: "POST", body: "event=x" });
    expect(notJson.status).toBe(415);
    const broken = await api(`/webhooks/evolution/${token}`, { method: "POST", body: "{not json", headers: { "content-type": "application/json" } });
    expect(broken.status).toBe(400);
    const noKey = clone(deliveredFixture) as { data: Record<string, unknown> };
    delete noKey.data.keyId;
    const misshapen = await hook(noKey);
    expect(misshapen.status).toBe(400);
    expect((await json(misshapen)).error.details[0].path).toBe("data.keyId");
    const presence = await hook({ event: "presence.update", data: { id: "5511987654321@s.whatsapp.net", presences: {} } });
    expect(presence.status).toBe(200);
    expect(await json(presence)).toEqual({ received: true, ignored: true });
    // qrcode.updated is handled (the console shows the code), so a malformed one is a 400.
    const badQr = await hook({ event: "qrcode.updated", data: { qrcode: { base64: "not an image" } } });
    expect(badQr.status).toBe(400);
    expect((await json(badQr)).error.details[0].path).toBe("data.qrcode.base64");
    const mismatch = await hook(textFixture, "/messages-update");
    expect(mismatch.status).toBe(400);
  });

  // Own instance: the inbound test below counts every row of the shared one.
  const ownInstance = async () => {
    const own = await setupTenant();
    const ownToken = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(own.instanceId).first<{ webhook_token: string }>())!
      .webhook_token;
    const post = (body: unknown, path = "") => api(`/webhooks/evolution/${ownToken}${path}`, { method: "POST", json: body });
    const inboundText = async (keyId: string) =>
      (await env.DB.prepare("SELECT text FROM inbound_messages WHERE instance_id = ? AND provider_message_id = ?").bind(own.instanceId, keyId).first())?.text;
    return { own, post, inboundText };
  };

  it("refuses (403, logged) a body of another instance: a global webhook must not file another instance's messages here", async () => {
    const { own, post, inboundText } = await ownInstance();
    const keyId = unique("OTHER").toUpperCase();
    const foreign = { ...clone(textFixture), instance: `${own.instance}-other` };
    foreign.data.key.id = keyId;
    const res = await post(foreign);
    expect(res.status).toBe(403);
    expect((await json(res)).error).toMatchObject({ code: "forbidden", details: [{ path: "instance" }] });
    expect(await inboundText(keyId)).toBeUndefined();
    // The same body for this instance is taken.
    expect(await json(await post({ ...foreign, instance: own.instance }))).toEqual({ received: true, outcome: "stored" });
    expect(await inboundText(keyId)).toBe(textFixture.data.message.conversation);
  });

  it("takes Evolution's upper-case event names (MESSAGES_UPSERT, MESSAGES_UPDATE) as the dotted ones", async () => {
    const { own, post, inboundText } = await ownInstance();
    const keyId = unique("UPPER").toUpperCase();
    const body = { ...clone(textFixture), instance: own.instance, event: "MESSAGES_UPSERT" };
    body.data.key.id = keyId;
    expect(await json(await post(body))).toEqual({ received: true, outcome: "stored" });
    expect(await inboundText(keyId)).toBe(textFixture.data.message.conversation);
    const id = (await json(await send(own.key, { instance: own.instance, to: "5511966660009", text: "maiúsculas" }))).id;
    const sentKey = (await waitForStatus(id, ["sent"])).provider_message_id as string;
    const update = { ...receipt(sentKey, "DELIVERY_ACK"), instance: own.instance, event: "MESSAGES_UPDATE" };
    expect((await post(update, "/messages-update")).status).toBe(200);
    await waitForStatus(id, ["delivered"]);
  });

  it("413 for a body over the webhook limit", async () => {
    const res = await api(`/webhooks/evolution/${token}`, {
      method: "POST",
      body: `{"event":"messages.upsert","data":"${"x".repeat(33 * 1024 * 1024)}"}`,
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(413);
  });
});

describe("receipts (messages.update)", () => {
  it("moves sent → delivered → read, ignores duplicates and anything going backwards", async () => {
    const { id, keyId } = await sentMessage("5511966660001");
    expect((await hook(receipt(keyId, "DELIVERY_ACK"), "/messages-update")).status).toBe(200);
    await waitForStatus(id, ["delivered"]);
    await hook(receipt(keyId, "DELIVERY_ACK"));
    await hook(receipt(keyId, "READ", readFixture));
    const read = await waitForStatus(id, ["read"]);
    expect(read.delivered_at).toBeLessThanOrEqual(read.read_at);
    // Duplicates and a receipt going backwards are recognised as such and change nothing.
    expect(await applyDirectly(receipt(keyId, "DELIVERY_ACK"))).toBe("duplicate");
    expect(await applyDirectly(receipt(keyId, "READ", readFixture))).toBe("duplicate");
    expect(await applyDirectly(receipt(keyId, "PLAYED", readFixture))).toBe("duplicate");
    expect((await messageRow(id))?.status).toBe("read");
    expect(await historyOf(id)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    expect(await statusEventsOf(id)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    const view = await json(await api(`/v1/messages/${id}`, { key: t.key }));
    expect(view).toMatchObject({ status: "read", deliveredAt: expect.any(String), readAt: expect.any(String) });
  });

  it("a READ that overtakes DELIVERY_ACK steps through delivered: each status once, in order; the late ack changes nothing", async () => {
    const { id, keyId } = await sentMessage("5511966660004");
    await hook(receipt(keyId, "READ", readFixture));
    await waitForStatus(id, ["read"]);
    expect(await applyDirectly(receipt(keyId, "DELIVERY_ACK"))).toBe("duplicate");
    expect(await historyOf(id)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    expect(await statusEventsOf(id)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    const row = await messageRow(id);
    expect(row?.delivered_at).toBe(row?.read_at);
  });

  it("a DELIVERY_ACK parked before the send's record, then a READ applied first: still each status once (the bridge's race)", async () => {
    const db = database(env.DB);
    const keyId = `3EB0${unique("race")
      .replace(/[^0-9A-Z]/gi, "")
      .toUpperCase()
      .slice(0, 18)}`;
    const base = { tenantId: t.id, instanceId: t.instanceId, instanceName: t.instance, receivedAt: Date.now() };
    expect(await processWebhook(db, { ...base, event: "messages.update", data: { keyId, fromMe: true, status: "DELIVERY_ACK" } })).toBe("parked");
    const { id } = await sentMessage("5511966660005");
    // The lane's record of the send lands with this provider id; READ is applied before the parked ack.
    await env.DB.prepare("UPDATE messages SET provider_message_id = ? WHERE id = ?").bind(keyId, id).run();
    expect(await processWebhook(db, { ...base, event: "messages.update", data: { keyId, fromMe: true, status: "READ" } })).not.toBe("parked");
    await applyPendingReceipts(db, t.instanceId, keyId);
    expect(await statusEventsOf(id)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    expect((await messageRow(id))?.status).toBe("read");
  });

  it("ERROR fails a sent message; receipts for unknown ids and incoming messages change nothing", async () => {
    const { id, keyId } = await sentMessage("5511966660002");
    await hook(receipt(keyId, "ERROR"));
    const failed = await waitForStatus(id, ["failed"]);
    expect(failed.last_error).toContain("ERROR");
    const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM message_history").first<{ n: number }>();
    const incoming = receipt(keyId, "READ");
    incoming.data.fromMe = false;
    expect((await hook(incoming)).status).toBe(200);
    expect(await applyDirectly(incoming)).toBe("ignored");
    // An unknown id is parked (in case its send is recorded later): its row is the signal it was processed.
    const unknown = `3EB0${unique("u")
      .replace(/[^0-9A-Z]/gi, "")
      .toUpperCase()
      .slice(0, 18)}`;
    expect((await hook(receipt(unknown, "DELIVERY_ACK"))).status).toBe(200);
    await eventually(
      async () =>
        (
          await env.DB.prepare("SELECT COUNT(*) AS n FROM pending_receipts WHERE instance_id = ? AND provider_message_id = ?")
            .bind(t.instanceId, unknown)
            .first<{ n: number }>()
        )?.n === 1,
    );
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM message_history").first()).toEqual(before);
    expect((await messageRow(id))?.status).toBe("failed");
  });

  it("a receipt that arrives before the send was recorded is kept and applied afterwards", async () => {
    const db = database(env.DB);
    const keyId = `3EB0${unique("early")
      .replace(/[^0-9A-Z]/gi, "")
      .toUpperCase()
      .slice(0, 18)}`;
    const base = { tenantId: t.id, instanceId: t.instanceId, instanceName: t.instance, receivedAt: Date.now() };
    expect(await processWebhook(db, { ...base, event: "messages.update", data: { keyId, fromMe: true, status: "READ" } })).toBe("parked");
    expect(await processWebhook(db, { ...base, event: "messages.update", data: { keyId, fromMe: true, status: "DELIVERY_ACK" } })).toBe("parked");
    // The send's own record lands afterwards (as the lane writes it), then applies what was parked.
    const id = unique("msg").replace(/-/g, "");
    const now = Date.now();
    await env.DB.prepare(`INSERT INTO messages (id, tenant_id, instance_id, instance_name, "to", lane_key, text, status, priority, ready_at, attempts, max_attempts, provider_message_id, created_at, updated_at, sent_at)
      VALUES (?, ?, ?, ?, '5511966660003', 'lane', 'x', 'sent', 5, ?, 1, 3, ?, ?, ?, ?)`)
      .bind(id, t.id, t.instanceId, t.instance, now, keyId, now, now, now)
      .run();
    await applyPendingReceipts(db, t.instanceId, keyId);
    expect(await messageRow(id)).toMatchObject({ status: "read", delivered_at: expect.any(Number), read_at: expect.any(Number) });
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM pending_receipts WHERE provider_message_id = ?").bind(keyId).first()).toEqual({ n: 0 });
  });

  it("a queue batch of receipts and confirmations is applied together: each once, in order, an early one parked", async () => {
    const sent = await Promise.all(["5511966660011", "5511966660012", "5511966660013"].map((to) => sentMessage(to)));
    const early = `3EB0EARLY${Date.now().toString(36).toUpperCase()}`;
    const job = (event: string, data: unknown) => ({ tenantId: t.id, instanceId: t.instanceId, instanceName: t.instance, event, data, receivedAt: Date.now() });
    const bodies = [
      ...sent.flatMap(({ keyId }) => [
        job("messages.update", { keyId, fromMe: true, status: "DELIVERY_ACK" }),
        job("messages.update", { keyId, fromMe: true, status: "READ" }),
        job("send.message", clone(sendMessageFixture).data),
      ]),
      job("messages.update", { keyId: early, fromMe: true, status: "READ" }),
      job("messages.update", { keyId: sent[0]!.keyId, fromMe: true, status: "READ" }),
    ];
    const batch = createMessageBatch(
      "mensageiro-webhooks",
      bodies.map((body, i) => ({ id: `r-${i}`, timestamp: new Date(), attempts: 1, body })),
    );
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toHaveLength(bodies.length);
    expect(result.retryMessages).toHaveLength(0);
    for (const { id } of sent) {
      expect((await messageRow(id))?.status).toBe("read");
      expect(await statusEventsOf(id)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    }
    expect(await env.DB.prepare("SELECT status FROM pending_receipts WHERE provider_message_id = ?").bind(early).all()).toMatchObject({
      results: [{ status: "read" }],
    });
  });

  it("send.message confirms the provider id once", async () => {
    const { id, keyId } = await sentMessage("5511966660004");
    const body = clone(sendMessageFixture);
    body.data.key.id = keyId;
    // Evolution's "webhook by events" form of the URL.
    expect((await hook(body, "/send-message")).status).toBe(200);
    await eventually(
      async () =>
        (await env.DB.prepare("SELECT COUNT(*) AS n FROM message_history WHERE message_id = ? AND detail LIKE 'send.message%'")
          .bind(id)
          .first<{ n: number }>())!.n === 1,
    );
    expect(await applyDirectly(body)).toBe("duplicate");
    expect(
      (await env.DB.prepare("SELECT COUNT(*) AS n FROM message_history WHERE message_id = ? AND detail LIKE 'send.message%'").bind(id).first<{ n: number }>())!
        .n,
    ).toBe(1);
    expect((await messageRow(id))?.status).toBe("sent");
  });
});

describe("connection.update", () => {
  it("sets the instance state shown by GET /v1/instances, one event per real change", async () => {
    await hook(openFixture, "/connection-update");
    await eventually(async () => (await json(await api(`/v1/instances/${t.instance}`, { key: t.key }))).state === "open", 10_000, "state open");
    await hook(openFixture);
    await hook(connectingFixture);
    await eventually(async () => (await json(await api("/v1/instances", { key: t.key }))).data[0].state === "connecting", 10_000, "state connecting");
    const events = await env.DB.prepare(
      "SELECT json_extract(data, '$.state') AS state FROM outbox_events WHERE tenant_id = ? AND type = 'instance.status' ORDER BY seq",
    )
      .bind(t.id)
      .all<{ state: string }>();
    expect(events.results.map((e) => e.state)).toEqual(["open", "connecting"]);
  });
});

describe("inbound messages (messages.upsert)", () => {
  it("stores text, replies, media, group, @lid and phone-typed messages; duplicates once", async () => {
    const contact = "5511987654321";
    const text = clone(textFixture);
    const extended = clone(textFixture);
    extended.data.key.id = "EXT0000000000000000000000000001";
    (extended.data.message as Record<string, unknown>) = { extendedTextMessage: { text: "texto estendido (v1)" } };
    const lid = clone(textFixture);
    lid.data.key = {
      remoteJid: "214748364712345@lid",
      remoteJidAlt: "5511987654321@s.whatsapp.net",
      fromMe: false,
      id: "LID00000000000000000000000000001",
      addressingMode: "lid",
    };
    lid.data.message.conversation = "via lid";
    const group = clone(textFixture);
    group.data.key = {
      remoteJid: "120363041234567890@g.us",
      fromMe: false,
      id: "GRP00000000000000000000000000001",
      participant: "5521976543210@s.whatsapp.net",
    } as unknown as typeof group.data.key;
    group.data.message.conversation = "no grupo";
    for (const body of [text, text, extended, documentFixture, fromMeFixture, lid, group, group]) expect((await hook(body)).status).toBe(200);

    const rows = await eventually(
      async () => {
        const r = await env.DB.prepare(
          "SELECT contact, text, from_me, message_type, participant, media FROM inbound_messages WHERE instance_id = ? ORDER BY timestamp, id",
        )
          .bind(t.instanceId)
          .all<Record<string, any>>();
        return r.results.length === 6 ? r.results : undefined;
      },
      10_000,
      "six inbound rows",
    );
    const byText = new Map(rows.map((r) => [r.text, r]));
    expect(byText.get("Oi! Vocês entregam no sábado?")).toMatchObject({ contact, from_me: 0, message_type: "conversation" });
    expect(byText.get("texto estendido (v1)")).toMatchObject({ contact });
    expect(byText.get("Segue o comprovante")).toMatchObject({ message_type: "documentMessage" });
    expect(JSON.parse(byText.get("Segue o comprovante")!.media)).toMatchObject({
      type: "document",
      fileName: "comprovante-pix.pdf",
      mimeType: "application/pdf",
    });
    expect(byText.get("Pedido confirmado, obrigado!")).toMatchObject({ contact, from_me: 1 });
    expect(byText.get("via lid")).toMatchObject({ contact });
    expect(byText.get("no grupo")).toMatchObject({ contact: "120363041234567890@g.us", participant: "5521976543210@s.whatsapp.net" });
    const received = await env.DB.prepare("SELECT COUNT(*) AS n FROM outbox_events WHERE tenant_id = ? AND type = 'message.received'").bind(t.id).first();
    expect(received).toEqual({ n: 6 });

    // The contact's timeline holds both directions.
    const out = await sentMessage(contact);
    const timeline = await json(await api(`/v1/contacts/${contact}/messages`, { key: t.key }));
    const directions = timeline.data.map((m: { direction: string; id: string }) => m.direction);
    expect(directions).toContain("outbound");
    // text, extended text, document, typed on the phone, and the @lid one: all this contact's.
    expect(directions.filter((d: string) => d === "inbound")).toHaveLength(5);
    expect(timeline.data.find((m: { id: string }) => m.id === out.id)).toMatchObject({ direction: "outbound", status: "sent" });
  });
});

describe("outbox cursor API", () => {
  it("returns events after the consumer's cursor, in order, until acked; never skips", async () => {
    const o = await setupTenant();
    const consumer = "bridge-test";
    const empty = await json(await api(`/v1/events?consumer=${consumer}`, { key: o.key }));
    expect(empty).toMatchObject({ events: [], cursor: 0 });
    const id = (await json(await send(o.key, { instance: o.instance, to: "5511966660010", text: "evento" }))).id;
    await waitForStatus(id, ["sent"]);
    const page = await json(await api(`/v1/events?consumer=${consumer}&limit=2`, { key: o.key }));
    expect(page.events.map((e: { data: { status: string } }) => e.data.status)).toEqual(["queued", "processing"]);
    expect(page.events[0]).toMatchObject({
      eventId: expect.any(String),
      type: "message.status",
      version: 1,
      occurredAt: expect.any(String),
      data: { messageId: id, instance: o.instance, to: "5511966660010" },
    });
    // Not acked: read again from the same place.
    const again = await json(await api(`/v1/events?consumer=${consumer}&limit=2`, { key: o.key }));
    expect(again.events.map((e: { seq: number }) => e.seq)).toEqual(page.events.map((e: { seq: number }) => e.seq));
    expect((await api("/v1/events/ack", { method: "POST", key: o.key, json: { consumer, seq: page.events[0].seq } })).status).toBe(200);
    const next = await json(await api(`/v1/events?consumer=${consumer}`, { key: o.key }));
    expect(next.events.map((e: { data: { status: string } }) => e.data.status)).toEqual(["processing", "sent"]);
    // A stale ack cannot move the cursor back; an ack past the end is refused.
    await api("/v1/events/ack", { method: "POST", key: o.key, json: { consumer, seq: next.cursor } });
    await api("/v1/events/ack", { method: "POST", key: o.key, json: { consumer, seq: 1 } });
    expect((await json(await api(`/v1/events?consumer=${consumer}`, { key: o.key }))).events).toEqual([]);
    expect((await api("/v1/events/ack", { method: "POST", key: o.key, json: { consumer, seq: next.cursor + 1000 } })).status).toBe(422);
    // Another tenant sees its own events (it has some), and none of these.
    const others = (await json(await api(`/v1/events?consumer=${consumer}`, { key: t.key }))).events.map(
      (e: { data: { messageId?: string } }) => e.data.messageId,
    );
    expect(others.length).toBeGreaterThan(0);
    expect(others).not.toContain(id);
  });

  it("long-polls with wait until an event arrives", async () => {
    const o = await setupTenant();
    // Nothing to read: the poll holds for its wait, then answers empty.
    const started = Date.now();
    const empty = await json(await api(`/v1/events?consumer=lp&wait=1`, { key: o.key }));
    expect(empty.events).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    // An event written while a poll waits ends the wait early.
    const poll = api(`/v1/events?consumer=lp&wait=10`, { key: o.key });
    await send(o.key, { instance: o.instance, to: "5511966660011", text: "acorda" });
    const pollStarted = Date.now();
    const body = await json(await poll);
    expect(body.events[0]).toMatchObject({ type: "message.status", data: { status: "queued" } });
    expect(Date.now() - pollStarted).toBeLessThan(9000);
    expect((await api(`/v1/events?consumer=lp&wait=31`, { key: o.key })).status).toBe(400);
  });
});

describe("inbound messages before the 200", () => {
  it("stores an inbound message before answering Evolution, without the queue; a queued copy changes nothing", async () => {
    // The queue is captured, not consumed: only the route itself can have stored the message.
    const queued: unknown[] = [];
    const captured = { ...env, WEBHOOKS: { send: async (job: unknown) => void queued.push(job) } } as unknown as Env;
    const body = clone(textFixture);
    body.instance = t.instance;
    body.data.key.id = unique("IN").toUpperCase();
    body.data.message.conversation = "guardada antes do 200";
    const res = await postWebhook(captured, token, body);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ received: true, outcome: "stored" });
    expect(queued).toHaveLength(0);
    const stored = () =>
      env.DB.prepare("SELECT COUNT(*) AS n FROM inbound_messages WHERE instance_id = ? AND provider_message_id = ?")
        .bind(t.instanceId, body.data.key.id)
        .first();
    const events = () =>
      env.DB.prepare(
        "SELECT COUNT(*) AS n FROM outbox_events WHERE tenant_id = ? AND type = 'message.received' AND json_extract(data, '$.providerMessageId') = ?",
      )
        .bind(t.id, body.data.key.id)
        .first();
    expect(await stored()).toEqual({ n: 1 });
    expect(await events()).toEqual({ n: 1 });

    // D1 failing in the request: the route queues the webhook instead, still a 200.
    const failing = {
      ...captured,
      DB: {
        prepare: () => ({
          bind: () => {
            throw new Error("D1 down");
          },
        }),
        batch: () => Promise.reject(new Error("D1 down")),
      },
    } as unknown as Env;
    const res2 = await postWebhook(failing, token, clone(body));
    expect(res2.status).toBe(200);
    expect(await res2.json()).toEqual({ received: true });
    expect(queued).toHaveLength(1);
    // The queued copy (a redelivery of the same message) is acked and stores nothing twice.
    const batch = createMessageBatch("mensageiro-webhooks", [{ id: "inbound-1", timestamp: new Date(), attempts: 1, body: queued[0] }]);
    const qctx = createExecutionContext();
    await worker.queue(batch, env, qctx);
    expect((await getQueueResult(batch, qctx)).explicitAcks).toEqual(["inbound-1"]);
    expect(await stored()).toEqual({ n: 1 });
    expect(await events()).toEqual({ n: 1 });
  });
});
