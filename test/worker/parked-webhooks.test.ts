// Webhook jobs past their retries: parked in D1 by the DLQ consumer, listed and replayed by an
// operator; and the queue body limit measured in bytes.
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index.ts";
import textFixture from "../fixtures/evolution/messages.upsert.text.json";
import { ADMIN, api, json, setupTenant, unique } from "./helpers.ts";

let t: Awaited<ReturnType<typeof setupTenant>>;
let token: string;
beforeAll(async () => {
  t = await setupTenant();
  token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!.webhook_token;
});

const inboundRow = (providerId: string) =>
  env.DB.prepare("SELECT text FROM inbound_messages WHERE instance_id = ? AND provider_message_id = ?")
    .bind(t.instanceId, providerId)
    .first<{ text: string }>();

function upsert(providerId: string, text: string) {
  const body = JSON.parse(JSON.stringify(textFixture));
  body.instance = t.instance;
  body.data.key.id = providerId;
  body.data.message = { conversation: text };
  return body;
}

describe("webhooks dead-letter queue", () => {
  it("parks a job whose retries ran out, lists it, and replays it once", async () => {
    const providerId = unique("PARKED").toUpperCase();
    const job = {
      tenantId: t.id,
      instanceId: t.instanceId,
      instanceName: t.instance,
      event: "messages.upsert",
      data: upsert(providerId, "chegou no DLQ").data,
      receivedAt: Date.now(),
    };
    const queueId = unique("dlq-msg");
    const batch = createMessageBatch("mensageiro-webhooks-dlq", [{ id: queueId, timestamp: new Date(), attempts: 1, body: job }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual([queueId]);
    expect(await inboundRow(providerId)).toBeNull();

    const listed = await json(await api("/v1/admin/webhooks/parked?limit=200", { key: ADMIN }));
    expect(listed.parked).toContainEqual(expect.objectContaining({ id: queueId, tenantId: t.id, event: "messages.upsert", attempts: 1 }));
    expect((await api("/v1/admin/webhooks/parked", { key: t.key })).status).toBe(401);

    const replay = await api("/v1/admin/webhooks/parked/replay", { method: "POST", key: ADMIN, json: { ids: [queueId] } });
    expect(replay.status).toBe(200);
    expect(await json(replay)).toMatchObject({ replayed: [{ id: queueId, outcome: "stored" }], failed: [] });
    expect(await inboundRow(providerId)).toEqual({ text: "chegou no DLQ" });
    const row = await env.DB.prepare("SELECT replayed_at FROM parked_webhooks WHERE id = ?").bind(queueId).first<{ replayed_at: number | null }>();
    expect(row?.replayed_at).toBeGreaterThan(0);
    // Replayed jobs leave the list and are not applied again.
    expect(await json(await api("/v1/admin/webhooks/parked/replay", { method: "POST", key: ADMIN, json: { ids: [queueId] } }))).toMatchObject({ replayed: [] });
    expect((await json(await api("/v1/admin/webhooks/parked?limit=200", { key: ADMIN }))).parked.map((p: { id: string }) => p.id)).not.toContain(queueId);
  });

  it("keeps a job that still cannot apply parked, with the error", async () => {
    const queueId = unique("dlq-bad");
    const batch = createMessageBatch("mensageiro-webhooks-dlq", [{ id: queueId, timestamp: new Date(), attempts: 3, body: { not: "a job" } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual([queueId]);
    const replay = await json(await api("/v1/admin/webhooks/parked/replay", { method: "POST", key: ADMIN, json: { ids: [queueId] } }));
    expect(replay.replayed).toEqual([]);
    expect(replay.failed).toEqual([{ id: queueId, error: expect.stringContaining("not a webhook job") }]);
    expect((await api("/v1/admin/webhooks/parked/replay", { method: "POST", key: ADMIN, json: { ids: [] } })).status).toBe(400);
  });
});

describe("webhook queue body size", () => {
  it("measures bytes: a text under the limit in characters but over it in bytes is applied in the request", async () => {
    // 40,000 characters, 120,000 bytes in UTF-8: over the 100 KB queued-job limit, under the queue's 128 KB only in characters.
    const providerId = unique("WIDE").toUpperCase();
    const text = "€".repeat(40_000);
    const res = await api(`/webhooks/evolution/${token}`, { method: "POST", json: upsert(providerId, text) });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ received: true, outcome: "stored" });
    expect((await inboundRow(providerId))?.text).toBe(text);
  });
});
