// The live event stream (TenantStream over WebSockets), the console's timeline, and the pairing
// QR code of a disconnected number.
import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import worker from "../../src/index.ts";
import qrFixture from "../fixtures/evolution/qrcode.updated.json";
import { ADMIN, api, createTenant, eventually, json, send, setupTenant, simulator, simulatorUrl, waitForStatus } from "./helpers.ts";

type StreamEvent = { seq: number; eventId: string; type: string; data: Record<string, any> };

async function connect(query: string, headers: Record<string, string> = {}) {
  const res = await exports.default.fetch(new Request(`https://gateway.test/v1/events/stream?${query}`, { headers: { upgrade: "websocket", ...headers } }));
  const closed: { code?: number; reason?: string } = {};
  if (!res.webSocket) return { res, events: [] as StreamEvent[], ready: Promise.resolve(-1), closed, close: () => undefined };
  const ws = res.webSocket;
  ws.accept();
  const events: StreamEvent[] = [];
  let markReady: (cursor: number) => void = () => undefined;
  const ready = new Promise<number>((r) => (markReady = r));
  ws.addEventListener("message", (m) => {
    const msg = JSON.parse(String(m.data));
    if (msg.type === "stream.ready") markReady(msg.cursor);
    else events.push(msg);
  });
  ws.addEventListener("close", (e) => Object.assign(closed, { code: e.code, reason: e.reason }));
  return { res, events, ready, closed, close: () => ws.close(1000, "done") };
}

async function issueKey(tenantId: string): Promise<{ id: string; apiKey: string }> {
  const res = await api(`/v1/admin/tenants/${tenantId}/keys`, { method: "POST", key: ADMIN });
  expect(res.status).toBe(201);
  return json(res);
}

async function ticket(key: string): Promise<string> {
  const res = await api("/v1/events/stream/tickets", { method: "POST", key });
  expect(res.status).toBe(201);
  return (await json(res)).ticket;
}

async function outboxSeqs(tenantId: string): Promise<number[]> {
  const { results } = await env.DB.prepare("SELECT seq FROM outbox_events WHERE tenant_id = ? ORDER BY seq").bind(tenantId).all<{ seq: number }>();
  return results.map((r) => r.seq);
}

describe("GET /v1/events/stream", () => {
  it("a client resumes from the last seq it saw after a disconnect: nothing missing, nothing repeated", async () => {
    const t = await setupTenant();
    const first = await connect(`ticket=${await ticket(t.key)}`);
    expect(first.res.status).toBe(101);
    expect(await first.ready).toBe(0);
    const ids: string[] = [];
    for (const to of ["5511970000001", "5511970000002", "5511970000003"]) ids.push((await json(await send(t.key, { instance: t.instance, to, text: "a" }))).id);
    await eventually(async () => first.events.length >= 4, 10_000, "first events");
    first.close();
    const seen = first.events.map((e) => e.seq);
    for (const to of ["5511970000001", "5511970000004"]) ids.push((await json(await send(t.key, { instance: t.instance, to, text: "b" }))).id);
    for (const id of ids) await waitForStatus(id, ["sent"]);

    const second = await connect(`after=${seen.at(-1)}`, { authorization: `Bearer ${t.key}` });
    expect(await second.ready).toBe(seen.at(-1));
    const all = await outboxSeqs(t.id);
    await eventually(async () => second.events.at(-1)?.seq === all.at(-1), 10_000, "the rest of the outbox");
    second.close();
    const received = [...seen, ...second.events.map((e) => e.seq)];
    expect(all.length).toBe(ids.length * 3); // queued, processing, sent
    expect(received).toEqual(all);
    // Every message's whole story, in order, over the two connections.
    const statuses = [...first.events, ...second.events].filter((e) => e.data.messageId === ids[0]).map((e) => e.data.status);
    expect(statuses).toEqual(["queued", "processing", "sent"]);
  });

  it("filters by type and contact, and shows only the caller's tenant", async () => {
    const t = await setupTenant();
    const other = await setupTenant();
    const stream = await connect(`ticket=${await ticket(t.key)}&types=message.status&contact=5511970000010`);
    await stream.ready;
    await send(other.key, { instance: other.instance, to: "5511970000010", text: "other tenant" });
    await send(t.key, { instance: t.instance, to: "5511970000011", text: "other contact" });
    const mine = await json(await send(t.key, { instance: t.instance, to: "5511970000010", text: "mine" }));
    await waitForStatus(mine.id, ["sent"]);
    await eventually(async () => stream.events.some((e) => e.data.status === "sent"), 10_000, "the sent event");
    stream.close();
    expect(stream.events.map((e) => [e.type, e.data.messageId, e.data.to])).toEqual([
      ["message.status", mine.id, "5511970000010"],
      ["message.status", mine.id, "5511970000010"],
      ["message.status", mine.id, "5511970000010"],
    ]);
  });

  it("a ticket works once; bad credentials and bad options are refused in the error shape", async () => {
    const t = await createTenant();
    const once = await ticket(t.key);
    const ok = await connect(`ticket=${once}`);
    expect(ok.res.status).toBe(101);
    ok.close();
    const again = await connect(`ticket=${once}`);
    expect(again.res.status).toBe(401);
    expect((await json(again.res)).error.code).toBe("unauthorized");
    // A ticket naming another tenant is not one that tenant issued.
    const other = await createTenant();
    const forged = once.replace(/^[^.]+/, other.id);
    expect((await connect(`ticket=${forged}`)).res.status).toBe(401);
    expect((await connect("")).res.status).toBe(401);
    expect((await connect("", { authorization: "Bearer mgo_wrong" })).res.status).toBe(401);
    const badType = await connect(`ticket=${await ticket(t.key)}&types=message.nope`);
    expect(badType.res.status).toBe(400);
    expect((await json(badType.res)).error.details[0].path).toMatch(/^types/);
    const notWs = await api(`/v1/events/stream?ticket=${await ticket(t.key)}`);
    expect(notWs.status).toBe(400);
    expect((await api("/v1/events/stream/tickets", { method: "POST" })).status).toBe(401);
  });
});

describe("the stream and API keys", () => {
  it("revoking a key closes the sockets it opened, with the key or through a ticket; another key's socket streams on", async () => {
    const t = await setupTenant();
    const first = await issueKey(t.id);
    const second = await issueKey(t.id);
    const direct = await connect("", { authorization: `Bearer ${first.apiKey}` });
    const viaTicket = await connect(`ticket=${await ticket(first.apiKey)}`);
    const other = await connect(`ticket=${await ticket(second.apiKey)}`);
    await Promise.all([direct.ready, viaTicket.ready, other.ready]);

    const revoked = await api(`/v1/admin/tenants/${t.id}/keys/${first.id}`, { method: "DELETE", key: ADMIN });
    expect(revoked.status).toBe(200);
    await eventually(async () => direct.closed.code && viaTicket.closed.code, 10_000, "the revoked key's sockets closed");
    expect([direct.closed, viaTicket.closed]).toEqual([
      { code: 1008, reason: "API key revoked" },
      { code: 1008, reason: "API key revoked" },
    ]);
    const sent = await json(await send(t.key, { instance: t.instance, to: "5511970000030", text: "after the revocation" }));
    await eventually(async () => other.events.some((e) => e.data.messageId === sent.id), 10_000, "the other key's socket still streaming");
    expect(other.closed.code).toBeUndefined();
    expect(direct.events.concat(viaTicket.events).some((e) => e.data.messageId === sent.id)).toBe(false);
    other.close();
  });

  it("re-checks its sockets' keys on its alarm: a revocation it was not told of closes them too", async () => {
    const t = await setupTenant();
    const key = await issueKey(t.id);
    const socket = await connect(`ticket=${await ticket(key.apiKey)}`);
    await socket.ready;
    // Revoked behind the admin route's back (as if its close had been lost).
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), key.id).run();
    // The next check is due (instead of waiting out the interval).
    await runInDurableObject(env.STREAMS.get(env.STREAMS.idFromName(t.id)), (_o, state) => {
      state.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('keysCheckedAt', '0')");
    });
    await eventually(async () => socket.closed.code, 10_000, "the socket closed by the re-check");
    expect(socket.closed).toEqual({ code: 1008, reason: "API key revoked" });
  });

  it("drops a socket whose send throws, and the others keep streaming past it", async () => {
    const t = await setupTenant();
    const poisoned = "5511970000041";
    const original = WebSocket.prototype.send;
    // Server-side sends to sockets filtered on this contact throw, as a broken socket's do.
    WebSocket.prototype.send = function (this: WebSocket, data: string | ArrayBuffer | ArrayBufferView) {
      let contact: unknown;
      try {
        contact = (this.deserializeAttachment() as { contact?: string } | null)?.contact;
      } catch {
        contact = undefined;
      }
      if (contact === poisoned && String(data).includes('"seq"')) throw new Error("send on a broken socket");
      return original.call(this, data);
    };
    try {
      const bad = await connect(`ticket=${await ticket(t.key)}&contact=${poisoned}`);
      const good = await connect(`ticket=${await ticket(t.key)}`);
      await Promise.all([bad.ready, good.ready]);
      const first = await json(await send(t.key, { instance: t.instance, to: poisoned, text: "one" }));
      await eventually(async () => bad.closed.code, 10_000, "the failing socket dropped");
      expect(bad.closed.code).toBe(1011);
      const second = await json(await send(t.key, { instance: t.instance, to: "5511970000042", text: "two" }));
      await eventually(async () => good.events.some((e) => e.data.messageId === second.id), 10_000, "the other socket served past it");
      expect(good.events.some((e) => e.data.messageId === first.id)).toBe(true);
      good.close();
    } finally {
      WebSocket.prototype.send = original;
    }
  });
});

describe("GET /v1/stats/timeline", () => {
  it("counts sends per bucket for the caller only; an unknown range is a 400", async () => {
    const t = await setupTenant();
    const other = await setupTenant();
    const a = await json(await send(t.key, { instance: t.instance, to: "5511970000020", text: "x" }));
    await json(await send(other.key, { instance: other.instance, to: "5511970000020", text: "y" }));
    await waitForStatus(a.id, ["sent"]);
    const hour = await json(await api("/v1/stats/timeline", { key: t.key }));
    expect(hour.buckets).toHaveLength(60);
    expect(hour.bucketSeconds).toBe(60);
    const totals = hour.buckets.reduce((s: any, b: any) => ({ sent: s.sent + b.sent, failed: s.failed + b.failed }), { sent: 0, failed: 0 });
    expect(totals).toEqual({ sent: 1, failed: 0 });
    const day = await json(await api("/v1/stats/timeline?range=day", { key: t.key }));
    expect(day.buckets).toHaveLength(96);
    expect(day.buckets.reduce((s: number, b: any) => s + b.sent, 0)).toBe(1);
    const bad = await api("/v1/stats/timeline?range=week", { key: t.key });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.details[0].path).toBe("range");
  });
});

describe("GET /v1/instances/:name/qr", () => {
  it("waits a bounded time on an Evolution that does not answer, then says 503 try again with Retry-After", async () => {
    const t = await setupTenant();
    await simulator(`/_sim/instances/${t.instance}`, { method: "PUT", json: { apikey: t.evolutionKey, state: "close" } });
    const original = globalThis.fetch;
    const asked: AbortSignal[] = [];
    // This instance's Evolution takes the connect request and never answers it.
    const hanging = vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      if (!url.includes(`/instance/connect/${t.instance}`)) return original(input, init);
      const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
      if (signal) asked.push(signal);
      return new Promise((_resolve, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
    });
    try {
      // With the production timeout for sends (30 s): the QR route still answers well within it.
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request<unknown, IncomingRequestCfProperties>(`https://gateway.test/v1/instances/${t.instance}/qr`, {
          headers: { authorization: `Bearer ${t.key}` },
        }),
        { ...env, EVOLUTION_TIMEOUT_MS: "30000" },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(res.status).toBe(503);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      const body = await json(res);
      expect(body.error.code).toBe("unavailable");
      expect(body.error.message).toMatch(/try again/);
      expect(asked).toHaveLength(1);
      expect(asked[0]!.aborted).toBe(true);
    } finally {
      hanging.mockRestore();
    }
  }, 20_000);

  it("answers 422, not a 5xx, when Evolution does not know the instance or refuses its key", async () => {
    const t = await setupTenant();
    await simulator(`/_sim/instances/${t.instance}`, { method: "PUT", json: { apikey: "another-key", state: "close" } });
    const refused = await api(`/v1/instances/${t.instance}/qr`, { key: t.key });
    expect(refused.status).toBe(422);
    expect((await json(refused)).error.message).toMatch(/Evolution refused the instance.*Evolution 401/);
    await simulator(`/_sim/instances/${t.instance}`, { method: "DELETE" });
    const unknown = await api(`/v1/instances/${t.instance}/qr`, { key: t.key });
    expect(unknown.status).toBe(422);
    expect((await json(unknown)).error.message).toMatch(/Evolution 404/);
    // A name with a dot, which the fuzzer found Evolution's router answering 400 for: also 422.
    const dotted = `x.Gb${Date.now().toString(36)}`;
    expect((await api(`/v1/instances/${dotted}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), evolutionApiKey: "k" } })).status).toBe(
      201,
    );
    expect((await api(`/v1/instances/${dotted}/qr`, { key: t.key })).status).toBe(422);
  });

  it("asks Evolution for the QR of a closed number, keeps qrcode.updated codes, and says open once connected", async () => {
    const t = await setupTenant();
    await simulator(`/_sim/instances/${t.instance}`, { method: "PUT", json: { apikey: t.evolutionKey, state: "close" } });
    const first = await json(await api(`/v1/instances/${t.instance}/qr`, { key: t.key }));
    expect(first.qr.base64).toMatch(/^data:image\/png;base64,iVBOR/);
    expect(first.qr.count).toBe(1);
    // A refreshed code arrives by webhook and is what the console shows next.
    const { webhook_token: token } = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?")
      .bind(t.instanceId)
      .first<{ webhook_token: string }>())!;
    const refreshed = { ...qrFixture, instance: t.instance, data: { qrcode: { ...qrFixture.data.qrcode, base64: "data:image/png;base64,AAAA", count: 2 } } };
    expect((await api(`/webhooks/evolution/${token}`, { method: "POST", json: refreshed })).status).toBe(200);
    await eventually(async () => (await json(await api(`/v1/instances/${t.instance}/qr`, { key: t.key }))).qr?.count === 2, 10_000, "the refreshed code");
    // Another tenant cannot see it.
    const other = await createTenant();
    expect((await api(`/v1/instances/${t.instance}/qr`, { key: other.key })).status).toBe(404);
    // The phone scans: open, and the code is gone.
    await simulator(`/_sim/instances/${t.instance}/scan`, { method: "POST", json: {} });
    await env.DB.prepare("UPDATE instances SET qr_updated_at = 0 WHERE id = ?").bind(t.instanceId).run();
    expect(await json(await api(`/v1/instances/${t.instance}/qr`, { key: t.key }))).toEqual({ name: t.instance, state: "open" });
    const row = await env.DB.prepare("SELECT state, qr_code FROM instances WHERE id = ?").bind(t.instanceId).first();
    expect(row).toEqual({ state: "open", qr_code: null });
    const event = await env.DB.prepare("SELECT data FROM outbox_events WHERE tenant_id = ? AND type = 'instance.status'").bind(t.id).first<{ data: string }>();
    expect(JSON.parse(event!.data)).toMatchObject({ instance: t.instance, state: "open" });
  });
});
