// The simulator against Evolution's real shapes (shapes.ts, test/fixtures/evolution/): routes, guard order, validation errors, faults, records, webhooks.
import { createServer, type IncomingMessage, type Server } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createSimulator } from "./app.ts";
import type { SimulatorConfig } from "./config.ts";
import { startSimulator, type RunningSimulator } from "./server.ts";
import { eventually } from "../test/support/wait.ts";

const KEY = "sim-key";
// Response bodies are checked with expect(), so they are read loosely typed.
const readJson = async (res: Response): Promise<any> => res.json();
const quiet: Partial<SimulatorConfig> = { sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 };

function setup(config: Partial<SimulatorConfig> = {}) {
  const sim = createSimulator({ ...quiet, instances: [{ name: "loja-centro", apikey: KEY }], ...config });
  const call = async (path: string, init: { method?: string; json?: unknown; apikey?: string | null } = {}) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (init.apikey !== null) headers.apikey = init.apikey ?? KEY;
    const res = await sim.app.request(path, { method: init.method ?? "POST", headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) });
    return { status: res.status, body: await readJson(res) };
  };
  const control = async (path: string, method = "GET", json?: unknown) => {
    const res = await sim.app.request(`/_sim${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    return { status: res.status, body: res.status === 204 ? undefined : await readJson(res) };
  };
  return { ...sim, call, control };
}

const badRequest = (message: unknown) => ({ status: 400, error: "Bad Request", response: { message } });
const bytes32 = expect.objectContaining({ "0": expect.any(Number), "31": expect.any(Number) });
const keyId = expect.stringMatching(/^3EB0[0-9A-F]{18}$/);

describe("sends", () => {
  it("sendText answers 201 with the messageRaw of sendText.json", async () => {
    const sim = setup();
    const before = Math.floor(Date.now() / 1000);
    const res = await sim.call("/message/sendText/loja-centro", {
      json: { number: "+55 (11) 98765-4321", text: "Olá Maria!", delay: 1200, linkPreview: false },
    });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      key: { remoteJid: "5511987654321@s.whatsapp.net", fromMe: true, id: keyId },
      pushName: "Você",
      status: "PENDING",
      message: { conversation: "Olá Maria!" },
      contextInfo: {
        mentionedJid: [],
        groupMentions: [],
        ephemeralSettingTimestamp: { low: expect.any(Number), high: 0, unsigned: false },
        disappearingMode: { initiator: 0 },
      },
      messageType: "conversation",
      messageTimestamp: expect.any(Number),
      instanceId: sim.state.instances.get("loja-centro")?.instanceId,
      source: "web",
    });
    expect(res.body.messageTimestamp).toBeGreaterThanOrEqual(before);
    expect(res.body.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    const again = await sim.call("/message/sendText/loja-centro", { json: { number: "5511987654321", text: "de novo" } });
    expect(again.body.key.id).not.toBe(res.body.key.id);
  });

  it("sendText to a group with quote and mention carries them in contextInfo", async () => {
    const sim = setup();
    const res = await sim.call("/message/sendText/loja-centro", {
      json: {
        number: "120363041234567890@g.us",
        text: "@5521976543210 trocamos sua caixa",
        mentioned: ["5521976543210"],
        quoted: {
          key: { id: "C0FFEE00112233445566778899AABBCC", remoteJid: "120363041234567890@g.us", fromMe: false, participant: "190283746519283@lid" },
          message: { conversation: "Chegou amassada" },
        },
      },
    });
    expect(res.status).toBe(201);
    expect(res.body.key.remoteJid).toBe("120363041234567890@g.us");
    expect(res.body.contextInfo).toEqual({
      stanzaId: "C0FFEE00112233445566778899AABBCC",
      participant: "190283746519283@lid",
      quotedMessage: { conversation: "Chegou amassada" },
      mentionedJid: ["5521976543210@s.whatsapp.net"],
    });
    // 18+ digits become a group JID.
    const bare = await sim.call("/message/sendText/loja-centro", { json: { number: "120363041234567890", text: "x" } });
    expect(bare.body.key.remoteJid).toBe("120363041234567890@g.us");
  });

  it("sendMedia answers with imageMessage / documentMessage like the reference files", async () => {
    const sim = setup();
    const image = await sim.call("/message/sendMedia/loja-centro", {
      json: {
        number: "5511987654321",
        mediatype: "image",
        mimetype: "image/png",
        caption: "Catálogo",
        media: "https://cdn.example.com/catalogo/outubro.png",
        fileName: "outubro.png",
        delay: 800,
      },
    });
    expect(image.status).toBe(201);
    expect(image.body).toMatchObject({
      key: { remoteJid: "5511987654321@s.whatsapp.net", fromMe: true, id: keyId },
      pushName: "Você",
      status: "PENDING",
      messageType: "imageMessage",
      source: "web",
    });
    expect(image.body.message.imageMessage).toEqual({
      url: expect.stringMatching(/^https:\/\/mmg\.whatsapp\.net\/.+&mms3=true$/),
      mimetype: "image/png",
      caption: "Catálogo",
      fileSha256: bytes32,
      fileLength: { low: expect.any(Number), high: 0, unsigned: true },
      height: expect.any(Number),
      width: expect.any(Number),
      mediaKey: bytes32,
      fileEncSha256: bytes32,
      directPath: expect.stringMatching(/^\/o1\/v\//),
      mediaKeyTimestamp: { low: expect.any(Number), high: 0, unsigned: false },
    });

    const pdf = Buffer.from("%PDF-1.4 boleto de outubro").toString("base64");
    const doc = await sim.call("/message/sendMedia/loja-centro", {
      json: {
        number: "5511987654321@s.whatsapp.net",
        mediatype: "document",
        mimetype: "application/pdf",
        caption: "Boleto",
        fileName: "boleto-outubro.pdf",
        media: pdf,
      },
    });
    expect(doc.status).toBe(201);
    expect(doc.body.messageType).toBe("documentMessage");
    expect(doc.body.message.documentMessage).toMatchObject({
      mimetype: "application/pdf",
      fileName: "boleto-outubro.pdf",
      caption: "Boleto",
      fileLength: { low: 26, high: 0, unsigned: true },
    });

    const video = await sim.call("/message/sendMedia/loja-centro", {
      json: { number: "5511987654321", mediatype: "video", media: "https://cdn.example.com/v.mp4" },
    });
    expect(video.body.message.videoMessage).toMatchObject({ mimetype: "video/mp4", seconds: expect.any(Number) });
  });

  it("sendWhatsAppAudio answers with a voice note (ptt, ogg/opus)", async () => {
    const sim = setup();
    const res = await sim.call("/message/sendWhatsAppAudio/loja-centro", {
      json: { number: "5511987654321", audio: "https://cdn.example.com/audios/boas-vindas.mp3", delay: 2000, encoding: true },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      key: { remoteJid: "5511987654321@s.whatsapp.net", fromMe: true, id: keyId },
      messageType: "audioMessage",
      status: "PENDING",
      pushName: "Você",
      source: "web",
    });
    expect(res.body.message.audioMessage).toMatchObject({ mimetype: "audio/ogg; codecs=opus", ptt: true, seconds: expect.any(Number), fileSha256: bytes32 });
    expect(res.body.contextInfo).toBeUndefined();
  });

  it("waits latencyMs, and the request's delay only with honourDelay", async () => {
    const sim = setup({ latencyMs: 60 });
    const timed = async (json: unknown) => {
      const started = Date.now();
      expect((await sim.call("/message/sendText/loja-centro", { json })).status).toBe(201);
      return Date.now() - started;
    };
    expect(await timed({ number: "5511987654321", text: "x", delay: 300 })).toBeGreaterThanOrEqual(55);
    expect(await timed({ number: "5511987654321", text: "x", delay: 300 })).toBeLessThan(300);
    await sim.control("/config", "PATCH", { honourDelay: true, latencyMs: 0 });
    expect(await timed({ number: "5511987654321", text: "x", delay: 150 })).toBeGreaterThanOrEqual(145);
  });

  it("connectionState reports the instance state", async () => {
    const sim = setup();
    const res = await sim.call("/instance/connectionState/loja-centro", { method: "GET" });
    expect(res).toEqual({ status: 200, body: { instance: { instanceName: "loja-centro", state: "open" } } });
  });
});

describe("guards and errors", () => {
  it("an unknown instance is 404 before the apikey is looked at; a bad key is 401", async () => {
    const sim = setup();
    const unknown = await sim.call("/message/sendText/loja-norte", { json: { number: "5511987654321", text: "x" }, apikey: null });
    expect(unknown).toEqual({ status: 404, body: { status: 404, error: "Not Found", response: { message: ['The "loja-norte" instance does not exist'] } } });
    const unauthorized = { status: 401, body: { status: 401, error: "Unauthorized", response: { message: "Unauthorized" } } };
    expect(await sim.call("/message/sendText/loja-centro", { json: { number: "5511987654321", text: "x" }, apikey: null })).toEqual(unauthorized);
    expect(await sim.call("/message/sendText/loja-centro", { json: { number: "5511987654321", text: "x" }, apikey: "wrong" })).toEqual(unauthorized);
    expect((await sim.call("/instance/connectionState/loja-centro", { method: "GET", apikey: "wrong" })).status).toBe(401);
  });

  it("the global key works for every instance", async () => {
    const sim = setup({ globalApiKey: "global" });
    expect((await sim.call("/message/sendText/loja-centro", { json: { number: "5511987654321", text: "x" }, apikey: "global" })).status).toBe(201);
  });

  it("an unknown route is Express's 404", async () => {
    const sim = setup();
    expect(await sim.call("/message/sendTxt/loja-centro", { json: {} })).toEqual({
      status: 404,
      body: { status: 404, error: "Not Found", response: { message: ["Cannot POST /message/sendTxt/loja-centro"] } },
    });
  });

  it("validation errors use Evolution's messages", async () => {
    const sim = setup();
    const send = (route: string, json: unknown) => sim.call(`/message/${route}/loja-centro`, { json });
    expect(await send("sendText", { number: "5511987654321", textMessage: { text: "v1" } })).toEqual({
      status: 400,
      body: badRequest([['instance requires property "text"']]),
    });
    expect(await send("sendText", { number: "5511987654321", text: "   " })).toEqual({ status: 400, body: badRequest(["Text is required"]) });
    expect(await send("sendText", { number: 5511987654321, text: "x" })).toEqual({ status: 400, body: badRequest([["Invalid format"]]) });
    expect(await send("sendMedia", { number: "5511987654321", mediatype: "image", media: "data:image/png;base64,iVBORw0KGgo=" })).toEqual({
      status: 400,
      body: badRequest(["Owned media must be a url or base64"]),
    });
    expect(await send("sendMedia", { number: "5511987654321", mediatype: "image" })).toEqual({
      status: 400,
      body: badRequest(["Owned media must be a url or base64"]),
    });
    expect(await send("sendMedia", { number: "5511987654321", mediatype: "sticker", media: "https://cdn.example.com/a.webp" })).toEqual({
      status: 400,
      body: badRequest([["mediatype is not one of enum values: image,document,video,audio"]]),
    });
    expect(await send("sendMedia", { number: "5511987654321", mediatype: "document", media: "JVBERi0xLjQK" })).toEqual({
      status: 400,
      body: badRequest(["For base64 the file name must be informed."]),
    });
    expect(await send("sendWhatsAppAudio", { number: "5511987654321" })).toEqual({ status: 400, body: badRequest(["Owned media must be a url or base64"]) });
    expect(await send("sendMedia", { mediatype: "image" })).toEqual({ status: 400, body: badRequest([['instance requires property "number"']]) });
  });

  it("a number not on WhatsApp is 400 with exists:false", async () => {
    const sim = setup({ notOnWhatsApp: ["5511900000000"] });
    const res = await sim.call("/message/sendText/loja-centro", { json: { number: "+5511900000000", text: "existe?" } });
    expect(res).toEqual({ status: 400, body: badRequest([{ jid: "5511900000000@s.whatsapp.net", exists: false, number: "5511900000000" }]) });
  });

  it("failureRate 1 answers 500 Connection Closed", async () => {
    const sim = setup({ failureRate: 1 });
    const res = await sim.call("/message/sendText/loja-centro", { json: { number: "5511987654321", text: "x" } });
    expect(res).toEqual({ status: 500, body: { status: 500, error: "Internal Server Error", response: { message: "Connection Closed" } } });
  });
});

describe("scripted faults and the call record", () => {
  it("faults are used up by matching sends, in order, then sends succeed", async () => {
    const sim = setup();
    const sessionError = badRequest(["SessionError: No sessions"]);
    expect(
      (
        await sim.control("/faults", "POST", [
          { instance: "loja-centro", number: "+55 11 91234-0001", status: 400, body: sessionError, times: 2 },
          { number: "5511912340001", status: 429 },
        ])
      ).status,
    ).toBe(201);
    const send = (number: string) => sim.call("/message/sendText/loja-centro", { json: { number, text: "oi" } });
    expect(await send("5511912340002")).toMatchObject({ status: 201 });
    expect(await send("5511912340001")).toEqual({ status: 400, body: sessionError });
    expect(await send("5511912340001")).toEqual({ status: 400, body: sessionError });
    expect(await send("5511912340001")).toEqual({ status: 429, body: { status: 429, error: "Too Many Requests", response: { message: ["rate-overlimit"] } } });
    expect(await send("5511912340001")).toMatchObject({ status: 201 });
    expect((await sim.control("/faults")).body).toEqual({ faults: [] });

    const { calls } = (await sim.control("/calls?instance=loja-centro")).body;
    expect(calls.map((c: { seq: number; number: string; status: number }) => [c.seq, c.number, c.status])).toEqual([
      [1, "5511912340002", 201],
      [2, "5511912340001", 400],
      [3, "5511912340001", 400],
      [4, "5511912340001", 429],
      [5, "5511912340001", 201],
    ]);
    expect(calls[4]).toMatchObject({
      route: "sendText",
      instance: "loja-centro",
      body: { number: "5511912340001", text: "oi" },
      keyId,
      at: expect.any(Number),
    });
    expect(calls[1].keyId).toBeUndefined();
    expect((await sim.control("/calls?since=3")).body.calls.map((c: { seq: number }) => c.seq)).toEqual([4, 5]);
    expect((await sim.control("/calls?number=5511912340002")).body.calls).toHaveLength(1);
  });

  it("records failed requests too, and DELETE /calls clears calls, faults and webhooks", async () => {
    const sim = setup();
    await sim.call("/message/sendText/nope", { json: { number: "5511987654321", text: "x" } });
    await sim.call("/message/sendMedia/loja-centro", { json: { number: "5511987654321", mediatype: "image" }, apikey: "wrong" });
    await sim.control("/faults", "POST", { status: 503 });
    const { calls } = (await sim.control("/calls")).body;
    expect(calls.map((c: { route: string; status: number }) => [c.route, c.status])).toEqual([
      ["sendText", 404],
      ["sendMedia", 401],
    ]);
    expect((await sim.control("/calls", "DELETE")).status).toBe(204);
    expect((await sim.control("/calls")).body.calls).toEqual([]);
    expect((await sim.control("/faults")).body.faults).toEqual([]);
  });

  it("the control API validates its input", async () => {
    const sim = setup();
    expect((await sim.control("/faults", "POST", { status: "boom" })).status).toBe(400);
    expect((await sim.control("/config", "PATCH", { failureRate: 2 })).status).toBe(400);
    expect((await sim.control("/instances/x", "PUT", { webhookUrl: "not a url" })).status).toBe(400);
    const patched = await sim.control("/config", "PATCH", { latencyMs: 5, notOnWhatsApp: ["5511000000001"] });
    expect(patched.body).toMatchObject({ latencyMs: 5, notOnWhatsApp: ["5511000000001"], failureRate: 0 });
    expect((await sim.control("/instances/loja-sul", "PUT", { apikey: "k2", state: "connecting" })).status).toBe(201);
    expect((await sim.control("/instances")).body.instances.map((i: { name: string; state: string }) => [i.name, i.state])).toEqual([
      ["loja-centro", "open"],
      ["loja-sul", "connecting"],
    ]);
    // A send on an instance that is not open fails like a closed socket.
    expect((await sim.call("/message/sendText/loja-sul", { json: { number: "5511987654321", text: "x" }, apikey: "k2" })).status).toBe(500);
    expect((await sim.control("/health")).status).toBe(200);
  });
});

// A local receiver standing in for the gateway's webhook endpoint.
type Received = { path: string; body: any };
function receiver(answer: (n: number) => number = () => 200) {
  const received: Received[] = [];
  let n = 0;
  const server: Server = createServer((req: IncomingMessage, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      const status = answer(n++);
      if (status === 200) received.push({ path: req.url ?? "", body: JSON.parse(data) });
      res.writeHead(status, { "content-type": "application/json" }).end("{}");
    });
  });
  return {
    received,
    start: () =>
      new Promise<string>((resolve) =>
        server.listen(0, "127.0.0.1", () => {
          const address = server.address();
          resolve(`http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`);
        }),
      ),
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("over HTTP, with webhooks", () => {
  let sim: RunningSimulator;
  const hook = receiver();
  let hookUrl = "";
  const sim$ = (path: string, method = "GET", json?: unknown) =>
    fetch(`${sim.url}/_sim${path}`, { method, headers: { "content-type": "application/json" }, body: json === undefined ? undefined : JSON.stringify(json) });
  const send = (instance: string, json: unknown, apikey = KEY) =>
    fetch(`${sim.url}/message/sendText/${instance}`, { method: "POST", headers: { "content-type": "application/json", apikey }, body: JSON.stringify(json) });

  beforeAll(async () => {
    hookUrl = await hook.start();
    sim = await startSimulator({
      port: 0,
      sendMessageDelayMs: 10,
      deliveredDelayMs: 60,
      readDelayMs: 120,
      webhookRetryDelayMs: 20,
      serverUrl: "https://evo.example.com",
    });
  });
  afterAll(async () => {
    await sim.close();
    await hook.stop();
  });
  afterEach(() => {
    hook.received.length = 0;
  });

  it("posts send.message, then DELIVERY_ACK, then READ, in Evolution's envelope", async () => {
    await sim$("/instances/loja-centro", "PUT", { apikey: KEY, webhookUrl: `${hookUrl}/webhooks/evolution`, ownerNumber: "5511955550000" });
    const res = await send("loja-centro", { number: "5511987654321", text: "Olá Maria!" });
    expect(res.status).toBe(201);
    const raw = await readJson(res);
    const got = await eventually(() => hook.received.length >= 3 && hook.received, { timeout: 5_000, interval: 10 });
    expect(got.map((r) => [r.path, r.body.event, r.body.data.status])).toEqual([
      ["/webhooks/evolution", "send.message", "PENDING"],
      ["/webhooks/evolution", "messages.update", "DELIVERY_ACK"],
      ["/webhooks/evolution", "messages.update", "READ"],
    ]);
    const envelope = {
      instance: "loja-centro",
      destination: `${hookUrl}/webhooks/evolution`,
      date_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT.+Z$/),
      sender: "5511955550000@s.whatsapp.net",
      server_url: "https://evo.example.com",
      apikey: KEY,
    };
    expect(got[0]?.body).toEqual({ event: "send.message", data: raw, ...envelope });
    expect(got[1]?.body).toEqual({
      event: "messages.update",
      data: {
        keyId: raw.key.id,
        remoteJid: "5511987654321@s.whatsapp.net",
        fromMe: true,
        status: "DELIVERY_ACK",
        instanceId: raw.instanceId,
        messageId: expect.stringMatching(/^c[a-z0-9]{24}$/),
      },
      ...envelope,
    });
    expect(got[2]?.body.data.messageId).toBe(got[1]?.body.data.messageId);
    const log = await readJson(await sim$(`/webhooks?keyId=${raw.key.id}`));
    expect(log.webhooks.map((w: { event: string; status: number; attempts: number; outcome: string }) => [w.event, w.status, w.attempts, w.outcome])).toEqual([
      ["send.message", 200, 1, "delivered"],
      ["messages.update", 200, 1, "delivered"],
      ["messages.update", 200, 1, "delivered"],
    ]);
  });

  it("byEvents appends the event to the URL; groups get only SERVER_ACK", async () => {
    await sim$("/instances/loja-byevents", "PUT", { apikey: KEY, webhookUrl: `${hookUrl}/evo/`, byEvents: true });
    expect((await send("loja-byevents", { number: "5511987654321", text: "x" })).status).toBe(201);
    const got = await eventually(() => hook.received.length >= 3 && hook.received, { timeout: 5_000, interval: 10 });
    expect(got.map((r) => [r.path, r.body.data.status])).toEqual([
      ["/evo/send-message", "PENDING"],
      ["/evo/messages-update", "DELIVERY_ACK"],
      ["/evo/messages-update", "READ"],
    ]);
    expect(got[0]?.body.destination).toBe(`${hookUrl}/evo/`);

    hook.received.length = 0;
    expect((await send("loja-byevents", { number: "120363041234567890@g.us", text: "grupo" })).status).toBe(201);
    const keyOf = (r: (typeof hook.received)[number]) => r.body.data.keyId ?? r.body.data.key?.id;
    const group = await eventually(() => hook.received.length >= 2 && keyOf(hook.received[0]!), { timeout: 5_000, interval: 10 });
    // Then a 1:1 message: its READ comes after the longest receipt delay, so once it is here any
    // receipt the group's send could have had would be here too.
    expect((await send("loja-byevents", { number: "5511987654321", text: "depois" })).status).toBe(201);
    await eventually(() => hook.received.some((r) => r.body.data.status === "READ"), { timeout: 5_000, interval: 10 });
    expect(hook.received.filter((r) => keyOf(r) === group).map((r) => r.body.data.status)).toEqual(["PENDING", "SERVER_ACK"]);
  });

  it("retries a failing webhook with backoff and records the attempts", async () => {
    const flaky = receiver((n) => (n < 2 ? 503 : 200));
    const flakyUrl = await flaky.start();
    try {
      await sim$("/instances/loja-flaky", "PUT", { apikey: KEY, webhookUrl: flakyUrl });
      await sim$("/config", "PATCH", { deliveredDelayMs: -1, readDelayMs: -1 });
      await send("loja-flaky", { number: "5511987654321", text: "x" });
      await eventually(() => flaky.received.length >= 1, { timeout: 5_000, interval: 10 });
      const log = await readJson(await sim$("/webhooks?instance=loja-flaky"));
      expect(log.webhooks).toMatchObject([{ event: "send.message", status: 200, attempts: 3, outcome: "delivered", url: flakyUrl }]);
    } finally {
      await sim$("/config", "PATCH", { deliveredDelayMs: 60, readDelayMs: 120 });
      await flaky.stop();
    }
  });

  it("a fault with status 0 drops the connection", async () => {
    await sim$("/instances/loja-drop", "PUT", { apikey: KEY });
    await sim$("/faults", "POST", { instance: "loja-drop", status: 0 });
    await expect(send("loja-drop", { number: "5511987654321", text: "x" })).rejects.toThrow();
    expect((await send("loja-drop", { number: "5511987654321", text: "x" })).status).toBe(201);
    const calls = (await readJson(await sim$("/calls?instance=loja-drop&number=5511987654321"))).calls;
    expect(calls.slice(-2).map((c: { status: number }) => c.status)).toEqual([0, 201]);
  });

  it("emits inbound messages.upsert and connection.update on request", async () => {
    await sim$("/instances/loja-centro", "PUT", { apikey: KEY, webhookUrl: hookUrl, byEvents: false, profileName: "Loja Centro" });
    const text = await sim$("/inbound", "POST", {
      instance: "loja-centro",
      from: "5511987654321",
      remoteJidAlt: "214748364712345@lid",
      text: "Oi!",
      pushName: "Maria Souza",
      wait: true,
    });
    expect(text.status).toBe(200);
    const lid = await sim$("/inbound", "POST", {
      instance: "loja-centro",
      from: "214748364712345@lid",
      remoteJidAlt: "5511987654321@s.whatsapp.net",
      text: "Oi de novo",
      wait: true,
    });
    expect(lid.status).toBe(200);
    const group = await sim$("/inbound", "POST", {
      instance: "loja-centro",
      from: "120363041234567890@g.us",
      participant: "5521976543210",
      text: "no grupo",
      pushName: "João",
      wait: true,
    });
    expect(group.status).toBe(200);
    const mine = await sim$("/inbound", "POST", { instance: "loja-centro", from: "5511987654321", text: "do celular", fromMe: true, wait: true });
    expect(mine.status).toBe(200);
    const closed = await sim$("/connection", "POST", { instance: "loja-centro", state: "close", wait: true });
    expect(closed.status).toBe(200);
    const opened = await sim$("/connection", "POST", { instance: "loja-centro", state: "open", wait: true });
    expect(opened.status).toBe(200);

    const bodies = hook.received.map((r) => r.body);
    expect(bodies.map((b) => b.event)).toEqual([
      "messages.upsert",
      "messages.upsert",
      "messages.upsert",
      "messages.upsert",
      "connection.update",
      "status.instance",
      "connection.update",
    ]);
    expect(bodies[0].data).toMatchObject({
      key: {
        remoteJid: "5511987654321@s.whatsapp.net",
        remoteJidAlt: "214748364712345@lid",
        fromMe: false,
        id: expect.stringMatching(/^[0-9A-F]{32}$/),
        addressingMode: "pn",
      },
      pushName: "Maria Souza",
      status: "DELIVERY_ACK",
      message: { conversation: "Oi!", messageContextInfo: expect.any(Object) },
      messageType: "conversation",
      messageTimestamp: expect.any(Number),
      source: "android",
    });
    expect(bodies[1].data.key).toMatchObject({ remoteJid: "214748364712345@lid", remoteJidAlt: "5511987654321@s.whatsapp.net", addressingMode: "lid" });
    expect(bodies[1].data.pushName).toBeNull();
    expect(bodies[2].data.key).toMatchObject({ remoteJid: "120363041234567890@g.us", participant: "5521976543210@s.whatsapp.net" });
    expect(bodies[3].data).toMatchObject({ key: { fromMe: true }, status: "SERVER_ACK", pushName: "Loja Centro", source: "ios" });
    expect(bodies[4].data).toEqual({ instance: "loja-centro", state: "close", statusReason: 401 });
    expect(bodies[5].data).toMatchObject({ instance: "loja-centro", status: "closed", disconnectionReasonCode: 401 });
    expect(bodies[6].data).toEqual({
      instance: "loja-centro",
      wuid: "5511955550000@s.whatsapp.net",
      profileName: "Loja Centro",
      profilePictureUrl: expect.any(String),
      state: "open",
      statusReason: 200,
    });
    const state = await readJson(await fetch(`${sim.url}/instance/connectionState/loja-centro`, { headers: { apikey: KEY } }));
    expect(state).toEqual({ instance: { instanceName: "loja-centro", state: "open" } });
  });
});
