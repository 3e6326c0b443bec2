// Tenant callbacks by Standard Webhooks: what a receiver verifies with the standardwebhooks package,
// secret rotation and the migration of pre-Standard-Webhooks secrets, the retry schedule with
// Retry-After, 410 Gone, delivery records, replay, and no callback lost when the queue send fails.
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { describe, expect, it, vi } from "vitest";
import { inject } from "vitest";
import { consumeCallbacks, MAX_CALLBACK_ATTEMPTS, nextDelaySeconds, RETRY_DELAYS_S } from "../../src/callbacks/deliver.ts";
import { dispatchCallbacks, REDISPATCH_GRACE_MS, redispatchDue } from "../../src/callbacks/dispatch.ts";
import { asWebhookSecret, legacySignature } from "../../src/callbacks/keys.ts";
import { gatewayEvent } from "../../src/contracts/events.ts";
import { ADMIN, api, eventually, json, send, simulator, simulatorUrl, unique, waitForStatus } from "./helpers.ts";

type Got = { headers: Record<string, string>; body: string; status: number };
const receiver = () => inject("receiverUrl");
const received = async (path: string) => (await (await fetch(`${receiver()}/received${path}`)).json()) as Got[];
const failNext = (path: string, order: { times: number; status?: number; headers?: Record<string, string> }) =>
  fetch(`${receiver()}/fail${path}`, { method: "POST", body: JSON.stringify(order) });

async function callbackTenant(name: string) {
  const path = `/cb/${unique(name)}`;
  const created = await json(await api("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name, callbackUrl: `${receiver()}${path}` } }));
  return { id: created.tenant.id as string, key: created.apiKey as string, secret: created.callbackSecret as string, path, url: `${receiver()}${path}` };
}

let events = 0;
// Data that meets each event type's contract (every outbox row the tests write is checked against it).
const dataOf: Record<string, unknown> = {
  "instance.status": { instance: "x", state: "open" },
  "message.received": {
    id: "in_x",
    instance: "x",
    contact: "5511900000000",
    remoteJid: "5511900000000@s.whatsapp.net",
    providerMessageId: "p_x",
    fromMe: false,
    messageType: "conversation",
    text: "hi",
    timestamp: "2026-01-01T00:00:00.000Z",
  },
};

/** An outbox event. `dispatchable`: with its callback URL, so dispatchCallbacks hands it out; without,
 *  only a direct consumeCallbacks call delivers it (the test then owns every attempt). */
async function outboxEvent(tenantId: string, url: string, opts: { dispatchable?: boolean; type?: string } = {}) {
  const eventId = `evt-${unique("cb")}-${events++}`;
  const type = opts.type ?? "instance.status";
  await env.DB.prepare("INSERT INTO outbox_events (event_id, tenant_id, type, version, occurred_at, data, callback_url) VALUES (?, ?, ?, 1, ?, ?, ?)")
    .bind(eventId, tenantId, type, Date.now(), JSON.stringify(dataOf[type]), opts.dispatchable ? url : null)
    .run();
  const { seq } = (await env.DB.prepare("SELECT seq FROM outbox_events WHERE event_id = ?").bind(eventId).first<{ seq: number }>())!;
  return { seq, eventId, tenantId, url };
}

/** One consumer run over one job, as the queue would deliver it; `delays` are the delaySeconds
 *  asked of retry() (the test harness's queue result does not keep them). */
async function consume(job: { seq: number; eventId: string; tenantId: string; url: string }) {
  const batch = createMessageBatch("mensageiro-callbacks", [{ id: `m-${job.eventId}`, timestamp: new Date(), attempts: 1, body: job }]);
  const retry = vi.spyOn(batch.messages[0]!, "retry");
  const ctx = createExecutionContext();
  await consumeCallbacks(batch, env);
  const result = await getQueueResult(batch, ctx);
  return { ...result, delays: retry.mock.calls.map(([options]) => options?.delaySeconds) };
}

const delivery = (eventId: string) =>
  env.DB.prepare("SELECT status, attempts, last_error, last_status, next_at FROM callback_deliveries WHERE event_id = ?")
    .bind(eventId)
    .first<{ status: string; attempts: number; last_error: string | null; last_status: number | null; next_at: number | null }>();

describe("Standard Webhooks callbacks", () => {
  it("a message's status callbacks arrive signed, the standardwebhooks package verifies them, and they are listed as delivered", async () => {
    const t = await callbackTenant("cb-e2e");
    expect(t.secret).toMatch(/^whsec_/);
    const instance = unique("cbinst");
    await simulator(`/_sim/instances/${instance}`, { method: "PUT", json: { apikey: "k" } });
    await api(`/v1/instances/${instance}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), evolutionApiKey: "k", ratePerMinute: 6000 } });
    const id = (await json(await send(t.key, { instance, to: "5511966660020", text: "com callback" }))).id;
    await waitForStatus(id, ["sent"]);
    const got = await eventually(
      async () => {
        const list = await received(t.path);
        const statuses = list.map((r) => JSON.parse(r.body).data.status);
        return ["queued", "processing", "sent"].every((s) => statuses.includes(s)) ? list : undefined;
      },
      20_000,
      "three callbacks",
    );
    const wh = new Webhook(t.secret);
    for (const r of got) {
      expect(wh.verify(r.body, r.headers)).toEqual(JSON.parse(r.body));
      expect(r.headers["webhook-id"]).toBe(JSON.parse(r.body).eventId);
      // The body is the published event, as GET /v1/events serves it: absent fields, not nulls.
      expect(gatewayEvent.parse(JSON.parse(r.body))).toEqual(JSON.parse(r.body));
      // A tenant created with a whsec_ secret gets only the standard headers.
      expect(r.headers["x-mensageiro-signature"]).toBeUndefined();
    }
    expect(() => new Webhook(asWebhookSecret("another-secret-of-enough-length-000000")).verify(got[0]!.body, got[0]!.headers)).toThrow();
    const listed = await eventually(async () => {
      const page = await json(await api("/v1/callbacks/deliveries?status=delivered&event=message.status", { key: t.key }));
      return page.data.length >= 3 ? page : undefined;
    });
    expect(listed.data.map((d: { eventId: string }) => d.eventId).sort()).toEqual(got.map((r) => r.headers["webhook-id"]).sort());
    expect(listed.data[0]).toMatchObject({ status: "delivered", attempts: 1, eventType: "message.status", url: t.url });
  });

  it("rotation: the new secret is shown once and both secrets sign for 24 hours, then only the new one", async () => {
    const t = await callbackTenant("cb-rotate");
    const rotated = await api("/v1/callbacks/secret/rotate", { method: "POST", key: t.key });
    expect(rotated.status).toBe(200);
    const { secret, previousSecretValidUntil } = await json(rotated);
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(t.secret);
    expect(Date.parse(previousSecretValidUntil) - Date.now()).toBeGreaterThan(23.9 * 3600_000);
    const settings = await json(await api("/v1/callbacks", { key: t.key }));
    expect(JSON.stringify(settings)).not.toContain(secret.slice(6, 20));
    expect(settings.signing).toMatchObject({ secretFormat: "whsec", previousSecretValidUntil, legacyHeader: false });

    const during = await outboxEvent(t.id, t.url);
    await consume(during);
    const [overlap] = await received(t.path);
    expect(overlap!.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(new Webhook(secret).verify(overlap!.body, overlap!.headers)).toBeTruthy();
    expect(new Webhook(t.secret).verify(overlap!.body, overlap!.headers)).toBeTruthy();

    await env.DB.prepare("UPDATE tenants SET callback_secret_previous_until = ? WHERE id = ?")
      .bind(Date.now() - 1, t.id)
      .run();
    const after = await outboxEvent(t.id, t.url);
    await consume(after);
    const last = (await received(t.path)).at(-1)!;
    expect(last.headers["webhook-signature"]?.split(" ")).toHaveLength(1);
    expect(new Webhook(secret).verify(last.body, last.headers)).toBeTruthy();
    expect(() => new Webhook(t.secret).verify(last.body, last.headers)).toThrow();
  });

  it("a tenant from before Standard Webhooks keeps its old header and verifies the new ones with whsec_ + base64 of its secret, until it rotates", async () => {
    const t = await callbackTenant("cb-legacy");
    const token = "Zm9vYmFyYmF6cXV4LXRoaXMtaXMtYW4tb2xkLXRva2Vu1";
    await env.DB.prepare("UPDATE tenants SET callback_secret = ? WHERE id = ?").bind(token, t.id).run();
    const before = await outboxEvent(t.id, t.url);
    await consume(before);
    const [old] = await received(t.path);
    expect(old!.headers["x-mensageiro-signature"]).toBe(await legacySignature(token, old!.body));
    const derived = `whsec_${btoa(token)}`;
    expect(new Webhook(derived).verify(old!.body, old!.headers)).toBeTruthy();
    expect((await json(await api("/v1/callbacks", { key: t.key }))).signing).toMatchObject({ secretFormat: "legacy-token", legacyHeader: true });

    const { secret } = await json(await api("/v1/callbacks/secret/rotate", { method: "POST", key: t.key }));
    await consume(await outboxEvent(t.id, t.url));
    const overlap = (await received(t.path)).at(-1)!;
    expect(overlap.headers["x-mensageiro-signature"]).toBe(await legacySignature(token, overlap.body));
    expect(new Webhook(secret).verify(overlap.body, overlap.headers)).toBeTruthy();
    expect(new Webhook(derived).verify(overlap.body, overlap.headers)).toBeTruthy();

    await env.DB.prepare("UPDATE tenants SET callback_secret_previous_until = ? WHERE id = ?")
      .bind(Date.now() - 1, t.id)
      .run();
    await consume(await outboxEvent(t.id, t.url));
    const done = (await received(t.path)).at(-1)!;
    expect(done.headers["x-mensageiro-signature"]).toBeUndefined();
    expect(new Webhook(secret).verify(done.body, done.headers)).toBeTruthy();
  });
});

describe("retries", () => {
  it("follows the schedule (about 27.6 h over 8 attempts), honours Retry-After beyond one queue hop, and gives up after the last attempt", async () => {
    expect(RETRY_DELAYS_S.reduce((a, b) => a + b, 0)).toBeGreaterThan(24 * 3600);
    expect(MAX_CALLBACK_ATTEMPTS).toBe(8);
    expect(nextDelaySeconds(1, null)).toBe(5);
    expect(nextDelaySeconds(2, 120)).toBe(300);
    expect(nextDelaySeconds(1, 120)).toBe(120);

    const t = await callbackTenant("cb-retry");
    const plain = await outboxEvent(t.id, t.url);
    await failNext(t.path, { times: 1 });
    const first = await consume(plain);
    expect(first.retryMessages).toEqual([{ msgId: `m-${plain.eventId}` }]);
    expect(first.delays).toEqual([5]);
    expect(await delivery(plain.eventId)).toMatchObject({ status: "retrying", attempts: 1, last_status: 500, last_error: "HTTP 500" });

    const slow = await outboxEvent(t.id, t.url);
    await failNext(t.path, { times: 1, status: 429, headers: { "retry-after": "120" } });
    const asked = await consume(slow);
    expect(asked.delays).toEqual([120]);
    const row = (await delivery(slow.eventId))!;
    expect(row.next_at! - Date.now()).toBeGreaterThan(100_000);

    // 20 hours: longer than a queue delay can be (12 h). A copy that comes early waits again, unsent.
    const long = await outboxEvent(t.id, t.url);
    await failNext(t.path, { times: 1, status: 503, headers: { "retry-after": String(20 * 3600) } });
    expect((await consume(long)).delays).toEqual([12 * 3600]);
    const sentSoFar = (await received(t.path)).length;
    const early = await consume(long);
    expect(early.delays[0]).toBeGreaterThan(7 * 3600);
    expect(await received(t.path)).toHaveLength(sentSoFar);
    expect(await delivery(long.eventId)).toMatchObject({ status: "retrying", attempts: 1 });

    // The last allowed attempt fails for good.
    await env.DB.prepare("UPDATE callback_deliveries SET attempts = ?, next_at = 0 WHERE event_id = ?")
      .bind(MAX_CALLBACK_ATTEMPTS - 1, plain.eventId)
      .run();
    await failNext(t.path, { times: 1 });
    const last = await consume(plain);
    expect(last.explicitAcks).toEqual([`m-${plain.eventId}`]);
    expect(await delivery(plain.eventId)).toMatchObject({ status: "failed", attempts: MAX_CALLBACK_ATTEMPTS });
  });

  it("410 Gone disables the URL: nothing more is sent there until it is enabled again, then a replay delivers", async () => {
    const t = await callbackTenant("cb-gone");
    const gone = await outboxEvent(t.id, t.url, { dispatchable: true });
    await failNext(t.path, { times: 1, status: 410 });
    expect((await consume(gone)).explicitAcks).toHaveLength(1);
    expect(await delivery(gone.eventId)).toMatchObject({ status: "failed", last_status: 410 });
    const settings = await json(await api("/v1/callbacks", { key: t.key }));
    expect(settings.disabledEndpoints).toEqual([expect.objectContaining({ url: t.url })]);

    const next = await outboxEvent(t.id, t.url);
    await consume(next);
    expect(await delivery(next.eventId)).toMatchObject({ status: "failed", attempts: 1 });
    expect((await delivery(next.eventId))!.last_error).toMatch(/^endpoint disabled/);
    expect(await received(t.path)).toHaveLength(1);
    expect((await api("/v1/callbacks/replay", { method: "POST", key: t.key, json: { eventId: gone.eventId } })).status).toBe(409);

    expect((await api("/v1/callbacks/enable", { method: "POST", key: t.key, json: { url: t.url } })).status).toBe(200);
    expect((await api("/v1/callbacks/enable", { method: "POST", key: t.key, json: { url: t.url } })).status).toBe(404);
    const replay = await api("/v1/callbacks/replay", { method: "POST", key: t.key, json: { eventId: gone.eventId } });
    expect(replay.status).toBe(202);
    expect(await json(replay)).toMatchObject({ replayed: 1, eventIds: [gone.eventId] });
    await eventually(async () => (await delivery(gone.eventId))?.status === "delivered", 10_000, "replayed delivery");
    expect((await received(t.path)).filter((r) => r.headers["webhook-id"] === gone.eventId).map((r) => r.status)).toEqual([410, 200]);
  });
});

describe("delivery records and replay", () => {
  it("lists with filters and a cursor; replays every failed delivery since a time, bounded; another tenant's event is 404", async () => {
    const t = await callbackTenant("cb-replay");
    const other = await callbackTenant("cb-other");
    const failed: Awaited<ReturnType<typeof outboxEvent>>[] = [];
    for (let i = 0; i < 3; i++) failed.push(await outboxEvent(t.id, t.url, { dispatchable: true, type: i === 2 ? "message.received" : "instance.status" }));
    const since = new Date(Date.now() - 1000).toISOString();
    const now = Date.now();
    for (const e of failed)
      await env.DB.prepare(
        `INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, last_error, updated_at, seq, event_type, created_at)
         SELECT event_id, callback_url, tenant_id, 'failed', 8, 'HTTP 500', ?, seq, type, ? FROM outbox_events WHERE event_id = ?`,
      )
        .bind(now, now, e.eventId)
        .run();

    const page1 = await json(await api("/v1/callbacks/deliveries?status=failed&limit=2", { key: t.key }));
    expect(page1.data.map((d: { eventId: string }) => d.eventId)).toEqual([failed[2]!.eventId, failed[1]!.eventId]);
    const page2 = await json(await api(`/v1/callbacks/deliveries?status=failed&limit=2&cursor=${page1.nextCursor}`, { key: t.key }));
    expect(page2).toEqual({ data: [expect.objectContaining({ eventId: failed[0]!.eventId, status: "failed", lastError: "HTTP 500" })], nextCursor: null });
    const received_ = await json(await api("/v1/callbacks/deliveries?event=message.received", { key: t.key }));
    expect(received_.data.map((d: { eventId: string }) => d.eventId)).toEqual([failed[2]!.eventId]);
    const future = encodeURIComponent(new Date(Date.now() + 60_000).toISOString());
    expect((await json(await api(`/v1/callbacks/deliveries?since=${future}`, { key: t.key }))).data).toEqual([]);
    expect((await api("/v1/callbacks/deliveries?cursor=nope", { key: t.key })).status).toBe(400);
    expect((await api("/v1/callbacks/deliveries?status=lost", { key: t.key })).status).toBe(400);
    expect((await json(await api("/v1/callbacks/deliveries", { key: other.key }))).data).toEqual([]);

    expect((await api("/v1/callbacks/replay", { method: "POST", key: other.key, json: { eventId: failed[0]!.eventId } })).status).toBe(404);
    expect((await api("/v1/callbacks/replay", { method: "POST", key: t.key, json: { since: "yesterday" } })).status).toBe(400);
    const firstTwo = await json(await api("/v1/callbacks/replay", { method: "POST", key: t.key, json: { since, limit: 2 } }));
    expect(firstTwo).toEqual({ replayed: 2, eventIds: [failed[0]!.eventId, failed[1]!.eventId], more: true });
    const rest = await json(await api("/v1/callbacks/replay", { method: "POST", key: t.key, json: { since } }));
    expect(rest).toEqual({ replayed: 1, eventIds: [failed[2]!.eventId], more: false });
    await eventually(
      async () => {
        const ids = (await received(t.path)).filter((r) => r.status === 200).map((r) => r.headers["webhook-id"]);
        return failed.every((e) => ids.includes(e.eventId));
      },
      10_000,
      "three replayed callbacks",
    );
    for (const e of failed) expect(await delivery(e.eventId)).toMatchObject({ status: "delivered", attempts: 1 });
  });

  it("a queue send that throws after the cursor moved loses nothing: the cron hands the delivery out again", async () => {
    const t = await callbackTenant("cb-lost");
    const e = await outboxEvent(t.id, t.url, { dispatchable: true });
    const f = await outboxEvent(t.id, t.url, { dispatchable: true });
    const sendBatch = vi.spyOn(env.CALLBACKS, "sendBatch").mockRejectedValueOnce(new Error("queue unavailable"));
    try {
      expect(await dispatchCallbacks(env)).toBe(0);
      expect(sendBatch).toHaveBeenCalledTimes(1);
    } finally {
      sendBatch.mockRestore();
    }
    const cursor = await env.DB.prepare("SELECT seq FROM consumer_cursors WHERE consumer = 'callbacks'").first<{ seq: number }>();
    expect(cursor!.seq).toBeGreaterThanOrEqual(f.seq);
    for (const x of [e, f]) expect(await delivery(x.eventId)).toMatchObject({ status: "pending", attempts: 0 });
    // Nothing new for the dispatcher: before this fix the event was skipped for good here.
    expect(await dispatchCallbacks(env)).toBe(0);
    expect(await redispatchDue(env)).toBe(0);
    // The cron a few minutes later: the pending row is overdue.
    await env.DB.prepare("UPDATE callback_deliveries SET next_at = next_at - ? WHERE event_id IN (?, ?)")
      .bind(REDISPATCH_GRACE_MS + 1000, e.eventId, f.eventId)
      .run();
    expect(await redispatchDue(env)).toBe(2);
    for (const x of [e, f]) {
      await eventually(async () => (await delivery(x.eventId))?.status === "delivered", 10_000, "the redispatched callback");
      const got = (await received(t.path)).filter((r) => r.headers["webhook-id"] === x.eventId);
      expect(got).toHaveLength(1);
      expect(new Webhook(t.secret).verify(got[0]!.body, got[0]!.headers)).toBeTruthy();
    }
  });
});

describe("one POST per attempt", () => {
  it("two copies of one job consumed side by side: the receiver gets one POST, one attempt is recorded, both copies are acked", async () => {
    const t = await callbackTenant("cb-twice");
    const e = await outboxEvent(t.id, t.url, { dispatchable: true });
    // The row as the dispatcher left it, then a re-dispatch of it: two queue messages for one delivery.
    await env.DB.prepare(
      "INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, updated_at, seq, event_type, created_at, next_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, 'instance.status', ?, ?)",
    )
      .bind(e.eventId, t.url, t.id, Date.now(), e.seq, Date.now(), Date.now())
      .run();
    const batch = createMessageBatch("mensageiro-callbacks", [
      { id: `a-${e.eventId}`, timestamp: new Date(), attempts: 1, body: e },
      { id: `b-${e.eventId}`, timestamp: new Date(), attempts: 1, body: e },
    ]);
    const ctx = createExecutionContext();
    await consumeCallbacks(batch, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual([`a-${e.eventId}`, `b-${e.eventId}`]);
    expect(result.retryMessages).toEqual([]);
    expect(await delivery(e.eventId)).toMatchObject({ status: "delivered", attempts: 1 });
    const got = (await received(t.path)).filter((r) => r.headers["webhook-id"] === e.eventId);
    expect(got).toHaveLength(1);
    const lease = await env.DB.prepare("SELECT lease_until FROM callback_deliveries WHERE event_id = ?")
      .bind(e.eventId)
      .first<{ lease_until: number | null }>();
    expect(lease?.lease_until).toBeNull();
  });

  it("the cron re-dispatches an overdue delivery only when no consumer holds it", async () => {
    const t = await callbackTenant("cb-held");
    const e = await outboxEvent(t.id, t.url, { dispatchable: true });
    const overdue = Date.now() - REDISPATCH_GRACE_MS - 60_000;
    await env.DB.prepare(
      "INSERT INTO callback_deliveries (event_id, url, tenant_id, status, attempts, updated_at, seq, event_type, created_at, next_at, lease_until) VALUES (?, ?, ?, 'pending', 0, ?, ?, 'instance.status', ?, ?, ?)",
    )
      .bind(e.eventId, t.url, t.id, overdue, e.seq, overdue, overdue, Date.now() + 30_000)
      .run();
    // A consumer holds it (its POST under way): no second copy.
    expect(await redispatchDue(env)).toBe(0);
    // Its claim ran out (the isolate died mid-attempt): stranded, handed out again, delivered once.
    await env.DB.prepare("UPDATE callback_deliveries SET lease_until = ? WHERE event_id = ?")
      .bind(Date.now() - 1, e.eventId)
      .run();
    expect(await redispatchDue(env)).toBe(1);
    await eventually(async () => (await delivery(e.eventId))?.status === "delivered", 10_000, "the stranded callback delivered");
    expect((await received(t.path)).filter((r) => r.headers["webhook-id"] === e.eventId)).toHaveLength(1);
  });
});
