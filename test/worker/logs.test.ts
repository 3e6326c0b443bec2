// Structured logs: one JSON line per request with request id, tenant, route, status, latency;
// never a secret or message text (asserted on the lines actually written).
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import sendMessageFixture from "../fixtures/evolution/send.message.text.json";
import { errorField, REDACTED, scrub, scrubText } from "../../src/observability/log.ts";
import { ADMIN, api, eventually, json, send, setupTenant, simulator, unique, waitForStatus } from "./helpers.ts";

let lines: string[] = [];
beforeEach(() => {
  lines = [];
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

const parsed = () => lines.flatMap((l) => (l.startsWith("{") ? [JSON.parse(l) as Record<string, unknown>] : []));

describe("request log lines", () => {
  it("writes one JSON line per request, with the route pattern and never a secret or message text", async () => {
    const t = await setupTenant();
    const created = await json(
      await api("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name: unique("logs"), callbackUrl: "https://hooks.example.com/x" } }),
    );
    const token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!
      .webhook_token;
    const text = `texto-secreto-${unique("t")}`;

    const accepted = await send(t.key, { instance: t.instance, to: "5511955550001", text, metadata: { password: "hunter2" } });
    expect(accepted.status).toBe(202);
    const { id } = await json(accepted);
    await waitForStatus(id, ["sent"]);
    const hook = await api(`/webhooks/evolution/${token}`, { method: "POST", json: { ...sendMessageFixture, instance: t.instance } });
    expect(hook.status).toBe(200);
    expect((await api("/v1/messages/msg_01aaaaaaaaaaaaaaaaaaaaaaaa", { key: t.key })).status).toBe(404);
    expect((await api("/v1/instances", { key: `${t.key}x` })).status).toBe(401);

    const requests = parsed().filter((l) => l.msg === "request");
    const sendLine = requests.find((l) => l.route === "/v1/messages" && l.method === "POST");
    expect(sendLine).toMatchObject({ level: "info", tenant: t.id, status: 202, requestId: expect.stringMatching(/^[\w-]{8,}$/) });
    expect(sendLine?.latencyMs).toEqual(expect.any(Number));
    expect(requests.find((l) => l.route === "/webhooks/evolution/:token")).toMatchObject({ status: 200 });
    expect(requests.find((l) => l.route === "/v1/messages/:id")).toMatchObject({ status: 404, tenant: t.id });
    expect(requests.find((l) => l.status === 401)).toMatchObject({ route: "/v1/*" });
    expect(requests.find((l) => l.route === "/v1/admin/tenants")).toMatchObject({ status: 201 });

    // One line per delivery attempt, from the lane.
    const attempts = parsed().filter((l) => l.msg === "delivery attempt" && l.messageId === id);
    expect(attempts).toEqual([
      expect.objectContaining({ level: "info", attempt: 1, outcome: "sent", instance: t.instance, evolutionLatencyMs: expect.any(Number) }),
    ]);
    const to = "5511955550009";
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: to, status: 503, headers: { "retry-after": "1" }, times: 1 } });
    const failing = (await json(await send(t.key, { instance: t.instance, to, text }))).id;
    const failed = await eventually(
      async () => parsed().find((l) => l.msg === "delivery attempt" && l.messageId === failing),
      10_000,
      "the failed attempt's line",
    );
    expect(failed).toMatchObject({ level: "warn", attempt: 1, outcome: "retry" });

    const all = lines.join("\n");
    expect(all.length).toBeGreaterThan(0);
    for (const secret of [t.key, t.evolutionKey, token, text, created.apiKey, created.callbackSecret, ADMIN, "hunter2"]) {
      expect(all).not.toContain(secret);
    }
  });

  it("gives every error answer the request id its log line carries", async () => {
    const t = await setupTenant();
    const answers = [
      await api("/v1/instances", { key: `${t.key}x` }),
      await api("/v1/messages", { method: "POST", key: t.key, json: { instance: t.instance, to: "not-a-number", text: "x" } }),
      await api("/api/whatsapp/send-message", { method: "POST", json: {} }),
      await api("/v1/no-such-route", { key: t.key }),
    ];
    const requests = parsed().filter((l) => l.msg === "request");
    for (const res of answers) {
      const body = await json(res);
      expect(body.error.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.headers.get("x-request-id")).toBe(body.error.requestId);
      expect(requests.find((l) => l.requestId === body.error.requestId)?.status).toBe(res.status);
    }
    expect(answers.map((r) => r.status)).toEqual([401, 400, 401, 404]);
  });
});

describe("scrubbing", () => {
  it("redacts secret fields by name and secret shapes inside free text", () => {
    const out = scrub({
      apiKey: "mgo_abc",
      evolutionApiKey: "evo",
      callbackSecret: "whsec_xyz",
      text: "olá",
      nested: { webhookToken: "tok", count: 3 },
      error: "fetch https://gw/webhooks/evolution/AbC123-_x/messages-upsert failed; Authorization: Bearer mgo_SeCrEt; apikey=EVOKEY&x=1",
    });
    expect(out).toEqual({
      apiKey: REDACTED,
      evolutionApiKey: REDACTED,
      callbackSecret: REDACTED,
      text: REDACTED,
      nested: { webhookToken: REDACTED, count: 3 },
      error: expect.any(String),
    });
    const error = (out as { error: string }).error;
    for (const secret of ["AbC123-_x", "mgo_SeCrEt", "EVOKEY"]) expect(error).not.toContain(secret);
    expect(error).toContain("/webhooks/evolution/[redacted]/messages-upsert");
    expect(scrubText('{"apikey":"k-123","secret":"whsec_QQ=="}')).not.toMatch(/k-123|QQ==/);
    expect(errorField(new Error("D1_ERROR: signed with whsec_abcdef"))).toBe("Error: D1_ERROR: signed with whsec_[redacted]");
    expect(scrubText("x".repeat(5000)).length).toBeLessThanOrEqual(1001);
    // drizzle puts the bound values of a failed query in its message.
    const failed = new Error("Failed query: INSERT INTO instances (evolution_api_key, text) VALUES (?, ?)\nparams: EVO-SECRET,olá mundo");
    expect(errorField(failed)).toBe("Error: Failed query: INSERT INTO instances (evolution_api_key, text) VALUES (?, ?)\nparams: [redacted]");
    // A bound value with a line break in it (a multi-line message text) is redacted whole.
    const multiline = new Error("Failed query: INSERT INTO messages (text, evolution_api_key) VALUES (?, ?)\nparams: first line\nsecond line olá,EVO-SECRET");
    const scrubbed = errorField(multiline);
    expect(scrubbed).toBe("Error: Failed query: INSERT INTO messages (text, evolution_api_key) VALUES (?, ?)\nparams: [redacted]");
    for (const leak of ["second line", "EVO-SECRET"]) expect(scrubbed).not.toContain(leak);
  });
});
