// Telegram end to end against the simulator's Bot API: connecting a bot (getMe, setWebhook with a
// secret), sending through the lane (texts, media, flood control, blocked chats, migrated groups, in
// doubt), the webhook in (secret, dedupe by update_id, edits, buttons) and automation back out.
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { describe, expect, it } from "vitest";
import { catchUpAutomation } from "../../src/automation/wake.ts";
import { api, createTenant, eventually, json, send, simulator, simulatorUrl, unique, waitForStatus } from "./helpers.ts";

type TgCall = {
  seq: number;
  at: number;
  method: string;
  chatId?: number | string;
  params: Record<string, any>;
  status: number;
  description?: string;
  retryAfter?: number;
  insideRetryAfter: boolean;
  sent: boolean;
  messageId?: number;
  answeredAt: number;
};

let botSeq = 0;

/** A tenant with a bot registered at the simulator and connected as a Telegram instance. */
async function setupBot(opts: { pacing?: Record<string, unknown> } = {}) {
  const tenant = await createTenant();
  const botId = 7_000_000 + Math.floor(Math.random() * 1_000_000) * 10 + (botSeq++ % 10);
  const token = `${botId}:${unique("AAsecret").replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const username = `t${botId}_bot`;
  await simulator("/_sim/telegram/bots", { method: "POST", json: { token, username, first_name: "Teste" } });
  const instance = unique("tg");
  const res = await api(`/v1/instances/${instance}`, {
    method: "PUT",
    key: tenant.key,
    json: { channel: "telegram", telegram: { botToken: token, apiUrl: simulatorUrl() }, ...(opts.pacing ? { pacing: opts.pacing } : {}) },
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`bot register failed: ${res.status} ${text}`);
  const row = (await env.DB.prepare("SELECT * FROM instances WHERE name = ?").bind(instance).first<Record<string, any>>())!;
  return { ...tenant, instance, instanceId: row.id as string, token, username, botId, answer: JSON.parse(text), row };
}

type Bot = Awaited<ReturnType<typeof setupBot>>;

async function tgCalls(bot: Bot, query: Record<string, string> = {}): Promise<TgCall[]> {
  const q = new URLSearchParams({ token: bot.token, ...query });
  return (await simulator(`/_sim/telegram/calls?${q}`)).calls;
}

const sends = (calls: TgCall[]) => calls.filter((c) => c.method.startsWith("send") && c.method !== "sendChatAction");

async function knownChat(bot: Bot, chatId: number, fields: Record<string, unknown> = {}) {
  await simulator("/_sim/telegram/chats", { method: "PUT", json: { token: bot.token, chatId, first_name: "Ana", ...fields } });
}

/** An Update as the simulator builds it (a user writing to the bot), posted to the gateway's webhook. */
async function playUpdate(bot: Bot, input: Record<string, unknown>, secret: string | null = bot.row.telegram_webhook_secret) {
  const { update } = await simulator("/_sim/telegram/inbound", { method: "POST", json: { token: bot.token, ...input } });
  return { update, res: await postUpdate(bot, update, secret) };
}

async function postUpdate(bot: Bot, update: unknown, secret: string | null = bot.row.telegram_webhook_secret) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (secret !== null) headers["x-telegram-bot-api-secret-token"] = secret;
  return api(`/webhooks/telegram/${bot.row.webhook_token}`, { method: "POST", headers, body: JSON.stringify(update) });
}

const inboundRows = (instanceId: string) =>
  env.DB.prepare("SELECT * FROM inbound_messages WHERE instance_id = ? ORDER BY timestamp, received_at").bind(instanceId).all<Record<string, any>>();

describe("connecting a bot", () => {
  it("checks the token with getMe, sets the webhook with a secret of at least 32 characters, and never shows the token", async () => {
    const bot = await setupBot();
    expect(bot.answer).toMatchObject({
      name: bot.instance,
      channel: "telegram",
      state: "open",
      telegram: { botUsername: bot.username, apiUrl: simulatorUrl() },
    });
    expect(JSON.stringify(bot.answer)).not.toContain(bot.token.split(":")[1]);
    expect(bot.answer.evolutionUrl).toBeUndefined();
    const calls = await tgCalls(bot);
    expect(calls.map((c) => c.method)).toEqual(["getMe", "setWebhook"]);
    const hook = calls[1]!.params;
    expect(hook.url).toBe(`https://gateway.test/webhooks/telegram/${bot.row.webhook_token}`);
    expect(hook.secret_token).toMatch(/^[A-Za-z0-9_-]{32,256}$/);
    expect(hook.secret_token).toBe(bot.row.telegram_webhook_secret);
    expect(hook.allowed_updates).toEqual(["message", "edited_message", "callback_query"]);
    expect(bot.row).toMatchObject({ channel: "telegram", telegram_bot_token: bot.token, telegram_bot_username: bot.username });

    const got = await json(await api(`/v1/instances/${bot.instance}`, { key: bot.key }));
    expect(got.telegram.webhook).toMatchObject({ url: "https://gateway.test/webhooks/telegram/…", pendingUpdates: expect.any(Number) });
    expect(JSON.stringify(got)).not.toContain(bot.token.split(":")[1]);
  });

  it("answers 422 with Telegram's description for a token Telegram refuses, and stores nothing", async () => {
    const tenant = await createTenant();
    const instance = unique("tg-bad");
    const res = await api(`/v1/instances/${instance}`, {
      method: "PUT",
      key: tenant.key,
      json: { channel: "telegram", telegram: { botToken: "123456:not-a-bot-the-simulator-knows", apiUrl: simulatorUrl() } },
    });
    expect(res.status).toBe(422);
    const body = await json(res);
    expect(body.error.message).toContain("Unauthorized");
    expect(JSON.stringify(body)).not.toContain("not-a-bot-the-simulator-knows");
    expect(await env.DB.prepare("SELECT 1 FROM instances WHERE name = ?").bind(instance).first()).toBeNull();
  });

  it("refuses a token that is not <bot id>:<secret> and WhatsApp fields on a bot (400)", async () => {
    const tenant = await createTenant();
    const bad = await api(`/v1/instances/${unique("tg")}`, { method: "PUT", key: tenant.key, json: { channel: "telegram", telegram: { botToken: "x\ny" } } });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.details[0].path).toBe("telegram.botToken");
    const mixed = await api(`/v1/instances/${unique("tg")}`, {
      method: "PUT",
      key: tenant.key,
      json: { channel: "telegram", evolutionUrl: "https://evo.example.com", telegram: { botToken: "1:a" } },
    });
    expect(mixed.status).toBe(400);
  });

  it("DELETE removes the webhook at Telegram and the instance", async () => {
    const bot = await setupBot();
    const res = await api(`/v1/instances/${bot.instance}`, { method: "DELETE", key: bot.key });
    expect(res.status).toBe(204);
    expect((await tgCalls(bot)).map((c) => c.method)).toContain("deleteWebhook");
    expect(await env.DB.prepare("SELECT 1 FROM instances WHERE id = ?").bind(bot.instanceId).first()).toBeNull();
  });
});

describe("sending to a chat", () => {
  it("sends a text, ends at sent with chat:message_id as provider id, and says telegram everywhere", async () => {
    const bot = await setupBot();
    const chat = 424_242_001;
    await knownChat(bot, chat);
    const res = await send(bot.key, { instance: bot.instance, to: String(chat), text: "olá do gateway" });
    expect(res.status).toBe(202);
    const { id } = await json(res);
    const row = await waitForStatus(id, ["sent", "failed"]);
    const [call] = sends(await tgCalls(bot));
    expect(call).toMatchObject({ method: "sendMessage", params: { chat_id: chat, text: "olá do gateway" }, status: 200 });
    expect(row).toMatchObject({ status: "sent", channel: "telegram", provider_message_id: `${chat}:${call!.messageId}`, receipt_check_at: null });
    const view = await json(await api(`/v1/messages/${id}`, { key: bot.key }));
    expect(view.channel).toBe("telegram");
    const events = await env.DB.prepare("SELECT data FROM outbox_events WHERE tenant_id = ? AND type = 'message.status'").bind(bot.id).all<{ data: string }>();
    expect(events.results.map((e) => JSON.parse(e.data).channel)).toEqual(["telegram", "telegram", "telegram"]);
    const listed = await json(await api(`/v1/messages?channel=telegram`, { key: bot.key }));
    expect(listed.data.map((m: any) => m.id)).toEqual([id]);
    expect((await json(await api(`/v1/messages?channel=whatsapp`, { key: bot.key }))).data).toEqual([]);
  });

  it("refuses an address Telegram cannot take and a text over 4,096 characters (400), before any call", async () => {
    const bot = await setupBot();
    const wrong = await send(bot.key, { instance: bot.instance, to: "120363041234567890@g.us", text: "oi" });
    expect(wrong.status).toBe(400);
    expect((await json(wrong)).error.details[0].path).toBe("to");
    const long = await send(bot.key, { instance: bot.instance, to: "424242001", text: "a".repeat(4097) });
    expect(long.status).toBe(400);
    expect((await json(long)).error.details[0]).toMatchObject({ path: "text", message: expect.stringContaining("4096") });
    expect(sends(await tgCalls(bot))).toEqual([]);
  });

  it("sends media by URL with its caption through the matching method", async () => {
    const bot = await setupBot();
    const chat = 424_242_002;
    await knownChat(bot, chat);
    const photo = await json(
      await send(bot.key, { instance: bot.instance, to: String(chat), media: { type: "image", url: "https://cdn.example.com/a.png", caption: "catálogo" } }),
    );
    await waitForStatus(photo.id, ["sent", "failed"]);
    const doc = await json(
      await send(bot.key, { instance: bot.instance, to: String(chat), text: "a fatura", media: { type: "document", url: "https://cdn.example.com/f.pdf" } }),
    );
    expect((await waitForStatus(doc.id, ["sent", "failed"])).status).toBe("sent");
    const calls = sends(await tgCalls(bot));
    expect(calls.map((c) => [c.method, c.params])).toEqual([
      ["sendPhoto", expect.objectContaining({ chat_id: chat, photo: "https://cdn.example.com/a.png", caption: "catálogo" })],
      ["sendDocument", expect.objectContaining({ chat_id: chat, document: "https://cdn.example.com/f.pdf", caption: "a fatura" })],
    ]);
  });

  it("fails a message to a chat that blocked the bot after one call, with Telegram's reason", async () => {
    const bot = await setupBot();
    const chat = 424_242_003;
    await knownChat(bot, chat, { state: "blocked" });
    const { id } = await json(await send(bot.key, { instance: bot.instance, to: String(chat), text: "oi", maxAttempts: 5 }));
    const row = await waitForStatus(id, ["sent", "failed"]);
    expect(row.status).toBe("failed");
    expect(row.last_error).toContain("bot was blocked by the user");
    expect(row.attempts).toBe(1);
    expect(sends(await tgCalls(bot))).toHaveLength(1);
  });

  it("sends ten texts to one chat in order through a 429, never calling inside retry_after and not spending an attempt", async () => {
    const bot = await setupBot();
    const chat = 424_242_004;
    await knownChat(bot, chat);
    // The third send meets flood control: retry after 2 s.
    await simulator("/_sim/telegram/faults", {
      method: "POST",
      json: {
        token: bot.token,
        chatId: chat,
        method: "sendMessage",
        status: 429,
        description: "Too Many Requests: retry after 2",
        parameters: { retry_after: 2 },
        times: 1,
      },
    });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await json(await send(bot.key, { instance: bot.instance, to: String(chat), text: `m${i}`, maxAttempts: 1 }))).id);
    await eventually(
      async () => {
        const rows = await env.DB.prepare(`SELECT status FROM messages WHERE id IN (${ids.map(() => "?").join(",")})`)
          .bind(...ids)
          .all<{ status: string }>();
        return rows.results.every((r) => r.status === "sent" || r.status === "failed");
      },
      60_000,
      "ten messages to end",
    );
    for (const id of ids)
      expect((await env.DB.prepare("SELECT status, attempts FROM messages WHERE id = ?").bind(id).first())!).toMatchObject({ status: "sent", attempts: 1 });
    const calls = sends(await tgCalls(bot));
    const limited = calls.find((c) => c.status === 429)!;
    expect(limited).toBeDefined();
    expect(calls.filter((c) => c.insideRetryAfter)).toEqual([]);
    const next = calls.find((c) => c.seq > limited.seq)!;
    expect(next.at - limited.answeredAt).toBeGreaterThanOrEqual(2_000);
    // In order: the texts that went, as Telegram got them.
    expect(calls.filter((c) => c.status === 200).map((c) => c.params.text)).toEqual(ids.map((_, i) => `m${i}`));
    const throttled = await env.DB.prepare("SELECT history FROM messages WHERE id = ?")
      .bind(ids[Number(String(limited.params.text).slice(1))])
      .first<{ history: string }>();
    expect(throttled!.history).toContain("not counted as an attempt");
  }, 90_000);

  it("a 429 holds the whole bot: another chat's message waits out the retry_after too", async () => {
    const bot = await setupBot();
    const [a, b] = [424_242_011, 424_242_012];
    await knownChat(bot, a);
    await knownChat(bot, b);
    await simulator("/_sim/telegram/faults", {
      method: "POST",
      json: {
        token: bot.token,
        chatId: a,
        method: "sendMessage",
        status: 429,
        description: "Too Many Requests: retry after 2",
        parameters: { retry_after: 2 },
      },
    });
    const first = await json(await send(bot.key, { instance: bot.instance, to: String(a), text: "para a" }));
    const limited = await eventually(async () => sends(await tgCalls(bot)).find((c) => c.status === 429), 15_000, "the 429");
    // The simulator records the 429 before the lane has told the governor: the pause follows.
    const paused = await eventually(
      async () => {
        const view = await json(await api(`/v1/instances/${bot.instance}`, { key: bot.key }));
        return view.sending?.paused ? view : undefined;
      },
      15_000,
      "the bot paused",
    );
    expect(paused.sending).toMatchObject({ paused: true, reason: "rate-overlimit" });
    const second = await json(await send(bot.key, { instance: bot.instance, to: String(b), text: "para b" }));
    expect((await waitForStatus(second.id, ["sent", "failed"], 30_000)).status).toBe("sent");
    expect((await waitForStatus(first.id, ["sent", "failed"], 30_000)).status).toBe("sent");
    const calls = sends(await tgCalls(bot));
    expect(calls.filter((c) => c.insideRetryAfter)).toEqual([]);
    const toB = calls.find((c) => c.params.chat_id === b)!;
    expect(toB.at - limited.answeredAt).toBeGreaterThanOrEqual(2_000);
  }, 60_000);

  it("follows a group that became a supergroup, and sends later messages to the new id directly", async () => {
    const bot = await setupBot();
    const group = -4_240_001;
    const supergroup = -1_004_240_001;
    await knownChat(bot, group, { type: "group", title: "Equipe", migrateTo: supergroup });
    const first = await json(await send(bot.key, { instance: bot.instance, to: String(group), text: "primeira" }));
    const row = await waitForStatus(first.id, ["sent", "failed"]);
    expect(row.status).toBe("sent");
    expect(row.provider_message_id).toMatch(new RegExp(`^${supergroup}:\\d+$`));
    expect(row.history).toContain(`the chat moved to ${supergroup}`);
    expect(
      await env.DB.prepare("SELECT to_chat FROM chat_migrations WHERE instance_id = ? AND from_chat = ?").bind(bot.instanceId, String(group)).first(),
    ).toEqual({
      to_chat: String(supergroup),
    });
    const second = await json(await send(bot.key, { instance: bot.instance, to: String(group), text: "segunda" }));
    expect((await waitForStatus(second.id, ["sent", "failed"])).status).toBe("sent");
    const calls = sends(await tgCalls(bot));
    expect(calls.map((c) => [c.params.chat_id, c.params.text, c.status])).toEqual([
      [group, "primeira", 400],
      [supergroup, "primeira", 200],
      [supergroup, "segunda", 200],
    ]);
  }, 60_000);

  it("fails an attempt in doubt at once (Telegram cannot be asked), without sending it again", async () => {
    const bot = await setupBot();
    const chat = 424_242_005;
    await knownChat(bot, chat);
    // Sent at once, answered after the gateway's timeout (3 s in tests).
    await simulator("/_sim/telegram/faults", { method: "POST", json: { token: bot.token, chatId: chat, method: "sendMessage", status: 200, delayMs: 6_000 } });
    const { id } = await json(await send(bot.key, { instance: bot.instance, to: String(chat), text: "talvez", maxAttempts: 3 }));
    const row = await waitForStatus(id, ["sent", "failed"], 30_000);
    expect(row.status).toBe("failed");
    expect(row.last_error).toContain("in doubt");
    expect(row.last_error).toContain("not sent again");
    // The one call is still being answered at Telegram's side.
    expect(sends(await tgCalls(bot, { pending: "true" }))).toHaveLength(1);
    expect(await env.DB.prepare("SELECT 1 FROM dead_letters WHERE message_id = ?").bind(id).first()).not.toBeNull();
    // Listed as one that may have gone out: a bulk replay leaves it alone unless forced.
    const dead = await json(await api("/v1/dead-letters", { key: bot.key }));
    expect(dead.data).toEqual([expect.objectContaining({ messageId: id, mayHaveSent: true })]);
  }, 60_000);

  it("shows typing with sendChatAction before a text when the pacing's typing is on", async () => {
    const bot = await setupBot({ pacing: { typing: true } });
    const chat = 424_242_006;
    await knownChat(bot, chat);
    const { id } = await json(await send(bot.key, { instance: bot.instance, to: String(chat), text: "digitando" }));
    expect((await waitForStatus(id, ["sent", "failed"], 30_000)).status).toBe("sent");
    const calls = (await tgCalls(bot)).filter((c) => c.method === "sendChatAction" || c.method === "sendMessage");
    expect(calls.map((c) => [c.method, c.params.action ?? c.params.text])).toEqual([
      ["sendChatAction", "typing"],
      ["sendMessage", "digitando"],
    ]);
  }, 60_000);
});

describe("the webhook in", () => {
  it("refuses a missing or wrong secret (401) and stores nothing", async () => {
    const bot = await setupBot();
    const { update } = await simulator("/_sim/telegram/inbound", { method: "POST", json: { token: bot.token, chatId: 515_151_001, text: "oi" } });
    expect((await postUpdate(bot, update, null)).status).toBe(401);
    expect((await postUpdate(bot, update, `${bot.row.telegram_webhook_secret}x`)).status).toBe(401);
    expect((await postUpdate(bot, update, "short")).status).toBe(401);
    expect((await inboundRows(bot.instanceId)).results).toEqual([]);
  });

  it("stores an update before the 200, once however often Telegram delivers it, with its message.received event", async () => {
    const bot = await setupBot();
    const chat = 515_151_002;
    const { update, res } = await playUpdate(bot, { chatId: chat, text: "bom dia", from: { id: chat, first_name: "Ana", last_name: "Lima" } });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ received: true, outcome: [{ dedupeKey: `update:${update.update_id}`, outcome: "stored" }] });
    const again = await postUpdate(bot, update);
    expect((await json(again)).outcome[0].outcome).toBe("duplicate");
    const rows = (await inboundRows(bot.instanceId)).results;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      channel: "telegram",
      contact: String(chat),
      remote_jid: String(chat),
      push_name: "Ana Lima",
      message_type: "text",
      text: "bom dia",
      provider_message_id: `${chat}:${update.message.message_id}`,
      from_me: 0,
    });
    const events = await env.DB.prepare("SELECT data FROM outbox_events WHERE tenant_id = ? AND type = 'message.received'")
      .bind(bot.id)
      .all<{ data: string }>();
    expect(events.results.map((e) => JSON.parse(e.data))).toEqual([expect.objectContaining({ channel: "telegram", contact: String(chat), text: "bom dia" })]);
  });

  it("keeps media, locations, contacts, edits and button presses", async () => {
    const bot = await setupBot();
    const chat = 515_151_003;
    await playUpdate(bot, { chatId: chat, photo: true, caption: "foto" });
    await playUpdate(bot, { chatId: chat, document: true });
    await playUpdate(bot, { chatId: chat, voice: true });
    await playUpdate(bot, { chatId: chat, location: { latitude: -23.5, longitude: -46.6 } });
    await playUpdate(bot, { chatId: chat, contact: { phone_number: "+5511999990000", first_name: "Bia" } });
    const { update: original } = await playUpdate(bot, { chatId: chat, text: "errado" });
    await playUpdate(bot, { chatId: chat, text: "certo", edited: true, messageId: original.message.message_id });
    // A button is pressed on a message the bot sent.
    const menu = await json(await send(bot.key, { instance: bot.instance, to: String(chat), text: "escolha" }));
    expect((await waitForStatus(menu.id, ["sent", "failed"])).status).toBe("sent");
    await playUpdate(bot, { chatId: chat, callbackData: "opcao-1" });
    const rows = (await inboundRows(bot.instanceId)).results;
    const byType = Object.fromEntries(rows.map((r) => [r.message_type, r]));
    expect(Object.keys(byType).sort()).toEqual(["callback_query", "contact", "document", "edited_message", "location", "photo", "text", "voice"]);
    expect(byType.photo).toMatchObject({ text: "foto" });
    expect(JSON.parse(byType.photo.media)).toMatchObject({ type: "image", fileId: expect.any(String) });
    expect(JSON.parse(byType.location.media)).toEqual({ type: "location", latitude: -23.5, longitude: -46.6 });
    expect(JSON.parse(byType.contact.media)).toMatchObject({ type: "contact", phoneNumber: "+5511999990000" });
    expect(byType.edited_message).toMatchObject({
      text: "certo",
      provider_message_id: expect.stringMatching(new RegExp(`^${chat}:${original.message.message_id}:edited:`)),
    });
    expect(byType.callback_query).toMatchObject({ text: "opcao-1", contact: String(chat) });
  });
});

describe("automation", () => {
  it("hands a Telegram message to the handler with channel telegram and sends its reply back to the chat", async () => {
    const bot = await setupBot();
    const chat = 515_151_004;
    const path = unique("tg-echo");
    const botUrl = inject("botUrl");
    const put = await api(`/v1/instances/${bot.instance}/automation`, { method: "PUT", key: bot.key, json: { url: `${botUrl}/bot/${path}` } });
    expect(put.status).toBeLessThan(300);
    await playUpdate(bot, { chatId: chat, text: "quero ajuda", from: { id: chat, first_name: "Caio" } });
    const reply = await eventually(
      async () => sends(await tgCalls(bot, { chatId: String(chat) })).find((c) => c.status === 200),
      30_000,
      "the reply at Telegram",
    );
    expect(reply).toMatchObject({ method: "sendMessage", params: { chat_id: chat, text: "echo: quero ajuda" } });
    const calls = ((await (await fetch(`${botUrl}/_bot/${path}`)).json()) as { calls: { raw: string }[] }).calls;
    expect(JSON.parse(calls[0]!.raw)).toMatchObject({
      type: "automation.inbound",
      instance: bot.instance,
      channel: "telegram",
      contact: String(chat),
      replyTo: String(chat),
    });
    const out = await env.DB.prepare("SELECT channel, source, status FROM messages WHERE instance_id = ?").bind(bot.instanceId).first();
    expect(out).toMatchObject({ channel: "telegram", source: "automation", status: "sent" });
  }, 60_000);

  it("a hand-off to a person on a Telegram chat says telegram in its event", async () => {
    const bot = await setupBot();
    const chat = 515_151_011;
    const res = await api(`/v1/instances/${bot.instance}/contacts/${chat}/handoff`, { method: "POST", key: bot.key, json: { reason: "humano" } });
    expect(res.status).toBe(200);
    const row = await env.DB.prepare("SELECT data FROM outbox_events WHERE tenant_id = ? AND type = 'conversation.handoff'")
      .bind(bot.id)
      .first<{ data: string }>();
    expect(JSON.parse(row!.data)).toMatchObject({ instance: bot.instance, contact: String(chat), channel: "telegram", state: "human", by: "operator" });
  });

  it("the cron's catch-up offers a Telegram message stored without its hand-off as Telegram, and leaves its edit alone", async () => {
    const bot = await setupBot();
    const chat = 515_151_009;
    await knownChat(bot, chat);
    const path = unique("tg-catchup");
    const botUrl = inject("botUrl");
    expect(
      (await api(`/v1/instances/${bot.instance}/automation`, { method: "PUT", key: bot.key, json: { url: `${botUrl}/bot/${path}` } })).status,
    ).toBeLessThan(300);
    // Stored alone (a hand-off cut short): the message and, later, its edit.
    const at = Date.now();
    const insert = (id: string, providerId: string, type: string, text: string, dedupe: string) =>
      env.DB.prepare(
        `INSERT INTO inbound_messages (id, tenant_id, instance_id, instance_name, channel, contact, remote_jid, participant, provider_message_id,
          from_me, push_name, message_type, text, media, timestamp, received_at, dedupe_key)
         VALUES (?, ?, ?, ?, 'telegram', ?, ?, NULL, ?, 0, 'Ana', ?, ?, NULL, ?, ?, ?)`,
      )
        .bind(id, bot.id, bot.instanceId, bot.instance, String(chat), String(chat), providerId, type, text, at, at, dedupe)
        .run();
    await insert(unique("in"), `${chat}:7`, "text", "esquecida", "update:9001");
    await insert(unique("in"), `${chat}:7:edited:1`, "edited_message", "esquecida!", "update:9002");
    await catchUpAutomation(env, Date.now() + 2 * 60_000);
    const reply = await eventually(
      async () => sends(await tgCalls(bot, { chatId: String(chat) })).find((c) => c.status === 200),
      30_000,
      "the reply at Telegram",
    );
    expect(reply.params).toMatchObject({ chat_id: chat, text: "echo: esquecida" });
    const calls = ((await (await fetch(`${botUrl}/_bot/${path}`)).json()) as { calls: { raw: string }[] }).calls;
    expect(calls.map((c) => JSON.parse(c.raw))).toEqual([expect.objectContaining({ channel: "telegram", replyTo: String(chat) })]);
    const records = await env.DB.prepare("SELECT inbound_id FROM automation_deliveries WHERE instance_id = ?").bind(bot.instanceId).all();
    expect(records.results).toHaveLength(1);
    expect(await env.DB.prepare("SELECT channel FROM messages WHERE instance_id = ?").bind(bot.instanceId).first()).toEqual({ channel: "telegram" });
  }, 60_000);
});
