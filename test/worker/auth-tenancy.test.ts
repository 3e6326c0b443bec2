import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMIN, api, createTenant, gateway, json, send, setupTenant, simCalls, waitForStatus } from "./helpers.ts";

async function sha256(text: string) {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("admin and API keys", () => {
  it("creates a tenant and returns its first key once, storing only the hash", async () => {
    const res = await gateway(ADMIN).v1.admin.tenants.$post({ json: { name: "Loja Centro" } });
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body.tenant).toMatchObject({ id: expect.stringMatching(/^ten_/), name: "Loja Centro" });
    expect(body.apiKey).toMatch(/^mgo_/);
    const rows = await env.DB.prepare("SELECT key_hash FROM api_keys WHERE tenant_id = ?").bind(body.tenant.id).all<{ key_hash: string }>();
    expect(rows.results).toEqual([{ key_hash: await sha256(body.apiKey) }]);
    const dump = JSON.stringify((await env.DB.prepare("SELECT * FROM api_keys").all()).results);
    expect(dump).not.toContain(body.apiKey);
  });

  it("refuses admin routes without the admin token", async () => {
    for (const key of [undefined, "wrong", "mgo_notadmin"]) {
      const res = await api("/v1/admin/tenants", { method: "POST", key, json: { name: "x" } });
      expect(res.status).toBe(401);
      expect((await json(res)).error.code).toBe("unauthorized");
    }
    const count = await env.DB.prepare("SELECT COUNT(*) AS n FROM tenants WHERE name = 'x'").first<{ n: number }>();
    expect(count?.n).toBe(0);
  });

  it("rejects unknown, malformed and revoked keys with 401", async () => {
    const tenant = await createTenant();
    expect((await api("/v1/instances", { key: tenant.key })).status).toBe(200);
    expect((await api("/v1/instances")).status).toBe(401);
    expect((await api("/v1/instances", { key: "mgo_unknown" })).status).toBe(401);
    expect((await api("/v1/instances", { headers: { authorization: "Basic abc" } })).status).toBe(401);

    const admin = gateway(ADMIN).v1.admin.tenants[":id"].keys;
    const issued = await (await admin.$post({ param: { id: tenant.id } })).json();
    expect((await gateway(issued.apiKey).v1.instances.$get()).status).toBe(200);
    const revoke = await admin[":keyId"].$delete({ param: { id: tenant.id, keyId: issued.id } });
    expect(revoke.status).toBe(200);
    const res = await api("/v1/instances", { key: issued.apiKey });
    expect(res.status).toBe(401);
    expect(await json(res)).toEqual({ error: { code: "unauthorized", message: expect.any(String), details: [], requestId: expect.any(String) } });
    // The first key still works; revoking twice is 404.
    expect((await api("/v1/instances", { key: tenant.key })).status).toBe(200);
    expect((await api(`/v1/admin/tenants/${tenant.id}/keys/${issued.id}`, { method: "DELETE", key: ADMIN })).status).toBe(404);
    expect((await api(`/v1/admin/tenants/ten_nope/keys`, { method: "POST", key: ADMIN })).status).toBe(404);
  });
});

describe("instances", () => {
  it("registers, updates and lists an instance without ever returning its Evolution key", async () => {
    const tenant = await createTenant();
    const put = await api("/v1/instances/loja-centro", {
      method: "PUT",
      key: tenant.key,
      json: { evolutionUrl: "https://evo.example.com", evolutionApiKey: "evo-secret-123", ratePerMinute: 30 },
    });
    expect(put.status).toBe(201);
    const created = await json(put);
    expect(created).toMatchObject({ name: "loja-centro", evolutionUrl: "https://evo.example.com", ratePerMinute: 30, state: "unknown" });
    expect(created.webhookUrl).toMatch(/^https:\/\/gateway\.test\/webhooks\/evolution\/[\w-]{20,}$/);
    // A new URL comes with its key (defect 8, test/worker/input-bounds.test.ts); the same URL keeps the stored one.
    const update = await api("/v1/instances/loja-centro", {
      method: "PUT",
      key: tenant.key,
      json: { evolutionUrl: "https://evo2.example.com", evolutionApiKey: "evo-secret-456" },
    });
    expect(update.status).toBe(200);
    expect(await json(update)).toMatchObject({ evolutionUrl: "https://evo2.example.com", ratePerMinute: 30, webhookUrl: created.webhookUrl });
    const rate = await api("/v1/instances/loja-centro", {
      method: "PUT",
      key: tenant.key,
      json: { evolutionUrl: "https://evo2.example.com", ratePerMinute: 40 },
    });
    expect(await json(rate)).toMatchObject({ ratePerMinute: 40 });
    const stored = await env.DB.prepare("SELECT evolution_api_key FROM instances WHERE name = 'loja-centro' AND tenant_id = ?").bind(tenant.id).first();
    expect(stored).toEqual({ evolution_api_key: "evo-secret-456" });
    expect(JSON.stringify(created)).not.toContain("evo-secret-123");
    for (const res of [await api("/v1/instances", { key: tenant.key }), await api("/v1/instances/loja-centro", { key: tenant.key })]) {
      expect(res.status).toBe(200);
      expect(await res.text()).not.toMatch(/evo-secret-(123|456)/);
    }
  });

  it("validates the instance body and name", async () => {
    const tenant = await createTenant();
    const missingKey = await api("/v1/instances/novo", { method: "PUT", key: tenant.key, json: { evolutionUrl: "https://evo.example.com" } });
    expect(missingKey.status).toBe(400);
    expect((await json(missingKey)).error.details).toEqual([{ path: "evolutionApiKey", message: expect.any(String) }]);
    const badUrl = await api("/v1/instances/novo", {
      method: "PUT",
      key: tenant.key,
      json: { evolutionUrl: "ftp://x", evolutionApiKey: "k", ratePerMinute: "10" },
    });
    expect(badUrl.status).toBe(400);
    const paths = (await json(badUrl)).error.details.map((d: { path: string }) => d.path).sort();
    expect(paths).toEqual(["evolutionUrl", "ratePerMinute"]);
    const badName = await api("/v1/instances/bad%20name!", { method: "PUT", key: tenant.key, json: { evolutionUrl: "https://e.x", evolutionApiKey: "k" } });
    expect(badName.status).toBe(400);
  });
});

describe("tenant isolation", () => {
  it("answers 404 for another tenant's message and instance, and never sends on its instance", async () => {
    const a = await setupTenant();
    const b = await createTenant();
    const sent = await json(await send(a.key, { instance: a.instance, to: "5511987650001", text: "só para A" }));
    await waitForStatus(sent.id, ["sent"]);

    for (const path of [`/v1/messages/${sent.id}`, `/v1/instances/${a.instance}`]) {
      const res = await api(path, { key: b.key });
      expect(res.status).toBe(404);
      expect(await res.text()).not.toContain("só para A");
    }
    expect((await json(await api("/v1/messages", { key: b.key }))).data).toEqual([]);
    // B naming A's instance is an unknown instance for B.
    const res = await send(b.key, { instance: a.instance, to: "5511987650001", text: "via B" });
    expect(res.status).toBe(422);
    expect((await simCalls(a.instance)).map((c) => c.body.text)).toEqual(["só para A"]);
  });
});
