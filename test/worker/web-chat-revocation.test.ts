// A visitor's socket lives no longer than its token: revoking the visitor's tokens closes its sockets
// and refuses the tokens before the upgrade, an expired token's socket is closed by the conversation's
// alarm, and a removed instance's sockets close when they next write. Also: a visitor's timeline.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sign } from "hono/jwt";
import { describe, expect, it, vi } from "vitest";
import { chatOf } from "../../src/providers/web/chat.ts";
import { api, createTenant, eventually, json, send, waitForStatus } from "./helpers.ts";
import { ofType, open, visitorToken, waitFrames, webInstance } from "./web-chat-support.ts";

type Tab = Awaited<ReturnType<typeof open>>;
const closedBy = (tab: Tab) => eventually(async () => tab.state.closed, 15_000, "the socket to close");

/** A socket still open and working: a message frame is queued. */
async function stillWorks(tab: Tab, content: string) {
  const before = ofType(tab.frames, "queued").length;
  tab.send({ type: "message", data: { content } });
  await waitFrames(tab.frames, "queued", before + 1);
  expect(tab.state.closed).toBeUndefined();
}

describe("revoking a visitor's tokens", () => {
  it("closes the visitor's open tabs with a token_revoked frame and 1008, refuses its tokens before the upgrade, and leaves other visitors alone", async () => {
    const t = await webInstance();
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-out" });
    const tab1 = await open(token);
    const tab2 = await open(token);
    const other = await open((await visitorToken(t.key, t.instance, { visitorId: "v-stays" })).token);
    for (const tab of [tab1, tab2, other]) await waitFrames(tab.frames, "connected", 1);

    const res = await api(`/v1/instances/${t.instance}/visitors/v-out`, { method: "DELETE", key: t.key });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ visitorId: "v-out", socketsClosed: 2 });
    expect(Date.parse(body.revokedBefore)).toBeGreaterThan(0);
    for (const tab of [tab1, tab2]) {
      expect(await closedBy(tab)).toMatchObject({ code: 1008 });
      expect(tab.frames.at(-1)).toMatchObject({ type: "error", data: { code: "token_revoked" } });
    }

    const refused = await open(token);
    expect(refused.res.status).toBe(401);
    expect((await json(refused.res)).error).toMatchObject({ code: "unauthorized", message: expect.stringContaining("revoked") });
    // The history route is the socket's other door: the revoked token reads nothing there either.
    const history = await api("/v1/chat/history", { headers: { authorization: `Bearer ${token}` } });
    expect(history.status).toBe(401);
    expect((await json(history)).error).toMatchObject({ code: "unauthorized", message: expect.stringContaining("revoked") });

    await stillWorks(other, "ainda aqui");
    // A token minted after the revocation opens again.
    const fresh = await open((await visitorToken(t.key, t.instance, { visitorId: "v-out" })).token);
    expect(fresh.res.status).toBe(101);
    await waitFrames(fresh.frames, "connected", 1);
    await stillWorks(fresh, "voltei");
    other.close();
    fresh.close();
  });

  it("is the instance owner's: another tenant gets 404 and the socket stays open; a bad visitor id is 400", async () => {
    const t = await webInstance();
    const intruder = await webInstance();
    const tab = await open((await visitorToken(t.key, t.instance, { visitorId: "v-mine" })).token);
    await waitFrames(tab.frames, "connected", 1);
    const foreign = await api(`/v1/instances/${t.instance}/visitors/v-mine`, { method: "DELETE", key: intruder.key });
    expect(foreign.status).toBe(404);
    expect((await json(foreign)).error.code).toBe("not_found");
    // The intruder's own instance of the same visitor id is another conversation: nothing closes here.
    const own = await api(`/v1/instances/${intruder.instance}/visitors/v-mine`, { method: "DELETE", key: intruder.key });
    expect(await json(own)).toMatchObject({ socketsClosed: 0 });
    expect((await api(`/v1/instances/${t.instance}/visitors/bad%20id`, { method: "DELETE", key: t.key })).status).toBe(400);
    await stillWorks(tab, "ninguém me fechou");
    tab.close();
  });
});

describe("a token's expiry", () => {
  it("arms the conversation's alarm for the earliest expiry, which closes that socket with token_expired and re-arms for the next", async () => {
    const t = await webInstance();
    const now = Date.now();
    // Long enough to open both sockets on a loaded machine; the test then waits for it to pass.
    const exp = Math.floor(now / 1000) + 5;
    const short = await sign(
      { aud: "mensageiro-web-chat", sub: "v-exp", ten: t.id, ins: t.instanceId, inn: t.instance, iat: Math.floor(now / 1000), iam: now, exp },
      env.WEB_CHAT_SECRET,
      "HS256",
    );
    const long = await visitorToken(t.key, t.instance, { visitorId: "v-exp", ttlSeconds: 3_600 });
    const brief = await open(short);
    const lasting = await open(long.token);
    for (const tab of [brief, lasting]) await waitFrames(tab.frames, "connected", 1);
    const chat = chatOf(env, t.id, t.instanceId, "v-exp");
    expect(await runInDurableObject(chat, (_o, state) => state.storage.getAlarm())).toBe(exp * 1000);

    // Once the short token's time has passed, its alarm closes it (the alarm may also fire by itself first).
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(exp * 1000), { timeout: 10_000, interval: 100 });
    await runDurableObjectAlarm(chat);
    expect(await closedBy(brief)).toMatchObject({ code: 1008 });
    expect(brief.frames.at(-1)).toMatchObject({ type: "error", data: { code: "token_expired" } });
    expect(await runInDurableObject(chat, (_o, state) => state.storage.getAlarm())).toBe(Date.parse(long.expiresAt));
    await stillWorks(lasting, "continuo");
    lasting.close();
  });
});

describe("a removed instance", () => {
  it("refuses its tokens, and its open sockets close with instance_removed when they write, storing nothing", async () => {
    const t = await webInstance();
    const { token } = await visitorToken(t.key, t.instance, { visitorId: "v-gone" });
    const tab = await open(token);
    await waitFrames(tab.frames, "connected", 1);
    expect((await api(`/v1/instances/${t.instance}`, { method: "DELETE", key: t.key })).status).toBe(204);
    tab.send({ type: "message", data: { content: "alguém aí?" } });
    expect(await closedBy(tab)).toMatchObject({ code: 1008 });
    expect(tab.frames.at(-1)).toMatchObject({ type: "error", data: { code: "instance_removed" } });
    expect(ofType(tab.frames, "queued")).toEqual([]);
    const { n } = (await env.DB.prepare("SELECT COUNT(*) AS n FROM inbound_messages WHERE tenant_id = ?").bind(t.id).first<{ n: number }>())!;
    expect(n).toBe(0);
    expect((await open(token)).res.status).toBe(401);
  });
});

describe("a visitor's timeline", () => {
  it("GET /v1/contacts/:visitorId/messages lists what the visitor wrote and what was sent to it, for a tenant with a web instance", async () => {
    const t = await webInstance();
    const tab = await open((await visitorToken(t.key, t.instance, { visitorId: "v-timeline.1" })).token);
    await waitFrames(tab.frames, "connected", 1);
    tab.send({ type: "message", data: { content: "quero ajuda" } });
    await waitFrames(tab.frames, "queued", 1);
    const sent = await send(t.key, { instance: t.instance, to: "v-timeline.1", text: "claro" });
    const id = (await json(sent)).id;
    await waitForStatus(id, ["sent"]);
    const res = await api(`/v1/contacts/v-timeline.1/messages?instance=${t.instance}`, { key: t.key });
    expect(res.status).toBe(200);
    const { data } = await json(res);
    expect(data.map((m: any) => [m.direction, m.channel, m.text])).toEqual([
      ["outbound", "web", "claro"],
      ["inbound", "web", "quero ajuda"],
    ]);
    tab.close();

    // A tenant without a web instance: a visitor id is no address of theirs.
    const whatsappOnly = await api("/v1/contacts/v-timeline.1/messages", { key: (await createTenant()).key });
    expect(whatsappOnly.status).toBe(400);
    expect((await json(whatsappOnly)).error.details[0].path).toBe("to");
  });
});
