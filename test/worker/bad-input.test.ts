// Odd input on every route: always a 4xx in the one error shape, never a 500 or a stack.
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, api, createTenant, json, send, setupTenant } from "./helpers.ts";

let a: Awaited<ReturnType<typeof setupTenant>>;
let b: Awaited<ReturnType<typeof createTenant>>;
let foreignId: string;

beforeAll(async () => {
  a = await setupTenant();
  b = await createTenant();
  foreignId = (
    await json(await send(a.key, { instance: a.instance, to: "5511988880001", text: "de A", sendAt: new Date(Date.now() + 3600_000).toISOString() }))
  ).id;
});

type Case = [string, string, string, { key?: "a" | "b" | "admin" | "none"; body?: string; type?: string }, number];

const cases: Case[] = [
  ["another tenant's message", "GET", "/v1/messages/{foreign}", { key: "b" }, 404],
  ["cancel another tenant's message", "DELETE", "/v1/messages/{foreign}", { key: "b" }, 404],
  [
    "reschedule another tenant's message",
    "PATCH",
    "/v1/messages/{foreign}",
    { key: "b", body: `{"sendAt":"${new Date(Date.now() + 7200_000).toISOString()}"}` },
    404,
  ],
  ["retry another tenant's message", "POST", "/v1/messages/{foreign}/retry", { key: "b" }, 404],
  ["message id of the wrong form", "GET", "/v1/messages/..%2F..%2Fetc", { key: "a" }, 404],
  ["list with a forged cursor", "GET", "/v1/messages?cursor=' OR 1=1 --", { key: "a" }, 400],
  ["list with a non-ISO since", "GET", "/v1/messages?since=yesterday", { key: "a" }, 400],
  ["timeline of no channel's address", "GET", "/v1/contacts/a%20b%3F/messages", { key: "a" }, 400],
  ["timeline with a forged cursor", "GET", "/v1/contacts/5511988880001/messages?cursor=x", { key: "a" }, 400],
  ["events without a consumer", "GET", "/v1/events", { key: "a" }, 400],
  ["events with a bad consumer name", "GET", "/v1/events?consumer=a%20b", { key: "a" }, 400],
  ["ack with a negative seq", "POST", "/v1/events/ack", { key: "a", body: '{"consumer":"x","seq":-1}' }, 400],
  ["ack with a string seq", "POST", "/v1/events/ack", { key: "a", body: '{"consumer":"x","seq":"9"}' }, 400],
  ["PATCH with extra fields", "PATCH", "/v1/messages/{own}", { key: "a", body: '{"sendAt":"2030-01-01T00:00:00Z","text":"x"}' }, 400],
  ["PATCH with no body", "PATCH", "/v1/messages/{own}", { key: "a", body: "" }, 400],
  ["batch that is not an object", "POST", "/v1/messages/batch", { key: "a", body: '"x"' }, 400],
  ["batch of non-objects", "POST", "/v1/messages/batch", { key: "a", body: '{"messages":"x"}' }, 400],
  ["instance PUT as text", "PUT", "/v1/instances/x", { key: "a", body: "evolutionUrl=x", type: "text/plain" }, 415],
  ["tenant with an empty name", "POST", "/v1/admin/tenants", { key: "admin", body: '{"name":"   "}' }, 400],
  ["tenant with a non-http callback", "POST", "/v1/admin/tenants", { key: "admin", body: '{"name":"x","callbackUrl":"javascript:alert(1)"}' }, 400],
  ["admin with an API key", "POST", "/v1/admin/tenants", { key: "a", body: '{"name":"x"}' }, 401],
  ["metrics without a token", "GET", "/metrics", { key: "none" }, 401],
  ["unknown route", "GET", "/v2/everything", { key: "a" }, 404],
  ["wrong method", "PUT", "/v1/messages", { key: "a", body: "{}" }, 404],
  [
    "compat send with a JID in phoneNumber of a group",
    "POST",
    "/api/whatsapp/send-message",
    { key: "a", body: '{"instanceName":"x","phoneNumber":"abc","message":"x"}' },
    400,
  ],
  ["compat without a key", "POST", "/api/whatsapp/send-message", { key: "none", body: "{}" }, 401],
  ["webhook with an empty body", "POST", "/webhooks/evolution/{token}", { key: "none", body: "" }, 400],
  ["webhook with an event of the wrong type", "POST", "/webhooks/evolution/{token}", { key: "none", body: '{"event":5,"data":{}}' }, 400],
  ["webhook upsert without a key", "POST", "/webhooks/evolution/{token}", { key: "none", body: '{"event":"messages.upsert","data":{"message":{}}}' }, 400],
];

describe("no route answers 500 to odd input", () => {
  it.each(cases)("%s → %s %s", async (_name, method, path, opts, status) => {
    const token = (await json(await api(`/v1/instances/${a.instance}`, { key: a.key }))).webhookUrl.split("/").pop();
    const own = (
      await json(await send(a.key, { instance: a.instance, to: "5511988880002", text: "própria", sendAt: new Date(Date.now() + 3600_000).toISOString() }))
    ).id;
    const url = path.replace("{foreign}", foreignId).replace("{own}", own).replace("{token}", token);
    const key = opts.key === "a" ? a.key : opts.key === "b" ? b.key : opts.key === "admin" ? ADMIN : undefined;
    const headers: Record<string, string> = {};
    if (opts.body !== undefined) headers["content-type"] = opts.type ?? "application/json";
    const res = await api(url, { method, key, headers, body: opts.body });
    expect(res.status).toBe(status);
    const text = await res.text();
    expect(text).not.toMatch(/\bat .+\.(ts|js):\d+|stack/i);
    expect(JSON.parse(text)).toMatchObject({ error: { code: expect.any(String), message: expect.any(String), details: expect.any(Array) } });
    // Nothing of tenant A leaks to B.
    if (opts.key === "b") expect(text).not.toContain("de A");
  });

  it("leaves another tenant's message untouched after B's attempts", async () => {
    const row = await json(await api(`/v1/messages/${foreignId}`, { key: a.key }));
    expect(row.status).toBe("scheduled");
    expect(row.history.map((h: { status: string }) => h.status)).toEqual(["scheduled"]);
  });
});
