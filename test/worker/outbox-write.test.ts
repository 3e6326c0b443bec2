// Outbox rows are built from the event contracts (src/outbox/write.ts): a value that breaks its
// contract is refused before anything is written, values taken from rows stay in the statement,
// and the check every Worker test file runs after each test (outbox-contract-setup.ts) catches a
// row that drifts from the contract.
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { runBatch } from "../../src/db/batch.ts";
import { database } from "../../src/db/client.ts";
import { writeEvent } from "../../src/outbox/write.ts";
import { createTenant, unique } from "./helpers.ts";
import { checkOutboxAgainstContract } from "./outbox-contract-setup.ts";

const db = () => database(env.DB);
const eventsOf = async (tenantId: string) =>
  (
    await env.DB.prepare("SELECT type, data, callback_url FROM outbox_events WHERE tenant_id = ? ORDER BY seq")
      .bind(tenantId)
      .all<{ type: string; data: string; callback_url: string | null }>()
  ).results;

describe("writing an outbox event", () => {
  it("refuses a value that breaks the contract, and writes nothing", async () => {
    const tenant = await createTenant();
    const bad = () =>
      writeEvent("automation.paused", {
        tenantId: tenant.id,
        occurredAt: Date.now(),
        // Not an integer, and not a date-time: the contract's failures and probeAt.
        data: { instance: "x", failures: 1.5, probeAt: "soon" },
      });
    expect(bad).toThrow(/failures|probeAt|number|datetime/i);
    expect(() =>
      writeEvent("automation.resumed", { tenantId: tenant.id, occurredAt: Date.now(), data: { instance: "x", extra: 1 } as { instance: string } }),
    ).toThrow(/no field extra/);
    expect(await eventsOf(tenant.id)).toEqual([]);
  });

  it("writes the contract's fields: values bound, booleans and objects as JSON, nulls as absent, row values from its source", async () => {
    const tenant = await createTenant();
    const at = Date.parse("2026-01-02T03:04:05.000Z");
    const instance = unique("inst");
    const received = {
      id: "in_1",
      instance,
      channel: "telegram" as const,
      contact: "42",
      remoteJid: "42",
      participant: null,
      providerMessageId: "p1",
      fromMe: false,
      pushName: null,
      messageType: "conversation",
      text: "hi",
      media: { type: "image", url: "https://x.test/a.png" },
      timestamp: new Date(at).toISOString(),
    };
    await runBatch(db(), [
      writeEvent("message.received", {
        tenantId: tenant.id,
        occurredAt: at,
        data: received,
      }),
      // A field taken from the statement's source rows, and the source as the guard: one row, one event.
      writeEvent("automation.paused", {
        tenantId: tenant.id,
        occurredAt: at,
        data: { instance, failures: sql`n + 1`, probeAt: new Date(at).toISOString() },
        source: sql`FROM (SELECT 4 AS n) WHERE n + 1 >= 5`,
      }),
      writeEvent("automation.resumed", { tenantId: tenant.id, occurredAt: at, data: { instance }, source: sql`WHERE 0` }),
    ]);
    const rows = await eventsOf(tenant.id);
    expect(rows.map((r) => r.type)).toEqual(["message.received", "automation.paused"]);
    expect(JSON.parse(rows[0]!.data)).toEqual({ ...received, timestamp: "2026-01-02T03:04:05.000Z" });
    expect(JSON.parse(rows[1]!.data)).toEqual({ instance, failures: 5, probeAt: "2026-01-02T03:04:05.000Z" });
    expect(await checkOutboxAgainstContract()).toBeGreaterThanOrEqual(2);
  });

  it("the check after each test catches a row that drifts from the contract", async () => {
    const tenant = await createTenant();
    await checkOutboxAgainstContract();
    // A status no contract knows, taken from a row: only the check on what was written sees it.
    await runBatch(db(), [
      writeEvent("message.status", {
        tenantId: tenant.id,
        occurredAt: Date.now(),
        data: { messageId: "m1", instance: "i", channel: "whatsapp", to: "5511", status: sql`'lost'` },
      }),
    ]);
    await expect(checkOutboxAgainstContract()).rejects.toThrow(/message\.status .*status/s);
    // Taken away again, so this file's own check after the test passes.
    await env.DB.prepare("DELETE FROM outbox_events WHERE tenant_id = ?").bind(tenant.id).run();
  });
});
