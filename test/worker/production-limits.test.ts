// The production limits of the test setup apply to the Worker's own bindings, and the paths that
// crossed them (the sweeper's IN list, defect 1) stay inside them.
import { createExecutionContext, createScheduledController, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client.ts";
import worker from "../../src/index.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../../src/messages/accept.ts";
import { eventually, laneStub, setupTenant, simCalls } from "./helpers.ts";
import { takeViolations } from "./production-limits.ts";

const params = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("production limits in the tests", () => {
  it("D1 refuses a statement with more than 100 bound parameters or over 100 KB, alone or in a batch", async () => {
    const placeholders = (n: number) =>
      params(n)
        .map(() => "?")
        .join(", ");
    expect(
      await env.DB.prepare(`SELECT ${placeholders(100)}`)
        .bind(...params(100))
        .all(),
    ).toBeTruthy();
    expect(() => env.DB.prepare(`SELECT ${placeholders(101)}`).bind(...params(101))).toThrow(/too many SQL variables/);
    expect(() => env.DB.prepare(`SELECT '${"x".repeat(100_001)}'`)).toThrow(/statement too long/);
    // A batch is built from the same prepared statements: one over the limit fails it all.
    expect(() => [env.DB.prepare("SELECT 1"), env.DB.prepare(`SELECT ${placeholders(150)}`).bind(...params(150))]).toThrow(/too many SQL variables/);
    expect(takeViolations()).toHaveLength(3);
  });

  it("D1 refuses a LIKE or GLOB pattern over 50 bytes, bound or written in the SQL; 50 bytes pass", async () => {
    const fifty = `%${"é".repeat(24)}%`; // 50 bytes in UTF-8
    expect(await env.DB.prepare("SELECT 'x' LIKE ? AS hit").bind(fifty).first()).toEqual({ hit: 0 });
    expect(
      await env.DB.prepare("SELECT ? AS a, 'x' LIKE ? ESCAPE '\\' AS hit")
        .bind(`${"q".repeat(80)}`, "%x%")
        .first(),
    ).toEqual({ a: "q".repeat(80), hit: 1 });
    expect(() => env.DB.prepare("SELECT 'x' LIKE ? AS hit").bind(`${fifty}a`)).toThrow(/LIKE or GLOB pattern too complex \(51 bytes/);
    expect(() => env.DB.prepare("SELECT ?, 'it''s' GLOB ?").bind("?", "*".repeat(51))).toThrow(/pattern too complex/);
    expect(() => env.DB.prepare(`SELECT 'x' LIKE '${"%".repeat(51)}'`)).toThrow(/pattern too complex/);
    expect(takeViolations()).toHaveLength(3);
  });

  it("Durable Object SQLite refuses more than 100 bound parameters, inside the Worker's own objects", async () => {
    const lane = env.LANES.get(env.LANES.idFromName("limits-test-lane"));
    const error = await runInDurableObject(lane, (_instance, state) => {
      state.storage.sql.exec(
        `SELECT ${params(100)
          .map(() => "?")
          .join(", ")}`,
        ...params(100),
      );
      try {
        state.storage.sql.exec(
          `SELECT ${params(101)
            .map(() => "?")
            .join(", ")}`,
          ...params(101),
        );
        return "accepted";
      } catch (err) {
        return String(err);
      }
    });
    expect(error).toMatch(/too many SQL variables/);
    expect(takeViolations()).toHaveLength(1);
  });

  it("queue bodies are measured in bytes: 70,000 accented characters are 140 KB and refused", async () => {
    const text = "é".repeat(70_000);
    await expect(env.WEBHOOKS.send({ text })).rejects.toThrow(/exceeds the 128000-byte limit/);
    await expect(
      env.SENDS.sendBatch([{ body: { a: "a".repeat(100_000) } }, { body: { b: "b".repeat(100_000) } }, { body: { c: "c".repeat(100_000) } }]),
    ).rejects.toThrow(/bytes in one batch/);
    expect(takeViolations()).toHaveLength(2);
  });
});

describe("sweeper under the limits (defect 1)", () => {
  it("150 stranded messages are re-enqueued by the cron into their lanes", async () => {
    // 1/min: the lanes take the jobs up but send (almost) nothing, which keeps this test short.
    const t = await setupTenant({ ratePerMinute: 1 });
    const db = database(env.DB);
    const instances = await findInstances(db, t.id, [t.instance]);
    const contacts = params(10).map((i) => `55119666600${String(i).padStart(2, "0")}`);
    const now = Date.now();
    const prepared = params(150).map((i) =>
      prepareMessage({ id: t.id, name: "t", maxAttempts: 3 }, instances, { instance: t.instance, to: contacts[i % 10]!, text: `perdida ${i}` }, now + i),
    );
    // Written, but the queue producer fails: all 150 sit in `queued`.
    const failingQueue = {
      ...env,
      SENDS: {
        sendBatch: async () => {
          throw new Error("queue down");
        },
      },
    } as unknown as Env;
    await persistAndEnqueue(failingQueue, db, prepared);
    await env.DB.prepare("UPDATE messages SET updated_at = 0, ready_at = 0 WHERE tenant_id = ? AND status = 'queued'").bind(t.id).run();

    // The Worker's own cron handler, on the Worker's own bindings.
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController(), env, ctx);
    await waitOnExecutionContext(ctx);

    const touched = await env.DB.prepare("SELECT COUNT(*) AS n FROM messages WHERE tenant_id = ? AND updated_at > 0").bind(t.id).first<{ n: number }>();
    expect(touched?.n).toBe(150);
    // Every job reached its lane (held there, or already sent).
    await eventually(async () => {
      let held = 0;
      for (const to of contacts) {
        const snap = await laneStub(t.id, t.instanceId, to).snapshot();
        held += snap.pending.length + snap.done;
      }
      return held === 150;
    }, 20_000);
    expect((await simCalls(t.instance)).length).toBeLessThanOrEqual(1);
  });
});
