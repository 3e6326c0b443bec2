// The Bot API methods: answers and errors as Telegram gives them, chats of every kind and their
// marks (blocked, never started, migrated), bodies in every encoding, and the record of calls.
import { describe, expect, it } from "vitest";
import { OTHER_TOKEN, setup, TOKEN } from "./support.ts";

describe("calling the Bot API", () => {
  it("getMe answers the bot; a wrong token is 401 Unauthorized; an unknown method 404 Not Found", async () => {
    const sim = setup();
    const me = await sim.api("getMe");
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      ok: true,
      result: expect.objectContaining({
        id: 123456,
        is_bot: true,
        first_name: "Loja",
        username: "loja_bot",
        can_join_groups: true,
        can_read_all_group_messages: false,
      }),
    });
    expect(await sim.api("getMe", {}, "123456:wrong")).toMatchObject({ status: 401, body: { ok: false, error_code: 401, description: "Unauthorized" } });
    expect(await sim.api("getMe", {}, OTHER_TOKEN)).toMatchObject({ status: 401, body: { ok: false, error_code: 401 } });
    expect(await sim.api("getMee")).toMatchObject({ status: 404, body: { ok: false, error_code: 404, description: "Not Found" } });
    // GET with the parameters in the query string, and method names in any case.
    expect((await sim.request(`/bot${TOKEN}/GETME`)).body.result.id).toBe(123456);
    expect((await sim.calls()).map((c) => [c.method, c.status])).toEqual([
      ["getMe", 200],
      ["getMee", 404],
      ["getMe", 200],
    ]);
  });

  it("bots are created through the control API with a <id>:<secret> token; the token is never shown", async () => {
    const sim = setup();
    const created = await sim.control("POST", "/bots", { token: OTHER_TOKEN, username: "outro_bot", first_name: "Outro" });
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.body)).not.toContain("other-secret");
    expect((await sim.api("getMe", {}, OTHER_TOKEN)).body.result).toMatchObject({ id: 654321, username: "outro_bot" });
    expect((await sim.control("POST", "/bots", { token: "no-colon", username: "x_bot", first_name: "X" })).status).toBe(400);
    const listed = await sim.control("GET", "/bots");
    expect(listed.body.bots.map((b: { username: string }) => b.username)).toEqual(["loja_bot", "outro_bot"]);
    expect(JSON.stringify(listed.body)).not.toContain("secret");
  });
});

describe("sendMessage", () => {
  it("sends to a known chat: a Message with the chat's next message_id, the bot as from, the date and the text", async () => {
    const sim = setup();
    await sim.chat(424242001, { first_name: "Ana", username: "ana" });
    await sim.chat(424242002);
    const first = await sim.api("sendMessage", { chat_id: 424242001, text: "Olá" });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      ok: true,
      result: {
        message_id: 1,
        from: { id: 123456, is_bot: true, first_name: "Loja", username: "loja_bot" },
        chat: { id: 424242001, type: "private", first_name: "Ana", username: "ana" },
        date: expect.any(Number),
        text: "Olá",
      },
    });
    expect(Math.abs(first.body.result.date - Date.now() / 1000)).toBeLessThan(60);
    // Message ids count per chat.
    expect((await sim.api("sendMessage", { chat_id: "424242001", text: "de novo" })).body.result.message_id).toBe(2);
    expect((await sim.api("sendMessage", { chat_id: 424242002, text: "outro" })).body.result.message_id).toBe(1);
    const calls = await sim.calls("&chatId=424242001");
    expect(calls.map((c) => [c.method, c.status, c.sent, c.messageId])).toEqual([
      ["sendMessage", 200, true, 1],
      ["sendMessage", 200, true, 2],
    ]);
    expect(calls[0].params).toEqual({ chat_id: 424242001, text: "Olá" });
  });

  it("refuses empty and too long texts, a missing chat_id and an unknown chat, and sends nothing", async () => {
    const sim = setup();
    await sim.chat(7);
    expect((await sim.api("sendMessage", { chat_id: 7, text: "   " })).body).toEqual({
      ok: false,
      error_code: 400,
      description: "Bad Request: message text is empty",
    });
    expect((await sim.api("sendMessage", { chat_id: 7 })).body.description).toBe("Bad Request: message text is empty");
    expect((await sim.api("sendMessage", { chat_id: 7, text: "a".repeat(4097) })).body.description).toBe("Bad Request: message is too long");
    expect((await sim.api("sendMessage", { text: "x" })).body.description).toBe("Bad Request: chat_id is empty");
    const unknown = await sim.api("sendMessage", { chat_id: 999, text: "x" });
    expect(unknown).toMatchObject({ status: 400, body: { ok: false, error_code: 400, description: "Bad Request: chat not found" } });
    expect((await sim.api("sendMessage", { chat_id: "@nobody_here", text: "x" })).body.description).toBe("Bad Request: chat not found");
    // 4,096 characters is the limit, counted in characters, not UTF-16 units.
    expect((await sim.api("sendMessage", { chat_id: 7, text: "😀".repeat(4096) })).status).toBe(200);
    expect((await sim.calls()).map((c) => c.sent)).toEqual([false, false, false, false, false, false, true]);
    expect((await sim.api("sendMessage", { chat_id: 7, text: "ok" })).body.result.message_id).toBe(2);
  });

  it("reads form-urlencoded, multipart and query-string parameters like JSON", async () => {
    const sim = setup();
    await sim.chat(42);
    const form = await sim.request(`/bot${TOKEN}/sendMessage`, { method: "POST", body: new URLSearchParams({ chat_id: "42", text: "form" }) });
    expect(form.body.result).toMatchObject({ message_id: 1, text: "form", chat: { id: 42 } });
    const data = new FormData();
    data.set("chat_id", "42");
    data.set("text", "multipart");
    expect((await sim.request(`/bot${TOKEN}/sendMessage`, { method: "POST", body: data })).body.result).toMatchObject({ message_id: 2, text: "multipart" });
    expect((await sim.request(`/bot${TOKEN}/sendMessage?chat_id=42&text=query`)).body.result).toMatchObject({ message_id: 3, text: "query" });
    const broken = await sim.request(`/bot${TOKEN}/sendMessage`, { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" });
    expect(broken).toMatchObject({ status: 400, body: { ok: false, error_code: 400 } });
  });

  it("knows groups (negative ids), supergroups (-100…), channels by @username, and signs channel posts with the channel", async () => {
    const sim = setup();
    await sim.chat(-4012345678, { title: "Família" });
    await sim.chat(-1001234567890, { title: "Loja — clientes" });
    await sim.chat(-1009876543210, { type: "channel", title: "Novidades", username: "loja_novidades" });
    expect((await sim.api("sendMessage", { chat_id: -4012345678, text: "g" })).body.result.chat).toEqual({ id: -4012345678, type: "group", title: "Família" });
    expect((await sim.api("sendMessage", { chat_id: "-1001234567890", text: "s" })).body.result.chat).toEqual({
      id: -1001234567890,
      type: "supergroup",
      title: "Loja — clientes",
    });
    const post = await sim.api("sendMessage", { chat_id: "@loja_novidades", text: "c" });
    expect(post.body.result).toMatchObject({
      message_id: 1,
      chat: { id: -1009876543210, type: "channel", username: "loja_novidades" },
      sender_chat: { id: -1009876543210 },
    });
    expect(post.body.result.from).toBeUndefined();
  });

  it("answers 403 for a chat that blocked the bot or never started it, 400 with migrate_to_chat_id for an upgraded group", async () => {
    const sim = setup();
    await sim.chat(11, { state: "blocked" });
    await sim.chat(12, { state: "never-started" });
    await sim.chat(-555, { title: "Antigo" });
    expect((await sim.control("PUT", "/chats", { token: TOKEN, chatId: -555, migrateTo: -1005550000000 })).status).toBe(200);
    expect(await sim.api("sendMessage", { chat_id: 11, text: "x" })).toMatchObject({
      status: 403,
      body: { ok: false, error_code: 403, description: "Forbidden: bot was blocked by the user" },
    });
    expect(await sim.api("sendChatAction", { chat_id: 11, action: "typing" })).toMatchObject({ status: 403 });
    expect((await sim.api("sendMessage", { chat_id: 12, text: "x" })).body).toEqual({
      ok: false,
      error_code: 403,
      description: "Forbidden: bot can't initiate conversation with a user",
    });
    expect((await sim.api("sendMessage", { chat_id: -555, text: "x" })).body).toEqual({
      ok: false,
      error_code: 400,
      description: "Bad Request: group chat was upgraded to a supergroup chat",
      parameters: { migrate_to_chat_id: -1005550000000 },
    });
    // The new id works, as a supergroup with the group's title.
    expect((await sim.api("sendMessage", { chat_id: -1005550000000, text: "x" })).body.result.chat).toEqual({
      id: -1005550000000,
      type: "supergroup",
      title: "Antigo",
    });
    // Unblocked again through the control API.
    await sim.chat(11, { state: "active" });
    expect((await sim.api("sendMessage", { chat_id: 11, text: "x" })).status).toBe(200);
    expect((await sim.calls()).filter((c) => c.sent).map((c) => c.chatId)).toEqual([-1005550000000, 11]);
  });

  it("anyChat makes every numeric chat id exist (for load runs)", async () => {
    const sim = setup();
    expect((await sim.control("PATCH", "/config", { anyChat: true })).body.anyChat).toBe(true);
    expect((await sim.api("sendMessage", { chat_id: 31337, text: "x" })).body.result.chat).toEqual({ id: 31337, type: "private", first_name: "User 31337" });
    expect((await sim.api("sendMessage", { chat_id: "@still_unknown", text: "x" })).status).toBe(400);
  });
});

describe("media and chat actions", () => {
  it("sends photo, video, audio, document and voice by URL with a caption, and again by the file_id it answered", async () => {
    const sim = setup();
    // Six sends in a row to one chat: past the burst flood control allows.
    await sim.control("PATCH", "/config", { limits: { enabled: false } });
    await sim.chat(9);
    const photo = await sim.api("sendPhoto", { chat_id: 9, photo: "https://cdn.example.com/p/foto.jpg", caption: "Nota fiscal" });
    expect(photo.body.result).toMatchObject({ message_id: 1, caption: "Nota fiscal" });
    const sizes = photo.body.result.photo;
    expect(sizes.length).toBeGreaterThan(1);
    for (const size of sizes)
      expect(size).toEqual({
        file_id: expect.any(String),
        file_unique_id: expect.any(String),
        width: expect.any(Number),
        height: expect.any(Number),
        file_size: expect.any(Number),
      });
    // Largest last.
    expect(sizes.at(-1).width).toBeGreaterThan(sizes[0].width);
    const again = await sim.api("sendPhoto", { chat_id: 9, photo: sizes.at(-1).file_id });
    expect(again.body.result.photo.at(-1).file_unique_id).toBe(sizes.at(-1).file_unique_id);
    expect(again.body.result.caption).toBeUndefined();
    expect((await sim.api("sendPhoto", { chat_id: 9, photo: sizes[0].file_id })).status).toBe(200);

    const video = await sim.api("sendVideo", { chat_id: 9, video: "https://cdn.example.com/v.mp4", caption: "v" });
    expect(video.body.result.video).toMatchObject({
      file_id: expect.any(String),
      file_unique_id: expect.any(String),
      width: expect.any(Number),
      height: expect.any(Number),
      duration: expect.any(Number),
      mime_type: "video/mp4",
    });
    const audio = await sim.api("sendAudio", { chat_id: 9, audio: "https://cdn.example.com/musica.mp3" });
    expect(audio.body.result.audio).toMatchObject({ duration: expect.any(Number), file_name: "musica.mp3", mime_type: "audio/mpeg" });
    const doc = await sim.api("sendDocument", { chat_id: 9, document: "https://cdn.example.com/boleto.pdf", caption: "Boleto" });
    expect(doc.body.result).toMatchObject({ caption: "Boleto", document: { file_name: "boleto.pdf", mime_type: "application/pdf" } });
    const voice = await sim.api("sendVoice", { chat_id: 9, voice: "https://cdn.example.com/a.ogg" });
    expect(voice.body.result.voice).toMatchObject({ duration: expect.any(Number), mime_type: "audio/ogg" });
    expect((await sim.calls()).map((c) => [c.method, c.messageId])).toEqual([
      ["sendPhoto", 1],
      ["sendPhoto", 2],
      ["sendPhoto", 3],
      ["sendVideo", 4],
      ["sendAudio", 5],
      ["sendDocument", 6],
      ["sendVoice", 7],
    ]);
  });

  it("refuses a long caption, a missing file, a file_id it never gave and a file of another kind", async () => {
    const sim = setup();
    await sim.control("PATCH", "/config", { limits: { enabled: false } });
    await sim.chat(9);
    expect((await sim.api("sendPhoto", { chat_id: 9, photo: "https://x.example/a.jpg", caption: "c".repeat(1025) })).body.description).toBe(
      "Bad Request: message caption is too long",
    );
    expect((await sim.api("sendPhoto", { chat_id: 9, photo: "https://x.example/a.jpg", caption: "c".repeat(1024) })).status).toBe(200);
    expect((await sim.api("sendDocument", { chat_id: 9 })).body.description).toBe("Bad Request: there is no document in the request");
    expect((await sim.api("sendVideo", { chat_id: 9, video: "BAACAgEAAxkBAAmadeup" })).body.description).toBe(
      "Bad Request: wrong file identifier/HTTP URL specified",
    );
    const doc = await sim.api("sendDocument", { chat_id: 9, document: "https://x.example/a.pdf" });
    expect((await sim.api("sendVoice", { chat_id: 9, voice: doc.body.result.document.file_id })).status).toBe(400);
  });

  it("takes a multipart upload", async () => {
    const sim = setup();
    await sim.chat(9);
    const data = new FormData();
    data.set("chat_id", "9");
    data.set("document", new File(["%PDF-1.7 hello"], "recibo.pdf", { type: "application/pdf" }));
    data.set("caption", "Recibo");
    const res = await sim.request(`/bot${TOKEN}/sendDocument`, { method: "POST", body: data });
    expect(res.body.result).toMatchObject({ caption: "Recibo", document: { file_name: "recibo.pdf", mime_type: "application/pdf", file_size: 14 } });
    expect((await sim.calls())[0].params.document).toEqual({ upload: "recibo.pdf", size: 14, type: "application/pdf" });
  });

  it("sendChatAction answers true for a known action and refuses an unknown one", async () => {
    const sim = setup();
    await sim.chat(9);
    expect((await sim.api("sendChatAction", { chat_id: 9, action: "typing" })).body).toEqual({ ok: true, result: true });
    expect((await sim.api("sendChatAction", { chat_id: 9, action: "dancing" })).body.description).toBe("Bad Request: wrong parameter action in request");
    expect((await sim.api("sendChatAction", { chat_id: 404, action: "typing" })).body.description).toBe("Bad Request: chat not found");
    expect((await sim.calls("&method=sendChatAction")).map((c) => [c.status, c.sent])).toEqual([
      [200, false],
      [400, false],
      [400, false],
    ]);
  });
});

describe("setWebhook, getWebhookInfo, deleteWebhook", () => {
  it("sets a webhook with a secret token and reports it; validates the secret; deletes it", async () => {
    const sim = setup();
    expect((await sim.api("getWebhookInfo")).body).toEqual({ ok: true, result: { url: "", has_custom_certificate: false, pending_update_count: 0 } });
    const set = await sim.api("setWebhook", {
      url: "https://gw.example/webhooks/telegram/abc",
      secret_token: "s3cr3t_-TOKEN",
      allowed_updates: ["message", "edited_message"],
      max_connections: 10,
    });
    expect(set.body).toEqual({ ok: true, result: true, description: "Webhook was set" });
    const info = await sim.api("getWebhookInfo");
    expect(info.body.result).toMatchObject({
      url: "https://gw.example/webhooks/telegram/abc",
      has_custom_certificate: false,
      pending_update_count: 0,
      max_connections: 10,
      allowed_updates: ["message", "edited_message"],
    });
    expect(info.body.result.last_error_date).toBeUndefined();
    expect((await sim.api("setWebhook", { url: "https://gw.example/webhooks/telegram/abc", secret_token: "s3cr3t_-TOKEN" })).body.description).toBe(
      "Webhook is already set",
    );

    expect((await sim.api("setWebhook", { url: "https://gw.example/x", secret_token: "has space" })).body).toEqual({
      ok: false,
      error_code: 400,
      description: "Bad Request: secret token contains unallowed characters",
    });
    expect((await sim.api("setWebhook", { url: "https://gw.example/x", secret_token: "a:b" })).status).toBe(400);
    expect((await sim.api("setWebhook", { url: "https://gw.example/x", secret_token: "a".repeat(257) })).status).toBe(400);
    expect((await sim.api("setWebhook", { url: "https://gw.example/x", secret_token: "a".repeat(256) })).status).toBe(200);
    expect((await sim.api("setWebhook", { url: "not a url" })).body.description).toBe("Bad Request: invalid webhook URL specified");
    // Form bodies carry allowed_updates as JSON text.
    const form = await sim.request(`/bot${TOKEN}/setWebhook`, {
      method: "POST",
      body: new URLSearchParams({ url: "https://gw.example/y", allowed_updates: '["callback_query"]' }),
    });
    expect(form.status).toBe(200);
    expect((await sim.api("getWebhookInfo")).body.result.allowed_updates).toEqual(["callback_query"]);

    expect((await sim.api("deleteWebhook")).body).toEqual({ ok: true, result: true, description: "Webhook was deleted" });
    expect((await sim.api("deleteWebhook")).body.description).toBe("Webhook is already deleted");
    expect((await sim.api("getWebhookInfo")).body.result.url).toBe("");
  });
});
