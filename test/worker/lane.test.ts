// ContactLane behaviour: retries on the alarm, permanent failures, dead letters, dedupe, order repair, pacing.
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client.ts";
import { ContactLane } from "../../src/lanes/contact-lane.ts";
import type { InstanceGovernor } from "../../src/lanes/instance-governor.ts";
import worker from "../../src/index.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../../src/messages/accept.ts";
import { api, eventually, fireRetry, json, laneStub, messageRow, send, setupTenant, simCalls, simulator, unique, waitForStatus } from "./helpers.ts";
import { failNextBatch } from "./production-limits.ts";

const fault = (body: Record<string, unknown>) => simulator("/_sim/faults", { method: "POST", json: body });
const history = async (id: string) =>
  (
    await env.DB.prepare("SELECT status, attempt, detail FROM message_history WHERE message_id = ? ORDER BY id")
      .bind(id)
      .all<{ status: string; attempt: number | null; detail: string | null }>()
  ).results;

async function waitForAttempt(id: string, attempts: number) {
  return eventually(
    async () => {
      const row = await messageRow(id);
      return row && row.attempts === attempts && row.last_error ? row : undefined;
    },
    15_000,
    `attempt ${attempts} of ${id} to fail`,
  );
}

async function nextRetryIn(lane: ReturnType<typeof laneStub>) {
  const snap = await lane.snapshot();
  return snap.pending[0]!.next_at - Date.now();
}

describe("transient failures", () => {
  it("retries with growing backoff on the alarm, holding the contact's later messages", async () => {
    const t = await setupTenant();
    const to = "5511944440001";
    await fault({ instance: t.instance, number: to, status: 503, headers: { "retry-after": "1" }, times: 1 });
    await fault({
      instance: t.instance,
      number: to,
      status: 400,
      body: { status: 400, error: "Bad Request", response: { message: ["SessionError: No sessions"] } },
      times: 1,
    });
    const first = (await json(await send(t.key, { instance: t.instance, to, text: "primeira" }))).id;
    const second = (await json(await send(t.key, { instance: t.instance, to, text: "segunda" }))).id;
    const elsewhere = (await json(await send(t.key, { instance: t.instance, to: "5511944440002", text: "outro contato" }))).id;
    await waitForStatus(elsewhere, ["sent"]);

    const lane = laneStub(t.id, t.instanceId, to);
    const afterFirst = await waitForAttempt(first, 1);
    expect(afterFirst.status).toBe("processing");
    expect(afterFirst.last_error).toContain("Evolution 503");
    // Base 60 s in tests, jittered into [30 s, 60 s]; then doubled for the second retry.
    const wait1 = await nextRetryIn(lane);
    expect(wait1).toBeGreaterThan(25_000);
    expect(wait1).toBeLessThanOrEqual(60_000);
    expect((await messageRow(second))?.status).toBe("queued");

    expect(await fireRetry(lane)).toBe(true);
    const afterSecond = await waitForAttempt(first, 2);
    expect(afterSecond.last_error).toContain("SessionError");
    const wait2 = await nextRetryIn(lane);
    expect(wait2).toBeGreaterThan(55_000);
    expect(wait2).toBeLessThanOrEqual(120_000);

    expect(await fireRetry(lane)).toBe(true);
    await waitForStatus(second, ["sent"]);
    const row = await messageRow(first);
    expect(row).toMatchObject({ status: "sent", attempts: 3, last_error: null });
    const calls = (await simCalls(t.instance)).filter((c) => c.number === to);
    expect(calls.map((c) => [c.body.text, c.status])).toEqual([
      ["primeira", 503],
      ["primeira", 400],
      ["primeira", 201],
      ["segunda", 201],
    ]);
    const h = await history(first);
    expect(h.map((x) => [x.status, x.attempt])).toEqual([
      ["queued", null],
      ["processing", 1],
      ["processing", 1],
      ["processing", 2],
      ["processing", 2],
      ["processing", 3],
      ["sent", 3],
    ]);
    expect(h[2]!.detail).toMatch(/^retry in \d+ ms: Evolution 503/);
  });

  it("fails after maxAttempts with a dead letter, and POST /retry sends it again", async () => {
    const t = await setupTenant();
    const to = "5511944440003";
    await fault({
      instance: t.instance,
      number: to,
      // A 503 with Retry-After is certainly not sent (any other 5xx may come after the relay).
      status: 503,
      headers: { "retry-after": "1" },
      body: { status: 503, error: "Service Unavailable", response: { message: "Connection Closed" } },
      times: 2,
    });
    const id = (await json(await send(t.key, { instance: t.instance, to, text: "insistente", maxAttempts: 2 }))).id;
    await waitForAttempt(id, 1);
    await fireRetry(laneStub(t.id, t.instanceId, to));
    const failed = await waitForStatus(id, ["failed"]);
    expect(failed.attempts).toBe(2);
    expect(failed.last_error).toMatch(/Connection Closed.*gave up after 2 attempts/);
    const dead = await env.DB.prepare("SELECT attempts, error FROM dead_letters WHERE message_id = ?").bind(id).first();
    expect(dead).toMatchObject({ attempts: 2, error: expect.stringContaining("Connection Closed") });
    const events = await env.DB.prepare(
      "SELECT json_extract(data, '$.status') AS s FROM outbox_events WHERE json_extract(data, '$.messageId') = ? ORDER BY seq",
    )
      .bind(id)
      .all<{ s: string }>();
    expect(events.results.map((e) => e.s).at(-1)).toBe("failed");
    expect((await simCalls(t.instance)).filter((c) => c.number === to)).toHaveLength(2);

    // Replay from the dead letter: queued again, sent this time (the faults are used up).
    expect((await api(`/v1/messages/${id}/retry`, { method: "POST", key: t.key })).status).toBe(202);
    const sent = await waitForStatus(id, ["sent"]);
    expect(sent.attempts).toBe(1);
    expect(await env.DB.prepare("SELECT replayed_at IS NOT NULL AS r FROM dead_letters WHERE message_id = ?").bind(id).first()).toEqual({ r: 1 });
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.status)).toEqual([503, 503, 201]);
    const again = await api(`/v1/messages/${id}/retry`, { method: "POST", key: t.key });
    expect(again.status).toBe(409);
  });
});

describe("a request waiting for its send (Prefer: wait)", () => {
  it("the lane answers finished() once the send is recorded in D1; false for a message it does not hold, or when the wait runs out", async () => {
    const t = await setupTenant();
    const to = "5511944440009";
    const lane = laneStub(t.id, t.instanceId, to);
    expect(await lane.finished("msg_0000000000000000000000none", 10_000)).toBe(false);
    await fault({ instance: t.instance, number: to, status: 503, headers: { "retry-after": "1" }, times: 1 });
    const id = (await json(await send(t.key, { instance: t.instance, to, text: "aguardada" }))).id;
    await waitForAttempt(id, 1);
    // Waiting for its retry (a minute in tests): a short wait runs out, a long one is still pending.
    const waiting = lane.finished(id, 60_000);
    expect(await lane.finished(id, 50)).toBe(false);
    expect(await fireRetry(lane)).toBe(true);
    expect(await waiting).toBe(true);
    // Answered only once D1 holds the outcome: the request reads it right after.
    expect(await messageRow(id)).toMatchObject({ status: "sent", attempts: 2 });
    expect(await lane.finished(id, 10_000)).toBe(true);
  });
});

describe("permanent failures", () => {
  it("fails at once, without retry, keeping Evolution's error verbatim", async () => {
    const t = await setupTenant();
    await simulator("/_sim/config", { method: "PATCH", json: { notOnWhatsApp: ["5511000000001"] } });
    const notOnWa = (await json(await send(t.key, { instance: t.instance, to: "5511000000001", text: "existe?" }))).id;
    const row = await waitForStatus(notOnWa, ["failed"]);
    expect(row.attempts).toBe(1);
    expect(row.last_error).toContain("not on WhatsApp");
    expect(row.last_error).toContain('"exists":false');

    const to = "5511944440004";
    await fault({
      instance: t.instance,
      number: to,
      status: 400,
      body: { status: 400, error: "Bad Request", response: { message: ["Owned media must be a url or base64"] } },
      times: 1,
    });
    const bad = (await json(await send(t.key, { instance: t.instance, to, text: "x" }))).id;
    expect((await waitForStatus(bad, ["failed"])).last_error).toContain("Owned media must be a url or base64");

    // Wrong Evolution key → 401; instance unknown to Evolution → 404. Both permanent.
    await api(`/v1/instances/${t.instance}`, {
      method: "PUT",
      key: t.key,
      json: { evolutionUrl: `${(await import("./helpers.ts")).simulatorUrl()}`, evolutionApiKey: "wrong-key" },
    });
    const unauthorized = (await json(await send(t.key, { instance: t.instance, to: "5511944440005", text: "x" }))).id;
    const u = await eventually(async () => {
      const r = await messageRow(unauthorized);
      return r?.status === "failed" ? r : undefined;
    }, 20_000);
    expect(u.last_error).toContain("Evolution 401");
    expect(u.attempts).toBe(1);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM dead_letters WHERE message_id IN (?, ?, ?)").bind(notOnWa, bad, unauthorized).first()).toEqual({
      n: 3,
    });
  });
});

describe("dedupe and order repair", () => {
  it("a redelivered job never sends twice", async () => {
    const t = await setupTenant();
    const to = "5511944440006";
    const id = (await json(await send(t.key, { instance: t.instance, to, text: "uma vez só" }))).id;
    const row = await waitForStatus(id, ["sent"]);
    const lane = laneStub(t.id, t.instanceId, to);
    const item = { messageId: id, instanceId: t.instanceId, priority: 5, readyAt: row.ready_at, createdAt: row.created_at };
    // As if the queue delivered the same job again, twice, and the alarm ran.
    await lane.enqueue(row.lane_key, [item]);
    await lane.enqueue(row.lane_key, [item]);
    await runDurableObjectAlarm(lane);
    // And as the queue consumer itself gets it again: handed to the lane (acked), not sent.
    const batch = createMessageBatch("mensageiro-sends", [{ id: "again", timestamp: new Date(), attempts: 2, body: { ...item, laneKey: row.lane_key } }]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["again"]);
    await runDurableObjectAlarm(lane);
    expect((await simCalls(t.instance)).filter((c) => c.number === to)).toHaveLength(1);
    expect((await messageRow(id))?.attempts).toBe(1);
  });

  it("when the queue delivers a contact's messages out of order, the lane still sends them in order", async () => {
    const t = await setupTenant();
    const to = "5511944440007";
    const db = database(env.DB);
    const tenant = { id: t.id, name: "t", maxAttempts: 3 };
    const instances = await findInstances(db, t.id, [t.instance]);
    const now = Date.now();
    const older = prepareMessage(tenant, instances, { instance: t.instance, to, text: "antes" }, now);
    const newer = prepareMessage(tenant, instances, { instance: t.instance, to, text: "depois" }, now + 1);
    // Written to D1, but the queue hop is lost for both; only the newer job reaches the lane.
    const noQueue = { ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env;
    await persistAndEnqueue(noQueue, db, [older, newer]);
    const lane = laneStub(t.id, t.instanceId, to);
    await lane.enqueue(newer.job.laneKey, [newer.job]);
    await waitForStatus(newer.row.id, ["sent"]);
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["antes", "depois"]);
  });

  it("an older scheduled message the lane never got (lost queue hop) still goes before a newer one", async () => {
    const t = await setupTenant();
    const to = "5511944440017";
    const db = database(env.DB);
    const tenant = { id: t.id, name: "t", maxAttempts: 3 };
    const instances = await findInstances(db, t.id, [t.instance]);
    const now = Date.now();
    const at = (ms: number) => new Date(now + ms).toISOString();
    const older = prepareMessage(tenant, instances, { instance: t.instance, to, text: "agendada antes", sendAt: at(2_000) }, now);
    const newer = prepareMessage(tenant, instances, { instance: t.instance, to, text: "agendada depois", sendAt: at(3_000) }, now + 1);
    const noQueue = { ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env;
    await persistAndEnqueue(noQueue, db, [older, newer]);
    const lane = laneStub(t.id, t.instanceId, to);
    // Only the newer one reaches the lane; the older one is still `scheduled` in D1 when the newer is due.
    await lane.enqueue(newer.job.laneKey, [newer.job]);
    await waitForStatus(newer.row.id, ["sent"]);
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["agendada antes", "agendada depois"]);
  });

  it("priority 1 goes before waiting messages of the same contact", async () => {
    const t = await setupTenant();
    const to = "5511944440008";
    const db = database(env.DB);
    const tenant = { id: t.id, name: "t", maxAttempts: 3 };
    const instances = await findInstances(db, t.id, [t.instance]);
    const now = Date.now();
    const normal = [0, 1, 2].map((i) => prepareMessage(tenant, instances, { instance: t.instance, to, text: `normal ${i}` }, now + i));
    const urgent = prepareMessage(tenant, instances, { instance: t.instance, to, text: "urgente", priority: 1 }, now + 5);
    const noQueue = { ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env;
    await persistAndEnqueue(noQueue, db, [...normal, urgent]);
    const lane = laneStub(t.id, t.instanceId, to);
    // All four land in the lane together, before it runs.
    await lane.enqueue(
      urgent.job.laneKey,
      [...normal, urgent].map((p) => p.job),
    );
    await waitForStatus(normal[2]!.row.id, ["sent"]);
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["urgente", "normal 0", "normal 1", "normal 2"]);
  });
});

describe("pacing", () => {
  it("a lane waiting for its slot re-arms its alarm for it instead of sleeping (defect 7)", async () => {
    const t = await setupTenant({ ratePerMinute: 1 });
    const first = (await json(await send(t.key, { instance: t.instance, to: "5511955551001", text: "vai já" }))).id;
    await waitForStatus(first, ["sent"]);
    const second = (await json(await send(t.key, { instance: t.instance, to: "5511955551002", text: "espera a vez" }))).id;
    const lane = laneStub(t.id, t.instanceId, "5511955551002");
    // 1/min: the next slot is a minute after the first send. The lane parks its head for it.
    const snap = await eventually(async () => {
      const s = await lane.snapshot();
      return s.pending[0] && s.pending[0].next_at > Date.now() + 30_000 ? s : undefined;
    });
    expect(snap.alarm).toBe(snap.pending[0]!.next_at);
    expect(snap.pending[0]).toMatchObject({ id: second, phase: "waiting", attempts: 0 });
    // Running the alarm early returns at once, without a send.
    const started = Date.now();
    expect(await runDurableObjectAlarm(lane)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await messageRow(second))?.status).toBe("queued");
    expect(await simCalls(t.instance)).toHaveLength(1);
  });

  it("sends of one instance, across contacts, are spaced to its rate", async () => {
    const t = await setupTenant({ ratePerMinute: 60 });
    // The governor spaces its grants; the time from a grant to the request reaching Evolution varies
    // with the machine's load, so the spacing is read where it is decided: each message's first
    // grant, as the governor's policy made it.
    const grants = new Map<string, number>();
    await runInDurableObject(env.GOVERNORS.get(env.GOVERNORS.idFromName(t.instanceId)), (governor: InstanceGovernor) => {
      const decide = governor.policy.decide.bind(governor.policy);
      governor.policy.decide = (req, pacing, now) => {
        const answer = decide(req, pacing, now);
        if (answer.go && !grants.has(req.messageId)) grants.set(req.messageId, answer.sendAt ?? now);
        return answer;
      };
    });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await json(await send(t.key, { instance: t.instance, to: `551195555000${i}`, text: `ritmo ${i}` }))).id);
    for (const id of ids) await waitForStatus(id, ["sent"], 20_000);
    expect(await simCalls(t.instance)).toHaveLength(3);
    const at = [...grants.values()].sort((a, b) => a - b);
    expect(at).toHaveLength(3);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(1000);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(1000);
  });
});

/** A message written to D1 and queued, not yet handed to its lane (no queue hop): the test enqueues it. */
async function queuedOnly(t: Awaited<ReturnType<typeof setupTenant>>, to: string, text: string) {
  const db = database(env.DB);
  const instances = await findInstances(db, t.id, [t.instance]);
  const p = prepareMessage({ id: t.id, name: "t", maxAttempts: 3 }, instances, { instance: t.instance, to, text }, Date.now());
  await persistAndEnqueue({ ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env, db, [p]);
  return p;
}

describe("the lane's own failures", () => {
  it("Evolution's answer is kept in the lane before the number's turn is given back to the governor", async () => {
    const t = await setupTenant();
    // A number with gaps: each send is a turn, released to the governor after Evolution answered.
    await env.DB.prepare("UPDATE instances SET gap_max_ms = 1000 WHERE id = ?").bind(t.instanceId).run();
    const to = "5511944440031";
    const p = await queuedOnly(t, to, "registrado antes");
    const lane = laneStub(t.id, t.instanceId, to);
    // What the lane holds at the moment it releases its turn: an object reset right after the
    // release must not turn a known answer into a doubt.
    const atRelease: { phase: string; outcome: string | null }[] = [];
    await runInDurableObject(lane, (instance, state) => {
      Object.assign(instance, {
        governor: () => ({
          acquire: async () => ({ go: true }),
          release: async () => {
            atRelease.push(state.storage.sql.exec<{ phase: string; outcome: string | null }>("SELECT phase, outcome FROM lane_items").one());
          },
          report: async () => {},
        }),
      });
    });
    await lane.enqueue(p.job.laneKey, [p.job]);
    const row = await waitForStatus(p.row.id, ["sent"]);
    expect(atRelease).toHaveLength(1);
    expect(atRelease[0]!.phase).toBe("unrecorded");
    expect(JSON.parse(atRelease[0]!.outcome ?? "null")).toEqual({ kind: "sent", providerMessageId: row.provider_message_id });
  });

  it("a step that throws (D1 failing) is tried again after a growing, jittered wait, not at once", async () => {
    const t = await setupTenant();
    const to = "5511944440032";
    const p = await queuedOnly(t, to, "d1 fora do ar");
    // The claim fails twice, as D1 does in an outage.
    failNextBatch((statements) => statements.some((s) => s.params.includes(p.row.id) && s.sql.includes("processing")), "D1_ERROR: simulated outage", 2);
    const lane = laneStub(t.id, t.instanceId, to);
    const started = Date.now();
    await lane.enqueue(p.job.laneKey, [p.job]);
    // After the first failure the alarm is at least a second away (2 s base, jittered to half).
    const snap = await eventually(async () => {
      const s = await lane.snapshot();
      return s.alarm !== null && s.alarm >= started + 1_000 ? s : undefined;
    });
    expect(snap.pending[0]).toMatchObject({ id: p.row.id, phase: "waiting" });
    expect((await messageRow(p.row.id))?.status).toBe("queued");
    // Once D1 answers again the message goes, once.
    const row = await waitForStatus(p.row.id, ["sent"], 20_000);
    expect(row.attempts).toBe(1);
    expect((await simCalls(t.instance)).filter((c) => c.number === to)).toHaveLength(1);
  }, 30_000);
});

describe("the lane's storage", () => {
  it("a lane made before the CHECK on phase is rebuilt with it, its items kept; a phase outside the machine's is refused", async () => {
    const lane = env.LANES.get(env.LANES.idFromName(`storage-${unique("lane")}`));
    // A legacy migration test: the old table is written by hand, then the object starts on it.
    const result = await runInDurableObject(lane, (_instance, state) => {
      const exec = state.storage.sql.exec.bind(state.storage.sql);
      exec("DROP TABLE lane_items");
      exec(`CREATE TABLE lane_items (id TEXT PRIMARY KEY, instance_id TEXT NOT NULL, priority INTEGER NOT NULL, ready_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL, phase TEXT NOT NULL DEFAULT 'waiting', attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0,
        attempt_at INTEGER NOT NULL DEFAULT 0, outcome TEXT, done_at INTEGER)`);
      exec(`INSERT INTO lane_items (id, instance_id, priority, ready_at, created_at, phase, attempts) VALUES
        ('m1', 'i', 5, 1, 1, 'retrying', 2), ('m2', 'i', 5, 2, 2, 'started', 1)`);
      new ContactLane(state, env);
      const table = exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'lane_items'").one().sql;
      const rows = exec<{ id: string; phase: string; attempts: number; checks: number }>(
        "SELECT id, phase, attempts, checks FROM lane_items ORDER BY id",
      ).toArray();
      let refused = "";
      try {
        exec("UPDATE lane_items SET phase = 'bogus' WHERE id = 'm1'");
      } catch (err) {
        refused = String(err);
      }
      return { table, rows, refused };
    });
    expect(result.table).toContain("CHECK");
    expect(result.rows).toEqual([
      { id: "m1", phase: "retrying", attempts: 2, checks: 0 },
      // Not a phase of the machine: read as in doubt, so the provider is asked before any resend.
      { id: "m2", phase: "in_doubt", attempts: 1, checks: 0 },
    ]);
    expect(result.refused).toMatch(/CHECK constraint failed/);
    expect((await lane.snapshot()).pending.map((p) => p.id)).toEqual(["m1", "m2"]);
  });
});
