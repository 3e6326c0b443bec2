// The security sweep, generated from the Worker's own GET /openapi.json: every operation a tenant's
// API key calls is refused without a key and with a revoked key (401); another tenant's key with the
// first tenant's ids in the path gets 404 and changes nothing; lists answer it only its own data; the
// admin and metrics routes refuse a tenant's key. Every refusal is in the one error shape. A route
// added without its auth, or reading another tenant's row, fails here without a test of its own.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, api, json, send, setupTenant, simulatorUrl, unique } from "./helpers.ts";

type Operation = { security?: Record<string, unknown>[]; requestBody?: unknown };
type Doc = { paths: Record<string, Record<string, Operation>> };
type Route = { method: string; path: string; caller: string };

let routes: Route[] = [];
// Tenant A's resources: the ids the sweep puts in B's requests.
let a: { key: string; id: string; instance: string; web: string; messageId: string; contact: string; visitorId: string; inboundId: string };
let revokedKey: string;
let bKey: string;

beforeAll(async () => {
  const doc = await json<Doc>(await api("/openapi.json"));
  routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, caller: Object.keys(op.security?.[0] ?? { public: [] })[0]! })),
  );

  const t = await setupTenant();
  const contact = "5511955550123";
  const sent = await send(t.key, { instance: t.instance, to: contact, text: "sweep", sendAt: new Date(Date.now() + 86_400_000).toISOString() });
  expect(sent.status).toBe(202);
  const web = unique("site");
  expect((await api(`/v1/instances/${web}`, { method: "PUT", key: t.key, json: { channel: "web" } })).status).toBe(201);
  const visitorId = unique("visitor");
  expect((await api(`/v1/instances/${web}/visitors`, { method: "POST", key: t.key, json: { visitorId } })).status).toBe(201);
  const handler = { url: `${simulatorUrl()}/sweep-handler`, enabled: false };
  expect((await api(`/v1/instances/${t.instance}/automation`, { method: "PUT", key: t.key, json: handler })).status).toBe(200);
  // Switched on for the web instance: the older agent API takes a message only when something answers.
  expect((await api(`/v1/instances/${web}/automation`, { method: "PUT", key: t.key, json: { ...handler, enabled: true } })).status).toBe(200);
  expect((await api(`/v1/instances/${t.instance}/contacts/${contact}/handoff`, { method: "POST", key: t.key })).status).toBe(200);
  const inbound = await api("/api/messages", {
    method: "POST",
    key: t.key,
    json: { message: "sweep", channel: "web", channelMetadata: { instance: web, visitorId } },
  });
  expect(inbound.status, await inbound.clone().text()).toBe(202);
  a = {
    key: t.key,
    id: t.id,
    instance: t.instance,
    web,
    messageId: (await json(sent)).id,
    contact,
    visitorId,
    inboundId: (await json(inbound)).data.messageId,
  };

  const issued = await json(await api(`/v1/admin/tenants/${t.id}/keys`, { method: "POST", key: ADMIN }));
  expect((await api(`/v1/admin/tenants/${t.id}/keys/${issued.id}`, { method: "DELETE", key: ADMIN })).status).toBe(200);
  revokedKey = issued.apiKey;

  // B gets a large budget: the sweep makes a request per operation.
  const b = await api("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name: unique("tenant-b"), rateLimitPerMinute: 100_000 } });
  expect(b.status).toBe(201);
  bKey = (await json(b)).apiKey;
});

/** The path with tenant A's ids in it; the visitor routes name A's web instance. */
function withIdsOfA(path: string): string {
  const ids: Record<string, string> = {
    name: path.includes("/visitors") ? a.web : a.instance,
    id: path.startsWith("/api/") ? a.inboundId : a.messageId,
    to: a.contact,
    contact: a.contact,
    visitorId: a.visitorId,
    inboundId: a.inboundId,
  };
  return path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const id = ids[name];
    if (!id) throw new Error(`the sweep has no id of tenant A for {${name}} in ${path}: add one`);
    return encodeURIComponent(id);
  });
}

// Bodies that pass the route's checks, so that the answer is about the ids, not the body.
const validBodies: Record<string, unknown> = {
  "PATCH /v1/messages/{id}": { sendAt: new Date(Date.now() + 2 * 86_400_000).toISOString() },
  "PUT /v1/instances/{name}/automation": { url: "https://handler.example.com/hook", enabled: false },
  "POST /v1/instances/{name}/visitors": { visitorId: "sweep-visitor" },
  "POST /v1/instances/{name}/contacts/{contact}/handoff": { reason: "sweep" },
};
// PUT /v1/instances/{name} registers an instance of that name for the caller: another tenant may use
// the same name for its own (checked below: A's stays as it was).
const upserts = new Set(["PUT /v1/instances/{name}"]);
// A contact is an address, not a row one tenant owns: B reading "its" timeline of A's contact gets
// B's own (empty) timeline, checked with the lists below.
const addresses = new Set(["GET /v1/contacts/{to}/messages"]);
// Queries a list needs to answer at all.
const queries: Record<string, string> = { "GET /v1/events": "?consumer=sweep" };

function call(route: Route, key: string | undefined, path = route.path) {
  const name = `${route.method} ${route.path}`;
  const body = validBodies[name];
  return api(path, { method: route.method, ...(key ? { key } : {}), ...(body !== undefined ? { json: body } : {}) });
}

async function expectError(res: Response, statuses: number[], what: string) {
  expect(statuses, `${what}: status ${res.status}`).toContain(res.status);
  const body = await json(res);
  expect(body.error, what).toMatchObject({ code: expect.any(String), message: expect.any(String), details: expect.any(Array), requestId: expect.any(String) });
  if (what.includes(" /api/")) expect(body.success, what).toBe(false);
}

const keyed = () => routes.filter((r) => r.caller === "apiKey");
const counts = { keyed: 0, crossTenant: 0, lists: 0, privileged: 0 };

describe("security sweep over GET /openapi.json", () => {
  it("covers the tenant API", () => {
    expect(keyed().length).toBeGreaterThan(40);
    expect(routes.filter((r) => r.caller === "adminToken").length).toBeGreaterThan(5);
  });

  it("refuses every API-key operation without a key and with a revoked key (401)", async () => {
    for (const route of keyed()) {
      const name = `${route.method} ${route.path}`;
      await expectError(await call(route, undefined, withIdsOfA(route.path)), [401], `${name} without a key`);
      await expectError(await call(route, revokedKey, withIdsOfA(route.path)), [401], `${name} with a revoked key`);
      counts.keyed++;
    }
  });

  it("answers another tenant's key 404 for every operation on tenant A's ids, and changes nothing of A's", async () => {
    const before = await stateOfA();
    const owned = (r: Route) => r.path.includes("{") && !upserts.has(`${r.method} ${r.path}`) && !addresses.has(`${r.method} ${r.path}`);
    for (const route of keyed().filter(owned)) {
      const name = `${route.method} ${route.path}`;
      // Deletions last: a route that forgot its tenant would take A's row away from the others' checks.
      if (route.method === "DELETE") continue;
      await expectError(await call(route, bKey, withIdsOfA(route.path)), [404], `${name} with tenant B's key`);
      counts.crossTenant++;
    }
    for (const route of keyed().filter((r) => owned(r) && r.method === "DELETE")) {
      await expectError(await call(route, bKey, withIdsOfA(route.path)), [404], `${route.method} ${route.path} with tenant B's key`);
      counts.crossTenant++;
    }
    expect(await stateOfA()).toEqual(before);
  });

  it("lists only the caller's own data: no id of tenant A in any of B's answers", async () => {
    // The contact is in the path of B's timeline request itself; the rest must not appear.
    const marks = (path: string) => [a.id, a.instance, a.web, a.messageId, a.visitorId, a.inboundId, ...(path.includes("{to}") ? [] : [a.contact])];
    for (const route of keyed().filter((r) => r.method === "GET" && (!r.path.includes("{") || addresses.has(`GET ${r.path}`)))) {
      const res = await call(route, bKey, withIdsOfA(route.path) + (queries[`GET ${route.path}`] ?? ""));
      expect(res.status, `GET ${route.path}`).toBe(200);
      const text = await res.text();
      for (const mark of marks(route.path)) expect(text, `GET ${route.path} shows tenant A's ${mark}`).not.toContain(mark);
      counts.lists++;
    }
  });

  it("refuses a tenant's key on the admin and metrics routes (401/403)", async () => {
    for (const route of routes.filter((r) => r.caller === "adminToken" || r.caller === "metricsToken")) {
      await expectError(await call(route, a.key, route.path.replace(/\{(\w+)\}/g, a.id)), [401, 403], `${route.method} ${route.path} with a tenant's key`);
      counts.privileged++;
    }
    console.info(`security sweep: ${JSON.stringify(counts)}`);
  });
});

/** What B's requests must not change: A's message, instance, automation, hand-off and visitor rows. */
async function stateOfA() {
  const row = (sql: string, ...binds: string[]) =>
    env.DB.prepare(sql)
      .bind(...binds)
      .first();
  return {
    message: await row("SELECT status, send_at FROM messages WHERE id = ?", a.messageId),
    instances: (await env.DB.prepare("SELECT name, channel, evolution_url FROM instances WHERE tenant_id = ? ORDER BY name").bind(a.id).all()).results,
    automation: await json(await api(`/v1/instances/${a.instance}/automation`, { key: a.key })),
    handoff: await json(await api(`/v1/instances/${a.instance}/contacts/${a.contact}/handoff`, { key: a.key })),
    inbound: await json(await api(`/api/messages/${a.inboundId}/status`, { key: a.key })),
  };
}
