// InstanceGovernor and the pacing API: the `pacing` object on PUT/GET, durable daily counts,
// pause on rate-overlimit / close / an invalid-number spike, resume on open / by an operator,
// instance.status events with the reason, and Evolution's sendPresence.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import openFixture from "../fixtures/evolution/connection.update.open.json";
import { sendPresence } from "../../src/evolution/client.ts";
import type { Durable } from "../../src/lanes/pacing/policy.ts";
import { api, eventually, json, setupTenant, simCalls, simulatorUrl } from "./helpers.ts";

const governorOf = (instanceId: string) => env.GOVERNORS.get(env.GOVERNORS.idFromName(instanceId));

async function putPacing(t: Awaited<ReturnType<typeof setupTenant>>, pacing: Record<string, unknown>) {
  return api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), pacing } });
}

async function instanceEvents(tenantId: string) {
  const rows = await env.DB.prepare("SELECT data FROM outbox_events WHERE tenant_id = ? AND type = 'instance.status' ORDER BY seq")
    .bind(tenantId)
    .all<{ data: string }>();
  return rows.results.map((r) => JSON.parse(r.data) as Record<string, unknown>);
}

describe("pacing on /v1/instances", () => {
  it("stores the pacing object, shows it with defaults, and keeps omitted fields", async () => {
    const t = await setupTenant();
    const before = await json(await api(`/v1/instances/${t.instance}`, { key: t.key }));
    expect(before.pacing).toEqual({
      ratePerMinute: 6000,
      burst: 100,
      gapMs: { min: 0, max: 0 },
      dailyCap: null,
      timeZone: "UTC",
      warmup: null,
      quietHours: null,
      typing: false,
      invalidNumberSpike: { count: 10, windowMinutes: 10 },
      overlimitPauseMinutes: 15,
    });
    expect(before.sending).toEqual({ paused: false });

    const res = await putPacing(t, {
      ratePerMinute: 20,
      burst: 3,
      gapMs: { min: 4000, max: 12000 },
      dailyCap: 200,
      timeZone: "America/Sao_Paulo",
      warmup: { days: 10, startPerDay: 20 },
      quietHours: { start: "21:00", end: "08:00" },
      typing: true,
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.ratePerMinute).toBe(20);
    expect(body.pacing).toMatchObject({
      ratePerMinute: 20,
      burst: 3,
      gapMs: { min: 4000, max: 12000 },
      dailyCap: 200,
      warmup: { days: 10, startPerDay: 20 },
      quietHours: { start: "21:00", end: "08:00", timeZone: "America/Sao_Paulo" },
      typing: true,
    });
    const row = await env.DB.prepare("SELECT gap_min_ms, gap_max_ms, daily_cap, warmup_since, quiet_start FROM instances WHERE id = ?")
      .bind(t.instanceId)
      .first();
    expect(row).toMatchObject({ gap_min_ms: 4000, gap_max_ms: 12000, daily_cap: 200, quiet_start: "21:00" });
    expect(row?.warmup_since).toBeGreaterThan(Date.now() - 60_000);

    // Omitted fields stay; null turns a feature off.
    const second = await json(await putPacing(t, { quietHours: null, typing: false }));
    expect(second.pacing).toMatchObject({ dailyCap: 200, quietHours: null, typing: false, gapMs: { min: 4000, max: 12000 } });
  });

  it("answers 400 with the path for impossible pacing", async () => {
    const t = await setupTenant();
    const cases: [Record<string, unknown>, string][] = [
      [{ gapMs: { min: 5000, max: 1000 } }, "pacing.gapMs.max"],
      [{ timeZone: "Mars/Olympus" }, "pacing.timeZone"],
      [{ quietHours: { start: "25:00", end: "08:00" } }, "pacing.quietHours.start"],
      [{ warmup: { days: 5, startPerDay: 10 } }, "pacing.warmup"],
      [{ burst: 0 }, "pacing.burst"],
      [{ unknown: 1 }, "pacing"],
    ];
    for (const [pacing, path] of cases) {
      const res = await putPacing(t, pacing);
      expect(res.status, JSON.stringify(pacing)).toBe(400);
      const body = await json(res);
      expect(body.error.code).toBe("invalid_request");
      expect(body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    }
    const conflict = await api(`/v1/instances/${t.instance}`, {
      method: "PUT",
      key: t.key,
      json: { evolutionUrl: simulatorUrl(), ratePerMinute: 10, pacing: { ratePerMinute: 20 } },
    });
    expect(conflict.status).toBe(400);
  });
});

describe("InstanceGovernor", () => {
  it("keeps the day's count in storage, so a restart cannot reopen a full day", async () => {
    const t = await setupTenant();
    await putPacing(t, { dailyCap: 2, timeZone: "America/Sao_Paulo" });
    const gov = governorOf(t.instanceId);
    const now = Date.UTC(2026, 10, 23, 15, 0);
    const laneKey = `${t.id}:${t.instanceId}:5511900000001`;
    const ask = (messageId: string, at: number) => gov.acquire({ laneKey, messageId, priority: 5, ratePerMinute: 6000, now: at });
    expect((await ask("m1", now)).go).toBe(true);
    expect((await ask("m2", now + 1)).go).toBe(true);
    expect(await ask("m3", now + 2)).toMatchObject({ go: false, reason: "daily-cap", retryAt: Date.UTC(2026, 10, 24, 3, 0) });
    expect((await ask("m1", now + 3)).go).toBe(true);
    const stored = await runInDurableObject(gov, (_o, state) => state.storage.kv.get<Durable>("durable"));
    expect(stored).toMatchObject({ day: "2026-11-23", count: 2 });
    expect(stored?.recent.map(([key]) => key)).toEqual(["m1#1", "m2#1"]);
    expect(await gov.status(t.instanceId, now + 4)).toMatchObject({ pause: null, today: { day: "2026-11-23", sent: 2, cap: 2 } });
    const shown = await json(await api(`/v1/instances/${t.instance}`, { key: t.key }));
    expect(shown.today).toMatchObject({ cap: 2, waiting: 1 });
  });

  it("pauses on rate-overlimit until the pause ends, with instance.status events", async () => {
    const t = await setupTenant();
    await putPacing(t, { overlimitPauseMinutes: 5 });
    const gov = governorOf(t.instanceId);
    const now = Date.now();
    const pause = await gov.report({ kind: "rate-overlimit", instanceId: t.instanceId, detail: "Evolution 400: rate-overlimit", now });
    expect(pause).toMatchObject({ reason: "rate-overlimit", until: now + 300_000 });
    const laneKey = `${t.id}:${t.instanceId}:5511900000002`;
    expect(await gov.acquire({ laneKey, messageId: "x", priority: 1, ratePerMinute: 6000, now: now + 1000 })).toMatchObject({
      go: false,
      reason: "paused",
      retryAt: now + 300_000,
    });
    const shown = await json(await api(`/v1/instances/${t.instance}`, { key: t.key }));
    expect(shown.sending).toMatchObject({ paused: true, reason: "rate-overlimit", until: new Date(now + 300_000).toISOString() });
    // A second lane hitting the same wall changes nothing.
    await gov.report({ kind: "rate-overlimit", instanceId: t.instanceId, now: now + 10 });
    expect((await gov.acquire({ laneKey, messageId: "x", priority: 1, ratePerMinute: 6000, now: now + 300_000 })).go).toBe(true);
    const events = await instanceEvents(t.id);
    expect(events.map((e) => [e.sending, e.reason])).toEqual([
      ["paused", "rate-overlimit"],
      ["active", "pause-expired"],
    ]);
    expect(events[0]).toMatchObject({ instance: t.instance, detail: "Evolution 400: rate-overlimit" });
  });

  it("pauses on a closed connection and resumes on open, through the webhook", async () => {
    const t = await setupTenant();
    const token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!
      .webhook_token;
    const hook = (state: string, statusReason: number) =>
      api(`/webhooks/evolution/${token}`, {
        method: "POST",
        json: { ...openFixture, instance: t.instance, data: { ...openFixture.data, instance: t.instance, state, statusReason } },
      });
    expect((await hook("close", 401)).status).toBe(200);
    await eventually(async () => (await governorOf(t.instanceId).status(t.instanceId)).pause?.reason === "connection-closed", 10_000, "pause");
    const paused = await json(await api(`/v1/instances/${t.instance}`, { key: t.key }));
    expect(paused).toMatchObject({ state: "close", sending: { paused: true, reason: "connection-closed" } });
    expect((await hook("open", 200)).status).toBe(200);
    await eventually(async () => (await governorOf(t.instanceId).status(t.instanceId)).pause === null, 10_000, "resume");
    const events = await eventually(async () => {
      const all = (await instanceEvents(t.id)).filter((e) => e.sending);
      return all.length === 2 ? all : undefined;
    });
    expect(events).toMatchObject([
      { sending: "paused", reason: "connection-closed", state: "close", detail: "statusReason 401" },
      { sending: "active", reason: "connection-open", state: "open" },
    ]);
  });

  it("pauses on a spike of numbers not on WhatsApp; only an operator resumes it", async () => {
    const t = await setupTenant();
    await putPacing(t, { invalidNumberSpike: { count: 3, windowMinutes: 5 } });
    const gov = governorOf(t.instanceId);
    const now = Date.now();
    for (let i = 0; i < 2; i++) expect(await gov.report({ kind: "invalid-number", instanceId: t.instanceId, now: now + i })).toBeNull();
    expect(await gov.report({ kind: "invalid-number", instanceId: t.instanceId, now: now + 2 })).toMatchObject({ reason: "invalid-number-spike" });
    // A connection coming back does not undo it.
    await gov.report({ kind: "connection", instanceId: t.instanceId, state: "open", now: now + 3 });
    expect((await gov.status(t.instanceId)).pause?.reason).toBe("invalid-number-spike");

    const res = await api(`/v1/instances/${t.instance}/resume`, { method: "POST", key: t.key });
    expect(res.status).toBe(200);
    expect((await json(res)).sending).toEqual({ paused: false });
    expect((await gov.status(t.instanceId)).pause).toBeNull();
    const events = await instanceEvents(t.id);
    expect(events.map((e) => [e.sending, e.reason])).toEqual([
      ["paused", "invalid-number-spike"],
      ["active", "operator"],
    ]);
    expect(events[0]?.detail).toBe("3 numbers not on WhatsApp within 5 min");
    expect((await api(`/v1/instances/nope/resume`, { method: "POST", key: t.key })).status).toBe(404);
  });
});

describe("Evolution sendPresence", () => {
  it("sets composing for the given time and reports Evolution's refusal", async () => {
    const t = await setupTenant();
    const instance = { name: t.instance, url: simulatorUrl(), apiKey: t.evolutionKey };
    expect(await sendPresence(instance, "5511900000003", 2400)).toEqual({ kind: "ok" });
    const calls = (await simCalls(t.instance)).filter((c) => c.route === "sendPresence");
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ status: 201, number: "5511900000003", body: { number: "5511900000003", presence: "composing", delay: 2400 } });
    const refused = await sendPresence({ ...instance, apiKey: "wrong" }, "5511900000003", 1000);
    expect(refused).toMatchObject({ kind: "failed" });
    expect(refused.kind === "failed" && refused.error).toContain("Evolution 401");
  });
});
