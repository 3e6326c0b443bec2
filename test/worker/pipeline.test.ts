// The send pipeline end to end inside workerd: API → D1 → sends queue → ContactLane → simulator.
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { LANE_HORIZON_MS } from "../../src/messages/accept.ts";
import { api, eventually, json, laneStub, send, setupTenant, simCalls, waitForStatus, postWith } from "./helpers.ts";

describe("delivery through Evolution", () => {
  it("keeps each contact's order while contacts proceed in parallel", async () => {
    const t = await setupTenant();
    const contacts = ["5511911110001", "5511911110002", "5511911110003", "5511911110004"];
    const ids: string[] = [];
    // Interleaved across contacts, 8 per contact.
    for (let i = 0; i < 8; i++) {
      for (const to of contacts) ids.push((await json(await send(t.key, { instance: t.instance, to, text: `${to}#${i}` }))).id);
    }
    await eventually(async () => (await simCalls(t.instance)).length >= ids.length, 20_000, "all sends at the simulator");
    const calls = await simCalls(t.instance);
    expect(calls).toHaveLength(ids.length);
    for (const to of contacts) {
      expect(calls.filter((c) => c.number === to).map((c) => c.body.text)).toEqual(Array.from({ length: 8 }, (_, i) => `${to}#${i}`));
    }
    // Parallel: the contacts' sends interleave at the simulator rather than running one contact after another.
    const firstOfEach = contacts.map((to) => calls.findIndex((c) => c.number === to));
    expect(Math.max(...firstOfEach)).toBeLessThan(ids.length - 8);
    for (const id of ids) expect((await waitForStatus(id, ["sent"])).attempts).toBe(1);
  });

  it("uses Evolution's own routes and body fields for text, media, audio and groups", async () => {
    const t = await setupTenant();
    const bodies = [
      { to: "5511922220001", text: "texto" },
      { to: "5511922220002", media: { url: "https://cdn.example.com/catalogo.png", type: "image", caption: "Catálogo", mimeType: "image/png" } },
      { to: "5511922220003", text: "legenda vinda do texto", media: { url: "https://cdn.example.com/boleto.pdf", type: "document", fileName: "boleto.pdf" } },
      { to: "5511922220004", media: { url: "https://cdn.example.com/boas-vindas.mp3", type: "audio" } },
      { to: "120363041234567890@g.us", text: "para o grupo" },
    ];
    const ids = [];
    for (const b of bodies) ids.push((await json(await send(t.key, { instance: t.instance, ...b }))).id);
    for (const id of ids) await waitForStatus(id, ["sent"]);
    const byNumber = new Map((await simCalls(t.instance)).map((c) => [c.body.number, c]));
    expect(byNumber.get("5511922220001")).toMatchObject({ route: "sendText", body: { number: "5511922220001", text: "texto" } });
    expect(byNumber.get("5511922220002")).toMatchObject({
      route: "sendMedia",
      body: { mediatype: "image", media: "https://cdn.example.com/catalogo.png", caption: "Catálogo", mimetype: "image/png" },
    });
    expect(byNumber.get("5511922220003")).toMatchObject({
      route: "sendMedia",
      body: { mediatype: "document", fileName: "boleto.pdf", caption: "legenda vinda do texto" },
    });
    expect(byNumber.get("5511922220004")).toMatchObject({ route: "sendWhatsAppAudio", body: { audio: "https://cdn.example.com/boas-vindas.mp3" } });
    expect(byNumber.get("120363041234567890@g.us")).toMatchObject({ route: "sendText", body: { text: "para o grupo" } });
    // The provider id recorded is the one the simulator issued.
    const row = await env.DB.prepare("SELECT provider_message_id FROM messages WHERE id = ?").bind(ids[0]).first<{ provider_message_id: string }>();
    expect(row?.provider_message_id).toBe(byNumber.get("5511922220001")?.keyId);
  });

  it("Prefer: wait answers 200 with the sent message, 202 when it cannot finish in time", async () => {
    const t = await setupTenant();
    const res = await send(t.key, { instance: t.instance, to: "5511933330001", text: "síncrono" }, { prefer: "wait=10" });
    expect(res.status).toBe(200);
    expect(res.headers.get("preference-applied")).toBe("wait=10");
    const body = await json(res);
    expect(body).toMatchObject({ status: "sent", providerMessageId: expect.stringMatching(/^3EB0/), sentAt: expect.any(String) });
    expect(body.history.map((h: { status: string }) => h.status)).toEqual(["queued", "processing", "sent"]);

    // Evolution failing transiently (retry backoff is a minute in tests): the wait runs out → 202.
    await fetchSim("/_sim/faults", { instance: t.instance, number: "5511933330002", status: 503, times: 1 });
    const slow = await send(t.key, { instance: t.instance, to: "5511933330002", text: "vai esperar" }, { prefer: "wait=1" });
    expect(slow.status).toBe(202);
  });

  /** POSTs with Prefer: wait=10 to a Worker whose sends queue refuses every write, and waits for
   *  the request's background work: only a hand-off straight to the lane can send it. */
  async function postWithQueueDown(key: string, path: string, body: unknown, headers: Record<string, string> = { prefer: "wait=10" }): Promise<Response> {
    const queueDown = {
      ...env,
      SENDS: {
        send: async () => Promise.reject(new Error("queue down")),
        sendBatch: async () => Promise.reject(new Error("queue down")),
      } as unknown as Queue,
    };
    return postWith(queueDown, path, body, { key, headers });
  }

  it("Prefer: wait hands the message straight to its lane: sent with the sends queue down", async () => {
    const t = await setupTenant();
    const res = await postWithQueueDown(t.key, "/v1/messages", { instance: t.instance, to: "5511933330003", text: "direto" });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: "sent", history: [{ status: "queued" }, { status: "processing" }, { status: "sent" }] });
    expect((await simCalls(t.instance)).filter((c) => c.number === "5511933330003").map((c) => c.body.text)).toEqual(["direto"]);
  });

  it("a send without Prefer: wait is handed to its lane after the answer too: sent, or held for its sendAt, with the sends queue down", async () => {
    const t = await setupTenant();
    const to = "5511933330006";
    const now = await postWithQueueDown(t.key, "/v1/messages", { instance: t.instance, to, text: "sem esperar" }, {});
    expect(now.status).toBe(202);
    expect(await waitForStatus((await json(now)).id, ["sent"])).toMatchObject({ attempts: 1 });
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["sem esperar"]);
    // Due within the horizon: a later one waits in D1 alone until the sweep hands it over (schedule.test.ts).
    const sendAt = Date.now() + LANE_HORIZON_MS / 2;
    const later = await postWithQueueDown(t.key, "/v1/messages", { instance: t.instance, to, text: "depois", sendAt: new Date(sendAt).toISOString() }, {});
    expect(later.status).toBe(202);
    const snap = await laneStub(t.id, t.instanceId, to).snapshot();
    expect(snap.pending).toMatchObject([{ id: (await json(later)).id, ready_at: sendAt }]);
    expect(snap.alarm).toBe(sendAt);
  });

  it("a batch is handed to its lanes after the answer too, each contact in order: all sent with the sends queue down", async () => {
    const t = await setupTenant();
    const contacts = ["5511933330007", "5511933330008"];
    const messages = [0, 1, 2].flatMap((i) => contacts.map((to) => ({ instance: t.instance, to, text: `lote ${i}` })));
    const res = await postWithQueueDown(t.key, "/v1/messages/batch", { messages }, {});
    expect(res.status).toBe(200);
    for (const r of (await json(res)).results) await waitForStatus(r.id, ["sent"]);
    const calls = await simCalls(t.instance);
    for (const to of contacts) expect(calls.filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["lote 0", "lote 1", "lote 2"]);
  });

  it("the older messaging route's Prefer: wait goes straight to the lane too: sent with the sends queue down", async () => {
    const t = await setupTenant();
    const res = await postWithQueueDown(t.key, "/api/messaging/message/send", {
      channel: "whatsapp_evolution",
      channelInstanceId: t.instance,
      remoteJid: "5511933330005",
      message: "direto, rota antiga",
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ success: true, data: { status: "sent", channelMessageId: expect.stringMatching(/^3EB0/) } });
    expect((await simCalls(t.instance)).filter((c) => c.number === "5511933330005").map((c) => c.body.text)).toEqual(["direto, rota antiga"]);
  });

  it("the same message handed to its lane directly and again by the sends queue is sent once", async () => {
    const { createMessageBatch, createExecutionContext, getQueueResult, runDurableObjectAlarm, runInDurableObject } = await import("cloudflare:test");
    const worker = (await import("../../src/index.ts")).default;
    const t = await setupTenant();
    const res = await send(t.key, { instance: t.instance, to: "5511933330004", text: "uma vez" }, { prefer: "wait=10" });
    expect(res.status).toBe(200);
    const { id } = await json(res);
    const row = await env.DB.prepare("SELECT lane_key, instance_id, priority, ready_at, created_at FROM messages WHERE id = ?")
      .bind(id)
      .first<{ lane_key: string; instance_id: string; priority: number; ready_at: number; created_at: number }>();
    // The queue's copy of the same job (a hand-off whose answer was lost, then the fallback).
    const job = {
      messageId: id,
      laneKey: row!.lane_key,
      instanceId: row!.instance_id,
      priority: row!.priority,
      readyAt: row!.ready_at,
      createdAt: row!.created_at,
    };
    const batch = createMessageBatch("mensageiro-sends", [{ id: "dup-1", timestamp: new Date(), attempts: 1, body: job }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["dup-1"]);
    // The lane took the copy up again; its claim in D1 fails (sent already), and the item is done.
    const lane = env.LANES.get(env.LANES.idFromName(row!.lane_key));
    await runDurableObjectAlarm(lane);
    await vi.waitFor(async () => {
      const done = await runInDurableObject(lane, (_o, state) => state.storage.sql.exec("SELECT phase FROM lane_items WHERE id = ?", id).toArray());
      expect(done).toEqual([{ phase: "done" }]);
    });
    expect((await simCalls(t.instance)).filter((c) => c.number === "5511933330004")).toHaveLength(1);
    const after = await json(await api(`/v1/messages/${id}`, { key: t.key }));
    expect(after).toMatchObject({ status: "sent", attempts: 1 });
    expect(after.history.map((h: { status: string }) => h.status)).toEqual(["queued", "processing", "sent"]);
  });

  it("a queue delivery with a malformed body is acknowledged and dropped, not retried forever", async () => {
    const { createMessageBatch, createExecutionContext, getQueueResult } = await import("cloudflare:test");
    const worker = (await import("../../src/index.ts")).default;
    const batch = createMessageBatch("mensageiro-sends", [{ id: "m1", timestamp: new Date(), attempts: 1, body: { nope: true } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(["m1"]);
    expect(result.retryMessages).toEqual([]);
  });
});

async function fetchSim(path: string, body: unknown) {
  const { simulator } = await import("./helpers.ts");
  return simulator(path, { method: "POST", json: body });
}

describe("health and metrics", () => {
  it("reports D1 and the queue", async () => {
    const res = await api("/health");
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: "ok", checks: { d1: "ok", queue: "ok" } });
  });

  it("serves Prometheus text to the metrics token only", async () => {
    const t = await setupTenant();
    const id = (await json(await send(t.key, { instance: t.instance, to: "5511933330009", text: "métrica" }))).id;
    await waitForStatus(id, ["sent"]);
    expect((await api("/metrics")).status).toBe(401);
    expect((await api("/metrics", { key: t.key })).status).toBe(401);
    const res = await api("/metrics", { key: "test-metrics-token" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toContain(`mensageiro_messages{instance="${t.instance}",status="sent"} 1`);
    expect(text).toMatch(/^mensageiro_sent_last_minute [1-9]\d*$/m);
    expect(text).toMatch(/^# TYPE mensageiro_dead_letters gauge$/m);
  });
});

describe("GET /v1/stats", () => {
  it("counts the tenant's messages by status and instance, dead letters and recent sends", async () => {
    const t = await setupTenant();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await json(await send(t.key, { instance: t.instance, to: `551196666000${i}`, text: "conta" }))).id);
    await send(t.key, { instance: t.instance, to: "5511966660009", text: "depois", sendAt: new Date(Date.now() + 3600_000).toISOString() });
    for (const id of ids) await waitForStatus(id, ["sent"]);
    const stats = await json(await api("/v1/stats", { key: t.key }));
    expect(stats).toEqual({
      messages: { total: { sent: 3, scheduled: 1 }, byInstance: { [t.instance]: { sent: 3, scheduled: 1 } } },
      deadLetters: 0,
      oldestQueuedAgeSeconds: 0,
      sentLastMinute: 3,
      sentLastMinuteByInstance: { [t.instance]: 3 },
    });
    expect((await api("/v1/stats")).status).toBe(401);
  });
});
