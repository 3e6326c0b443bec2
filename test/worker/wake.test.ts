// Waking lanes (defect 6): never per isolate in production, bounded where it runs (the local
// runtime after a restart, and the cron for lanes stuck in `processing`).
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../../src/messages/accept.ts";
import { wakeLanes, wakeOnce, wakeStuckLanes } from "../../src/sweep/wake.ts";
import { laneStub, setupTenant, simCalls, waitForStatus } from "./helpers.ts";

async function lostInQueue(t: Awaited<ReturnType<typeof setupTenant>>, to: string, text: string) {
  const db = database(env.DB);
  const p = prepareMessage(
    { id: t.id, name: "t", maxAttempts: 3 },
    await findInstances(db, t.id, [t.instance]),
    { instance: t.instance, to, text },
    Date.now(),
  );
  await persistAndEnqueue({ ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env, db, [p]);
  return p;
}

describe("wake on start", () => {
  it("is off in production (the default), on once per isolate where the local runtime asks for it", () => {
    const waits: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void waits.push(p) };
    expect(wakeOnce(env, ctx)).toBe(false);
    expect(waits).toHaveLength(0);
    const local = { ...env, WAKE_LANES_ON_START: "true" } as unknown as Env;
    expect(wakeOnce(local, ctx)).toBe(true);
    expect(wakeOnce(local, ctx)).toBe(false);
    expect(waits).toHaveLength(1);
    return Promise.all(waits);
  });

  it("wakes at most the number of lanes it is given", async () => {
    const t = await setupTenant({ ratePerMinute: 1 });
    for (const to of ["5511922220001", "5511922220002", "5511922220003"]) await lostInQueue(t, to, "acorde");
    expect(await wakeLanes(env, 2)).toBe(2);
  });
});

describe("cron wake of lanes stuck in processing", () => {
  it("a message claimed long ago by a lane that lost it is taken up, checked with Evolution and sent once", async () => {
    const t = await setupTenant();
    const to = "5511922220004";
    const p = await lostInQueue(t, to, "travada");
    await env.DB.prepare("UPDATE messages SET status = 'processing', attempts = 1, updated_at = 0, ready_at = 0 WHERE id = ?").bind(p.row.id).run();
    expect(await wakeStuckLanes(env)).toBeGreaterThanOrEqual(1);
    expect((await laneStub(t.id, t.instanceId, to).snapshot()).pending.length + (await laneStub(t.id, t.instanceId, to).snapshot()).done).toBe(1);
    const row = await waitForStatus(p.row.id, ["sent"]);
    expect(row.attempts).toBe(2);
    expect((await simCalls(t.instance)).filter((c) => c.number === to)).toHaveLength(1);
  });
});
