// The simulator's message store (findMessages, findStatusMessage) against the reference shapes
// of Evolution 2.3.6, and its switches: the store off, a receipt stored while its webhook is lost.
import { describe, expect, it } from "vitest";
import { createSimulator } from "./app.ts";

const KEY = "sim-key";
const readJson = async (res: Response): Promise<any> => res.json();

function setup() {
  const sim = createSimulator({ sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1, instances: [{ name: "loja", apikey: KEY }] });
  const call = async (path: string, json?: unknown, apikey: string | null = KEY, method = "POST") => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (apikey !== null) headers.apikey = apikey;
    const res = await sim.app.request(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
    return { status: res.status, body: await readJson(res) };
  };
  const sendText = async (number: string, text: string) => (await call("/message/sendText/loja", { number, text })).body.key.id as string;
  return { ...sim, call, sendText };
}

const jid = "5511987654321@s.whatsapp.net";
const window = (fromMs: number, toMs: number) => ({ gte: new Date(fromMs).toISOString(), lte: new Date(toMs).toISOString() });

describe("POST /chat/findMessages", () => {
  it("finds sent messages by contact, fromMe and time window, newest first, in Evolution's page shape", async () => {
    const sim = setup();
    const first = await sim.sendText("5511987654321", "Olá!");
    const second = await sim.sendText("5511987654321", "Tudo bem?");
    await sim.sendText("5511900000000", "outro contato");
    await sim.call("/_sim/chat/status", { keyId: first, status: "DELIVERY_ACK" });
    const now = Date.now();
    const res = await sim.call("/chat/findMessages/loja", {
      where: { key: { remoteJid: jid, fromMe: true }, messageTimestamp: window(now - 60_000, now + 60_000) },
    });
    expect(res.status).toBe(200);
    expect(res.body.messages).toMatchObject({ total: 2, pages: 1, currentPage: 1 });
    expect(res.body.messages.records.map((r: { key: { id: string } }) => r.key.id)).toEqual([second, first]);
    expect(res.body.messages.records[1]).toMatchObject({
      id: expect.any(String),
      key: { id: first, fromMe: true, remoteJid: jid },
      messageType: "conversation",
      message: { conversation: "Olá!" },
      messageTimestamp: expect.any(Number),
      source: "web",
      MessageUpdate: [{ status: "DELIVERY_ACK" }],
    });
    // A window in the past holds nothing; one end alone is ignored (Evolution needs both).
    expect((await sim.call("/chat/findMessages/loja", { where: { messageTimestamp: window(0, 1000) } })).body.messages.total).toBe(0);
    expect((await sim.call("/chat/findMessages/loja", { where: { messageTimestamp: { gte: new Date(0).toISOString() } } })).body.messages.total).toBe(3);
    // By key id, and paged with offset as the page size.
    expect((await sim.call("/chat/findMessages/loja", { where: { key: { id: second } } })).body.messages.records).toHaveLength(1);
    const page2 = await sim.call("/chat/findMessages/loja", { page: 2, offset: 2 });
    expect(page2.body.messages).toMatchObject({ total: 3, pages: 2, currentPage: 2 });
    expect(page2.body.messages.records).toHaveLength(1);
  });

  it("guards like Evolution: unknown instance 404, wrong apikey 401", async () => {
    const sim = setup();
    expect((await sim.call("/chat/findMessages/nope", {})).status).toBe(404);
    expect((await sim.call("/chat/findMessages/loja", {}, "wrong")).status).toBe(401);
  });

  it("with the message store off, answers empty lists (absence proves nothing)", async () => {
    const sim = setup();
    await sim.sendText("5511987654321", "Olá!");
    expect((await sim.call("/_sim/chat/store", { enabled: false, instance: "loja" }, null, "PUT")).body).toEqual({ enabled: true, offFor: ["loja"] });
    expect((await sim.call("/chat/findMessages/loja", {})).body.messages).toEqual({ total: 0, pages: 0, currentPage: 1, records: [] });
    await sim.call("/_sim/chat/store", { enabled: true, instance: "loja" }, null, "PUT");
    expect((await sim.call("/chat/findMessages/loja", {})).body.messages.total).toBe(1);
  });
});

describe("POST /chat/findStatusMessage", () => {
  it("lists one row per status change of a message", async () => {
    const sim = setup();
    const id = await sim.sendText("5511987654321", "Olá!");
    expect((await sim.call("/chat/findStatusMessage/loja", { where: { remoteJid: jid, id } })).body).toEqual([]);
    await sim.call("/_sim/chat/status", { keyId: id, status: "DELIVERY_ACK" });
    await sim.call("/_sim/chat/status", { keyId: id, status: "READ" });
    const rows = (await sim.call("/chat/findStatusMessage/loja", { where: { remoteJid: jid, id } })).body;
    expect(rows).toHaveLength(2);
    expect(rows[1]).toEqual({
      id: expect.any(String),
      keyId: id,
      remoteJid: jid,
      fromMe: true,
      participant: null,
      pollUpdates: null,
      status: "READ",
      instanceId: expect.any(String),
      messageId: expect.any(String),
    });
    expect((await sim.call("/_sim/chat/status", { keyId: "3EB0NOPE", status: "READ" })).status).toBe(404);
  });

  it("records the receipts the simulator emits as webhooks", async () => {
    const sim = createSimulator({ sendMessageDelayMs: -1, deliveredDelayMs: 0, readDelayMs: -1, instances: [{ name: "loja", apikey: KEY }] });
    const res = await sim.app.request("/message/sendText/loja", {
      method: "POST",
      headers: { "content-type": "application/json", apikey: KEY },
      body: JSON.stringify({ number: "5511987654321", text: "Olá!" }),
    });
    const id = (await readJson(res)).key.id;
    await expect.poll(() => sim.state.statuses.get(id)).toEqual(["DELIVERY_ACK"]);
    sim.state.stop();
  });
});
