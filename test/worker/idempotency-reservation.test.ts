// Idempotency-Key reservations are tied to the messages they created (issue 8, defect 3): a retry
// after a failure part-way finds the same messages instead of creating them again. Failures are
// injected in the real D1 with triggers that refuse one marked row.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { reservationIds } from "../../src/messages/idempotency.ts";
import { api, eventually, json, send, setupTenant, simulator, unique, postWith } from "./helpers.ts";

const d1 = (query: string, ...params: unknown[]) => env.DB.prepare(query).bind(...params);
const countFor = async (tenantId: string) => (await d1("SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ?", tenantId).first<{ n: number }>())!.n;
const reservation = (tenantId: string, key: string) =>
  d1("SELECT response_status, locked_until FROM idempotency_keys WHERE tenant_id = ? AND key = ?", tenantId, key).first<{
    response_status: number | null;
    locked_until: number | null;
  }>();

/** A trigger that aborts any statement writing the marked row; dropped by the returned function. */
async function refuse(name: string, when: string) {
  await env.DB.prepare(`CREATE TRIGGER ${name} ${when} BEGIN SELECT RAISE(ABORT, 'injected failure'); END`).run();
  return async () => {
    await env.DB.prepare(`DROP TRIGGER IF EXISTS ${name}`).run();
  };
}

describe("Idempotency-Key tied to the messages it created", () => {
  it("a batch of 150 that failed after its first chunk, retried with the same key, creates no duplicates", async () => {
    const t = await setupTenant();
    const marker = unique("boom").replace(/-/g, "_");
    const sendAt = new Date(Date.now() + 86_400_000).toISOString();
    const items = Array.from({ length: 150 }, (_, i) => ({ instance: t.instance, to: "5511977770001", text: i === 120 ? marker : `item ${i}`, sendAt }));
    const headers = { "idempotency-key": "batch-150" };
    const drop = await refuse(`t_${marker}`, `BEFORE INSERT ON messages WHEN NEW.text = '${marker}'`);
    const failed = await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: items }, headers });
    await drop();
    expect(failed.status).toBe(500);
    // The first chunk (100) went in; the reservation stays, its lease ended so a retry may finish.
    expect(await countFor(t.id)).toBe(100);
    expect(await reservation(t.id, "batch-150")).toEqual({ response_status: null, locked_until: 0 });
    const firstIds = (await d1("SELECT id FROM messages WHERE tenant_id = ? ORDER BY id", t.id).all<{ id: string }>()).results.map((r) => r.id);

    const retried = await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: items }, headers });
    expect(retried.status).toBe(200);
    const results: { index: number; id: string; status: string }[] = (await json(retried)).results;
    expect(results).toHaveLength(150);
    expect(await countFor(t.id)).toBe(150);
    expect(new Set(results.map((r) => r.id)).size).toBe(150);
    // The 100 written by the failed attempt are the answer's first 100, in order.
    expect(results.slice(0, 100).map((r) => r.id)).toEqual(firstIds);
    const history = await d1("SELECT COUNT(*) AS n FROM message_history h JOIN messages m ON m.id = h.message_id WHERE m.tenant_id = ?", t.id).first<{
      n: number;
    }>();
    expect(history?.n).toBe(150);

    const replay = await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: items }, headers });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect((await json(replay)).results.map((r: { id: string }) => r.id)).toEqual(results.map((r) => r.id));
    const other = await api("/v1/messages/batch", { method: "POST", key: t.key, json: { messages: items.slice(1) }, headers });
    expect(other.status).toBe(409);
    expect(await countFor(t.id)).toBe(150);
  });

  it("a failed final write of the answer still answers, and the retry after the lease finds the same message", async () => {
    const t = await setupTenant();
    const key = unique("final");
    const drop = await refuse(`t_${key.replace(/-/g, "_")}`, `BEFORE UPDATE OF response_status ON idempotency_keys WHEN NEW.key = '${key}'`);
    const body = { instance: t.instance, to: "5511977770002", text: "uma vez só", sendAt: new Date(Date.now() + 86_400_000).toISOString() };
    const first = await send(t.key, body, { "idempotency-key": key });
    await drop();
    expect(first.status).toBe(202);
    const { id } = await json(first);
    expect(await reservation(t.id, key)).toMatchObject({ response_status: null });

    // Within the lease the first request may still be running: 409 with a Retry-After.
    const early = await send(t.key, body, { "idempotency-key": key });
    expect(early.status).toBe(409);
    expect(Number(early.headers.get("retry-after"))).toBeGreaterThan(0);
    // The lease runs out (time passes without sleeping): the retry takes over with the same ids.
    await d1("UPDATE idempotency_keys SET locked_until = 1 WHERE tenant_id = ? AND key = ?", t.id, key).run();
    const retried = await send(t.key, body, { "idempotency-key": key });
    expect(retried.status).toBe(202);
    expect((await json(retried)).id).toBe(id);
    expect(await countFor(t.id)).toBe(1);
    expect(await reservation(t.id, key)).toEqual({ response_status: 202, locked_until: null });
  });

  it("under Prefer: wait the answer naming the message is stored before waiting, so a client that left gets it", async () => {
    const t = await setupTenant();
    const to = "5511977770003";
    // The first attempt fails and its retry is a minute away: the wait runs out.
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: to, status: 503, times: 1 } });
    const key = unique("wait");
    const body = { instance: t.instance, to, text: "espera" };
    const waiting = send(t.key, body, { "idempotency-key": key, prefer: "wait=2" });
    // While the first request waits (or after its client left), the key already answers.
    await eventually(async () => (await reservation(t.id, key))?.response_status === 202, 10_000, "the provisional answer");
    const retried = await send(t.key, body, { "idempotency-key": key });
    expect(retried.status).toBe(202);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
    const { id } = await json(retried);
    const first = await waiting;
    expect(first.status).toBe(202);
    expect((await json(first)).id).toBe(id);
    expect(await countFor(t.id)).toBe(1);
  });

  it("a new key is taken in the message's own D1 batch: one round trip for the send", async () => {
    const t = await setupTenant();
    // Every D1 call the Worker makes (a batch counts once).
    const calls: string[] = [];
    const counted = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "batch")
          return (statements: D1PreparedStatement[]) => {
            calls.push(`batch of ${statements.length}`);
            return target.batch(statements);
          };
        if (prop === "prepare")
          return (query: string) => {
            const statement = target.prepare(query);
            const record =
              (run: (...args: unknown[]) => unknown) =>
              (...args: unknown[]) => {
                calls.push(query.slice(0, 40));
                return run(...args);
              };
            return new Proxy(statement, {
              get(s, p) {
                const value = Reflect.get(s, p);
                if (p === "bind") return (...params: unknown[]) => new Proxy(s.bind(...params), this);
                if (p === "run" || p === "all" || p === "first" || p === "raw") return record(value.bind(s));
                return typeof value === "function" ? value.bind(s) : value;
              },
            });
          };
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const body = { instance: t.instance, to: "5511977770004", text: "uma ida", sendAt: new Date(Date.now() + 86_400_000).toISOString() };
    const post = (headers: Record<string, string>) => postWith({ ...env, DB: counted }, "/v1/messages", body, { key: t.key, headers });
    // Warm: the key's tenant and the instance are then known to this isolate.
    expect((await post({})).status).toBe(202);
    calls.length = 0;
    const key = unique("one-trip");
    const res = await post({ "idempotency-key": key });
    expect(res.status).toBe(202);
    expect(calls).toEqual(["batch of 4"]);
    // The reservation holds the final answer; the same request again is answered from it.
    expect(await reservation(t.id, key)).toEqual({ response_status: 202, locked_until: null });
    const again = await send(t.key, body, { "idempotency-key": key });
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect((await json(again)).id).toBe((await json(res)).id);
  });

  it("two sends racing with one new key: one message, both answered with it", async () => {
    const t = await setupTenant();
    const key = unique("race");
    const body = { instance: t.instance, to: "5511977770005", text: "corrida", sendAt: new Date(Date.now() + 86_400_000).toISOString() };
    const answers = await Promise.all([0, 1, 2].map(() => send(t.key, body, { "idempotency-key": key })));
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202]);
    const ids = await Promise.all(answers.map(async (a) => (await json(a)).id));
    expect(new Set(ids).size).toBe(1);
    expect(answers.filter((a) => a.headers.get("idempotent-replayed") === "true")).toHaveLength(2);
    expect(await countFor(t.id)).toBe(1);
  });

  it("derives distinct, time-ordered message ids per reservation and item", () => {
    const ids = reservationIds(Date.UTC(2026, 10, 22), "ab".repeat(32));
    expect(ids(0)).toMatch(/^msg_[0-9a-z]{26}$/);
    expect(ids(0)).toBe(reservationIds(Date.UTC(2026, 10, 22), "ab".repeat(32))(0));
    const many = Array.from({ length: 500 }, (_, i) => ids(i));
    expect(new Set(many).size).toBe(500);
    expect([...many].sort()).toEqual(many);
    expect(reservationIds(Date.UTC(2026, 10, 22), "cd".repeat(32))(0)).not.toBe(ids(0));
  });
});
