// The pure parts of the inbound relay: legacy mapping, chunk cutting, batch keys.
import { recordBytes, splitByBytes } from "./produce-batches.ts";
import { describe, expect, it } from "vitest";
import { batchKey, parseNote, pendingNote, planChunk } from "./chunks.ts";
import type { InRecord } from "./kafka.ts";
import { decodeLegacy } from "./legacy.ts";
import { loadConfig } from "./config.ts";
import { outboundRecord } from "./outbound.ts";
import { gatewayEvent } from "../src/contracts/events.ts";

const at = { topic: "t", partition: 2, offset: "17" };
const buf = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v));
const rec = (offset: number): InRecord => ({ offset: String(offset), key: null, value: buf({ n: offset }), headers: {} });

describe("legacy values → v1 items", () => {
  it("whatsapp-send-message: cleaned number, legacy fields in metadata, coordinates as sourceId", () => {
    const d = decodeLegacy("whatsapp-send-message", buf({ userId: 7, instanceName: "i", phoneNumber: "+55 (11) 98888-7777", message: "oi", timestamp: 1 }), at);
    expect(d).toEqual({
      ok: true,
      sourceId: "t/2/17",
      item: {
        instance: "i",
        to: "5511988887777",
        text: "oi",
        idempotencyKey: "whatsapp-send-message:t/2/17",
        metadata: { source: "whatsapp-send-message", sourceId: "t/2/17", userId: 7, timestamp: 1 },
      },
    });
  });

  it("whatsapp-schedule-message: scheduledFor becomes sendAt, scheduleId the sourceId", () => {
    const d = decodeLegacy(
      "whatsapp-schedule-message",
      buf({ scheduleId: "s1", instanceName: "i", phoneNumber: "5511988887777", message: "x", scheduledFor: "2030-01-01T09:00:00-03:00" }),
      at,
    );
    expect(d).toMatchObject({ ok: true, sourceId: "s1", item: { sendAt: "2030-01-01T09:00:00-03:00", metadata: { scheduleId: "s1" } } });
  });

  it("messaging.send: JID and media mapped, messageId the sourceId", () => {
    const d = decodeLegacy(
      "messaging.send",
      buf({
        channel: "whatsapp_evolution",
        channelInstanceId: "i",
        remoteJid: "5511988887777@s.whatsapp.net",
        message: "cap",
        mediaUrl: "https://x.test/a.png",
        messageId: "m1",
      }),
      at,
    );
    expect(d).toMatchObject({ ok: true, sourceId: "m1", item: { to: "5511988887777", media: { url: "https://x.test/a.png", type: "image", caption: "cap" } } });
  });

  it("poison: not JSON, wrong shape, or a v1 item the gateway would refuse", () => {
    expect(decodeLegacy("whatsapp-send-message", buf("{"), at)).toMatchObject({ ok: false, reason: "not_json" });
    expect(decodeLegacy("whatsapp-send-message", null, at)).toMatchObject({ ok: false, reason: "not_json" });
    expect(decodeLegacy("whatsapp-send-message", buf({ instanceName: "i" }), at)).toMatchObject({ ok: false, reason: "invalid_shape" });
    const noOffset = decodeLegacy(
      "whatsapp-schedule-message",
      buf({ instanceName: "i", phoneNumber: "5511988887777", message: "x", scheduledFor: "2030-01-01 09:00" }),
      at,
    );
    expect(noOffset).toMatchObject({ ok: false, reason: "invalid_shape" });
  });
});

describe("chunks", () => {
  const records = Array.from({ length: 12 }, (_, i) => rec(100 + i));

  it("cuts by count from the head", () => {
    expect(planChunk(records, undefined, { maxItems: 5, maxBytes: 1e9 }).chunk.map((r) => r.offset)).toEqual(["100", "101", "102", "103", "104"]);
  });

  it("a pending range at the head is cut again exactly, whatever the limits", () => {
    const plan = planChunk(records, { first: "100", last: "102" }, { maxItems: 500, maxBytes: 1e9 });
    expect(plan).toMatchObject({ complete: true });
    expect(plan.chunk.map((r) => r.offset)).toEqual(["100", "101", "102"]);
    expect(planChunk(records.slice(0, 2), { first: "100", last: "102" }, { maxItems: 500, maxBytes: 1e9 }).complete).toBe(false);
  });

  it("a pending range elsewhere is ignored", () => {
    expect(planChunk(records, { first: "90", last: "102" }, { maxItems: 3, maxBytes: 1e9 }).chunk).toHaveLength(3);
  });

  it("notes round-trip; keys are deterministic and change with the content", () => {
    expect(parseNote(pendingNote({ first: "5", last: "9" }))).toEqual({ first: "5", last: "9" });
    expect(parseNote(null)).toBeUndefined();
    const k = batchKey("t", 0, { first: "5", last: "9" }, ["a", "b"]);
    expect(k).toBe(batchKey("t", 0, { first: "5", last: "9" }, ["a", "b"]));
    expect(k).not.toBe(batchKey("t", 0, { first: "5", last: "9" }, ["a", "c"]));
    expect(k).toMatch(/^kafka:t:0:5-9:[0-9a-f]{16}$/);
    expect(batchKey("x".repeat(249), 0, { first: "5", last: "9" }, []).length).toBeLessThanOrEqual(255);
  });
});

describe("produce batches by bytes", () => {
  const rec = (i: number, bytes: number) => ({ topic: "t", key: `k${i}`, value: "v".repeat(bytes) });

  it("cuts consecutive groups under the limit, keeping order; an oversized record goes alone", () => {
    const records = [rec(0, 400), rec(1, 400), rec(2, 400), rec(3, 2_000), rec(4, 10)];
    const groups = splitByBytes(records, 1_000);
    expect(groups.map((g) => g.map((r) => r.key))).toEqual([["k0", "k1"], ["k2"], ["k3"], ["k4"]]);
    for (const g of groups.filter((g) => g.length > 1)) expect(g.reduce((s, r) => s + recordBytes(r), 0)).toBeLessThanOrEqual(1_000);
  });

  it("counts bytes, not characters, and headers too", () => {
    expect(recordBytes({ topic: "t", key: null, value: "€" })).toBe(recordBytes({ topic: "t", key: null, value: "abc" }));
    expect(recordBytes({ topic: "t", key: null, value: "", headers: { h: "12345" } })).toBeGreaterThan(recordBytes({ topic: "t", key: null, value: "" }));
  });
});

describe("outbox events → Kafka records", () => {
  it("conversation.handoff goes with the contact's messages, keyed by contact", () => {
    const config = loadConfig({ KAFKA_BROKERS: "127.0.0.1:9092", GATEWAY_URL: "http://127.0.0.1:8787", GATEWAY_API_KEY: "k" });
    const raw = {
      seq: 7,
      eventId: "evt_7_0123456789abcdef",
      type: "conversation.handoff",
      version: 1,
      occurredAt: "2026-12-07T15:00:00.000Z",
      data: { instance: "demo", contact: "5511987654321", channel: "whatsapp", state: "human", by: "operator" },
    };
    const event = gatewayEvent.parse(raw);
    const record = outboundRecord(config, { seq: 7, raw, event });
    expect(record).toMatchObject({ topic: config.topics.messageReceived, key: "5511987654321" });
    expect(record.headers).toMatchObject({ "x-event-type": "conversation.handoff" });
  });
});
