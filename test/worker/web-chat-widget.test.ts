// The web chat's browser side inside workerd: the widget script as a static asset sites can embed,
// the conversation history a reloaded page reads with its visitor token, and the local demo page,
// which exists only when WEB_CHAT_DEMO names a web instance.
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { checkVisitorToken } from "../../src/providers/web/token.ts";
import { api, createTenant, eventually, json, send, unique, waitForStatus } from "./helpers.ts";

type Frame = { type: string; data: Record<string, any> };

async function webInstance(web?: Record<string, unknown>) {
  const tenant = await createTenant();
  const instance = unique("site");
  const res = await api(`/v1/instances/${instance}`, { method: "PUT", key: tenant.key, json: { channel: "web", ...(web ? { web } : {}) } });
  expect(res.status).toBe(201);
  return { ...tenant, instance };
}

async function visitorToken(key: string, instance: string, visitorId: string) {
  const res = await api(`/v1/instances/${instance}/visitors`, { method: "POST", key, json: { visitorId } });
  expect(res.status).toBe(201);
  return (await json<{ token: string }>(res)).token;
}

async function openSocket(token: string) {
  const res = await exports.default.fetch(
    new Request(`https://gateway.test/v1/chat?token=${encodeURIComponent(token)}`, { headers: { upgrade: "websocket" } }),
  );
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  ws.accept();
  const frames: Frame[] = [];
  ws.addEventListener("message", (m) => {
    frames.push(JSON.parse(String(m.data)));
  });
  return { frames, send: (f: unknown) => ws.send(JSON.stringify(f)), close: () => ws.close(1000, "done") };
}

const history = (token: string | undefined, headers: Record<string, string> = {}) =>
  api("/v1/chat/history", { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });

/** The Worker with WEB_CHAT_DEMO set, as `npm start` runs it. */
const withDemo = (demo: string, path: string, headers: Record<string, string> = {}) =>
  app.request(`https://gateway.test${path}`, { headers }, { ...env, WEB_CHAT_DEMO: demo } as Env);

describe("/chat/widget.js", () => {
  it("serves the widget script for other sites' pages, from the static assets", async () => {
    const res = await api("/chat/widget.js");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/javascript/);
    expect(res.headers.get("cross-origin-resource-policy")).toBe("cross-origin");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const body = await res.text();
    expect(body).toContain("window.MensageiroChat");
    // No dependency: nothing imported or fetched from elsewhere than the gateway it came from.
    expect(body).not.toMatch(/\bimport\s|https?:\/\/(?!GATEWAY)/);
  });
});

describe("GET /v1/chat/history", () => {
  it("answers the conversation both ways, oldest first, with the page's clientMessageId; another tenant's token for the same visitor sees nothing", async () => {
    const t = await webInstance();
    const token = await visitorToken(t.key, t.instance, "v-hist");
    const tab = await openSocket(token);
    await eventually(async () => tab.frames.some((f) => f.type === "connected"), 15_000, "connected");
    tab.send({ type: "message", data: { content: "oi", clientMessageId: "c-1" } });
    const queued = await eventually(async () => tab.frames.find((f) => f.type === "queued"), 15_000, "queued");
    // The stored inbound message's id, as in message.received, even on an instance without automation.
    expect(queued.data.messageId).toMatch(/^in_/);
    const sent = await send(t.key, { instance: t.instance, to: "v-hist", text: "Olá, Ana!" });
    expect(sent.status).toBe(202);
    const reply = (await json(sent)).id as string;
    await eventually(async () => tab.frames.find((f) => f.type === "message" && f.data.messageId === reply), 15_000, "the reply frame");
    // An operator's message still waiting in its lane is not shown: the socket has not got it either.
    tab.close();

    const res = await history(token);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.visitorId).toBe("v-hist");
    expect(body.messages).toEqual([
      { messageId: queued.data.messageId, direction: "inbound", message: "oi", timestamp: expect.any(String), metadata: {}, clientMessageId: "c-1" },
      { messageId: reply, direction: "outbound", message: "Olá, Ana!", timestamp: expect.any(String), metadata: {}, status: "sent" },
    ]);
    expect(Date.parse(body.messages[0].timestamp)).toBeLessThanOrEqual(Date.parse(body.messages[1].timestamp));

    // The same visitor id under another tenant: its own, empty conversation.
    const other = await webInstance();
    const otherToken = await visitorToken(other.key, other.instance, "v-hist");
    const foreign = await json(await history(otherToken));
    expect(foreign.messages).toEqual([]);
    expect(foreign.conversationId).not.toBe(body.conversationId);
  });

  it("shows a read message as read, and refuses a missing or bad token (401) and an origin outside allowedOrigins (403)", async () => {
    const t = await webInstance({ allowedOrigins: ["https://shop.example"] });
    const token = await visitorToken(t.key, t.instance, "v-read");
    const sent = await send(t.key, { instance: t.instance, to: "v-read", text: "lido?" });
    const id = (await json(sent)).id as string;
    await waitForStatus(id, ["sent"]);
    const origin = { origin: "https://shop.example" };
    expect((await json(await history(token, origin))).messages).toMatchObject([{ messageId: id, status: "sent" }]);

    const res = await exports.default.fetch(
      new Request(`https://gateway.test/v1/chat?token=${encodeURIComponent(token)}`, { headers: { upgrade: "websocket", ...origin } }),
    );
    const ws = res.webSocket!;
    ws.accept();
    ws.send(JSON.stringify({ type: "read", data: { messageId: id } }));
    await waitForStatus(id, ["read"]);
    ws.close(1000, "done");
    expect((await json(await history(token, origin))).messages).toMatchObject([{ messageId: id, status: "read" }]);

    for (const [token_, status] of [
      [undefined, 401],
      ["not-a-token", 401],
    ] as const) {
      const refused = await history(token_, origin);
      expect(refused.status).toBe(status);
      expect(await json(refused)).toMatchObject({ error: { code: "unauthorized" } });
    }
    const elsewhere = await history(token, { origin: "https://evil.example" });
    expect(elsewhere.status).toBe(403);
    expect(await json(elsewhere)).toMatchObject({ error: { code: "forbidden" } });
    expect((await history(token)).status).toBe(403);
  });

  it("answers a browser's CORS preflight from another site's page", async () => {
    const res = await api("/v1/chat/history", {
      method: "OPTIONS",
      headers: { origin: "https://shop.example", "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://shop.example");
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
  });
});

describe("/chat/demo", () => {
  it("is 404 unless WEB_CHAT_DEMO names a web instance", async () => {
    for (const path of ["/chat/demo", "/chat/demo/token"]) {
      const res = await api(path);
      expect(res.status, path).toBe(404);
      expect(await json(res)).toMatchObject({ error: { code: "not_found" } });
    }
    const t = await createTenant();
    expect(
      (await api("/v1/instances/wa", { method: "PUT", key: t.key, json: { evolutionUrl: "https://evolution.example", evolutionApiKey: "k" } })).status,
    ).toBe(201);
    for (const demo of [`${t.id}/wa`, `${t.id}/none`, "not-a-setting"]) expect((await withDemo(demo, "/chat/demo")).status, demo).toBe(404);
  });

  it("serves the widget page with a token minted for a visitor its cookie keeps across reloads, under the console's CSP", async () => {
    const t = await webInstance();
    const demo = `${t.id}/${t.instance}`;
    const page = await withDemo(demo, "/chat/demo");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("cache-control")).toBe("no-store");
    const cookie = page.headers.get("set-cookie") ?? "";
    const visitorId = /mensageiro-demo-visitor=(demo-[0-9a-f]{12})/.exec(cookie)?.[1];
    expect(visitorId).toBeDefined();
    expect(cookie).toMatch(/HttpOnly/i);
    const html = await page.text();
    const token = /data-token="([^"]+)"/.exec(html)?.[1];
    expect(await checkVisitorToken(env.WEB_CHAT_SECRET, token!)).toMatchObject({ tenantId: t.id, instanceName: t.instance, visitorId });
    // No API key in the page: only the visitor's token.
    expect(html).not.toContain(t.key);
    expect(html).toContain('src="/chat/widget.js"');

    // A reload with the cookie: the same visitor, a fresh token also from /chat/demo/token.
    const again = await withDemo(demo, "/chat/demo", { cookie: `mensageiro-demo-visitor=${visitorId}` });
    expect(await again.text()).toContain(`>${visitorId}<`);
    const fresh = await withDemo(demo, "/chat/demo/token", { cookie: `mensageiro-demo-visitor=${visitorId}` });
    const minted = await json(fresh);
    expect(await checkVisitorToken(env.WEB_CHAT_SECRET, minted.token)).toMatchObject({ visitorId });
    expect(minted.url).toBe(`wss://gateway.test/v1/chat?token=${minted.token}`);
    // A cookie that is not one of the demo's visitors is replaced, not trusted.
    const forged = await withDemo(demo, "/chat/demo", { cookie: "mensageiro-demo-visitor=v-someone-else" });
    expect(forged.headers.get("set-cookie")).not.toContain("v-someone-else");

    const css = await withDemo(demo, "/chat/demo.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toContain("text/css");
  });
});
