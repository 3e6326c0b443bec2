// Issue 8, defects 8, 9, 14 and 15: what a tenant may put in a request, and what never leaves.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { redact } from "../../src/redact.ts";
import { ADMIN, api, json, send, setupTenant, simulator, simulatorUrl, unique, waitForStatus } from "./helpers.ts";

let t: Awaited<ReturnType<typeof setupTenant>>;
beforeAll(async () => {
  t = await setupTenant();
});

const instanceRow = (name: string) =>
  env.DB.prepare("SELECT evolution_url AS url, evolution_api_key AS apiKey FROM instances WHERE name = ?").bind(name).first<{ url: string; apiKey: string }>();

// `{"a":{"a":…}}`, `levels` deep.
const deep = (levels: number): unknown => JSON.parse(`${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`);

describe("defect 8: a PUT that moves evolutionUrl must carry evolutionApiKey again", () => {
  it("refuses a new URL without the key, keeps the stored URL and key, and takes both together", async () => {
    const before = await instanceRow(t.instance);
    const moved = await api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { evolutionUrl: "https://other-evolution.example.com" } });
    expect(moved.status).toBe(400);
    expect((await json(moved)).error.details).toEqual([{ path: "evolutionApiKey", message: "Required again when evolutionUrl changes." }]);
    expect(await instanceRow(t.instance)).toEqual(before);

    const sameUrl = await api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { evolutionUrl: before!.url, ratePerMinute: 600 } });
    expect(sameUrl.status).toBe(200);
    expect(await instanceRow(t.instance)).toEqual(before);

    const name = unique("moving");
    await api(`/v1/instances/${name}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), evolutionApiKey: "old-key-123456" } });
    const withKey = await api(`/v1/instances/${name}`, {
      method: "PUT",
      key: t.key,
      json: { evolutionUrl: "https://other-evolution.example.com", evolutionApiKey: "new-key-123456" },
    });
    expect(withKey.status).toBe(200);
    expect(await instanceRow(name)).toEqual({ url: "https://other-evolution.example.com", apiKey: "new-key-123456" });
  });
});

describe("an Evolution key no HTTP header can carry is refused at PUT", () => {
  it.each([
    ["a line break", "key\nX-Injected: 1"],
    ["a carriage return", "key\r"],
    ["a control character", "key\u0000"],
    ["a non-ASCII character", "chave-\u00e7"],
    ["a character beyond Latin-1", "ключ"],
    ["a space inside", "two words"],
    ["surrounding spaces", " key "],
  ])("%s: 400 in the error shape, nothing stored, and later calls still work", async (_what, bad) => {
    const name = unique("hdr");
    const created = await api(`/v1/instances/${name}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), evolutionApiKey: bad } });
    expect(created.status).toBe(400);
    const body = await json(created);
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.details).toEqual([{ path: "evolutionApiKey", message: expect.stringMatching(/HTTP header/) }]);
    expect(JSON.stringify(body)).not.toContain(bad.trim());
    expect(await instanceRow(name)).toBeNull();
    // An existing instance keeps its working key.
    const before = await instanceRow(t.instance);
    const updated = await api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { evolutionUrl: before!.url, evolutionApiKey: bad } });
    expect(updated.status).toBe(400);
    expect(await instanceRow(t.instance)).toEqual(before);
  });
});

describe("defect 9: deeply nested JSON is a 400, never a RangeError 500", () => {
  // Written as text: the test's own JSON.stringify would overflow on it.
  const deepText = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;
  const post = (path: string, text: string, idempotencyKey?: string) =>
    api(path, {
      method: "POST",
      key: t.key,
      body: text,
      headers: { "content-type": "application/json", ...(idempotencyKey ? { "idempotency-key": idempotencyKey } : {}) },
    });
  const sendText = () => `{"instance":"${t.instance}","to":"5511999990001","text":"oi","metadata":${deepText(7000)}}`;
  const body = { instance: "x", to: "5511999990001", text: "oi" };

  it("refuses it on send, with and without an Idempotency-Key, and frees the key", async () => {
    const plain = await post("/v1/messages", sendText());
    expect(plain.status).toBe(400);
    expect((await json(plain)).error.code).toBe("invalid_request");
    const keyed = await post("/v1/messages", sendText(), "deep-1");
    expect(keyed.status).toBe(400);
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM idempotency_keys WHERE key = 'deep-1'").first<{ n: number }>();
    expect(rows?.n).toBe(0);
  });

  it("refuses it in a batch and on the compatibility routes (whose raw body is hashed for idempotency)", async () => {
    const batch = await post("/v1/messages/batch", `{"messages":[${sendText()}]}`, "deep-2");
    expect(batch.status).toBe(400);
    const compat = await post(
      "/api/whatsapp/send-message",
      `{"instanceName":"${t.instance}","phoneNumber":"5511999990001","message":"oi","extra":${deepText(7000)}}`,
      "deep-3",
    );
    expect(compat.status).toBe(400);
    expect(await json(compat)).toMatchObject({ success: false, error: { code: "invalid_request" } });
  });

  it("bounds metadata's own depth (8) before measuring its size", async () => {
    const res = await send(t.key, { ...body, instance: t.instance, metadata: deep(9) });
    expect(res.status).toBe(400);
    expect((await json(res)).error.details).toEqual([{ path: "metadata", message: "Must nest at most 8 levels deep." }]);
    const ok = await send(t.key, { ...body, instance: t.instance, metadata: deep(7), sendAt: new Date(Date.now() + 3600_000).toISOString() });
    expect(ok.status).toBe(202);
  });
});

describe("defect 14: length bounds, and no secret in a stored or logged driver error", () => {
  const long = (n: number) => `https://media.example.com/${"a".repeat(n)}`;
  it.each([
    ["to", { to: "5".repeat(65) }, "to"],
    ["media.url", { text: undefined, media: { url: long(2048), type: "image" } }, "media.url"],
    ["callbackUrl", { callbackUrl: long(2048) }, "callbackUrl"],
  ])("refuses a %s past its bound", async (_name, patch, path) => {
    const res = await send(t.key, { instance: t.instance, to: "5511999990002", text: "oi", ...patch });
    expect(res.status).toBe(400);
    expect((await json(res)).error.details.map((d: { path: string }) => d.path)).toContain(path);
  });

  it("refuses an evolutionUrl past 2048 characters", async () => {
    const res = await api(`/v1/instances/${unique("long")}`, {
      method: "PUT",
      key: t.key,
      json: { evolutionUrl: long(2048), evolutionApiKey: "k".repeat(20) },
    });
    expect(res.status).toBe(400);
  });

  it("keeps the Evolution key out of lastError and history when Evolution quotes it back", async () => {
    const to = "5511999990003";
    await simulator("/_sim/faults", {
      method: "POST",
      json: { instance: t.instance, number: to, status: 400, body: { status: 400, response: { message: [`bad request; apikey=${t.evolutionKey}`] } } },
    });
    const { id } = await json(await send(t.key, { instance: t.instance, to, text: "oi" }));
    const row = await waitForStatus(id, ["failed"]);
    expect(row.last_error).toContain("[redacted]");
    const answer = await (await api(`/v1/messages/${id}`, { key: t.key })).text();
    expect(answer).not.toContain(t.evolutionKey);
    expect(answer).toContain("Evolution 400");
  });

  it("redacts keys, webhook tokens, URL credentials and bearer tokens from error text", () => {
    const text = redact("fetch https://u:p4ss@evo.example.com/x failed; posted to https://gw/webhooks/evolution/tok_abcdefgh123 Bearer mgo_123 key0123456789", [
      "key0123456789",
    ]);
    expect(text).toBe("fetch https://[redacted]@evo.example.com/x failed; posted to https://gw/webhooks/evolution/[redacted] Bearer [redacted] [redacted]");
  });
});

describe("defect 15: private, loopback and link-local URLs are refused unless ALLOW_PRIVATE_URLS=true", () => {
  // The same Worker with the deployed setting (the tests run with it on, for the simulator).
  const deployed = async (path: string, init: { method: string; key: string; json: unknown }) => {
    const ctx = createExecutionContext();
    const res = await app.request(
      path,
      { method: init.method, headers: { authorization: `Bearer ${init.key}`, "content-type": "application/json" }, body: JSON.stringify(init.json) },
      { ...env, ALLOW_PRIVATE_URLS: "" },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    return res;
  };

  it.each([
    "http://127.0.0.1:8080",
    "http://localhost:8080",
    "http://10.1.2.3",
    "http://172.20.0.5",
    "http://192.168.0.10",
    "http://169.254.169.254/latest",
    "http://[::1]:8080",
    "http://[fe80::1]",
    "http://[fd00::1]",
    "http://[::ffff:127.0.0.1]",
    "http://[::7f00:1]",
    "http://[::127.0.0.1]",
    "http://[::a00:1]",
    "http://[64:ff9b::7f00:1]",
    "http://[64:ff9b:1::a00:1]",
    "http://[2002:7f00:1::1]",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
    "http://[::ffff:0:7f00:1]",
    "http://[::]",
    "http://[100::1]",
    "http://[fec0::1]",
    "http://0.0.0.0",
    "http://2130706433",
  ])("refuses evolutionUrl %s", async (url) => {
    const res = await deployed(`/v1/instances/${unique("ssrf")}`, { method: "PUT", key: t.key, json: { evolutionUrl: url, evolutionApiKey: "k".repeat(20) } });
    expect(res.status).toBe(400);
    expect((await json(res)).error.details[0].path).toBe("evolutionUrl");
  });

  it("accepts a public evolutionUrl, and refuses private media and callback URLs and a private tenant callbackUrl", async () => {
    const ok = await deployed(`/v1/instances/${unique("public")}`, {
      method: "PUT",
      key: t.key,
      json: { evolutionUrl: "https://evolution.example.com", evolutionApiKey: "k".repeat(20) },
    });
    expect(ok.status).toBe(201);
    const publicV6 = await deployed(`/v1/instances/${unique("public6")}`, {
      method: "PUT",
      key: t.key,
      json: { evolutionUrl: "https://[2606:4700:4700::1111]", evolutionApiKey: "k".repeat(20) },
    });
    expect(publicV6.status).toBe(201);
    const media = await deployed("/v1/messages", {
      method: "POST",
      key: t.key,
      json: { instance: t.instance, to: "5511999990004", media: { url: "http://192.168.1.1/a.png", type: "image" } },
    });
    expect(media.status).toBe(400);
    expect((await json(media)).error.details[0].path).toBe("media.url");
    const callback = await deployed("/v1/messages", {
      method: "POST",
      key: t.key,
      json: { instance: t.instance, to: "5511999990004", text: "oi", callbackUrl: "http://10.0.0.1/hook" },
    });
    expect(callback.status).toBe(400);
    const tenant = await deployed("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name: "ssrf", callbackUrl: "http://127.0.0.1:9/hook" } });
    expect(tenant.status).toBe(400);
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM messages WHERE \"to\" = '5511999990004'").first<{ n: number }>();
    expect(rows?.n).toBe(0);
  });
});
