// GET /v1/stats with many messages: counts kept as messages change (insert, status change, purge),
// read without a pass over the tenant's messages.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api, json, setupTenant } from "./helpers.ts";

const MESSAGES = 3_000;

afterEach(() => vi.restoreAllMocks());

/** The statements D1 runs while `work` runs, with their parameters. */
async function statementsOf(work: () => Promise<unknown>) {
  const sample = env.DB.prepare("SELECT 1");
  const dbProto = Object.getPrototypeOf(env.DB) as D1Database;
  const stmtProto = Object.getPrototypeOf(sample) as D1PreparedStatement;
  const sqlOf = new WeakMap<object, string>();
  const ran: { sql: string; params: unknown[] }[] = [];
  const prepare = dbProto.prepare;
  const bind = stmtProto.bind;
  vi.spyOn(dbProto, "prepare").mockImplementation(function (this: D1Database, query: string) {
    const stmt = prepare.call(this, query);
    sqlOf.set(stmt, query);
    return stmt;
  });
  vi.spyOn(stmtProto, "bind").mockImplementation(function (this: D1PreparedStatement, ...params: unknown[]) {
    const bound = bind.apply(this, params);
    ran.push({ sql: sqlOf.get(this) ?? "", params });
    return bound;
  });
  await work();
  vi.restoreAllMocks();
  return ran;
}

/** D1's rows read for each statement, run again as it ran. */
async function rowsRead(statements: { sql: string; params: unknown[] }[]) {
  let rows = 0;
  for (const s of statements) {
    const n =
      (
        await env.DB.prepare(s.sql)
          .bind(...s.params)
          .all()
      ).meta.rows_read ?? 0;
    rows += n;
  }
  return rows;
}

describe("GET /v1/stats over many messages", () => {
  it("keeps the counts through inserts, status changes and deletes, and reads a bounded number of rows", async () => {
    const t = await setupTenant();
    const now = Date.now();
    // 3,000 messages in one statement: a third sent a minute ago or less, a third queued, a third failed.
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${MESSAGES})
       INSERT INTO messages (id, tenant_id, instance_id, instance_name, "to", lane_key, status, ready_at, max_attempts, created_at, updated_at)
       SELECT ?1 || '-' || i, ?2, ?3, ?4, '55119' || (10000000 + i), ?1 || i,
         CASE i % 3 WHEN 0 THEN 'sent' WHEN 1 THEN 'queued' ELSE 'failed' END, ?5 - i, 3, ?5 - i, ?5
       FROM n`,
    )
      .bind(t.id, t.id, t.instanceId, t.instance, now)
      .run();
    // Sent (in the last few seconds) and failed as the lanes write them: the timestamp set later.
    await env.DB.prepare("UPDATE messages SET sent_at = created_at WHERE tenant_id = ? AND status = 'sent'").bind(t.id).run();
    await env.DB.prepare("UPDATE messages SET failed_at = created_at WHERE tenant_id = ? AND status = 'failed'").bind(t.id).run();
    // Some move on, some go.
    await env.DB.prepare(`UPDATE messages SET status = 'delivered' WHERE tenant_id = ? AND status = 'sent' AND id LIKE '%0'`).bind(t.id).run();
    await env.DB.prepare(`DELETE FROM messages WHERE tenant_id = ? AND status = 'queued' AND id LIKE '%5'`).bind(t.id).run();
    const truth = await env.DB.prepare("SELECT status, COUNT(*) AS n FROM messages WHERE tenant_id = ? GROUP BY status")
      .bind(t.id)
      .all<{ status: string; n: number }>();
    const expected = Object.fromEntries(truth.results.map((r) => [r.status, r.n]));
    expect(Object.values(expected).reduce((a, b) => a + b, 0)).toBeGreaterThan(2_500);

    let stats: any;
    const statements = await statementsOf(async () => {
      const res = await api("/v1/stats", { key: t.key });
      expect(res.status).toBe(200);
      stats = await json(res);
    });

    expect(stats.messages.total).toEqual(expected);
    expect(stats.messages.byInstance[t.instance]).toEqual(expected);
    // Sent within the minute: the sent ones and those delivered since.
    const sentLastMinute = (expected.sent ?? 0) + (expected.delivered ?? 0);
    expect(stats.sentLastMinute).toBe(sentLastMinute);
    expect(stats.sentLastMinuteByInstance).toEqual({ [t.instance]: sentLastMinute });
    expect(stats.oldestQueuedAgeSeconds).toBeGreaterThan(2);
    // Counting 3,000 messages reads 3,000 rows or more (twice that with the grouping); the answer
    // needs the last minute's sends (1,000 here, read and grouped), an instance's counts, a sample
    // of the queued, and the dead letters.
    const read = await rowsRead(statements.filter((s) => /messages|message_counts|dead_letters/.test(s.sql)));
    expect(read).toBeLessThan(2 * sentLastMinute + 300);

    // The timeline: from per-minute counts, not from the messages.
    let timeline: any;
    const timelineStatements = await statementsOf(async () => {
      timeline = await json(await api("/v1/stats/timeline", { key: t.key }));
    });
    const sum = (kind: string) => timeline.buckets.reduce((n: number, b: any) => n + b[kind], 0);
    expect({ sent: sum("sent"), failed: sum("failed") }).toEqual({ sent: sentLastMinute, failed: MESSAGES / 3 });
    expect(await rowsRead(timelineStatements.filter((s) => /messages|message_activity/.test(s.sql)))).toBeLessThan(200);
  });
});
