// A record too large for any produce request (a DLQ copy of a record near 1 MB, plus the DLQ
// headers) is cut to fit and marked, against a real broker: it is written once, and the relay
// behind it is not held up by a produce that the broker refuses on every retry.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { kafkaTools, type KafkaTools } from "../tools/harness/bridge.ts";
import { waitUntil } from "../test/support/wait.ts";
import { connectKafka, DEFAULT_MAX_BATCH_BYTES, type KafkaLink } from "./kafka.ts";
import type { Logger } from "./log.ts";
import { fitRecord, recordBytes, splitByBytes } from "./produce-batches.ts";

const brokers = inject("kafkaBrokers");
const log: Logger = () => undefined;
let tools: KafkaTools;
let link: KafkaLink;

beforeAll(async () => {
  tools = await kafkaTools(brokers);
  link = connectKafka({ brokers: [brokers], clientId: "oversized-test", log });
});

afterAll(async () => {
  await link?.close();
  await tools?.close();
});

const dlqHeaders = {
  "x-dlq-reason": "invalid_json",
  "x-dlq-detail": "d".repeat(1000),
  "x-dlq-source-topic": "whatsapp-send-message",
  "x-dlq-source-partition": "0",
  "x-dlq-source-offset": "41",
};

describe("records too large for a produce request", () => {
  it("a DLQ record near 1 MB (over the broker's message.max.bytes with its headers) is written once, cut to fit and marked with the original's size and hash; the next record follows", async () => {
    const topic = `oversized-${Date.now().toString(36)}`;
    await tools.createTopics([topic]);
    const value = Buffer.alloc(1_048_000, "x");
    await link.publish([
      { topic, key: "poison", value, headers: dlqHeaders },
      { topic, key: "next", value: "small", headers: { "x-dlq-reason": "invalid_json" } },
    ]);
    const observer = await tools.observe([topic]);
    try {
      const seen = await waitUntil("both records", () => (observer.seen(topic).length >= 2 ? observer.seen(topic) : undefined), 60_000);
      expect(seen.map((r) => r.key)).toEqual(["poison", "next"]);
      const cut = seen[0]!;
      expect(cut.headers).toMatchObject({
        ...dlqHeaders,
        "x-truncated-from-bytes": "1048000",
        "x-original-sha256": createHash("sha256").update(value).digest("hex"),
      });
      expect(cut.value!.length).toBeGreaterThan(900_000);
      expect(cut.value!.length).toBeLessThan(DEFAULT_MAX_BATCH_BYTES);
      expect(seen[1]!.value).toBe("small");
    } finally {
      await observer.close();
    }
  });

  it("fitRecord leaves a record that fits alone, and keeps only the DLQ and event headers when the headers alone are too large", () => {
    const small = { topic: "t", key: "k", value: "v", headers: { a: "b" } };
    expect(fitRecord(small, 1_000)).toBe(small);
    const heavy = { topic: "t", key: "k", value: "v".repeat(500), headers: { ...dlqHeaders, "x-dlq-detail": "short", huge: "h".repeat(5_000) } };
    const fitted = fitRecord(heavy, 1_000);
    expect(recordBytes(fitted)).toBeLessThanOrEqual(1_000 - 128);
    expect(Object.keys(fitted.headers ?? {}).sort()).toEqual(
      [...Object.keys(dlqHeaders), "x-headers-dropped", "x-original-sha256", "x-truncated-from-bytes"].sort(),
    );
    const groups = splitByBytes([heavy, { ...small, key: "after" }], 1_000);
    expect(groups.flat().map((r) => r.key)).toEqual(["k", "after"]);
    for (const g of groups) expect(128 + g.reduce((sum, r) => sum + recordBytes(r), 0)).toBeLessThanOrEqual(1_000);
  });
});
