// The web chat channel inside workerd, over real WebSockets: visitor tokens, refusals before the
// upgrade, the visitor's message through the automation (the echo bot) and back, several tabs,
// replay of what was not acknowledged, receipts, tenant isolation, bad frames.
import { env, exports } from "cloudflare:workers";
import { sign } from "hono/jwt";
import { describe, expect, inject, it } from "vitest";
import { MESSAGES_PER_MINUTE } from "../../src/providers/web/frames.ts";
import { api, json, send, unique, waitForStatus } from "./helpers.ts";
import { ofType, open, visitorToken, waitFrames, webInstance } from "./web-chat-support.ts";

const botUrl = () => inject("botUrl");

describe("web chat instances and visitor tokens", () => {
  it("registers a web instance, mints a token that names its visitor, and refuses bad input", async () => {
    const t = await webInstance({ allowedOrigins: ["https://shop.example"] });
    expect(t.body).toMatchObject({ channel: "web", web: { allowedOrigins: ["https://shop.example"] }, state: "open" });
    const again = await api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { channel: "web" } });
    expect(again.status).toBe(200);
    expect((await json(again)).web.allowedOrigins).toEqual(["https://shop.example"]);
    // A path, an empty string, a non-URL and another scheme: each a 400 in the error shape, never a 500.
    for (const origin of ["https://shop.example/page", "", "shop example", "ftp://shop.example"]) {
      const bad = await api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { channel: "web", web: { allowedOrigins: [origin] } } });
      expect(bad.status, origin).toBe(400);
      expect((await json(bad)).error).toMatchObject({ code: "invalid_request", details: [expect.objectContaining({ path: "web.allowedOrigins.0" })] });
    }

    const minted = await visitorToken(t.key, t.instance, { visitorId: "v-123", name: "Ana", ttlSeconds: 120 });
    expect(minted.url).toBe(`wss://gateway.test/v1/chat?token=${minted.token}`);
    const ttl = Date.parse(minted.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(100_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
    for (const body of [{ visitorId: "bad id" }, { visitorId: "v-1", ttlSeconds: 30 }, { visitorId: "v-1", ttlSeconds: 86_401 }]) {
      expect((await api(`/v1/instances/${t.instance}/visitors`, { method: "POST", key: t.key, json: body })).status).toBe(400);
    }
    expect((await api(`/v1/instances/${t.instance}-none/visitors`, { method: "POST", key: t.key, json: { visitorId: "v-1" } })).status).toBe(404);
  });

  it("refuses a missing, forged or expired token (401) and an origin outside allowedOrigins (403) before the upgrade", async () => {
    const t = await webInstance({ allowedOrigins: ["https://shop.example"] });
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-1" });
    const origin = { origin: "https://shop.example" };
    expect((await exports.default.fetch(new Request("https://gateway.test/v1/chat", { headers: { upgrade: "websocket" } }))).status).toBe(401);
    const forged = await sign(
      { aud: "mensageiro-web-chat", sub: "v-1", ten: t.id, ins: t.instanceId, inn: t.instance, exp: Math.floor(Date.now() / 1000) + 600 },
      "another-secret-0123456789abcdef0123",
      "HS256",
    );
    const expired = await sign(
      { aud: "mensageiro-web-chat", sub: "v-1", ten: t.id, ins: t.instanceId, inn: t.instance, exp: Math.floor(Date.now() / 1000) - 10 },
      env.WEB_CHAT_SECRET,
      "HS256",
    );
    for (const bad of [forged, expired, "not-a-jwt"]) {
      const { res } = await open(bad, origin);
      expect(res.status).toBe(401);
      expect((await json(res)).error.code).toBe("unauthorized");
    }
    const elsewhere = await open(token, { origin: "https://evil.example" });
    expect(elsewhere.res.status).toBe(403);
    expect((await open(token)).res.status).toBe(403);
    const ok = await open(token, origin);
    expect(ok.res.status).toBe(101);
    await waitFrames(ok.frames, "connected", 1);
    expect(ok.frames[0]).toMatchObject({ type: "connected", data: { visitorId: "v-1" } });
    ok.close();
  });
});

describe("the visitor's socket", () => {
  it("a visitor's message is queued, stored as an inbound message, answered by the automation, and the reply reaches every tab", async () => {
    const t = await webInstance();
    const botPath = unique("bot");
    const auto = await api(`/v1/instances/${t.instance}/automation`, { method: "PUT", key: t.key, json: { url: `${botUrl()}/bot/${botPath}` } });
    expect(auto.status).toBe(200);
    await fetch(`${botUrl()}/_bot/${botPath}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ secret: (await json(auto)).secret }),
    });
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-123", name: "Ana" });
    const tab1 = await open(token);
    const tab2 = await open(token, {}, "/ws/chat");
    await waitFrames(tab1.frames, "connected", 1);
    await waitFrames(tab2.frames, "connected", 1);
    expect(tab1.frames[0]!.data.conversationId).toBe(tab2.frames[0]!.data.conversationId);
    expect(tab1.frames[0]!.data.socketId).not.toBe(tab2.frames[0]!.data.socketId);

    tab1.send({ type: "message", data: { content: "oi", clientMessageId: "c1" } });
    await waitFrames(tab1.frames, "queued", 1);
    expect(ofType(tab1.frames, "queued")[0]!.data).toMatchObject({ clientMessageId: "c1" });
    const stored = await env.DB.prepare("SELECT id, contact, channel, text, push_name FROM inbound_messages WHERE tenant_id = ?").bind(t.id).all();
    expect(stored.results).toEqual([{ id: ofType(tab1.frames, "queued")[0]!.data.messageId, contact: "v-123", channel: "web", text: "oi", push_name: "Ana" }]);

    // The handler is called: every tab hears it, naming the message it was queued as.
    const inboundId = ofType(tab1.frames, "queued")[0]!.data.messageId;
    for (const tab of [tab1, tab2]) {
      await waitFrames(tab.frames, "processing", 1);
      expect(ofType(tab.frames, "processing")[0]!.data).toEqual({
        messageId: inboundId,
        conversationId: tab1.frames[0]!.data.conversationId,
        status: "processing",
      });
    }
    for (const tab of [tab1, tab2]) await waitFrames(tab.frames, "message", 1, "reply");
    for (const tab of [tab1, tab2])
      expect(ofType(tab.frames, "message")[0]!.data).toMatchObject({ message: "echo: oi", conversationId: tab1.frames[0]!.data.conversationId });
    const replyId = ofType(tab1.frames, "message")[0]!.data.messageId;
    const reply = await waitForStatus(replyId, ["sent", "delivered"]);
    expect(reply).toMatchObject({ to: "v-123", source: "automation" });
    tab1.close();
    tab2.close();
  });

  it("messages sent while the visitor was away are replayed in order on connect until acknowledged; ack and read move the status", async () => {
    const t = await webInstance();
    const ids: string[] = [];
    for (const text of ["um", "dois", "três"]) {
      const res = await send(t.key, { instance: t.instance, to: "v-away", text });
      expect(res.status).toBe(202);
      ids.push((await json(res)).id);
    }
    for (const id of ids) await waitForStatus(id, ["sent"]);
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-away" });
    const first = await open(token);
    await waitFrames(first.frames, "message", 3);
    expect(ofType(first.frames, "message").map((f) => [f.data.messageId, f.data.message])).toEqual([
      [ids[0], "um"],
      [ids[1], "dois"],
      [ids[2], "três"],
    ]);
    first.send({ type: "ack", data: { messageId: ids[0] } });
    first.send({ type: "read", data: { messageId: ids[1] } });
    await waitForStatus(ids[0]!, ["delivered"]);
    await waitForStatus(ids[1]!, ["read"]);
    first.close();

    // Back: only the unacknowledged one comes again.
    const second = await open(token);
    await waitFrames(second.frames, "message", 1);
    expect(ofType(second.frames, "message").map((f) => f.data.messageId)).toEqual([ids[2]]);
    const { results } = await env.DB.prepare(
      "SELECT type, json_extract(data, '$.status') AS status FROM outbox_events WHERE tenant_id = ? AND json_extract(data, '$.messageId') = ? ORDER BY seq",
    )
      .bind(t.id, ids[1])
      .all<{ type: string; status: string }>();
    expect(results.filter((r) => r.type === "message.status").map((r) => r.status)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
    second.close();
  });

  it("a token of another tenant for the same visitor id sees nothing of the first", async () => {
    const a = await webInstance();
    const b = await webInstance();
    const sent = await send(a.key, { instance: a.instance, to: "v-same", text: "só para A" });
    await waitForStatus((await json(sent)).id, ["sent"]);
    const tabA = await open((await visitorToken(a.key, a.instance, { visitorId: "v-same" })).token);
    const tabB = await open((await visitorToken(b.key, b.instance, { visitorId: "v-same" })).token);
    await waitFrames(tabA.frames, "message", 1);
    await waitFrames(tabB.frames, "connected", 1);
    expect(tabB.frames[0]!.data.conversationId).not.toBe(tabA.frames[0]!.data.conversationId);
    // B acknowledging A's message is refused, and A's message stays sent.
    const aId = ofType(tabA.frames, "message")[0]!.data.messageId;
    tabB.send({ type: "ack", data: { messageId: aId } });
    await waitFrames(tabB.frames, "error", 1);
    expect(ofType(tabB.frames, "error")[0]!.data.code).toBe("unknown_message");
    expect(ofType(tabB.frames, "message")).toEqual([]);
    expect((await env.DB.prepare("SELECT status FROM messages WHERE id = ?").bind(aId).first<{ status: string }>())!.status).toBe("sent");
    tabA.close();
    tabB.close();
  });

  it("bad frames get an error frame and the socket stays open", async () => {
    const t = await webInstance();
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-bad" });
    const tab = await open(token);
    await waitFrames(tab.frames, "connected", 1);
    const bad = [
      "not json",
      JSON.stringify({ type: "nope" }),
      JSON.stringify({ type: "message", data: { content: "" } }),
      JSON.stringify({ type: "message", data: { content: "x".repeat(20_000) } }),
    ];
    for (const f of bad) tab.send(f);
    await waitFrames(tab.frames, "error", bad.length);
    expect(ofType(tab.frames, "error").map((f) => f.data.code)).toEqual(["bad_frame", "bad_frame", "bad_frame", "too_large"]);
    // Still open: a good frame after them is queued.
    tab.send({ type: "message", data: { content: "ainda aqui" } });
    await waitFrames(tab.frames, "queued", 1);
    expect(await env.DB.prepare("SELECT text FROM inbound_messages WHERE tenant_id = ?").bind(t.id).all()).toMatchObject({ results: [{ text: "ainda aqui" }] });
    tab.close();
  });

  it("a message sent again with the same clientMessageId is stored once; past the visitor's limit a minute, messages are refused with an error frame", async () => {
    const t = await webInstance();
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-fast" });
    const tab = await open(token);
    await waitFrames(tab.frames, "connected", 1);
    tab.send({ type: "message", data: { content: "uma vez", clientMessageId: "c-1" } });
    tab.send({ type: "message", data: { content: "uma vez", clientMessageId: "c-1" } });
    await waitFrames(tab.frames, "queued", 2);
    const queued = ofType(tab.frames, "queued").map((f) => f.data.messageId);
    expect(queued[0]).toBe(queued[1]);
    const count = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM inbound_messages WHERE tenant_id = ?").bind(t.id).first<{ n: number }>())!.n;
    expect(await count()).toBe(1);

    // Two slots went to the frames above; a second tab shares the visitor's limit.
    const other = await open(token);
    await waitFrames(other.frames, "connected", 1);
    for (let i = 0; i < MESSAGES_PER_MINUTE - 2; i++) tab.send({ type: "message", data: { content: `m${i}` } });
    await waitFrames(tab.frames, "queued", MESSAGES_PER_MINUTE);
    other.send({ type: "message", data: { content: "demais" } });
    await waitFrames(other.frames, "error", 1);
    expect(ofType(other.frames, "error")[0]!.data.code).toBe("rate_limited");
    expect(await count()).toBe(MESSAGES_PER_MINUTE - 1);
    tab.close();
    other.close();
  });

  it("an operator's message reaches an open tab at once; acked on arrival it ends delivered, and is not replayed; a removed instance's token opens nothing", async () => {
    const t = await webInstance();
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-live" });
    const tab = await open(token);
    await waitFrames(tab.frames, "connected", 1);
    const res = await send(t.key, { instance: t.instance, to: "v-live", text: "Olá, posso ajudar?" });
    expect(res.status).toBe(202);
    const id = (await json(res)).id;
    await waitFrames(tab.frames, "message", 1);
    expect(ofType(tab.frames, "message")[0]!.data).toMatchObject({ messageId: id, message: "Olá, posso ajudar?" });
    // The ack may come before the send's own record: it waits for it, and then applies.
    tab.send({ type: "ack", data: { messageId: id } });
    const row = await waitForStatus(id, ["delivered"]);
    expect(row).toMatchObject({ channel: "web", provider_message_id: id });
    // The message list filters by the visitor id as by any contact.
    const listed = await json(await api(`/v1/messages?to=v-live&instance=${t.instance}`, { key: t.key }));
    expect(listed.data.map((m: { id: string }) => m.id)).toEqual([id]);
    tab.close();
    const again = await open(token);
    await waitFrames(again.frames, "connected", 1);
    again.send({ type: "read", data: { messageId: id } });
    await waitForStatus(id, ["read"]);
    expect(ofType(again.frames, "message")).toEqual([]);
    again.close();

    expect((await api(`/v1/instances/${t.instance}`, { method: "DELETE", key: t.key })).status).toBe(204);
    expect((await open(token)).res.status).toBe(401);
  });
});
