// The cron sweep under one bad tenant: a step that throws, a hostile Evolution (hangs, endless
// answers), a purge backlog. Every other step still runs, and each is bounded.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { database } from "../../src/db/client.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../../src/messages/accept.ts";
import { catchUpReceipts } from "../../src/sweep/receipts.ts";
import { purge, sweep } from "../../src/sweep/sweeper.ts";
import { messageRow, setupTenant } from "./helpers.ts";

const quietQueue = { ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env;

afterEach(() => vi.restoreAllMocks());

/** `n` messages of a fresh tenant, written without sending (the queue hop goes nowhere). */
async function messages(n: number, prefix: string) {
  const t = await setupTenant();
  const db = database(env.DB);
  const instances = await findInstances(db, t.id, [t.instance]);
  const now = Date.now();
  const prepared = Array.from({ length: n }, (_, i) =>
    prepareMessage(
      { id: t.id, name: "t", maxAttempts: 3 },
      instances,
      { instance: t.instance, to: `5511977${prefix}${String(i).padStart(3, "0")}`, text: `m ${i}` },
      now + i,
    ),
  );
  await persistAndEnqueue(quietQueue, db, prepared);
  return { t, ids: prepared.map((p) => p.row.id) };
}

/** Marks messages sent long ago with a receipt check due now. */
async function sentAwaitingReceipt(ids: string[]) {
  for (const [i, id] of ids.entries()) {
    await env.DB.prepare("UPDATE messages SET status = 'sent', sent_at = 1, provider_message_id = ?, receipt_check_at = 1 WHERE id = ?")
      .bind(`KEY${i}${id}`, id)
      .run();
  }
}

/** A terminal message past retention, for the purge to remove. */
async function expired(id: string) {
  await env.DB.prepare("UPDATE messages SET status = 'failed', created_at = 1, updated_at = 1 WHERE id = ?").bind(id).run();
}

/** Routes the Worker's calls to HOSTILE through `answer`; everything else goes out as usual. */
function hostileEvolution(HOSTILE: string, answer: (init: RequestInit | undefined) => Promise<Response>) {
  const original = globalThis.fetch;
  const calls: string[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation((input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    if (!url.startsWith(HOSTILE)) return original(input, init);
    calls.push(url);
    return answer(init);
  });
  return calls;
}

describe("the sweep under one bad tenant", () => {
  it("a step that throws is logged and the later steps still run", async () => {
    const { ids } = await messages(2, "01");
    await expired(ids[1]!);
    // D1 refuses the requeue's statement (overloaded); every other statement goes through.
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare")
          return (query: string) => {
            if (query.trimStart().startsWith("UPDATE messages SET updated_at")) throw new Error("D1_ERROR: overloaded");
            return target.prepare(query);
          };
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const overloaded = { ...env, DB: db } as Env;

    const report = await sweep(overloaded);

    expect(report.requeued).toEqual({ error: "D1_ERROR: overloaded" });
    expect(await messageRow(ids[1]!)).toBeNull();
    expect(report.purged).toMatchObject({ messages: expect.any(Number) });
    expect(report.receipts).toMatchObject({ checked: expect.any(Number) });
  });

  it("a hanging Evolution costs one check per run, not one per due message", async () => {
    const { t, ids } = await messages(5, "02");
    const HOSTILE = "https://hanging-evolution.test";
    await sentAwaitingReceipt(ids);
    await env.DB.prepare("UPDATE instances SET evolution_url = ? WHERE id = ?").bind(HOSTILE, t.instanceId).run();
    // Never answers: only the caller's timeout ends the call.
    const calls = hostileEvolution(
      HOSTILE,
      (init) =>
        new Promise<Response>((_, reject) => {
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason ?? new Error("aborted")));
        }),
    );

    const report = await catchUpReceipts(env, Date.now());

    expect(calls).toHaveLength(1);
    expect(report.skipped).toBeGreaterThanOrEqual(4);
    // The skipped ones were not counted as checked: still due, for the next run.
    const counted = await env.DB.prepare("SELECT SUM(receipt_checks) AS n FROM messages WHERE instance_id = ?").bind(t.instanceId).first<{ n: number }>();
    expect(counted?.n).toBe(1);
    // Nothing left due on this address for the tests after this one.
    await env.DB.prepare("UPDATE messages SET receipt_check_at = NULL WHERE instance_id = ?").bind(t.instanceId).run();
  });

  it("an endless answer is read up to a cap, not into memory", async () => {
    const { t, ids } = await messages(1, "03");
    const HOSTILE = "https://endless-evolution.test";
    await sentAwaitingReceipt(ids);
    await env.DB.prepare("UPDATE instances SET evolution_url = ? WHERE id = ?").bind(HOSTILE, t.instanceId).run();
    let pulled = 0;
    const chunk = new TextEncoder().encode(`[${'{"keyId":"x","status":"SERVER_ACK"},'.repeat(1500)}`);
    const calls = hostileEvolution(HOSTILE, async () => {
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          // 64 MB at most, so a test of the unfixed code ends too.
          if (pulled > 64 * 1024 * 1024) return controller.close();
          pulled += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
    });

    const report = await catchUpReceipts(env, Date.now());

    expect(calls).toHaveLength(1);
    expect(report.failed).toBeGreaterThanOrEqual(1);
    expect(await messageRow(ids[0]!)).toMatchObject({ status: "sent", receipt_checks: 1 });
    expect(pulled).toBeLessThan(4 * 1024 * 1024);
  });

  it("a purge backlog is removed in bounded pages over several runs", async () => {
    const old = Date.now() - 2 * 86_400_000;
    // 1,200 idempotency keys past their day, in one statement.
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
       INSERT INTO idempotency_keys (tenant_id, key, scope, request_hash, created_at) SELECT 'purge-backlog', 'k' || i, 'messages', 'h', ? FROM n`,
    )
      .bind(old)
      .run();
    const left = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM idempotency_keys WHERE tenant_id = 'purge-backlog'").first<{ n: number }>())?.n;

    expect((await purge(env, Date.now(), { pages: 1 })).idempotencyKeys).toBe(500);
    expect(await left()).toBe(700);
    await purge(env, Date.now(), { pages: 1 });
    await purge(env, Date.now(), { pages: 1 });
    expect(await left()).toBe(0);
  });
});
