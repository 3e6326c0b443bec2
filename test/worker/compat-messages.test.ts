// The older system's agent queue API inside workerd: POST /api/messages stores a contact's message
// and offers it to the instance's automation (the echo bot), the reply goes back on the channel (a
// web visitor's socket, WhatsApp through the simulator); the job's status follows the automation
// record; the queue's stats and health come from its counters; bad input is a 4xx with success: false.
import { env, exports } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { BREAKER_THRESHOLD } from "../../src/automation/breaker.ts";
import { purge } from "../../src/sweep/sweeper.ts";
import { api, createTenant, eventually, json, setupTenant, simCalls, unique, waitForStatus } from "./helpers.ts";

const botUrl = () => inject("botUrl");
type BotCall = { contact: string; ids: string[]; texts: (string | null)[]; replyTo: string | null; status: number; verified: boolean };

async function bot(path: string, settings?: Record<string, unknown>): Promise<BotCall[]> {
  if (settings) {
    const res = await fetch(`${botUrl()}/_bot/${path}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(settings) });
    expect(res.ok).toBe(true);
    return [];
  }
  return ((await (await fetch(`${botUrl()}/_bot/${path}`)).json()) as { calls: BotCall[] }).calls;
}

/** Points the instance's automation at a fresh echo bot path. */
async function automate(key: string, instance: string, settings: Record<string, unknown> = {}, bot_: Record<string, unknown> = {}) {
  const botPath = unique("bot");
  const res = await api(`/v1/instances/${instance}/automation`, { method: "PUT", key, json: { url: `${botUrl()}/bot/${botPath}`, ...settings } });
  expect(res.status).toBe(200);
  await bot(botPath, { secret: (await json(res)).secret, ...bot_ });
  return botPath;
}

async function webInstance(tenant?: { id: string; key: string }) {
  const t = tenant ?? (await createTenant());
  const instance = unique("site");
  expect((await api(`/v1/instances/${instance}`, { method: "PUT", key: t.key, json: { channel: "web" } })).status).toBe(201);
  return { ...t, instance };
}

const post = (key: string | undefined, body: unknown, headers: Record<string, string> = {}) =>
  api("/api/messages", { method: "POST", ...(key ? { key } : {}), json: body, headers });
const statusOf = async (key: string, id: string) => json(await api(`/api/messages/${id}/status`, { key }));
const stats = async (key: string) => json(await api("/api/messages/queue/stats", { key }));

const waitForState = (key: string, id: string, state: string) =>
  eventually(
    async () => {
      const body = await statusOf(key, id);
      return body.data?.state === state ? body.data : undefined;
    },
    15_000,
    `job ${id} to be ${state}`,
  );

type Frame = { type: string; data: Record<string, any> };

async function openVisitor(key: string, instance: string, visitorId: string) {
  const minted = await api(`/v1/instances/${instance}/visitors`, { method: "POST", key, json: { visitorId } });
  expect(minted.status).toBe(201);
  const { token } = await json(minted);
  const res = await exports.default.fetch(new Request(`https://gateway.test/v1/chat?token=${token}`, { headers: { upgrade: "websocket" } }));
  expect(res.status).toBe(101);
  const frames: Frame[] = [];
  const ws = res.webSocket!;
  ws.accept();
  ws.addEventListener("message", (m) => frames.push(JSON.parse(String(m.data))));
  return { frames, close: () => ws.close(1000, "done") };
}

describe("POST /api/messages on the web chat", () => {
  it("goes to the automation as the visitor's message; its status moves waiting → active → completed and the reply reaches the visitor", async () => {
    const t = await webInstance();
    // A handler timeout longer than the test holds the call.
    const botPath = await automate(t.key, t.instance, { timeoutMs: 30_000 }, { hold: true });
    const body = { message: "oi", conversationId: "v-legacy", channel: "web", priority: 3, agentId: "agent-7", channelMetadata: { name: "Ana" } };
    const res = await post(t.key, body);
    expect(res.status).toBe(202);
    const first = await json(res);
    expect(first).toMatchObject({
      success: true,
      message: expect.any(String),
      data: { conversationId: "v-legacy", status: "queued", estimatedTime: 0, instance: t.instance, channel: "web" },
    });
    const id = first.data.messageId;
    expect(first.data.jobId).toBe(id);

    // Stored as the visitor's inbound message, with what the older API carried besides the text.
    const row = await env.DB.prepare("SELECT contact, channel, text, push_name, metadata FROM inbound_messages WHERE id = ? AND tenant_id = ?")
      .bind(id, t.id)
      .first<{ contact: string; channel: string; text: string; push_name: string; metadata: string }>();
    expect(row).toMatchObject({ contact: "v-legacy", channel: "web", text: "oi", push_name: "Ana" });
    expect(JSON.parse(row!.metadata)).toEqual({ source: "api/messages", agentId: "agent-7", priority: 3, channelMetadata: { name: "Ana" } });

    // The bot holds the first call: the job is active, and the visitor's next message waits behind it.
    const active = await waitForState(t.key, id, "active");
    expect(active).toMatchObject({ messageId: id, progress: 50, finishedOn: null, conversationId: "v-legacy" });
    const second = await json(await post(t.key, { message: "tudo bem?", conversationId: "v-legacy", channel: "web" }));
    expect(second.data.conversationId).toBe("v-legacy");
    const waiting = await statusOf(t.key, second.data.messageId);
    expect(waiting).toMatchObject({ success: true, data: { state: "waiting", progress: 0, finishedOn: null } });
    expect((await stats(t.key)).data).toEqual({ waiting: 2, active: 0, completed: 0, failed: 0, delayed: 0, paused: 0, total: 2 });

    await bot(botPath, { hold: false });
    for (const job of [id, second.data.messageId]) {
      const done = await waitForState(t.key, job, "completed");
      expect(done).toMatchObject({ progress: 100, attemptsMade: 1, failedReason: null });
      expect(done.finishedOn).toBeGreaterThan(0);
    }
    const calls = await bot(botPath);
    expect(calls.map((c) => [c.contact, c.replyTo, c.texts])).toEqual([
      ["v-legacy", "v-legacy", ["oi"]],
      ["v-legacy", "v-legacy", ["tudo bem?"]],
    ]);
    expect(calls.every((c) => c.verified && c.status === 200)).toBe(true);

    // The replies were stored for the visitor: a socket opened now receives them, in order.
    const tab = await openVisitor(t.key, t.instance, "v-legacy");
    await eventually(async () => tab.frames.filter((f) => f.type === "message").length >= 2, 15_000, "the replies on the socket");
    expect(tab.frames.filter((f) => f.type === "message").map((f) => f.data.message)).toEqual(["echo: oi", "echo: tudo bem?"]);
    tab.close();
    expect((await stats(t.key)).data).toEqual({ waiting: 0, active: 0, completed: 2, failed: 0, delayed: 0, paused: 0, total: 2 });
  });

  it("without a conversation starts a new visitor; an Idempotency-Key retry answers the same job and stores it once", async () => {
    const t = await webInstance();
    const botPath = await automate(t.key, t.instance);
    const headers = { "idempotency-key": unique("key") };
    const first = await post(t.key, { message: "olá", channel: "web" }, headers);
    expect(first.status).toBe(202);
    const again = await post(t.key, { message: "olá", channel: "web" }, headers);
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const a = await json(first);
    expect(await json(again)).toEqual(a);
    expect(a.data.conversationId).toMatch(/^visitor_/);
    await waitForState(t.key, a.data.messageId, "completed");
    const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM inbound_messages WHERE tenant_id = ?").bind(t.id).first<{ n: number }>();
    expect(n?.n).toBe(1);
    expect((await bot(botPath)).map((c) => c.contact)).toEqual([a.data.conversationId]);
    const reused = await post(t.key, { message: "outra", channel: "web" }, headers);
    expect(reused.status).toBe(409);
    expect(await json(reused)).toMatchObject({ success: false, error: { code: "conflict" } });
  });
});

describe("POST /api/messages on WhatsApp", () => {
  it("the number's message goes to the automation and the reply goes out through Evolution", async () => {
    const t = await setupTenant();
    const botPath = await automate(t.key, t.instance);
    const res = await post(t.key, { message: "quero ajuda", channel: "whatsapp", channelMetadata: { phoneNumber: "+55 11 98765-4321" } });
    expect(res.status).toBe(202);
    const { data } = await json(res);
    expect(data).toMatchObject({ conversationId: "5511987654321", instance: t.instance, channel: "whatsapp" });
    await waitForState(t.key, data.messageId, "completed");
    expect((await bot(botPath)).map((c) => [c.contact, c.replyTo, c.texts])).toEqual([["5511987654321", "5511987654321", ["quero ajuda"]]]);
    const reply = await env.DB.prepare('SELECT id, "to", source FROM messages WHERE tenant_id = ?')
      .bind(t.id)
      .first<{ id: string; to: string; source: string }>();
    expect(reply).toMatchObject({ to: "5511987654321", source: "automation" });
    await waitForStatus(reply!.id, ["sent", "delivered", "read"]);
    const sent = (await simCalls(t.instance)).filter((c) => c.route === "sendText");
    expect(sent.map((c) => [c.body.number, c.body.text])).toEqual([["5511987654321", "echo: quero ajuda"]]);
  });
});

describe("the queue's stats and health", () => {
  it("count completed and failed jobs from the counters; an open breaker makes the queue unhealthy (503) and its jobs paused", async () => {
    const t = await webInstance();
    const botPath = await automate(t.key, t.instance, { maxAttempts: 1 }, { fail: 1 });
    const empty = await api("/api/messages/queue/health", { key: t.key });
    expect(empty.status).toBe(200);
    expect(await json(empty)).toEqual({
      success: true,
      data: { healthy: true, reasons: [], stats: { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0, paused: 0, total: 0 } },
    });

    // One contact, so the calls come in order: the first fails for good (one attempt), the next two are answered.
    const ids: string[] = [];
    for (const message of ["um", "dois", "três"])
      ids.push((await json(await post(t.key, { message, channel: "web", conversationId: "v-stats" }))).data.messageId);
    const failed = await waitForState(t.key, ids[0]!, "failed");
    expect(failed).toMatchObject({ progress: 100, attemptsMade: 1, failedReason: expect.stringContaining("500") });
    for (const id of ids.slice(1)) await waitForState(t.key, id, "completed");
    expect(await stats(t.key)).toEqual({ success: true, data: { waiting: 0, active: 0, completed: 2, failed: 1, delayed: 0, paused: 0, total: 3 } });
    expect((await api("/api/messages/queue/health", { key: t.key })).status).toBe(200);

    // Failures in a row open the breaker: the queue is unhealthy, and what comes next is paused.
    await bot(botPath, { fail: BREAKER_THRESHOLD });
    const more: string[] = [];
    for (let i = 0; i < BREAKER_THRESHOLD; i++)
      more.push((await json(await post(t.key, { message: `falha ${i}`, channel: "web", conversationId: `v-f${i}` }))).data.messageId);
    for (const id of more) await waitForState(t.key, id, "failed");
    await eventually(async () => (await api("/api/messages/queue/health", { key: t.key })).status === 503, 15_000, "an unhealthy queue");
    const late = await json(await post(t.key, { message: "depois", channel: "web", conversationId: "v-late" }));
    expect(late.data.estimatedTime).toBeGreaterThan(0);
    const unhealthy = await api("/api/messages/queue/health", { key: t.key });
    expect(unhealthy.status).toBe(503);
    const body = await json(unhealthy);
    expect(body).toMatchObject({ success: false, data: { healthy: false, reasons: [expect.stringContaining(t.instance)] } });
    expect(body.data.stats).toEqual({
      waiting: 0,
      active: 0,
      completed: 2,
      failed: 1 + BREAKER_THRESHOLD,
      delayed: 0,
      paused: 1,
      total: 4 + BREAKER_THRESHOLD,
    });
    expect((await statusOf(t.key, late.data.messageId)).data.state).toBe("waiting");

    // The counters agree with the records themselves.
    const { results } = await env.DB.prepare("SELECT status, COUNT(*) AS n FROM automation_deliveries WHERE tenant_id = ? GROUP BY status ORDER BY status")
      .bind(t.id)
      .all<{ status: string; n: number }>();
    expect(results).toEqual([
      { status: "dead", n: 1 + BREAKER_THRESHOLD },
      { status: "delivered", n: 2 },
      { status: "pending", n: 1 },
    ]);
  });
});

/** The counters, and the same figures counted from the records themselves. */
async function countersAndRecords(tenantId: string) {
  const counter = await env.DB.prepare(
    "SELECT SUM(waiting) AS waiting, SUM(retrying) AS retrying, SUM(delivered) AS delivered, SUM(dead) AS dead, SUM(canceled) AS canceled, SUM(human) AS human FROM automation_counts WHERE tenant_id = ?",
  )
    .bind(tenantId)
    .first();
  const records = await env.DB.prepare(
    `SELECT TOTAL(status = 'pending' AND attempts = 0) AS waiting, TOTAL(status = 'pending' AND attempts > 0) AS retrying, TOTAL(status = 'delivered') AS delivered,
       TOTAL(status = 'dead') AS dead, TOTAL(status = 'canceled') AS canceled, TOTAL(status = 'human') AS human FROM automation_deliveries WHERE tenant_id = ?`,
  )
    .bind(tenantId)
    .first();
  return { counter, records };
}

describe("the counters behind the stats", () => {
  it("follow every change of a record: a dead letter replayed, an automation removed while messages wait, a purge", async () => {
    const t = await webInstance();
    const botPath = await automate(t.key, t.instance, { maxAttempts: 1, timeoutMs: 30_000 }, { fail: 1 });
    const agree = async (expected: Record<string, number>) => {
      const { counter, records } = await countersAndRecords(t.id);
      expect(counter).toEqual(records);
      expect(counter).toEqual({ waiting: 0, retrying: 0, delivered: 0, dead: 0, canceled: 0, human: 0, ...expected });
    };

    const first = (await json(await post(t.key, { message: "um", channel: "web", conversationId: "v-a" }))).data.messageId;
    await waitForState(t.key, first, "failed");
    await agree({ dead: 1 });
    const replay = await api(`/v1/instances/${t.instance}/automation/dead-letters/${first}/replay`, { method: "POST", key: t.key });
    expect(replay.status).toBe(202);
    await waitForState(t.key, first, "completed");
    await agree({ delivered: 1 });

    // One call held, the next message of the contact waiting behind it: removing the automation cancels both.
    await bot(botPath, { hold: true });
    const held = (await json(await post(t.key, { message: "dois", channel: "web", conversationId: "v-b" }))).data.messageId;
    await waitForState(t.key, held, "active");
    const behind = (await json(await post(t.key, { message: "três", channel: "web", conversationId: "v-b" }))).data.messageId;
    await agree({ delivered: 1, waiting: 2 });
    expect((await api(`/v1/instances/${t.instance}/automation`, { method: "DELETE", key: t.key })).status).toBe(204);
    await bot(botPath, { hold: false });
    for (const id of [held, behind]) await waitForState(t.key, id, "failed");
    await agree({ delivered: 1, canceled: 2 });
    expect((await stats(t.key)).data).toEqual({ waiting: 0, active: 0, completed: 1, failed: 2, delayed: 0, paused: 0, total: 3 });

    // Past the retention, the records are purged and the figures go down with them.
    await env.DB.prepare("UPDATE automation_deliveries SET updated_at = 0 WHERE tenant_id = ?").bind(t.id).run();
    await purge(env);
    await agree({});
    expect((await stats(t.key)).data.total).toBe(0);
  });
});

describe("refusals", () => {
  it("bad input is a 400, a message nothing could take a 422, all with success: false", async () => {
    const t = await webInstance();
    await automate(t.key, t.instance);
    const wa = await setupTenant();
    const cases: [unknown, number, string?][] = [
      [{ message: 5, channel: "web" }, 400, "message"],
      [{ message: "", channel: "web" }, 400, "message"],
      [{ message: "oi", channel: "sms" }, 400, "channel"],
      [{ message: "oi" }, 400, "channel"],
      [{ message: "oi", channel: "web", priority: 11 }, 400, "priority"],
      [{ message: "oi", channel: "web", priority: "high" }, 400, "priority"],
      [{ message: "oi", channel: "web", channelMetadata: "x" }, 400, "channelMetadata"],
      [{ message: "oi", channel: "web", channelMetadata: { big: "x".repeat(5000) } }, 400, "channelMetadata"],
      [{ message: "oi", channel: "web", conversationId: "bad id!" }, 400, "conversationId"],
      [{ message: "oi", channel: "web", agentId: { id: 1 } }, 400, "agentId"],
      [[], 400],
      // No instance of the channel, or an unknown one named.
      [{ message: "oi", channel: "telegram", conversationId: "424242001" }, 422, "channel"],
      [{ message: "oi", channel: "web", channelMetadata: { instance: "nenhuma" } }, 422, "channelMetadata.instance"],
    ];
    for (const [body, status, path] of cases) {
      const res = await post(t.key, body);
      const answer = await json(res);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(answer.success, JSON.stringify(body)).toBe(false);
      if (path)
        expect(
          answer.error.details.map((d: { path: string }) => d.path),
          JSON.stringify(body),
        ).toContain(path);
    }
    // A WhatsApp instance: a web message does not fit it; without automation nothing would answer;
    // then without a number (or with a bad one, or a group) there is no one to post as.
    const mismatch = await post(wa.key, { message: "oi", channel: "web", channelMetadata: { instance: wa.instance } });
    expect(mismatch.status).toBe(422);
    expect((await json(mismatch)).error.details[0].path).toBe("channel");
    const noAutomation = await post(wa.key, { message: "oi", channel: "whatsapp", conversationId: "5511987654321" });
    expect(noAutomation.status).toBe(422);
    expect((await json(noAutomation)).error.message).toContain("automation");
    await automate(wa.key, wa.instance);
    const noNumber = await post(wa.key, { message: "oi", channel: "whatsapp" });
    expect(noNumber.status).toBe(422);
    expect((await json(noNumber)).error.details[0].path).toBe("conversationId");
    const badNumber = await post(wa.key, { message: "oi", channel: "whatsapp", conversationId: "12" });
    expect(badNumber.status).toBe(400);
    expect((await json(badNumber)).error.details[0].path).toBe("conversationId");
    const group = await post(wa.key, { message: "oi", channel: "whatsapp", channelMetadata: { contact: "120363000000000001@g.us" } });
    expect(group.status).toBe(422);
    // Several web instances and none named.
    await webInstance(t);
    const several = await post(t.key, { message: "oi", channel: "web" });
    expect(several.status).toBe(422);
    expect((await json(several)).error.details[0].path).toBe("channelMetadata.instance");
    const notJson = await api("/api/messages", { method: "POST", key: t.key, body: "message=oi", headers: { "content-type": "text/plain" } });
    expect(notJson.status).toBe(415);
    expect((await json(notJson)).success).toBe(false);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM inbound_messages WHERE tenant_id IN (?, ?)").bind(t.id, wa.id).first()).toEqual({ n: 0 });
  });

  it("another tenant's message is a 404; no key is a 401; both with success: false", async () => {
    const a = await webInstance();
    await automate(a.key, a.instance);
    const b = await createTenant();
    const { data } = await json(await post(a.key, { message: "oi", channel: "web", conversationId: "v-1" }));
    expect((await statusOf(a.key, data.messageId)).success).toBe(true);
    for (const id of [data.messageId, "in_nope"]) {
      const res = await api(`/api/messages/${id}/status`, { key: b.key });
      expect(res.status).toBe(404);
      expect(await json(res)).toMatchObject({ success: false, error: { code: "not_found" } });
    }
    expect((await stats(b.key)).data.total).toBe(0);
    for (const [method, path] of [
      ["POST", "/api/messages"],
      ["GET", `/api/messages/${data.messageId}/status`],
      ["GET", "/api/messages/queue/stats"],
      ["GET", "/api/messages/queue/health"],
    ] as const) {
      const res = await api(path, { method, ...(method === "POST" ? { json: { message: "oi", channel: "web" } } : {}) });
      expect(res.status, path).toBe(401);
      expect(await json(res), path).toMatchObject({ success: false, error: { code: "unauthorized" } });
    }
  });
});
