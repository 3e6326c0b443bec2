// Dead letters as a resource: listed with filters and a cursor, replayed by ids or by filter,
// each replay in the message's history, a contact's replayed messages sent in their order.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { api, createTenant, eventually, json, messageRow, send, setupTenant, simCalls, simulator, simulatorUrl, unique, waitForStatus } from "./helpers.ts";

let t: Awaited<ReturnType<typeof setupTenant>>;
let second: string;
const contact = "5511944440001";
const other = "5511944440002";
const texts = ["primeira", "segunda", "terceira"];
const ids: string[] = [];
let otherId: string;
let failedBy = "";

// A 400 that is not a session problem: refused for good, no retry.
const refusal = { status: 400, error: "Bad Request", response: { message: ["media url is invalid"] } };
const fault = (body: Record<string, unknown>) => simulator("/_sim/faults", { method: "POST", json: { body: refusal, ...body } });
const list = async (query: string, key = t.key) => json(await api(`/v1/dead-letters${query}`, { key }));

beforeAll(async () => {
  t = await setupTenant();
  // A second instance of the same tenant, for the instance filter.
  second = unique("inst2");
  await simulator(`/_sim/instances/${second}`, { method: "PUT", json: { apikey: "k2" } });
  await api(`/v1/instances/${second}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), evolutionApiKey: "k2", ratePerMinute: 6000 } });
  // Three messages to one contact refused (400: permanent), one to another contact on the second instance refused with 401.
  await fault({ instance: t.instance, number: contact, status: 400, times: 3 });
  await fault({ instance: second, number: other, status: 401, times: 1, body: { status: 401, error: "Unauthorized", response: { message: "Unauthorized" } } });
  for (const text of texts) ids.push((await json(await send(t.key, { instance: t.instance, to: contact, text }))).id);
  otherId = (await json(await send(t.key, { instance: second, to: other, text: "outra" }))).id;
  for (const id of [...ids, otherId]) await waitForStatus(id, ["failed"]);
  failedBy = new Date(Date.now() + 1000).toISOString();
}, 30_000);

describe("GET /v1/dead-letters", () => {
  it("filters by instance, error text, since and until, newest first with a cursor; another tenant sees none", async () => {
    // Lanes fail in parallel: the expected order is the recorded one, newest first.
    const newestFirst = (
      await env.DB.prepare("SELECT message_id FROM dead_letters WHERE tenant_id = ? ORDER BY at DESC, message_id DESC").bind(t.id).all<{ message_id: string }>()
    ).results.map((r) => r.message_id);
    expect([...newestFirst].sort()).toEqual([...ids, otherId].sort());
    const all = await list("");
    expect(all.data.map((d: { messageId: string }) => d.messageId)).toEqual(newestFirst);
    const second_ = all.data.find((d: { messageId: string }) => d.messageId === otherId);
    expect(second_).toMatchObject({ messageId: otherId, instance: second, to: other, status: "failed", attempts: 1 });
    expect(second_.error).toMatch(/^Evolution 401/);

    expect((await list(`?instance=${second}`)).data.map((d: { messageId: string }) => d.messageId)).toEqual([otherId]);
    expect((await list("?error=evolution%20400")).data).toHaveLength(3);
    expect((await list("?error=100%25")).data).toEqual([]);
    const future = encodeURIComponent(failedBy);
    expect((await list(`?since=${future}`)).data).toEqual([]);
    expect((await list(`?until=${future}`)).data).toHaveLength(4);
    expect((await list(`?until=${encodeURIComponent(new Date(Date.now() - 3600_000).toISOString())}`)).data).toEqual([]);

    const page1 = await list("?limit=3");
    expect(page1.data).toHaveLength(3);
    const page2 = await list(`?limit=3&cursor=${page1.nextCursor}`);
    expect(page1.data.map((d: { messageId: string }) => d.messageId)).toEqual(newestFirst.slice(0, 3));
    expect(page2).toEqual({ data: [expect.objectContaining({ messageId: newestFirst[3] })], nextCursor: null });

    expect((await api("/v1/dead-letters?since=yesterday", { key: t.key })).status).toBe(400);
    expect((await api("/v1/dead-letters?cursor=abc", { key: t.key })).status).toBe(400);
    const stranger = await createTenant();
    expect((await list("", stranger.key)).data).toEqual([]);
  });
});

describe("POST /v1/dead-letters/replay", () => {
  it("another tenant's ids are 404 and replay nothing; bad bodies are 400", async () => {
    const stranger = await createTenant();
    const res = await api("/v1/dead-letters/replay", { method: "POST", key: stranger.key, json: { ids: [ids[0]] } });
    expect(res.status).toBe(404);
    expect((await json(res)).error.details).toEqual([{ path: "ids.0", message: `No dead letter ${ids[0]}.` }]);
    const mixed = await api("/v1/dead-letters/replay", { method: "POST", key: t.key, json: { ids: [ids[0], "msg_unknown"] } });
    expect(mixed.status).toBe(404);
    expect((await env.DB.prepare("SELECT status FROM messages WHERE id = ?").bind(ids[0]).first<{ status: string }>())?.status).toBe("failed");
    for (const body of [{}, { ids: [] }, { ids: ["x"], filter: {} }, { filter: { since: "soon" } }, { filter: {}, limit: 501 }]) {
      expect((await api("/v1/dead-letters/replay", { method: "POST", key: t.key, json: body })).status).toBe(400);
    }
  });

  it("replays by ids in the contact's order whatever the order asked, each in its history; then by filter", async () => {
    const before = (await simCalls(t.instance)).length;
    const res = await api("/v1/dead-letters/replay", { method: "POST", key: t.key, json: { ids: [ids[2], ids[0], ids[1]] } });
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ replayed: 3, ids: [ids[0], ids[1], ids[2]], skipped: [], more: false });
    for (const id of ids) await waitForStatus(id, ["sent"]);
    const sent = (await simCalls(t.instance)).slice(before).filter((c) => c.status === 201 && c.number.includes(contact));
    expect(sent.map((c) => c.body.text)).toEqual(texts);
    for (const id of ids) {
      const detail = await env.DB.prepare("SELECT detail FROM message_history WHERE message_id = ? AND status = 'queued' ORDER BY id DESC")
        .bind(id)
        .first<{ detail: string }>();
      expect(detail?.detail).toBe("replayed from dead letters");
    }
    const again = await json(await api("/v1/dead-letters/replay", { method: "POST", key: t.key, json: { ids: [ids[0]] } }));
    expect(again).toEqual({ replayed: 0, ids: [], skipped: [{ id: ids[0], reason: "status is sent, not failed" }], more: false });
    expect((await list("?replayed=true")).data).toHaveLength(3);

    const byFilter = await json(await api("/v1/dead-letters/replay", { method: "POST", key: t.key, json: { filter: { instance: second, error: "401" } } }));
    expect(byFilter).toMatchObject({ replayed: 1, ids: [otherId], more: false });
    await waitForStatus(otherId, ["sent"]);
    expect((await list("")).data).toEqual([]);
  });

  it("POST /v1/messages/:id/retry is the same replay", async () => {
    const to = "5511944440003";
    await fault({ instance: t.instance, number: to, status: 400, times: 1 });
    const id = (await json(await send(t.key, { instance: t.instance, to, text: "uma" }))).id;
    await waitForStatus(id, ["failed"]);
    expect((await api(`/v1/messages/${id}/retry`, { method: "POST", key: t.key })).status).toBe(202);
    await eventually(async () => (await list("?replayed=true")).data.some((d: { messageId: string }) => d.messageId === id));
    await waitForStatus(id, ["sent"]);
    expect((await api(`/v1/messages/${id}/retry`, { method: "POST", key: t.key })).status).toBe(409);
  });
});

describe("the error filter within production D1's LIKE limit", () => {
  it("takes a 48-byte text, refuses a longer one (or one whose escapes make it longer) with a 400, never a 500", async () => {
    const ok = await api(`/v1/dead-letters?error=${encodeURIComponent("e".repeat(48))}`, { key: t.key });
    expect(ok.status).toBe(200);
    for (const text of ["e".repeat(49), "é".repeat(25), "%".repeat(25)]) {
      const res = await api(`/v1/dead-letters?error=${encodeURIComponent(text)}`, { key: t.key });
      expect(res.status).toBe(400);
      expect((await json(res)).error.details).toEqual([{ path: "error", message: expect.stringMatching(/^At most 48 bytes/) }]);
      const replay = await api("/v1/dead-letters/replay", { method: "POST", key: t.key, json: { filter: { error: text } } });
      expect(replay.status).toBe(400);
      expect((await json(replay)).error.details[0].path).toBe("filter.error");
    }
  });
});

describe("dead letters that may have been sent", () => {
  it("an unreadable 2xx is marked mayHaveSent; bulk replay skips it unless force, by filter and by ids", async () => {
    const s = await setupTenant();
    const who = "5511944440077";
    // Evolution took the request (200) but its answer is not a send answer: it may be out.
    await simulator("/_sim/faults", { method: "POST", json: { instance: s.instance, number: who, status: 200, times: 1, body: { status: "PENDING" } } });
    const doubtful = (await json(await send(s.key, { instance: s.instance, to: who, text: "talvez" }))).id;
    await waitForStatus(doubtful, ["failed"]);
    await simulator("/_sim/faults", { method: "POST", json: { instance: s.instance, number: who, status: 400, times: 1, body: refusal } });
    const refused = (await json(await send(s.key, { instance: s.instance, to: who, text: "recusada" }))).id;
    await waitForStatus(refused, ["failed"]);

    const listed = await list("", s.key);
    const byId = new Map(listed.data.map((d: { messageId: string }) => [d.messageId, d]));
    expect(byId.get(doubtful)).toMatchObject({ mayHaveSent: true, error: expect.stringMatching(/^Evolution 200/) });
    expect(byId.get(refused)).toMatchObject({ mayHaveSent: false });

    const byFilter = await json(await api("/v1/dead-letters/replay", { method: "POST", key: s.key, json: { filter: { instance: s.instance } } }));
    expect(byFilter).toMatchObject({ replayed: 1, ids: [refused], more: false });
    await waitForStatus(refused, ["sent"]);
    expect((await messageRow(doubtful))?.status).toBe("failed");

    const byIds = await json(await api("/v1/dead-letters/replay", { method: "POST", key: s.key, json: { ids: [doubtful] } }));
    expect(byIds).toMatchObject({ replayed: 0, skipped: [{ id: doubtful, reason: expect.stringMatching(/may have been sent.*force/) }] });
    expect((await messageRow(doubtful))?.status).toBe("failed");

    const forced = await json(await api("/v1/dead-letters/replay", { method: "POST", key: s.key, json: { ids: [doubtful], force: true } }));
    expect(forced).toMatchObject({ replayed: 1, ids: [doubtful] });
    await waitForStatus(doubtful, ["sent"]);
    const texts = (await simCalls(s.instance)).filter((c) => c.body?.number === who).map((c) => c.body?.text);
    expect(texts.filter((x) => x === "talvez")).toHaveLength(2);
  });
});
