// Scheduled messages: held in the lane, fired by its one alarm, cancel/reschedule, the sweep.
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client.ts";
import worker from "../../src/index.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../../src/messages/accept.ts";
import { requeueStranded } from "../../src/sweep/sweeper.ts";
import { wakeLanes } from "../../src/sweep/wake.ts";
import { ADMIN, api, eventually, fireRetry, json, laneStub, messageRow, send, setupTenant, simCalls, simulator, waitForStatus } from "./helpers.ts";

const HOUR = 3600_000;
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
  it("holds a scheduled message in its lane with the alarm at sendAt, and sends it when the alarm runs", async () => {
    const t = await setupTenant();
    const to = "5511977770001";
    const sendAt = Date.now() + HOUR;
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
    const first = (await json(await send(t.key, { instance: t.instance, to, text: "1h", sendAt: at(Date.now() + HOUR) }))).id;
    const secondAt = Date.now() + 2 * HOUR;
    const second = (await json(await send(t.key, { instance: t.instance, to, text: "2h", sendAt: at(secondAt) }))).id;
    const lane = laneStub(t.id, t.instanceId, to);
    await laneHolds(lane, 2);
    const canceled = await api(`/v1/messages/${first}`, { method: "DELETE", key: t.key });
    expect(canceled.status).toBe(200);
    expect((await json(canceled)).status).toBe("canceled");
    expect((await lane.snapshot()).alarm).toBe(secondAt);
    const movedTo = Date.now() + 30 * 60_000;
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
    expect((await simCalls(t.instance)).map((c) => c.body.text)).toEqual(["2h"]);
    expect((await messageRow(first))?.status).toBe("canceled");
  });

  it("mixed immediate and scheduled messages to one contact go out in due-time order", async () => {
    const t = await setupTenant();
    const to = "5511977770003";
    const late = (await json(await send(t.key, { instance: t.instance, to, text: "agendada +2h", sendAt: at(Date.now() + 2 * HOUR) }))).id;
    const early = (await json(await send(t.key, { instance: t.instance, to, text: "agendada +1h", sendAt: at(Date.now() + HOUR) }))).id;
    const now = (await json(await send(t.key, { instance: t.instance, to, text: "imediata" }))).id;
    await waitForStatus(now, ["sent"]);
    const lane = laneStub(t.id, t.instanceId, to);
    await laneHolds(lane, 2);
    // Both become due, keeping their order: +1h is older than +2h (and is due first, should the
    // lane's alarm run between the two).
    await makeDue(lane, early, 2000);
    await makeDue(lane, late, 1000);
    await runDurableObjectAlarm(lane);
    await waitForStatus(late, ["sent"]);
    expect((await simCalls(t.instance)).map((c) => c.body.text)).toEqual(["imediata", "agendada +1h", "agendada +2h"]);
    expect((await messageRow(early))?.status).toBe("sent");
  });

  it("a retry and a schedule in one lane share the alarm: the earliest wins", async () => {
    const t = await setupTenant();
    const to = "5511977770004";
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: to, status: 503, headers: { "retry-after": "1" }, times: 1 } });
    const retrying = (await json(await send(t.key, { instance: t.instance, to, text: "falha uma vez" }))).id;
    await eventually(async () => ((await messageRow(retrying))?.last_error ? true : undefined));
    const scheduledAt = Date.now() + HOUR;
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
