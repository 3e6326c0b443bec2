// GET /v1/conversations inside workerd: order by last activity, the fields of a conversation,
// unread counts and marking read, states (agent, human, failed), filters, cursor paging, tenant
// isolation, and a page's rows read not growing with the messages stored.
import { env } from "cloudflare:workers";
import { SQLiteAsyncDialect } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import { pageStatement } from "../../src/db/queries/conversations.ts";
import textFixture from "../fixtures/evolution/messages.upsert.text.json";
import { api, eventually, json, send, setupTenant } from "./helpers.ts";

type Tenant = Awaited<ReturnType<typeof setupTenant>>;

let seq = 0;
async function inbound(t: Tenant, from: string, text: string, pushName = "Ana") {
  const token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!.webhook_token;
  const body = structuredClone(textFixture);
  body.instance = t.instance;
  const id = `CV${Date.now().toString(16)}${(seq++).toString(16)}`.toUpperCase();
  const data = {
    ...body.data,
    pushName,
    key: { remoteJid: `${from}@s.whatsapp.net`, fromMe: false, id },
    message: { conversation: text },
    messageTimestamp: Math.floor(Date.now() / 1000),
  };
  const res = await api(`/webhooks/evolution/${token}`, { method: "POST", json: { ...body, data } });
  expect(res.status).toBe(200);
}

type Item = {
  contact: string;
  name: string | null;
  instance: string;
  channel: string;
  unread: number;
  state: string;
  lastMessage: { direction: string; text: string };
};
const list = async (t: { key: string }, query = "") =>
  json<{ data: Item[]; nextCursor: string | null }>(await api(`/v1/conversations${query}`, { key: t.key }));
// A conversation's activity time is the gateway's clock in milliseconds, and the list is ordered by
// it: before the next step, wait until the clock is past the tenant's latest activity, so no two
// steps share a time (a tie would fall to the conversations' ids).
async function pastLastActivity(t: Tenant) {
  const latest = await env.DB.prepare("SELECT MAX(last_at) AS at FROM conversations WHERE tenant_id = ?").bind(t.id).first<{ at: number | null }>();
  await eventually(async () => Date.now() > (latest?.at ?? 0), 5_000, "the clock past the latest activity");
}

describe("GET /v1/conversations", () => {
  it("newest activity first, with the last message, the contact's name, unread counts and read marking", async () => {
    const t = await setupTenant();
    await inbound(t, "5531998765432", "oi, sou a Ana", "Ana");
    await pastLastActivity(t);
    await inbound(t, "5511970000601", "bom dia", "Bruno");
    await pastLastActivity(t);
    await inbound(t, "5511970000601", "alguém?", "Bruno");
    await pastLastActivity(t);
    let page = await list(t);
    expect(page.data.map((c) => [c.contact, c.name, c.unread, c.lastMessage.direction, c.lastMessage.text])).toEqual([
      ["5511970000601", "Bruno", 2, "in", "alguém?"],
      ["5531998765432", "Ana", 1, "in", "oi, sou a Ana"],
    ]);
    expect(page.data[0]).toMatchObject({ instance: t.instance, channel: "whatsapp", state: "agent" });

    // An answer sent to Ana's number without its 9 is her conversation, and moves it to the top.
    expect((await send(t.key, { instance: t.instance, to: "553198765432", text: "olá Ana" })).status).toBe(202);
    page = await list(t);
    expect(page.data.map((c) => [c.contact, c.lastMessage.direction, c.lastMessage.text, c.unread])).toEqual([
      ["5531998765432", "out", "olá Ana", 1],
      ["5511970000601", "in", "alguém?", 2],
    ]);

    const read = await api(`/v1/instances/${t.instance}/contacts/5511970000601/read`, { method: "POST", key: t.key });
    expect(read.status).toBe(200);
    expect((await list(t, "?unread=true")).data.map((c) => c.contact)).toEqual(["5531998765432"]);
    expect((await list(t, "?unread=false")).data.map((c) => c.contact)).toEqual(["5511970000601"]);
    expect((await list(t, "?q=Bru")).data.map((c) => c.contact)).toEqual(["5511970000601"]);
    expect((await list(t, "?q=ol%C3%A1")).data.map((c) => c.contact)).toEqual(["5531998765432"]);
    expect((await list(t, "?q=100%25")).data).toEqual([]);
    expect((await list(t, `?instance=${t.instance}`)).data).toHaveLength(2);
    expect((await list(t, "?instance=other")).data).toEqual([]);
    expect((await list(t, "?channel=telegram")).data).toEqual([]);
  });

  it("states: human with the hand-off's reason, failed after a dead letter, agent otherwise", async () => {
    const t = await setupTenant();
    for (const contact of ["5511970000611", "5511970000612", "5511970000613"]) {
      await inbound(t, contact, "oi");
      await pastLastActivity(t);
    }
    await api(`/v1/instances/${t.instance}/contacts/5511970000611/handoff`, { method: "POST", key: t.key, json: { reason: "reclamação" } });
    await env.DB.prepare(
      "INSERT INTO automation_deliveries (inbound_id, tenant_id, instance_id, lane_key, contact, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'dead', 0, 0)",
    )
      .bind(`in_dead${seq++}`, t.id, t.instanceId, `${t.id}:${t.instanceId}:5511970000612`, "5511970000612")
      .run();
    const page = await list(t);
    expect(page.data.map((c) => [c.contact, c.state])).toEqual([
      ["5511970000613", "agent"],
      ["5511970000612", "failed"],
      ["5511970000611", "human"],
    ]);
    expect(page.data[2]).toMatchObject({ handoff: { reason: "reclamação" } });
    expect((await list(t, "?state=human")).data.map((c) => c.contact)).toEqual(["5511970000611"]);
    expect((await list(t, "?state=failed")).data.map((c) => c.contact)).toEqual(["5511970000612"]);
    expect((await list(t, "?state=agent")).data.map((c) => c.contact)).toEqual(["5511970000613"]);
  });

  it("pages by cursor: every conversation once, in order", async () => {
    const t = await setupTenant();
    const contacts = ["5511970000621", "5511970000622", "5511970000623", "5511970000624", "5511970000625"];
    for (const contact of contacts) {
      await inbound(t, contact, contact);
      await pastLastActivity(t);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await list(t, `?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.data.map((c) => c.contact));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual([...contacts].reverse());
  });

  it("another tenant sees none of them; bad input is a 400", async () => {
    const t = await setupTenant();
    const other = await setupTenant();
    await inbound(t, "5511970000631", "oi");
    expect((await list(t)).data).toHaveLength(1);
    expect((await list(other)).data).toEqual([]);
    expect((await api(`/v1/instances/${t.instance}/contacts/5511970000631/read`, { method: "POST", key: other.key })).status).toBe(404);
    for (const query of ["?limit=0", "?limit=101", "?cursor=abc", "?state=bot", "?unread=yes", `?q=${"x".repeat(41)}`]) {
      const res = await api(`/v1/conversations${query}`, { key: t.key });
      expect(res.status, query).toBe(400);
      expect((await json(res)).error.code).toBe("invalid_request");
    }
  });

  it("a page's rows read do not grow with the messages stored", async () => {
    const t = await setupTenant();
    for (const contact of ["5511970000641", "5511970000642", "5511970000643"]) {
      await inbound(t, contact, "oi");
      await pastLastActivity(t);
    }
    const dialect = new SQLiteAsyncDialect();
    const rowsRead = async () => {
      const { sql, params } = dialect.sqlToQuery(pageStatement(t.id, { limit: 2 }, Date.now()));
      const result = await env.DB.prepare(sql)
        .bind(...params)
        .all();
      expect(result.results).toHaveLength(3);
      return result.meta.rows_read;
    };
    const before = await rowsRead();
    // 10,000 more inbound messages of one contact (through the triggers, like the webhook's inserts).
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
       INSERT INTO inbound_messages (id, tenant_id, instance_id, instance_name, contact, remote_jid, provider_message_id, from_me, message_type, text, timestamp, received_at)
       SELECT 'in_bulk' || ? || '_' || i, ?, ?, ?, '5511970000641', '5511970000641@s.whatsapp.net', 'BULK' || ? || '_' || i, 0, 'conversation', 'm' || i, 1, 1
       FROM n`,
    )
      .bind(t.id, t.id, t.instanceId, t.instance, t.id)
      .run();
    const unread = await env.DB.prepare("SELECT unread FROM conversations WHERE tenant_id = ? AND contact = '5511970000641'")
      .bind(t.id)
      .first<{ unread: number }>();
    expect(unread?.unread).toBe(10001);
    const after = await rowsRead();
    expect(after).toBe(before);
    expect(after).toBeLessThan(20);
  });
});
