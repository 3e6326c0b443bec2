// Outbox event ids carry their seq (src/db/queries/outbox-events.ts): unique, stable, and found through the
// primary key, so the outbox writes no index of event ids. And what one status change writes in D1,
// row by row, so a change that adds an index row to the hot path fails here, not only in the bench.
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { describe, expect, it } from "vitest";
import { runBatch } from "../../src/db/batch.ts";
import { database } from "../../src/db/client.ts";
import { receiptByProviderStatements } from "../../src/messages/receipts.ts";
import { ADMIN, api, eventually, json, send, simulator, simulatorUrl, unique, waitForStatus } from "./helpers.ts";

type Got = { headers: Record<string, string>; body: string; status: number };
const receiver = () => inject("receiverUrl");
const received = async (path: string) => (await (await fetch(`${receiver()}/received${path}`)).json()) as Got[];

async function tenantWithCallbacks() {
  const path = `/cb/${unique("ids")}`;
  const created = await json(
    await api("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name: unique("ids"), callbackUrl: `${receiver()}${path}` } }),
  );
  const key = created.apiKey as string;
  const instance = unique("idsinst");
  await simulator(`/_sim/instances/${instance}`, { method: "PUT", json: { apikey: "k" } });
  await api(`/v1/instances/${instance}`, { method: "PUT", key, json: { evolutionUrl: simulatorUrl(), evolutionApiKey: "k", ratePerMinute: 6000 } });
  const { id: instanceId } = (await env.DB.prepare("SELECT id FROM instances WHERE name = ?").bind(instance).first<{ id: string }>())!;
  return { id: created.tenant.id as string, key, path, instance, instanceId };
}

type Event = { seq: number; eventId: string; type: string; data: { status?: string } };
const eventsOf = async (key: string) => (await json<{ events: Event[] }>(await api("/v1/events?consumer=ids&limit=100", { key }))).events;

describe("outbox event ids", () => {
  it("carry their seq and a random part, are unique, and callbacks and replay find events by them", async () => {
    const t = await tenantWithCallbacks();
    const id = (await json(await send(t.key, { instance: t.instance, to: "5511966661001", text: "ids" }))).id;
    await waitForStatus(id, ["sent"]);
    const events = await eventsOf(t.key);
    expect(events.map((e) => e.data.status)).toEqual(["queued", "processing", "sent"]);
    for (const e of events) expect(e.eventId).toMatch(new RegExp(`^evt_${e.seq}_[0-9a-f]{16}$`));
    expect(new Set(events.map((e) => e.eventId)).size).toBe(3);

    // Each callback goes out under its event's id (found by seq in the delivery job)...
    const sent = events[2]!;
    const first = await eventually(
      async () => {
        const got = (await received(t.path)).filter((r) => r.headers["webhook-id"] === sent.eventId);
        return got.length > 0 ? got : undefined;
      },
      10_000,
      "sent callback",
    );
    expect(first).toHaveLength(1);
    expect(JSON.parse(first[0]!.body)).toMatchObject({ eventId: sent.eventId, data: { status: "sent", messageId: id } });
    // ...and a replay by that id finds the event through its seq and delivers it again.
    const replay = await api("/v1/callbacks/replay", { method: "POST", key: t.key, json: { eventId: sent.eventId } });
    expect(replay.status).toBe(202);
    expect(await json(replay)).toMatchObject({ replayed: 1, eventIds: [sent.eventId] });
    await eventually(async () => (await received(t.path)).filter((r) => r.headers["webhook-id"] === sent.eventId).length === 2, 10_000, "replayed callback");

    // The seq alone, or another random part, is not the id; nor is another tenant's event found.
    const forged = sent.eventId.replace(/_[0-9a-f]{16}$/, "_0000000000000000");
    expect((await api("/v1/callbacks/replay", { method: "POST", key: t.key, json: { eventId: forged } })).status).toBe(404);
    const other = await tenantWithCallbacks();
    expect((await api("/v1/callbacks/replay", { method: "POST", key: other.key, json: { eventId: sent.eventId } })).status).toBe(404);
  });

  it("a receipt writes six D1 rows: the message row, its status index entry, the tenant's count and the minute's activity (triggers), the event and its tenant index entry", async () => {
    // No callback URL: an event with one adds the callbacks index entry (one row more).
    const created = await json(await api("/v1/admin/tenants", { method: "POST", key: ADMIN, json: { name: unique("rows") } }));
    const instance = unique("rowsinst");
    await simulator(`/_sim/instances/${instance}`, { method: "PUT", json: { apikey: "k" } });
    await api(`/v1/instances/${instance}`, {
      method: "PUT",
      key: created.apiKey,
      json: { evolutionUrl: simulatorUrl(), evolutionApiKey: "k", ratePerMinute: 6000 },
    });
    const { id: instanceId } = (await env.DB.prepare("SELECT id FROM instances WHERE name = ?").bind(instance).first<{ id: string }>())!;
    const id = (await json(await send(created.apiKey, { instance, to: "5511966661002", text: "rows" }))).id;
    const row = await waitForStatus(id, ["sent"]);

    const written = async (status: "delivered" | "read") => {
      const results = await runBatch(database(env.DB), receiptByProviderStatements(instanceId, row.provider_message_id, status, Date.now()));
      return results.map((r) => r.meta.rows_written);
    };
    // [UPDATE messages (+ the count and activity rows its triggers keep for /v1/stats), INSERT
    // outbox_events, parked receipt (not needed: nothing written)]
    expect(await written("delivered")).toEqual([4, 2, 0]);
    // A read first steps through delivered when that did not come (here it did: nothing written).
    expect(await written("read")).toEqual([0, 0, 4, 2, 0]);
    // A duplicate receipt writes nothing at all.
    expect(await written("read")).toEqual([0, 0, 0, 0, 0]);
    const events = await eventsOf(created.apiKey);
    expect(events.map((e) => e.data.status)).toEqual(["queued", "processing", "sent", "delivered", "read"]);
  });
});
