// What the console's inbox relies on, inside workerd: conversations stored before the inbox existed
// appear once the backfill migration runs; a conversation carries its instance's channel; the read
// and hand-off routes and the timeline take a web visitor id and a Telegram chat id; an answer
// written in the console names the operator's key.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, json, send, setupTenant, unique } from "./helpers.ts";

type Item = {
  contact: string;
  name: string | null;
  channel: string;
  unread: number;
  state: string;
  lastMessage: { id: string; direction: string; text: string };
};
const list = async (key: string, query = "") => json<{ data: Item[] }>(await api(`/v1/conversations${query}`, { key }));

async function webInstance(key: string) {
  const instance = unique("web");
  const res = await api(`/v1/instances/${instance}`, { method: "PUT", key, json: { channel: "web" } });
  expect(res.status).toBe(201);
  return instance;
}

let seq = 0;
/** An inbound message row as the webhooks store it (columns only; the path to it is tested elsewhere). */
async function storeInbound(
  t: { id: string; instance: string; instanceId: string },
  contact: string,
  text: string,
  at: number,
  pushName: string | null = null,
) {
  const id = `in_bf${(seq++).toString(36)}${Date.now().toString(36)}`;
  await env.DB.prepare(
    `INSERT INTO inbound_messages (id, tenant_id, instance_id, instance_name, contact, remote_jid, provider_message_id, from_me, push_name, message_type, text, timestamp, received_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 'conversation', ?, ?, ?)`,
  )
    .bind(id, t.id, t.instanceId, t.instance, contact, `${contact}@s.whatsapp.net`, id.toUpperCase(), pushName, text, Math.floor(at / 1000), at)
    .run();
  return id;
}

describe("the inbox's conversations", () => {
  it("the backfill lists conversations whose messages were stored before the inbox, newest first, unread since the last answer", async () => {
    const t = await setupTenant();
    const base = Date.now() - 86_400_000;
    await storeInbound(t, "5511970000801", "oi", base, "Carla");
    // An answer to Carla's number written without its 9: the same conversation.
    const answer = await send(t.key, { instance: t.instance, to: "551170000801", text: "olá Carla" });
    expect(answer.status).toBe(202);
    const answerId = (await json(answer)).id;
    const lastFromDavi = await storeInbound(t, "5511970000802", "preciso de ajuda", base + 2000, "Davi");
    await storeInbound(t, "5511970000802", "alguém aí?", base + 1000, "Davi");
    // Before the inbox existed: no conversation rows for them.
    await env.DB.prepare("DELETE FROM conversations WHERE tenant_id = ?").bind(t.id).run();
    expect((await list(t.key)).data).toEqual([]);

    const backfill = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0018_"));
    expect(backfill, "migration 0018").toBeDefined();
    // Its trigger exists already (the setup applied the migration); the rest runs again, as on a database with old messages.
    for (const query of backfill!.queries.filter((q) => !q.includes("CREATE TRIGGER"))) await env.DB.prepare(query).run();

    const { data } = await list(t.key);
    expect(data.map((c) => [c.contact, c.name, c.channel, c.unread, c.lastMessage.direction, c.lastMessage.text, c.lastMessage.id])).toEqual([
      // Carla's conversation ends with the answer (accepted now, newer than anything else).
      ["5511970000801", "Carla", "whatsapp", 0, "out", "olá Carla", answerId],
      ["5511970000802", "Davi", "whatsapp", 2, "in", "preciso de ajuda", lastFromDavi],
    ]);
    // Running it twice changes nothing and keeps what the triggers keep.
    await storeInbound(t, "5511970000802", "e agora?", Date.now() + 1000, "Davi");
    for (const query of backfill!.queries.filter((q) => !q.includes("CREATE TRIGGER"))) await env.DB.prepare(query).run();
    expect((await list(t.key)).data.map((c) => [c.contact, c.unread, c.lastMessage.text])).toEqual([
      ["5511970000802", 3, "e agora?"],
      ["5511970000801", 0, "olá Carla"],
    ]);
  });

  it("a web chat conversation: its channel, the timeline, read and hand-off by visitor id; a console answer names the operator's key", async () => {
    const t = await setupTenant();
    const instance = await webInstance(t.key);
    const visitor = "v-inbox.1";
    const sent = await send(t.key, { instance, to: visitor, text: "Olá! Como posso ajudar?", metadata: { source: "console", keyId: "someone-else" } });
    expect(sent.status).toBe(202);
    const id = (await json(sent)).id;
    const keyId = (await env.DB.prepare("SELECT id FROM api_keys WHERE tenant_id = ?").bind(t.id).first<{ id: string }>())!.id;
    expect((await json(await api(`/v1/messages/${id}`, { key: t.key }))).metadata).toEqual({ source: "console", keyId });
    // Without source console, metadata is the caller's own.
    const plain = await json(await send(t.key, { instance: t.instance, to: "5511970000803", text: "x", metadata: { keyId: "mine" } }));
    expect((await json(await api(`/v1/messages/${plain.id}`, { key: t.key }))).metadata).toEqual({ keyId: "mine" });

    expect((await list(t.key, "?channel=web")).data.map((c) => [c.contact, c.channel])).toEqual([[visitor, "web"]]);
    const timeline = await api(`/v1/contacts/${visitor}/messages?instance=${instance}`, { key: t.key });
    expect(timeline.status).toBe(200);
    expect((await json(timeline)).data.map((m: { id: string }) => m.id)).toEqual([id]);

    const path = `/v1/instances/${instance}/contacts/${visitor}`;
    expect((await api(`${path}/read`, { method: "POST", key: t.key })).status).toBe(200);
    const took = await api(`${path}/handoff`, { method: "POST", key: t.key, json: { reason: "pediu um humano" } });
    expect(took.status).toBe(200);
    expect(await json(took)).toMatchObject({ state: "human", reason: "pediu um humano" });
    expect((await list(t.key, "?state=human")).data.map((c) => c.contact)).toEqual([visitor]);
    expect(await json(await api(`${path}/handoff`, { method: "DELETE", key: t.key }))).toEqual({ state: "bot" });
    // Each channel's own form: a phone number is no visitor id's place on WhatsApp, and the reverse.
    const bad = await api(`/v1/instances/${t.instance}/contacts/${visitor}/handoff`, { key: t.key });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.code).toBe("invalid_request");
    expect((await api(`/v1/instances/${instance}/contacts/bad%20visitor/read`, { method: "POST", key: t.key })).status).toBe(400);
  });

  it("a Telegram conversation is keyed by its chat id: the hand-off takes it, not a visitor id", async () => {
    const t = await setupTenant();
    // The routes check the contact against the instance's channel; the instance's transport plays no part.
    await env.DB.prepare("UPDATE instances SET channel = 'telegram' WHERE id = ?").bind(t.instanceId).run();
    const group = "-1001234567890";
    const took = await api(`/v1/instances/${t.instance}/contacts/${group}/handoff`, { method: "POST", key: t.key });
    expect(took.status).toBe(200);
    const stored = await env.DB.prepare("SELECT contact FROM conversation_handoffs WHERE instance_id = ?").bind(t.instanceId).all<{ contact: string }>();
    expect(stored.results.map((r) => r.contact)).toEqual([group]);
    expect((await api(`/v1/instances/${t.instance}/contacts/v-visitor/handoff`, { key: t.key })).status).toBe(400);
  });
});
