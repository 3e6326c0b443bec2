// Scheduled messages: held in the lane (those due within the horizon; the sweep hands over the
// others), fired by its one alarm, cancel/reschedule, the sweep.
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { database } from "../../src/db/client.ts";
import { messages } from "../../src/db/queries/index.ts";
import worker from "../../src/index.ts";
import { findInstances, LANE_HORIZON_MS, persistAndEnqueue, prepareMessage } from "../../src/messages/accept.ts";
import { handOverComingDue, requeueStranded } from "../../src/sweep/sweeper.ts";
import { wakeLanes } from "../../src/sweep/wake.ts";
import { ADMIN, api, eventually, fireRetry, json, laneStub, messageRow, send, setupTenant, simCalls, simulator, waitForStatus, postWith } from "./helpers.ts";

const HOUR = 3600_000;
// Due within the horizon: handed to the lane when accepted.
const NEAR = LANE_HORIZON_MS / 2;
const at = (ms: number) => new Date(ms).toISOString();

async function laneHolds(lane: ReturnType<typeof laneStub>, n: number) {
  return eventually(
    async () => {
      const snap = await lane.snapshot();
      return snap.pending.length === n ? snap : undefined;
    },
    10_000,
    `lane to hold ${n}`,
  );
}

/** Brings a scheduled message's time to now - ageMs, in D1 and in its lane, keeping relative order. */
async function makeDue(lane: ReturnType<typeof laneStub>, id: string, ageMs = 1000) {
  const when = Date.now() - ageMs;
  await env.DB.prepare("UPDATE messages SET send_at = ?, ready_at = ? WHERE id = ?").bind(when, when, id).run();
  // Through the lane's own RPC (its alarm re-armed for the new time), as a reschedule does.
  expect(await lane.reschedule(id, when)).toBe(true);
}

describe("scheduling", () => {
  it("holds a scheduled message due within the horizon in its lane with the alarm at sendAt, and sends it when the alarm runs", async () => {
    const t = await setupTenant();
    const to = "5511977770001";
    const sendAt = Date.now() + NEAR;
    const res = await send(t.key, { instance: t.instance, to, text: "agendada", sendAt: at(sendAt) });
    expect(res.status).toBe(202);
    const body = await json(res);
    expect(body).toMatchObject({ status: "scheduled", sendAt: at(sendAt) });
    const lane = laneStub(t.id, t.instanceId, to);
    const snap = await laneHolds(lane, 1);
    expect(snap.alarm).toBe(sendAt);
    expect(snap.pending[0]).toMatchObject({ id: body.id, ready_at: sendAt });
    // Not due: the alarm run sends nothing.
    await runDurableObjectAlarm(lane);
    expect(await simCalls(t.instance)).toHaveLength(0);
    await makeDue(lane, body.id);
    await runDurableObjectAlarm(lane);
    const row = await waitForStatus(body.id, ["sent"]);
    expect(row.attempts).toBe(1);
    const history = (
      await env.DB.prepare("SELECT status FROM message_history WHERE message_id = ? ORDER BY id").bind(body.id).all<{ status: string }>()
    ).results.map((h) => h.status);
    expect(history).toEqual(["scheduled", "queued", "processing", "sent"]);
    expect((await lane.snapshot()).alarm).toBeNull();
  });

  it("re-arms the alarm to the next earliest item after cancel and reschedule", async () => {
    const t = await setupTenant();
    const to = "5511977770002";
    const first = (await json(await send(t.key, { instance: t.instance, to, text: "primeira", sendAt: at(Date.now() + NEAR) }))).id;
    const secondAt = Date.now() + NEAR + 30_000;
    const second = (await json(await send(t.key, { instance: t.instance, to, text: "segunda", sendAt: at(secondAt) }))).id;
    const lane = laneStub(t.id, t.instanceId, to);
    await laneHolds(lane, 2);
    const canceled = await api(`/v1/messages/${first}`, { method: "DELETE", key: t.key });
    expect(canceled.status).toBe(200);
    expect((await json(canceled)).status).toBe("canceled");
    expect((await lane.snapshot()).alarm).toBe(secondAt);
    const movedTo = Date.now() + NEAR / 2;
    const moved = await api(`/v1/messages/${second}`, { method: "PATCH", key: t.key, json: { sendAt: at(movedTo) } });
    expect(moved.status).toBe(200);
    expect(await json(moved)).toMatchObject({ status: "scheduled", sendAt: at(movedTo) });
    const snap = await lane.snapshot();
    expect(snap.alarm).toBe(movedTo);
    expect(snap.pending.map((w) => [w.id, w.ready_at])).toEqual([[second, movedTo]]);
    // A canceled message never goes out, even if it were made due.
    await makeDue(lane, second);
    await runDurableObjectAlarm(lane);
    await waitForStatus(second, ["sent"]);
    expect((await simCalls(t.instance)).map((c) => c.body.text)).toEqual(["segunda"]);
    expect((await messageRow(first))?.status).toBe("canceled");
  });

  it("mixed immediate and scheduled messages to one contact go out in due-time order", async () => {
    const t = await setupTenant();
    const to = "5511977770003";
    const late = (await json(await send(t.key, { instance: t.instance, to, text: "agendada depois", sendAt: at(Date.now() + NEAR + 30_000) }))).id;
    const early = (await json(await send(t.key, { instance: t.instance, to, text: "agendada antes", sendAt: at(Date.now() + NEAR) }))).id;
    const now = (await json(await send(t.key, { instance: t.instance, to, text: "imediata" }))).id;
    await waitForStatus(now, ["sent"]);
    const lane = laneStub(t.id, t.instanceId, to);
    await laneHolds(lane, 2);
    // Both become due, keeping their order: the earlier is older (and is due first, should the
    // lane's alarm run between the two).
    await makeDue(lane, early, 2000);
    await makeDue(lane, late, 1000);
    await runDurableObjectAlarm(lane);
    await waitForStatus(late, ["sent"]);
    expect((await simCalls(t.instance)).map((c) => c.body.text)).toEqual(["imediata", "agendada antes", "agendada depois"]);
    expect((await messageRow(early))?.status).toBe("sent");
  });

  it("a retry and a schedule in one lane share the alarm: the earliest wins", async () => {
    const t = await setupTenant();
    const to = "5511977770004";
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: to, status: 503, headers: { "retry-after": "1" }, times: 1 } });
    const retrying = (await json(await send(t.key, { instance: t.instance, to, text: "falha uma vez" }))).id;
    await eventually(async () => ((await messageRow(retrying))?.last_error ? true : undefined));
    // Inside the horizon, and later than the first retry's backoff (at most a minute in tests).
    const scheduledAt = Date.now() + LANE_HORIZON_MS - 1_000;
    const scheduled = (await json(await send(t.key, { instance: t.instance, to, text: "depois", sendAt: at(scheduledAt) }))).id;
    const lane = laneStub(t.id, t.instanceId, to);
    const snap = await laneHolds(lane, 2);
    const retryAt = snap.pending.find((w) => w.id === retrying)!.next_at;
    expect(retryAt).toBeLessThan(scheduledAt);
    expect(snap.alarm).toBe(retryAt);
    await fireRetry(lane);
    await waitForStatus(retrying, ["sent"]);
    expect((await lane.snapshot()).alarm).toBe(scheduledAt);
    expect((await messageRow(scheduled))?.status).toBe("scheduled");
  });
});

/** A Worker whose lane calls and sends-queue writes are recorded (then made as usual). */
function recorded() {
  const laneCalls: string[] = [];
  const queued: { messageId: string }[] = [];
  const bindings = {
    ...env,
    LANES: {
      idFromName: (name: string) => {
        laneCalls.push(name);
        return env.LANES.idFromName(name);
      },
      get: (id: DurableObjectId) => env.LANES.get(id),
    },
    SENDS: {
      send: async (body: { messageId: string }) => void queued.push(body),
      sendBatch: async (batch: { body: { messageId: string } }[]) => void queued.push(...batch.map((m) => m.body)),
    },
  } as unknown as Env;
  return { bindings, laneCalls, queued };
}

/** POST /v1/messages through `bindings`, waiting for the request's background work (its hand-off). */
const postAndSettle = (bindings: Env, key: string, body: unknown, headers: Record<string, string> = {}) =>
  postWith(bindings, "/v1/messages", body, { key, headers });

/** Hands the sweep's jobs to the Worker's sends consumer, as the queue would. */
async function consume(jobs: unknown[]) {
  const batch = createMessageBatch(
    "mensageiro-sends",
    jobs.map((body, i) => ({ id: `handover-${i}-${Math.random()}`, timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env, ctx);
  await getQueueResult(batch, ctx);
}

describe("scheduled beyond the horizon: in D1 alone until the sweep hands it over", () => {
  it("is written and answered 202 (at once with Prefer: wait) with no lane call and no queue message", async () => {
    const t = await setupTenant();
    const to = "5511977770020";
    const sendAt = Date.now() + HOUR;
    const spy = recorded();
    const res = await postAndSettle(spy.bindings, t.key, { instance: t.instance, to, text: "longe", sendAt: at(sendAt) }, { prefer: "wait=5" });
    expect(res.status).toBe(202);
    expect(res.headers.get("preference-applied")).toBeNull();
    const { id } = await json(res);
    // The request's background work is over: it called no lane and wrote nothing to the queue.
    expect(spy.laneCalls).toEqual([]);
    expect(spy.queued).toEqual([]);
    // The row is the record: scheduled, untouched since it was written; the lane holds nothing.
    const row = await messageRow(id);
    expect(row).toMatchObject({ status: "scheduled", ready_at: sendAt, updated_at: row?.created_at });
    expect(await laneStub(t.id, t.instanceId, to).snapshot()).toMatchObject({ pending: [], alarm: null });
    // One due within the horizon, to the same contact, goes to the lane as before.
    const near = await postAndSettle(spy.bindings, t.key, { instance: t.instance, to, text: "perto", sendAt: at(Date.now() + NEAR) });
    expect(spy.laneCalls).toHaveLength(1);
    expect((await laneStub(t.id, t.instanceId, to).snapshot()).pending.map((p) => p.id)).toEqual([(await json(near)).id]);
  });

  it("the sweep hands it over once its time comes within the horizon, once, and it is sent once at its time", async () => {
    const t = await setupTenant();
    const to = "5511977770021";
    const sendAt = Date.now() + HOUR;
    const id = (await json(await postAndSettle(env, t.key, { instance: t.instance, to, text: "na hora", sendAt: at(sendAt) }))).id;
    const spy = recorded();
    const mine = () => spy.queued.filter((j) => j.messageId === id);
    // A minute before the horizon: not yet.
    await handOverComingDue(spy.bindings, sendAt - LANE_HORIZON_MS - 60_000);
    expect(mine()).toEqual([]);
    // Within it: handed over, through the sends queue; the run after does not hand it over again.
    expect(await handOverComingDue(spy.bindings, sendAt - LANE_HORIZON_MS + 1_000)).toBeGreaterThanOrEqual(1);
    await handOverComingDue(spy.bindings, sendAt - LANE_HORIZON_MS + 61_000);
    expect(mine()).toHaveLength(1);
    await consume(mine());
    const lane = laneStub(t.id, t.instanceId, to);
    const snap = await lane.snapshot();
    expect(snap.pending.map((p) => [p.id, p.ready_at])).toEqual([[id, sendAt]]);
    expect(snap.alarm).toBe(sendAt);
    expect((await messageRow(id))?.status).toBe("scheduled");
    await makeDue(lane, id);
    await runDurableObjectAlarm(lane);
    await waitForStatus(id, ["sent"]);
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["na hora"]);
  });

  it("the sweep's query walks messages_active_ready", async () => {
    const plan = await database(env.DB).all<{ detail: string }>(sql`EXPLAIN QUERY PLAN ${messages.comingDue(Date.now(), LANE_HORIZON_MS, 500)}`);
    expect(plan.map((r) => r.detail).join("\n")).toMatch(/USING INDEX messages_active_ready \(status=\? AND ready_at<\?\)/);
  });

  it("an immediate send does not overtake it when the sweep has not handed it over by its time", async () => {
    const t = await setupTenant();
    const to = "5511977770022";
    const scheduled = (await json(await postAndSettle(env, t.key, { instance: t.instance, to, text: "agendada", sendAt: at(Date.now() + HOUR) }))).id;
    expect((await laneStub(t.id, t.instanceId, to).snapshot()).pending).toEqual([]);
    // Its time has come in D1, and no sweep ran (a missed cron): the lane never heard of it.
    const due = Date.now() - 2_000;
    await env.DB.prepare("UPDATE messages SET send_at = ?1, ready_at = ?1 WHERE id = ?2").bind(due, scheduled).run();
    const now = (await json(await send(t.key, { instance: t.instance, to, text: "imediata" }))).id;
    await waitForStatus(now, ["sent"]);
    expect((await messageRow(scheduled))?.status).toBe("sent");
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["agendada", "imediata"]);
  });

  it("cancel and reschedule work before the hand-over; a move within the horizon hands it over at once", async () => {
    const t = await setupTenant();
    const to = "5511977770023";
    const lane = laneStub(t.id, t.instanceId, to);
    const post = async (text: string, sendAt: number) =>
      (await json(await postAndSettle(env, t.key, { instance: t.instance, to, text, sendAt: at(sendAt) }))).id;
    const canceledAt = Date.now() + HOUR;
    const canceled = await post("cancelada", canceledAt);
    const moved = await post("movida", Date.now() + 2 * HOUR);
    expect((await json(await api(`/v1/messages/${canceled}`, { method: "DELETE", key: t.key }))).status).toBe("canceled");
    // Moved, still beyond the horizon: in D1 alone.
    const fartherAt = Date.now() + 3 * HOUR;
    const farther = await api(`/v1/messages/${moved}`, { method: "PATCH", key: t.key, json: { sendAt: at(fartherAt) } });
    expect(await json(farther)).toMatchObject({ status: "scheduled", sendAt: at(fartherAt) });
    expect((await lane.snapshot()).pending).toEqual([]);
    // The sweep never hands over the canceled one.
    const spy = recorded();
    await handOverComingDue(spy.bindings, canceledAt);
    expect(spy.queued.filter((j) => j.messageId === canceled)).toEqual([]);
    // Moved within the horizon: the lane holds it now, its alarm at the new time.
    const nearAt = Date.now() + NEAR;
    expect((await api(`/v1/messages/${moved}`, { method: "PATCH", key: t.key, json: { sendAt: at(nearAt) } })).status).toBe(200);
    const snap = await lane.snapshot();
    expect(snap.pending.map((p) => [p.id, p.ready_at])).toEqual([[moved, nearAt]]);
    expect(snap.alarm).toBe(nearAt);
    await makeDue(lane, moved);
    await runDurableObjectAlarm(lane);
    await waitForStatus(moved, ["sent"]);
    expect((await simCalls(t.instance)).filter((c) => c.number === to).map((c) => c.body.text)).toEqual(["movida"]);
    expect((await messageRow(canceled))?.status).toBe("canceled");
  });
});

describe("bad input", () => {
  it("422 for sendAt now, past, or over 90 days; 400 for not a date or no offset", async () => {
    const t = await setupTenant();
    const base = { instance: t.instance, to: "5511977770005", text: "x" };
    const cases: [string, number, RegExp][] = [
      [at(Date.now() - 60_000), 422, /future/],
      [at(Date.now()), 422, /future/],
      [at(Date.now() + 91 * 24 * HOUR), 422, /90 days/],
      ["amanhã às nove", 400, /invalid/],
      ["2026-12-01T09:00:00", 400, /invalid/],
    ];
    for (const [sendAt, status, message] of cases) {
      const res = await send(t.key, { ...base, sendAt });
      expect(res.status, sendAt).toBe(status);
      const err = (await json(res)).error;
      expect(err.message).toMatch(message);
      expect(err.details[0].path).toBe("sendAt");
    }
    const batch = await json(
      await api("/v1/messages/batch", {
        method: "POST",
        key: t.key,
        json: {
          messages: [
            { ...base, sendAt: at(Date.now() + HOUR) },
            { ...base, sendAt: at(Date.now() - HOUR) },
          ],
        },
      }),
    );
    expect(batch.results[0]).toMatchObject({ status: "scheduled" });
    expect(batch.results[1].error).toMatchObject({ code: "unprocessable", details: [{ path: "sendAt" }] });
  });

  it("409 for PATCH on a message that is not scheduled, and for cancel once sent or canceled", async () => {
    const t = await setupTenant();
    const sent = (await json(await send(t.key, { instance: t.instance, to: "5511977770006", text: "já foi" }))).id;
    await waitForStatus(sent, ["sent"]);
    const patch = await api(`/v1/messages/${sent}`, { method: "PATCH", key: t.key, json: { sendAt: at(Date.now() + HOUR) } });
    expect(patch.status).toBe(409);
    const del = await api(`/v1/messages/${sent}`, { method: "DELETE", key: t.key });
    expect(del.status).toBe(409);
    expect((await json(del)).error.code).toBe("conflict");
    const scheduled = (await json(await send(t.key, { instance: t.instance, to: "5511977770007", text: "x", sendAt: at(Date.now() + HOUR) }))).id;
    expect((await api(`/v1/messages/${scheduled}`, { method: "DELETE", key: t.key })).status).toBe(200);
    expect((await api(`/v1/messages/${scheduled}`, { method: "DELETE", key: t.key })).status).toBe(409);
    expect((await api(`/v1/messages/${scheduled}`, { method: "PATCH", key: t.key, json: { sendAt: "not a date" } })).status).toBe(400);
    expect((await api(`/v1/messages/msg_00000000000000000000000000`, { method: "DELETE", key: t.key })).status).toBe(404);
  });
});

describe("compatibility alias", () => {
  it("POST /api/whatsapp/schedule-message answers 202 and schedules", async () => {
    const t = await setupTenant();
    const scheduledFor = at(Date.now() + HOUR);
    const res = await api("/api/whatsapp/schedule-message", {
      method: "POST",
      key: t.key,
      json: { instanceName: t.instance, phoneNumber: "5511977770008", message: "lembrete", scheduledFor },
    });
    expect(res.status).toBe(202);
    const body = await json(res);
    expect(body).toEqual({ success: true, scheduleId: expect.stringMatching(/^msg_/), scheduledFor, message: "Mensagem agendada com sucesso" });
    expect(await messageRow(body.scheduleId)).toMatchObject({ status: "scheduled", send_at: Date.parse(scheduledFor) });
    const past = await api("/api/whatsapp/schedule-message", {
      method: "POST",
      key: t.key,
      json: { instanceName: t.instance, phoneNumber: "5511977770008", message: "x", scheduledFor: at(Date.now() - HOUR) },
    });
    expect(past.status).toBe(422);
    expect(await json(past)).toMatchObject({ success: false, error: { code: "unprocessable" } });
  });
});

describe("wake after a restart", () => {
  it("a lane that never got its job takes its pending messages up from D1 and arms its alarm", async () => {
    const t = await setupTenant();
    const to = "5511977770012";
    const db = database(env.DB);
    const instances = await findInstances(db, t.id, [t.instance]);
    const due = Date.now() + HOUR;
    // Accepted and written, but the queue hop died with the runtime.
    const lost = prepareMessage(
      { id: t.id, name: "t", maxAttempts: 3 },
      instances,
      { instance: t.instance, to, text: "acordada", sendAt: at(due) },
      Date.now(),
    );
    await persistAndEnqueue({ ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env, db, [lost]);
    const lane = laneStub(t.id, t.instanceId, to);
    expect((await lane.snapshot()).pending).toEqual([]);
    expect(await wakeLanes(env)).toBeGreaterThanOrEqual(1);
    const snap = await lane.snapshot();
    expect(snap.pending.map((w) => w.id)).toEqual([lost.row.id]);
    expect(snap.alarm).toBe(due);
    await makeDue(lane, lost.row.id);
    await runDurableObjectAlarm(lane);
    await waitForStatus(lost.row.id, ["sent"]);
  });
});

describe("sweep", () => {
  it("re-enqueues a stranded queued message, and the lane sends it exactly once", async () => {
    const t = await setupTenant();
    const to = "5511977770009";
    const db = database(env.DB);
    const instances = await findInstances(db, t.id, [t.instance]);
    const stranded = prepareMessage({ id: t.id, name: "t", maxAttempts: 3 }, instances, { instance: t.instance, to, text: "perdida" }, Date.now());
    await persistAndEnqueue({ ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env, db, [stranded]);
    // The sweep's jobs are captured, then handed to the Worker's consumer: each is seen through.
    const jobs: unknown[] = [];
    const capture = { ...env, SENDS: { sendBatch: async (batch: { body: unknown }[]) => void jobs.push(...batch.map((m) => m.body)) } } as unknown as Env;
    expect(await requeueStranded(capture, Date.now())).toBe(0);
    // Past the threshold (5 min), twice in a row, as two cron runs would.
    expect(await requeueStranded(capture, Date.now() + 10 * 60_000)).toBeGreaterThanOrEqual(1);
    await env.DB.prepare("UPDATE messages SET updated_at = 0, ready_at = 0 WHERE id = ? AND status = 'queued'").bind(stranded.row.id).run();
    await requeueStranded(capture, Date.now() + 10 * 60_000);
    const mine = jobs.filter((j) => JSON.stringify(j).includes(stranded.row.id));
    expect(mine).toHaveLength(2);
    for (const [i, body] of mine.entries()) {
      const batch = createMessageBatch("mensageiro-sends", [{ id: `sweep-${i}`, timestamp: new Date(), attempts: 1, body }]);
      const ctx = createExecutionContext();
      await worker.queue(batch, env, ctx);
      expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual([`sweep-${i}`]);
      await waitForStatus(stranded.row.id, ["sent"]);
    }
    await runDurableObjectAlarm(laneStub(t.id, t.instanceId, to));
    expect((await simCalls(t.instance)).filter((c) => c.number === to)).toHaveLength(1);
  });

  it("purges terminal messages past retention, on demand through the admin route", async () => {
    const t = await setupTenant();
    const old = (await json(await send(t.key, { instance: t.instance, to: "5511977770010", text: "velha" }))).id;
    const fresh = (await json(await send(t.key, { instance: t.instance, to: "5511977770011", text: "nova" }))).id;
    await waitForStatus(old, ["sent"]);
    await waitForStatus(fresh, ["sent"]);
    await env.DB.prepare("UPDATE messages SET created_at = ?1, updated_at = ?1 WHERE id = ?2")
      .bind(Date.now() - 31 * 24 * HOUR, old)
      .run();
    expect((await api("/v1/admin/cleanup", { method: "POST", key: t.key })).status).toBe(401);
    const res = await api("/v1/admin/cleanup", { method: "POST", key: ADMIN });
    expect(res.status).toBe(200);
    const report = await json(res);
    expect(report.removed.messages).toBeGreaterThanOrEqual(1);
    expect(await messageRow(old)).toBeNull();
    expect((await messageRow(fresh))?.status).toBe("sent");
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM message_history WHERE message_id = ?").bind(old).first()).toEqual({ n: 0 });
  });
});
