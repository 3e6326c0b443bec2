// Inbound updates played to a bot's webhook: faithful Update shapes, the secret header, one
// chat's updates in sequence with retries, pending_update_count and last_error in
// getWebhookInfo, updates held while no webhook is set, allowed_updates, and duplicates.
import { afterEach, describe, expect, it } from "vitest";
import { startReceiver } from "../../test/support/receiver.ts";
import { type Json, setup, TOKEN } from "./support.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

type Received = { path: string; headers: Record<string, string>; body: string; status: number };

async function harness(webhook: Record<string, unknown> = {}) {
  const sim = setup();
  const receiver = await startReceiver();
  cleanups.push(
    () => sim.state.stop(),
    () => receiver.close(),
  );
  await sim.control("PATCH", "/config", { webhook: { retryDelayMs: 300 } });
  const url = `${receiver.url}/tg`;
  if (webhook.url !== null) expect((await sim.api("setWebhook", { url, secret_token: "segredo_do_gateway-123", ...webhook })).status).toBe(200);
  const received = async (): Promise<Received[]> => (await fetch(`${receiver.url}/received/tg`)).json();
  const updates = async () => (await received()).filter((r) => r.status === 200).map((r) => JSON.parse(r.body) as Json);
  const inbound = (body: Record<string, unknown>) => sim.control("POST", "/inbound", { token: TOKEN, ...body });
  const fail = (times: number, status = 500) => fetch(`${receiver.url}/fail/tg`, { method: "POST", body: JSON.stringify({ times, status }) });
  const info = async () => (await sim.api("getWebhookInfo")).body.result as Json;
  return { sim, url, received, updates, inbound, fail, info };
}

describe("inbound updates to the webhook", () => {
  it("posts a faithful Update with the secret header; update_id counts up; the bot's reply takes the chat's next message id", async () => {
    const h = await harness();
    const first = await h.inbound({ chatId: 424242001, text: "Oi", from: { id: 424242001, first_name: "Ana", username: "ana" }, wait: true });
    expect(first.status).toBe(200);
    expect(first.body.deliveries).toMatchObject([{ outcome: "delivered", status: 200, attempts: 1, duplicate: false, chatId: 424242001 }]);
    const [got] = await h.received();
    expect(got?.headers["x-telegram-bot-api-secret-token"]).toBe("segredo_do_gateway-123");
    expect(got?.headers["content-type"]).toContain("application/json");
    expect(JSON.parse(got?.body ?? "")).toEqual({
      update_id: first.body.update.update_id,
      message: {
        message_id: 1,
        from: { id: 424242001, is_bot: false, first_name: "Ana", username: "ana" },
        chat: { id: 424242001, type: "private", first_name: "Ana", username: "ana" },
        date: expect.any(Number),
        text: "Oi",
      },
    });
    // The user wrote, so the chat exists for the bot now.
    expect((await h.sim.api("sendMessage", { chat_id: 424242001, text: "Olá, Ana" })).body.result.message_id).toBe(2);
    const second = await h.inbound({ chatId: 424242001, text: "Tudo bem?", wait: true });
    expect(second.body.update.update_id).toBe(first.body.update.update_id + 1);
    expect(second.body.update.message.message_id).toBe(3);
    expect((await h.updates()).map((u) => u.message.text)).toEqual(["Oi", "Tudo bem?"]);
    expect(await h.info()).toMatchObject({ pending_update_count: 0 });
  });

  it("delivers one chat's updates in sequence: the next waits for the previous 2xx, retried with backoff, reported in getWebhookInfo", async () => {
    const h = await harness();
    await h.fail(3);
    const a = await h.inbound({ chatId: 77, text: "primeira" });
    const b = await h.inbound({ chatId: 77, text: "segunda" });
    expect(a.status).toBe(202);
    // While the first is refused, both wait and the error shows.
    await expect
      .poll(
        async () => {
          const info = await h.info();
          return { pending: info.pending_update_count, error: info.last_error_message, dated: typeof info.last_error_date === "number" };
        },
        { timeout: 10_000 },
      )
      .toEqual({ pending: 2, error: "Wrong response from the webhook: 500 Internal Server Error", dated: true });
    await expect.poll(async () => (await h.updates()).length, { timeout: 15_000 }).toBe(2);
    const seen = (await h.received()).map((r) => [JSON.parse(r.body).update_id, r.status]);
    const [ida, idb] = [a.body.update.update_id, b.body.update.update_id];
    expect(seen).toEqual([
      [ida, 500],
      [ida, 500],
      [ida, 500],
      [ida, 200],
      [idb, 200],
    ]);
    // The receiver answered before the simulator took the update off its queue: wait for that.
    await expect.poll(async () => (await h.info()).pending_update_count, { timeout: 10_000 }).toBe(0);
    const deliveries = (await h.sim.control("GET", `/deliveries?token=${encodeURIComponent(TOKEN)}&chatId=77`)).body.deliveries;
    expect(deliveries.map((d: Json) => [d.updateId, d.attempts, d.outcome])).toEqual([
      [ida, 4, "delivered"],
      [idb, 1, "delivered"],
    ]);
  });

  it("gives up on an update after the configured attempts and moves on to the next", async () => {
    const h = await harness();
    await h.sim.control("PATCH", "/config", { webhook: { maxAttempts: 2, retryDelayMs: 10 } });
    await h.fail(2, 503);
    const lost = await h.inbound({ chatId: 8, text: "perdida", wait: true });
    expect(lost.body.deliveries).toMatchObject([{ outcome: "failed", attempts: 2, status: 503 }]);
    await h.inbound({ chatId: 8, text: "depois", wait: true });
    expect((await h.updates()).map((u) => u.message.text)).toEqual(["depois"]);
  });

  it("holds updates while no webhook is set (pending_update_count) and delivers them once one is; drop_pending_updates drops them", async () => {
    const h = await harness({ url: null });
    const held = await h.inbound({ chatId: 5, text: "guardada" });
    expect(held.body).toMatchObject({ queued: true, deliveries: [] });
    expect(await h.info()).toMatchObject({ url: "", pending_update_count: 1 });
    await h.sim.api("setWebhook", { url: h.url, secret_token: "abc" });
    await expect.poll(async () => (await h.updates()).map((u) => u.message.text), { timeout: 10_000 }).toEqual(["guardada"]);
    await expect.poll(async () => (await h.info()).pending_update_count, { timeout: 10_000 }).toBe(0);

    await h.sim.api("deleteWebhook");
    const dropped = await h.inbound({ chatId: 5, text: "descartada" });
    expect(await h.info()).toMatchObject({ pending_update_count: 1 });
    await h.sim.api("setWebhook", { url: h.url, secret_token: "abc", drop_pending_updates: true });
    expect(await h.info()).toMatchObject({ pending_update_count: 0 });
    await h.inbound({ chatId: 5, text: "nova", wait: true });
    const ids = (await h.updates()).map((u) => u.update_id);
    expect(ids).not.toContain(dropped.body.update.update_id);
    expect((await h.updates()).map((u) => u.message.text)).toEqual(["guardada", "nova"]);
  });

  it("sends no secret header when none was set, and only the allowed update kinds", async () => {
    const h = await harness({ url: null });
    await h.sim.api("setWebhook", { url: h.url, allowed_updates: ["callback_query"] });
    await h.sim.chat(6);
    await h.sim.api("sendMessage", { chat_id: 6, text: "Escolha", reply_markup: { inline_keyboard: [[{ text: "Sim", callback_data: "yes" }]] } });
    const text = await h.inbound({ chatId: 6, text: "ignorada", wait: true });
    expect(text.body.queued).toBe(false);
    const press = await h.inbound({ chatId: 6, callbackData: "yes", wait: true });
    expect(press.body.queued).toBe(true);
    const got = await h.received();
    expect(got).toHaveLength(1);
    expect(got[0]?.headers["x-telegram-bot-api-secret-token"]).toBeUndefined();
    expect(JSON.parse(got[0]?.body ?? "").callback_query).toMatchObject({
      data: "yes",
      message: { message_id: 1, text: "Escolha", from: { id: 123456, is_bot: true } },
    });
  });

  it("posts an update twice on the duplicate fault, scripted or seeded", async () => {
    const h = await harness();
    const once = await h.inbound({ chatId: 9, text: "duas vezes", duplicate: true, wait: true });
    expect(once.body.deliveries.map((d: Json) => [d.duplicate, d.outcome])).toEqual([
      [false, "delivered"],
      [true, "delivered"],
    ]);
    await h.sim.control("PATCH", "/config", { faults: { duplicateDeliveryRate: 1 } });
    const seeded = await h.inbound({ chatId: 9, text: "de novo", wait: true });
    expect(seeded.body.deliveries).toHaveLength(2);
    expect((await h.updates()).map((u) => u.update_id)).toEqual([
      once.body.update.update_id,
      once.body.update.update_id,
      seeded.body.update.update_id,
      seeded.body.update.update_id,
    ]);
  });
});

describe("update kinds", () => {
  it("builds media, location, contact, edits, callback queries, group messages and channel posts", async () => {
    const h = await harness();
    const body = async (input: Record<string, unknown>) => {
      const res = await h.inbound({ chatId: 31, ...input });
      expect(res.status).toBe(202);
      return res.body.update as Json;
    };
    const photo = await body({ photo: true, caption: "foto" });
    expect(photo.message.caption).toBe("foto");
    expect(photo.message.photo.at(-1)).toEqual({
      file_id: expect.any(String),
      file_unique_id: expect.any(String),
      width: expect.any(Number),
      height: expect.any(Number),
      file_size: expect.any(Number),
    });
    expect((await body({ document: { file_name: "nota.pdf", mime_type: "application/pdf" } })).message.document).toMatchObject({
      file_name: "nota.pdf",
      mime_type: "application/pdf",
      file_id: expect.any(String),
    });
    expect((await body({ voice: true })).message.voice).toMatchObject({ duration: expect.any(Number), mime_type: "audio/ogg" });
    expect((await body({ video: true })).message.video).toMatchObject({ width: expect.any(Number), height: expect.any(Number), duration: expect.any(Number) });
    expect((await body({ sticker: true })).message.sticker).toMatchObject({ type: "regular", is_animated: false, is_video: false, emoji: expect.any(String) });
    expect((await body({ location: { latitude: -23.55, longitude: -46.63 } })).message.location).toEqual({ latitude: -23.55, longitude: -46.63 });
    expect((await body({ contact: { phone_number: "+5511987654321", first_name: "Bia" } })).message.contact).toEqual({
      phone_number: "+5511987654321",
      first_name: "Bia",
    });

    const original = await body({ text: "olá" });
    const edit = await body({ text: "olá!", edited: true });
    expect(edit.message).toBeUndefined();
    expect(edit.edited_message).toMatchObject({
      message_id: original.message.message_id,
      text: "olá!",
      edit_date: expect.any(Number),
      date: original.message.date,
    });

    // A file a user sent can be sent back by its file_id.
    await h.sim.control("PATCH", "/config", { limits: { enabled: false } });
    expect((await h.sim.api("sendPhoto", { chat_id: 31, photo: photo.message.photo.at(-1).file_id })).status).toBe(200);
    const press = await body({ callbackData: "pedido:42" });
    expect(press.callback_query).toMatchObject({
      id: expect.any(String),
      chat_instance: expect.any(String),
      data: "pedido:42",
      from: { id: 31 },
      message: { from: { id: 123456 } },
    });

    const group = await h.inbound({
      chatId: -1001555000111,
      chatType: "supergroup",
      chatTitle: "Clientes",
      from: { id: 501, first_name: "Caio" },
      text: "oi grupo",
    });
    expect(group.body.update.message).toMatchObject({
      chat: { id: -1001555000111, type: "supergroup", title: "Clientes" },
      from: { id: 501, is_bot: false, first_name: "Caio" },
    });
    const post = await h.inbound({ chatId: -1001555000222, chatType: "channel", chatTitle: "Avisos", text: "aviso" });
    expect(post.body.update.channel_post).toMatchObject({ chat: { type: "channel", title: "Avisos" }, sender_chat: { id: -1001555000222 }, text: "aviso" });
    expect(post.body.update.channel_post.from).toBeUndefined();

    expect((await h.inbound({ chatId: 31 })).status).toBe(400);
    // A press on a message the bot no longer has: Telegram's InaccessibleMessage.
    const stale = await h.inbound({ chatId: 32, callbackData: "x", messageId: 17 });
    expect(stale.body.update.callback_query).toMatchObject({ data: "x", message: { chat: { id: 32 }, message_id: 17, date: 0 } });
    expect((await h.sim.control("POST", "/inbound", { token: "1:nope", chatId: 1, text: "x" })).status).toBe(404);
    await expect.poll(async () => (await h.info()).pending_update_count, { timeout: 10_000 }).toBe(0);
  });
});
