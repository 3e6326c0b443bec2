import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { api, gateway, json, send, setupTenant, simCalls, waitForStatus } from "./helpers.ts";

let t: Awaited<ReturnType<typeof setupTenant>>;
beforeAll(async () => {
  t = await setupTenant();
});

const count = async (sql: string, ...args: unknown[]) =>
  (await env.DB.prepare(sql)
    .bind(...args)
    .first<{ n: number }>())!.n;
const messagesOfTenant = () => count("SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ?", t.id);

describe("POST /v1/messages", () => {
  it("accepts a text message: 202, a queued row, its history and a status event", async () => {
    const res = await send(t.key, { instance: t.instance, to: "5511987654321", text: "Olá Maria!", metadata: { orderId: 4821 } });
    expect(res.status).toBe(202);
    const body = await json(res);
    expect(body).toEqual({ id: expect.stringMatching(/^msg_/), status: "queued", instance: t.instance, to: "5511987654321", createdAt: expect.any(String) });
    const history = await env.DB.prepare("SELECT status FROM message_history WHERE message_id = ? ORDER BY id").bind(body.id).all();
    expect(history.results[0]).toEqual({ status: "queued" });
    const event = await env.DB.prepare("SELECT type, data FROM outbox_events WHERE json_extract(data, '$.messageId') = ? ORDER BY seq LIMIT 1")
      .bind(body.id)
      .first<{ type: string; data: string }>();
    expect(event?.type).toBe("message.status");
    expect(JSON.parse(event!.data)).toMatchObject({ messageId: body.id, status: "queued", metadata: { orderId: 4821 } });
    const done = await waitForStatus(body.id, ["sent"]);
    expect(done.provider_message_id).toMatch(/^3EB0/);
    const view = await (await gateway(t.key).v1.messages[":id"].$get({ param: { id: body.id } })).json();
    expect(view).toMatchObject({
      id: body.id,
      status: "sent",
      attempts: 1,
      maxAttempts: 3,
      providerMessageId: done.provider_message_id,
      metadata: { orderId: 4821 },
    });
    expect(view.history?.map((h) => h.status)).toEqual(["queued", "processing", "sent"]);
    expect(view.history?.[1]).toMatchObject({ attempt: 1 });
  });

  const bad: [string, unknown, number, string[]][] = [
    ["missing instance and to", { text: "x" }, 400, ["instance", "to"]],
    ["wrong types", { instance: 5, to: 5511987654321, text: true }, 400, ["instance", "text", "to"]],
    ["to that is neither digits nor a group", { instance: "i", to: "+55 11 98765-4321", text: "x" }, 400, ["to"]],
    ["to as a person JID", { instance: "i", to: "5511987654321@s.whatsapp.net", text: "x" }, 400, ["to"]],
    ["neither text nor media", { instance: "i", to: "5511987654321" }, 400, ["text"]],
    [
      "media without a valid type and URL",
      { instance: "i", to: "5511987654321", media: { url: "file:///etc/passwd", type: "gif" } },
      400,
      ["media.type", "media.url"],
    ],
    ["priority out of range", { instance: "i", to: "5511987654321", text: "x", priority: 11 }, 400, ["priority"]],
    ["unknown field", { instance: "i", to: "5511987654321", text: "x", sendNow: true }, 400, [""]],
    ["metadata over 4 KiB", { instance: "i", to: "5511987654321", text: "x", metadata: { blob: "x".repeat(5000) } }, 400, ["metadata"]],
    ["a body that is not an object", [1, 2, 3], 400, [""]],
  ];
  it.each(bad)("rejects %s with 400 and the field paths", async (_name, body, status, paths) => {
    const before = await messagesOfTenant();
    const res = await send(t.key, body as Record<string, unknown>);
    expect(res.status).toBe(status);
    const err = (await json(res)).error;
    expect(err.code).toBe("invalid_request");
    expect(err.details.map((d: { path: string }) => d.path).sort()).toEqual(paths);
    expect(await messagesOfTenant()).toBe(before);
  });

  it("answers 422 for an unknown instance, 415 for non-JSON, 400 for broken JSON, 413 for a huge body", async () => {
    const unknown = await send(t.key, { instance: "nao-existe", to: "5511987654321", text: "x" });
    expect(unknown.status).toBe(422);
    expect(await json(unknown)).toMatchObject({ error: { code: "unprocessable", details: [{ path: "instance" }] } });

    const form = await api("/v1/messages", {
      method: "POST",
      key: t.key,
      body: "instance=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(form.status).toBe(415);
    expect((await json(form)).error.code).toBe("unsupported_media_type");

    const broken = await api("/v1/messages", { method: "POST", key: t.key, body: '{"instance": ', headers: { "content-type": "application/json" } });
    expect(broken.status).toBe(400);
    expect((await json(broken)).error.message).toMatch(/not valid JSON/);

    const huge = await send(t.key, { instance: t.instance, to: "5511987654321", text: "x".repeat(300 * 1024) });
    expect(huge.status).toBe(413);
    expect((await json(huge)).error.code).toBe("payload_too_large");
  });

  it("never answers 500 or a stack for odd input", async () => {
    const odd = ["null", '"text"', "[]", "{}", '{"__proto__": {"x": 1}}', '{"instance": {"$gt": ""}, "to": [], "text": {}}', "\u0000"];
    for (const body of odd) {
      const res = await api("/v1/messages", { method: "POST", key: t.key, body, headers: { "content-type": "application/json" } });
      expect(res.status).toBe(400);
      const text = await res.text();
      expect(text).not.toMatch(/at .*\.ts|stack/i);
      expect(JSON.parse(text).error.code).toBe("invalid_request");
    }
  });
});

describe("Idempotency-Key", () => {
  it("replays the first answer for the same key and body, and creates one message", async () => {
    const body = { instance: t.instance, to: "5511900000101", text: "uma vez" };
    const first = await send(t.key, body, { "idempotency-key": "order-4821" });
    const second = await send(t.key, { text: "uma vez", to: "5511900000101", instance: t.instance }, { "idempotency-key": "order-4821" });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    const a = await json(first);
    expect(await json(second)).toEqual(a);
    expect(await count("SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ? AND \"to\" = '5511900000101'", t.id)).toBe(1);
    await waitForStatus(a.id, ["sent"]);
    expect((await simCalls(t.instance)).filter((c) => c.number.startsWith("5511900000101"))).toHaveLength(1);
  });

  it("answers 409 for the same key with another body", async () => {
    await send(t.key, { instance: t.instance, to: "5511900000102", text: "primeiro" }, { "idempotency-key": "k-409" });
    const res = await send(t.key, { instance: t.instance, to: "5511900000102", text: "outro" }, { "idempotency-key": "k-409" });
    expect(res.status).toBe(409);
    expect((await json(res)).error.code).toBe("conflict");
    expect(await count("SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ? AND \"to\" = '5511900000102'", t.id)).toBe(1);
  });

  it("keys are per tenant, and a rejected request does not burn its key", async () => {
    const other = await setupTenant();
    const a = await send(t.key, { instance: t.instance, to: "5511900000103", text: "a" }, { "idempotency-key": "shared" });
    const b = await send(other.key, { instance: other.instance, to: "5511900000103", text: "b" }, { "idempotency-key": "shared" });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect((await json(a)).id).not.toBe((await json(b)).id);
    const rejected = await send(t.key, { instance: "nope", to: "5511900000104", text: "c" }, { "idempotency-key": "retry-me" });
    expect(rejected.status).toBe(422);
    const fixed = await send(t.key, { instance: t.instance, to: "5511900000104", text: "c" }, { "idempotency-key": "retry-me" });
    expect(fixed.status).toBe(202);
  });
});

describe("POST /v1/messages/batch", () => {
  it("accepts the valid items and reports an error for each bad one", async () => {
    const res = await api("/v1/messages/batch", {
      method: "POST",
      key: t.key,
      json: {
        messages: [
          { instance: t.instance, to: "5511900000201", text: "um" },
          { instance: t.instance, to: "abc", text: "dois" },
          { instance: "nao-existe", to: "5511900000203", text: "três" },
          { instance: t.instance, to: "120363041234567890@g.us", text: "grupo" },
        ],
      },
    });
    expect(res.status).toBe(200);
    const { results } = await json(res);
    expect(results).toEqual([
      { index: 0, id: expect.stringMatching(/^msg_/), status: "queued" },
      { index: 1, error: expect.objectContaining({ code: "invalid_request", details: [expect.objectContaining({ path: "to" })] }) },
      { index: 2, error: expect.objectContaining({ code: "unprocessable" }) },
      { index: 3, id: expect.stringMatching(/^msg_/), status: "queued" },
    ]);
    await waitForStatus(results[3].id, ["sent"]);
    const group = (await simCalls(t.instance)).find((c) => c.body.number === "120363041234567890@g.us");
    expect(group?.body.text).toBe("grupo");
  });

  it("per-item idempotencyKey: a re-cut batch replays known items, another body is a per-item 409", async () => {
    const item = (n: number, text = `item ${n}`) => ({ instance: t.instance, to: "5511900000250", text, idempotencyKey: `kafka:topic/0/${n}` });
    const first = await json(await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: [item(1), item(2)] } }));
    expect(first.results.map((r: { status: string }) => r.status)).toEqual(["queued", "queued"]);
    // Cut differently, as a restarted consumer might: 2 again, then 3, 3 twice, and 1 with another text.
    const second = await json(
      await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: [item(2), item(3), item(3), item(1, "mudou")] } }),
    );
    expect(second.results[0]).toEqual({ index: 0, id: first.results[1].id, status: expect.any(String), replayed: true });
    expect(second.results[1]).toEqual({ index: 1, id: expect.stringMatching(/^msg_/), status: "queued" });
    expect(second.results[2]).toEqual({ index: 2, id: second.results[1].id, status: "queued", replayed: true });
    expect(second.results[3].error).toMatchObject({ code: "conflict", details: [{ path: "idempotencyKey" }] });
    expect(await count("SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ? AND \"to\" = '5511900000250'", t.id)).toBe(3);
    for (const id of [first.results[0].id, first.results[1].id, second.results[1].id]) await waitForStatus(id, ["sent"]);
    expect((await simCalls(t.instance)).filter((c) => c.number === "5511900000250").map((c) => c.body.text)).toEqual(["item 1", "item 2", "item 3"]);
    // The same key on POST /v1/messages answers with the existing message.
    const single = await send(t.key, item(3));
    expect(single.status).toBe(202);
    expect(single.headers.get("idempotent-replayed")).toBe("true");
    expect((await json(single)).id).toBe(second.results[1].id);
    expect((await send(t.key, item(3, "outro"))).status).toBe(409);
  });

  it("rejects an empty batch and one over 500 items", async () => {
    expect((await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: [] } })).status).toBe(400);
    const many = Array.from({ length: 501 }, () => ({ instance: t.instance, to: "5511900000299", text: "x" }));
    const res = await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: many } });
    expect(res.status).toBe(400);
    expect(await count("SELECT COUNT(*) AS n FROM messages WHERE \"to\" = '5511900000299'")).toBe(0);
  });
});

describe("GET /v1/messages", () => {
  it("filters and pages with a cursor", async () => {
    const other = await setupTenant();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await json(await send(other.key, { instance: other.instance, to: "5511900000301", text: `m${i}` }))).id);
    await send(other.key, { instance: other.instance, to: "5511900000302", text: "outro contato" });
    const list = gateway(other.key).v1.messages.$get;
    const page = async (cursor?: string) => (await list({ query: { to: "5511900000301", limit: "2", ...(cursor ? { cursor } : {}) } })).json();
    const page1 = await page();
    expect(page1.data.map((m) => m.id)).toEqual([ids[4], ids[3]]);
    const page2 = await page(page1.nextCursor ?? undefined);
    expect(page2.data.map((m) => m.id)).toEqual([ids[2], ids[1]]);
    const page3 = await page(page2.nextCursor ?? undefined);
    expect(page3).toEqual({ data: [expect.objectContaining({ id: ids[0] })], nextCursor: null });
    const bad = await api(`/v1/messages?status=lost&limit=1000`, { key: other.key });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.details.map((d: { path: string }) => d.path).sort()).toEqual(["limit", "status"]);
  });
});

describe("compatibility aliases", () => {
  it("POST /api/whatsapp/send-message answers as the old service did and sends", async () => {
    const res = await api("/api/whatsapp/send-message", {
      method: "POST",
      key: t.key,
      json: { instanceName: t.instance, phoneNumber: "+55 (11) 90000-0401", message: "legado" },
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toEqual({ success: true, status: "queued", messageId: expect.stringMatching(/^msg_/) });
    const row = await waitForStatus(body.messageId, ["sent"]);
    expect(row.to).toBe("5511900000401");
    const bad = await api("/api/whatsapp/send-message", { method: "POST", key: t.key, json: { instanceName: t.instance } });
    expect(bad.status).toBe(400);
    expect(await json(bad)).toMatchObject({ success: false, error: { code: "invalid_request" } });
  });

  it("POST /api/messaging/message/send takes remoteJid or groupId, media, and Prefer: wait", async () => {
    const res = await api("/api/messaging/message/send", {
      method: "POST",
      key: t.key,
      json: { channel: "whatsapp_evolution", channelInstanceId: t.instance, remoteJid: "5511900000402@s.whatsapp.net", message: "oi" },
    });
    expect(await json(res)).toEqual({
      success: true,
      message: "Mensagem enviada com sucesso",
      data: { messageId: expect.any(String), status: "queued", queued: true },
    });
    const waited = await api("/api/messaging/message/send", {
      method: "POST",
      key: t.key,
      headers: { prefer: "wait=10" },
      json: {
        channel: "whatsapp_evolution",
        channelInstanceId: t.instance,
        groupId: "120363041234567891@g.us",
        message: "catálogo",
        mediaUrl: "https://cdn.example.com/c.png",
        mediaType: "image",
      },
    });
    const body = await json(waited);
    expect(body.data).toEqual({
      messageId: expect.any(String),
      channelMessageId: expect.stringMatching(/^3EB0/),
      status: "sent",
      timestamp: expect.any(String),
    });
    const call = (await simCalls(t.instance)).find((c) => c.keyId === body.data.channelMessageId);
    expect(call).toMatchObject({
      route: "sendMedia",
      body: { number: "120363041234567891@g.us", mediatype: "image", media: "https://cdn.example.com/c.png", caption: "catálogo" },
    });
    const wrongChannel = await api("/api/messaging/message/send", {
      method: "POST",
      key: t.key,
      json: { channel: "sms", channelInstanceId: t.instance, remoteJid: "1", message: "x" },
    });
    expect(wrongChannel.status).toBe(400);
  });
});
