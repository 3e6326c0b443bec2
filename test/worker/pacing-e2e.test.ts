// Pacing end to end: API → queue → ContactLane → InstanceGovernor → simulator. Time is moved by
// firing lane alarms and by setting the governor's day, never by sleeping.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import openFixture from "../fixtures/evolution/connection.update.open.json";
import type { InstanceGovernor } from "../../src/lanes/instance-governor.ts";
import { api, eventually, fireRetry, json, laneStub, messageRow, send, setupTenant, simCalls, simulator, simulatorUrl, waitForStatus } from "./helpers.ts";

type Tenant = Awaited<ReturnType<typeof setupTenant>>;

const governorOf = (instanceId: string) => env.GOVERNORS.get(env.GOVERNORS.idFromName(instanceId));

async function paced(pacing: Record<string, unknown>): Promise<Tenant> {
  const t = await setupTenant();
  const res = await api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), pacing } });
  expect(res.status).toBe(200);
  return t;
}

async function sendAll(t: Tenant, items: { to: string; text: string; priority?: number }[]): Promise<string[]> {
  const ids: string[] = [];
  for (const item of items) {
    const res = await send(t.key, { instance: t.instance, ...item });
    expect(res.status).toBe(202);
    ids.push((await json(res)).id);
  }
  return ids;
}

const texts = async (t: Tenant, to?: string) =>
  (await simCalls(t.instance)).filter((c) => c.route === "sendText" && c.status === 201 && (!to || c.number === to)).map((c) => c.body.text as string);

const history = async (id: string) =>
  (
    await env.DB.prepare("SELECT status, detail FROM message_history WHERE message_id = ? ORDER BY id")
      .bind(id)
      .all<{ status: string; detail: string | null }>()
  ).results;

/** Until the governor has answered this many requests with a wait (lanes parked on their alarms). */
const waiting = (t: Tenant, n: number) =>
  eventually(async () => ((await governorOf(t.instanceId).status(t.instanceId)).today.waiting >= n ? true : undefined), 10_000, `${n} waiting`);

/** Each contact's lane holds its head on the governor, its alarm at least `ms` away. The lane's
 *  first alarm after an enqueue is "work now"; it parks (re-arms far out) once the governor said
 *  wait, so the far alarm is the signal waited for, not whichever alarm is seen first. */
const expectParkedFor = async (t: Tenant, contacts: string[], ms: number) => {
  for (const to of contacts) {
    await eventually(
      () =>
        runInDurableObject(laneStub(t.id, t.instanceId, to), async (_l, state) => {
          const alarm = await state.storage.getAlarm();
          return alarm !== null && alarm - Date.now() > ms ? alarm : undefined;
        }),
      10_000,
      `alarm of ${to} more than ${ms} ms away`,
    );
  }
};

/** Makes the governor's next slot free now (as if the gap and bucket had run out). */
const freeSlot = (t: Tenant) =>
  runInDurableObject(governorOf(t.instanceId), (gov: InstanceGovernor) => {
    gov.policy.durable = { ...gov.policy.durable, tat: 0, gapUntil: 0 };
    gov.policy.sends = { turn: null, floor: 0 };
  });

describe("gaps and rate", () => {
  it("keeps the gaps within [min, max] and the rate within limit + burst, order kept", async () => {
    const t = await paced({ ratePerMinute: 600, burst: 2, gapMs: { min: 150, max: 300 } });
    const contacts = ["5511970000001", "5511970000002", "5511970000003"];
    // Evolution takes 400 ms per send, longer than the gaps: a grant alone would let the next
    // call start while the previous one is still out.
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, route: "sendText", status: 201, delayMs: 400, times: 6 } });
    const ids = await sendAll(
      t,
      contacts.flatMap((to) => [0, 1].map((n) => ({ to, text: `g${n}` }))),
    );
    for (const id of ids) await waitForStatus(id, ["sent"], 20_000);
    const grants = await runInDurableObject(governorOf(t.instanceId), (gov: InstanceGovernor) => gov.policy.durable.recent.map(([, at]) => at));
    expect(grants).toHaveLength(6);
    const gaps = grants.slice(1).map((at, i) => at - grants[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(150);
    // Lanes come back on their alarms (or are woken when the turn ends): a little late, never
    // early; each grant waits for the previous call's 400 ms too.
    expect(Math.max(...gaps)).toBeLessThan(400 + 300 + 1_500);
    // What the contacts see: each text at least the minimum gap after the previous one's answer.
    // (The grants alone do not ensure it: each lane claims its message in D1 between its grant
    // and its call, and claims finish in bunches; the number's turn does.)
    const calls = (await simCalls(t.instance)).filter((c) => c.route === "sendText");
    expect(calls).toHaveLength(6);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.at - (calls[i - 1]!.answeredAt ?? Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(150);
    for (const to of contacts) expect(await texts(t, to)).toEqual(["g0", "g1"]);
  });
});

describe("turns", () => {
  it("the end of a number's turn wakes the next lane in line; it does not wait for its own retry time", async () => {
    // 6/min: a waiting lane's own retry time is a spacing (10 s) away; the burst lets both go by rate.
    const t = await paced({ ratePerMinute: 6, burst: 5, gapMs: { min: 100, max: 100 } });
    const [a, b] = ["5511970000041", "5511970000042"];
    // a's call takes 2.5 s (under the 3 s timeout): b asks while a has the turn.
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: a, route: "sendText", status: 201, delayMs: 2_500, times: 1 } });
    const [first] = await sendAll(t, [{ to: a, text: "a1" }]);
    // a holds the number's turn (its call is out for 2.5 s).
    await eventually(
      () => runInDurableObject(governorOf(t.instanceId), (gov: InstanceGovernor) => (gov.policy.sends.turn ? true : undefined)),
      10_000,
      "a's turn",
    );
    const [second] = await sendAll(t, [{ to: b, text: "b1" }]);
    await expectParkedFor(t, [b], 5_000);
    await waitForStatus(first!, ["sent"]);
    await waitForStatus(second!, ["sent"], 10_000);
    const calls = (await simCalls(t.instance)).filter((c) => c.route === "sendText");
    expect(calls.map((c) => c.number)).toEqual([a, b]);
    const wait = calls[1]!.at - (calls[0]!.answeredAt ?? Number.POSITIVE_INFINITY);
    // The gap after a's answer, then b: woken, not at its retry time 10 s after it asked.
    expect(wait).toBeGreaterThanOrEqual(100);
    // Without the wake it is about 8.5 s (b's retry time was 10 s after it asked, 2.5 s before a's answer).
    expect(wait).toBeLessThan(6_000);
  });
});

describe("daily cap and warm-up", () => {
  it("holds past the cap with a note, and resumes the next day in order", async () => {
    const t = await paced({ dailyCap: 2 });
    const to = "5511970000011";
    const ids = await sendAll(
      t,
      ["c1", "c2", "c3", "c4"].map((text) => ({ to, text })),
    );
    await waitForStatus(ids[1]!, ["sent"]);
    await eventually(async () => (await history(ids[2]!)).some((h) => h.detail?.includes("daily cap of 2 reached")), 10_000, "cap note");
    expect((await messageRow(ids[2]!))?.status).toBe("queued");
    expect((await messageRow(ids[3]!))?.status).toBe("queued");
    expect(await texts(t, to)).toEqual(["c1", "c2"]);

    // The next day: the governor's count belongs to yesterday.
    await runInDurableObject(governorOf(t.instanceId), (gov: InstanceGovernor) => {
      gov.policy.durable = { ...gov.policy.durable, day: "2000-01-01" };
    });
    await fireRetry(laneStub(t.id, t.instanceId, to));
    await waitForStatus(ids[3]!, ["sent"]);
    expect(await texts(t, to)).toEqual(["c1", "c2", "c3", "c4"]);
  });

  it("starts a warming number at startPerDay", async () => {
    const t = await paced({ dailyCap: 100, warmup: { days: 10, startPerDay: 2 } });
    const shown = await json(await api(`/v1/instances/${t.instance}`, { key: t.key }));
    expect(shown.today).toMatchObject({ cap: 2, sent: 0 });
    const ids = await sendAll(
      t,
      ["w1", "w2", "w3"].map((text, i) => ({ to: `551197000002${i}`, text })),
    );
    await eventually(async () => ((await texts(t)).length === 2 ? true : undefined));
    await waiting(t, 1);
    const rows = await Promise.all(ids.map(messageRow));
    expect(rows.map((r) => r?.status).sort()).toEqual(["queued", "sent", "sent"]);
  });
});

describe("quiet hours", () => {
  it("holds due and scheduled messages until the window ends, then sends them in order", async () => {
    const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);
    const now = Date.now();
    const t = await paced({ quietHours: { start: hhmm(now - 3_600_000), end: hhmm(now + 3_600_000), timeZone: "UTC" } });
    const to = "5511970000031";
    const ids = await sendAll(t, [
      { to, text: "q1" },
      { to, text: "q2" },
    ]);
    // Another contact's scheduled message comes due inside the window.
    const other = "5511970000032";
    const scheduled = (await json(await send(t.key, { instance: t.instance, to: other, text: "q3", sendAt: new Date(Date.now() + 1_000).toISOString() }))).id;
    await eventually(async () => (await history(ids[0]!)).some((h) => h.detail?.startsWith("quiet hours")), 10_000, "quiet note");
    await eventually(async () => (await history(scheduled)).some((h) => h.detail?.startsWith("quiet hours")), 10_000, "scheduled quiet note");
    expect(await texts(t, to)).toEqual([]);
    const alarm = await runInDurableObject(laneStub(t.id, t.instanceId, to), (_l, state) => state.storage.getAlarm());
    expect(alarm).toBeGreaterThan(now + 3_500_000);

    // The window ends (here: it is lifted) and the lane's alarm fires.
    await api(`/v1/instances/${t.instance}`, { method: "PUT", key: t.key, json: { evolutionUrl: simulatorUrl(), pacing: { quietHours: null } } });
    await fireRetry(laneStub(t.id, t.instanceId, to));
    await fireRetry(laneStub(t.id, t.instanceId, other));
    await waitForStatus(ids[1]!, ["sent"]);
    await waitForStatus(scheduled, ["sent"]);
    expect(await texts(t, to)).toEqual(["q1", "q2"]);
    expect(await texts(t, other)).toEqual(["q3"]);
  });
});

describe("typing presence", () => {
  it("sends composing for a time scaled to the text, then the text on the lane's alarm", async () => {
    const t = await paced({ typing: true });
    const to = "5511970000041";
    const text = "x".repeat(100); // 100 characters: 4 s of typing
    const [id] = await sendAll(t, [{ to, text }]);
    const presence = await eventually(async () => (await simCalls(t.instance)).find((c) => c.route === "sendPresence"));
    expect(presence.body).toEqual({ number: to, presence: "composing", delay: 4_000 });
    expect(await texts(t, to)).toEqual([]);
    const alarm = await runInDurableObject(laneStub(t.id, t.instanceId, to), (_l, state) => state.storage.getAlarm());
    expect(alarm! - presence.at).toBeGreaterThanOrEqual(3_500);
    expect(alarm! - presence.at).toBeLessThanOrEqual(4_500);

    // Four seconds pass: the governor's reserved send time is now.
    await runInDurableObject(governorOf(t.instanceId), (gov: InstanceGovernor) => {
      gov.policy.durable = { ...gov.policy.durable, recent: gov.policy.durable.recent.map(([key]) => [key, Date.now()] as [string, number]) };
    });
    await fireRetry(laneStub(t.id, t.instanceId, to));
    await waitForStatus(id!, ["sent"]);
    const calls = (await simCalls(t.instance)).filter((c) => c.number === to);
    expect(calls.map((c) => c.route)).toEqual(["sendPresence", "sendText"]);
    // The text itself never asks Evolution to wait.
    expect(calls[1]!.body.delay).toBeUndefined();
  });
});

describe("pause and resume", () => {
  const hookFor = async (t: Tenant) => {
    const token = (await env.DB.prepare("SELECT webhook_token FROM instances WHERE id = ?").bind(t.instanceId).first<{ webhook_token: string }>())!
      .webhook_token;
    return (state: string, statusReason: number) =>
      api(`/webhooks/evolution/${token}`, {
        method: "POST",
        json: { ...openFixture, instance: t.instance, data: { ...openFixture.data, instance: t.instance, state, statusReason } },
      });
  };

  it("pauses on rate-overlimit and resumes on open: nothing failed, nothing reordered", async () => {
    const t = await paced({});
    const hook = await hookFor(t);
    const x = "5511970000051";
    const y = "5511970000052";
    await simulator("/_sim/faults", {
      method: "POST",
      json: { instance: t.instance, number: x, status: 400, body: { status: 400, error: "Bad Request", response: { message: ["rate-overlimit"] } }, times: 1 },
    });
    const [x1, x2] = await sendAll(t, [
      { to: x, text: "x1" },
      { to: x, text: "x2" },
    ]);
    await eventually(async () => (await governorOf(t.instanceId).status(t.instanceId)).pause?.reason === "rate-overlimit", 10_000, "pause");
    const [y1] = await sendAll(t, [{ to: y, text: "y1" }]);
    await waiting(t, 1);
    expect(await texts(t)).toEqual([]);

    await hook("open", 200);
    await eventually(async () => (await governorOf(t.instanceId).status(t.instanceId)).pause === null, 10_000, "resume");
    for (const to of [x, y]) await fireRetry(laneStub(t.id, t.instanceId, to));
    for (const id of [x1!, x2!, y1!]) await waitForStatus(id, ["sent"]);
    expect(await texts(t, x)).toEqual(["x1", "x2"]);
    expect((await messageRow(x1!))?.failed_at).toBeNull();
  });

  it("pauses on close and resumes on open in each contact's order", async () => {
    const t = await paced({});
    const hook = await hookFor(t);
    await hook("close", 401);
    await eventually(async () => (await governorOf(t.instanceId).status(t.instanceId)).pause?.reason === "connection-closed", 10_000, "pause");
    const a = "5511970000061";
    const b = "5511970000062";
    const ids = await sendAll(t, [
      { to: a, text: "a1" },
      { to: b, text: "b1" },
      { to: a, text: "a2" },
    ]);
    await waiting(t, 2);
    expect(await texts(t)).toEqual([]);
    // Parked on the pause: the lanes would ask again only at their next poll, a minute away.
    await expectParkedFor(t, [a, b], 50_000);
    await hook("open", 200);
    // No alarm fired by hand: the governor wakes the lanes it holds.
    for (const id of ids) await waitForStatus(id, ["sent"], 10_000);
    expect(await texts(t, a)).toEqual(["a1", "a2"]);
    const rows = await Promise.all(ids.map(messageRow));
    expect(rows).toHaveLength(3);
    expect(rows.every((r) => r?.failed_at === null)).toBe(true);
  });

  it("sends a paused number's messages within seconds of POST /resume", async () => {
    const t = await paced({ invalidNumberSpike: { count: 1, windowMinutes: 10 } });
    await simulator("/_sim/faults", {
      method: "POST",
      json: {
        instance: t.instance,
        number: "5511970000080",
        status: 400,
        body: { status: 400, error: "Bad Request", response: { message: [{ exists: false }] } },
        times: 1,
      },
    });
    const [bad] = await sendAll(t, [{ to: "5511970000080", text: "bought list" }]);
    await waitForStatus(bad!, ["failed"]);
    await eventually(async () => (await governorOf(t.instanceId).status(t.instanceId)).pause?.reason === "invalid-number-spike", 10_000, "pause");
    const contacts = ["5511970000081", "5511970000082", "5511970000083"];
    const ids = await sendAll(
      t,
      contacts.map((to) => ({ to, text: "after review" })),
    );
    await waiting(t, 3);
    await expectParkedFor(t, contacts, 50_000);
    const resumedAt = Date.now();
    const res = await api(`/v1/instances/${t.instance}/resume`, { method: "POST", key: t.key });
    expect(res.status).toBe(200);
    expect((await json(res)).sending).toEqual({ paused: false });
    for (const id of ids) await waitForStatus(id, ["sent"], 10_000);
    const sent = (await simCalls(t.instance)).filter((c) => c.route === "sendText" && c.status === 201);
    expect(sent).toHaveLength(3);
    expect(Math.max(...sent.map((c) => c.at)) - resumedAt).toBeLessThan(10_000);
  });

  it("does not count a rate-overlimit answer against the message's attempts", async () => {
    const t = await paced({});
    const hook = await hookFor(t);
    const x = "5511970000091";
    const overlimit = { status: 400, body: { status: 400, error: "Bad Request", response: { message: ["rate-overlimit"] } }, times: 1 };
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: x, ...overlimit } });
    // Then one real, passing failure.
    await simulator("/_sim/faults", {
      method: "POST",
      json: { instance: t.instance, number: x, status: 503, headers: { "retry-after": "1" }, body: { error: "boom" }, times: 1 },
    });
    const res = await send(t.key, { instance: t.instance, to: x, text: "two tries", maxAttempts: 2 });
    const { id } = await json(res);
    await eventually(async () => (await governorOf(t.instanceId).status(t.instanceId)).pause?.reason === "rate-overlimit", 10_000, "pause");
    await eventually(async () => (await history(id)).some((h) => h.detail?.includes("not counted as an attempt")), 10_000, "overlimit note");
    expect((await messageRow(id))?.attempts).toBe(0);

    await hook("open", 200);
    // The real failure is attempt 1 of 2: it is retried, not given up.
    await eventually(async () => ((await messageRow(id))?.last_error?.includes("boom") ? true : undefined), 10_000, "the 500");
    expect((await messageRow(id))?.status).toBe("processing");
    expect((await messageRow(id))?.attempts).toBe(1);
    await fireRetry(laneStub(t.id, t.instanceId, x));
    await waitForStatus(id, ["sent"]);
    expect((await messageRow(id))?.attempts).toBe(2);
    expect(await texts(t, x)).toEqual(["two tries"]);
  });
});

describe("fairness", () => {
  it("gives the next free slot to a transactional message before the campaign", async () => {
    const t = await paced({ ratePerMinute: 1, burst: 1 });
    const [b0] = await sendAll(t, [{ to: "5511970000070", text: "b0", priority: 5 }]);
    await waitForStatus(b0!, ["sent"]);
    const campaign = ["5511970000071", "5511970000072"];
    await sendAll(
      t,
      campaign.map((to, i) => ({ to, text: `b${i + 1}`, priority: 5 })),
    );
    await waiting(t, 2);
    const otp = "5511970000079";
    const [u] = await sendAll(t, [{ to: otp, text: "otp", priority: 1 }]);
    await waiting(t, 3);

    // The slot frees; the campaign lanes happen to ask first.
    await freeSlot(t);
    for (const to of campaign) await fireRetry(laneStub(t.id, t.instanceId, to));
    expect(await texts(t)).toEqual(["b0"]);
    await fireRetry(laneStub(t.id, t.instanceId, otp));
    await waitForStatus(u!, ["sent"]);
    expect(await texts(t)).toEqual(["b0", "otp"]);
  });
});
