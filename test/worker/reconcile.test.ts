// Nothing sent twice: an attempt whose outcome the lane lost is checked with Evolution
// (findMessages) before any second send; an answer that D1 failed to record is kept by the lane.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { database } from "../../src/db/client.ts";
import type { MediaJson } from "../../src/db/schema.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../../src/messages/accept.ts";
import {
  api,
  createTenant,
  eventually,
  fireRetry,
  json,
  laneStub,
  messageRow,
  send,
  setupTenant,
  simCalls,
  simulator,
  simulatorUrl,
  waitForStatus,
} from "./helpers.ts";
import { failNextBatch } from "./production-limits.ts";
import { catchUpReceipts } from "../../src/sweep/receipts.ts";

type Tenant = Awaited<ReturnType<typeof setupTenant>>;

const history = async (id: string) =>
  (
    await env.DB.prepare("SELECT status, attempt, detail FROM message_history WHERE message_id = ? ORDER BY id")
      .bind(id)
      .all<{ status: string; attempt: number | null; detail: string | null }>()
  ).results;

/** A message written to D1 and claimed (processing, attempt 1) by a lane that then stopped: the
 *  state a reset leaves between the claim and the record of Evolution's answer. Claimed a minute
 *  ago by default: long enough that the attempt cannot still be under way inside Evolution. */
async function claimedThenLost(t: Tenant, to: string, text: string | { media: MediaJson }, claimedAgoMs = 60_000) {
  const db = database(env.DB);
  const instances = await findInstances(db, t.id, [t.instance]);
  const content = typeof text === "string" ? { text } : text;
  const p = prepareMessage({ id: t.id, name: "t", maxAttempts: 3 }, instances, { instance: t.instance, to, ...content }, Date.now());
  await persistAndEnqueue({ ...env, SENDS: { sendBatch: async () => {} } } as unknown as Env, db, [p]);
  const now = Date.now() - claimedAgoMs;
  await env.DB.batch([
    env.DB.prepare("UPDATE messages SET status = 'processing', attempts = 1, updated_at = ? WHERE id = ?").bind(now, p.row.id),
    env.DB.prepare("INSERT INTO message_history (message_id, status, at, attempt) VALUES (?, 'processing', ?, 1)").bind(p.row.id, now),
  ]);
  return p;
}

/** The lost attempt as Evolution saw it: the send went through. */
async function sendDirectly(t: Tenant, to: string, text: string): Promise<string> {
  const res = await fetch(`${simulatorUrl()}/message/sendText/${t.instance}`, {
    method: "POST",
    headers: { "content-type": "application/json", apikey: t.evolutionKey },
    body: JSON.stringify({ number: to, text }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { key: { id: string } }).key.id;
}

/** A message the gateway did not send, in Evolution's store: typed on the phone, or sent by
 *  another API client of the instance (a Baileys id and `source: "web"`, like ours). */
async function lookAlike(t: Tenant, who: "phone" | "client", body: Record<string, unknown>, route = "sendText"): Promise<string> {
  return (await simulator("/_sim/chat/look-alike", { method: "POST", json: { instance: t.instance, who, route, body } })).key.id;
}

const sendTexts = async (t: Tenant, to: string) => (await simCalls(t.instance)).filter((c) => c.number === to && c.route === "sendText");

describe("the write after Evolution's 201 fails (defect 2)", () => {
  it("the lane keeps the answer and records it later, without calling Evolution again", async () => {
    const t = await setupTenant();
    const to = "5511933330001";
    // The batch that records `sent` (it also looks for parked receipts of this instance) fails once.
    failNextBatch((statements) => statements.some((s) => s.sql.includes("pending_receipts") && s.params.includes(t.instanceId)));
    const id = (await json(await send(t.key, { instance: t.instance, to, text: "uma vez só" }))).id;
    const lane = laneStub(t.id, t.instanceId, to);
    await eventually(async () => (await lane.snapshot()).pending[0]?.phase === "unrecorded");
    expect((await messageRow(id))?.status).toBe("processing");
    await fireRetry(lane);
    const row = await waitForStatus(id, ["sent"]);
    const calls = await sendTexts(t, to);
    expect(calls).toHaveLength(1);
    expect(row.provider_message_id).toBe(calls[0]!.keyId);
    expect((await history(id)).map((h) => h.status)).toEqual(["queued", "processing", "sent"]);
  });
});

describe("in doubt after a reset: reconcile before sending again", () => {
  it("found in Evolution: recorded sent with its id, no second send", async () => {
    const t = await setupTenant();
    const to = "5511933330002";
    const p = await claimedThenLost(t, to, "chegou antes do reset");
    const keyId = await sendDirectly(t, to, "chegou antes do reset");
    await laneStub(t.id, t.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    const row = await waitForStatus(p.row.id, ["sent"]);
    expect(row.provider_message_id).toBe(keyId);
    expect(row.attempts).toBe(1);
    expect(await sendTexts(t, to)).toHaveLength(1);
    expect((await history(p.row.id)).at(-1)).toMatchObject({ status: "sent", detail: `reconciled: found in Evolution as ${keyId}; not sent again` });
  });

  it("found under the other form of a Brazilian number (the 9th digit Evolution drops)", async () => {
    const t = await setupTenant();
    // Area code 31, subscriber starting with 8: Evolution keys the chat as 553187650006@s.whatsapp.net.
    const to = "5531987650006";
    const p = await claimedThenLost(t, to, "nono dígito");
    const keyId = await sendDirectly(t, to, "nono dígito");
    await laneStub(t.id, t.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    expect((await waitForStatus(p.row.id, ["sent"])).provider_message_id).toBe(keyId);
    expect(await sendTexts(t, to)).toHaveLength(1);
  });

  it("not found (the same text already belongs to an earlier message): sent again, once", async () => {
    const t = await setupTenant();
    const to = "5511933330003";
    const earlier = (await json(await send(t.key, { instance: t.instance, to, text: "olá" }))).id;
    const earlierRow = await waitForStatus(earlier, ["sent"]);
    const p = await claimedThenLost(t, to, "olá");
    await laneStub(t.id, t.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    const row = await waitForStatus(p.row.id, ["sent"]);
    expect(row.attempts).toBe(2);
    expect(row.provider_message_id).not.toBe(earlierRow.provider_message_id);
    expect(await sendTexts(t, to)).toHaveLength(2);
    expect((await history(p.row.id)).map((h) => h.detail)).toContain("reconcile: not found in Evolution's messages; sending again");
  });

  it("Evolution keeps no messages: sent again, and the history says it may arrive twice", async () => {
    const t = await setupTenant();
    const to = "5511933330004";
    await simulator("/_sim/chat/store", { method: "PUT", json: { enabled: false, instance: t.instance } });
    const p = await claimedThenLost(t, to, "sem registro");
    await sendDirectly(t, to, "sem registro");
    await laneStub(t.id, t.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    await waitForStatus(p.row.id, ["sent"]);
    // At-least-once when Evolution cannot say: the only case where a message can go twice.
    expect(await sendTexts(t, to)).toHaveLength(2);
    const details = (await history(p.row.id)).map((h) => h.detail ?? "");
    expect(details.some((d) => /could not answer \(it keeps no messages for this contact.*\); sending again without proof, it may arrive twice/.test(d))).toBe(
      true,
    );
  });

  it("a dropped connection puts the attempt in doubt; the check finds nothing and it is sent again", async () => {
    const t = await setupTenant();
    const to = "5511933330005";
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: to, status: 0, times: 1 } });
    const id = (await json(await send(t.key, { instance: t.instance, to, text: "conexão caiu" }))).id;
    const lane = laneStub(t.id, t.instanceId, to);
    await eventually(async () => (await lane.snapshot()).pending[0]?.phase === "in_doubt");
    expect((await history(id)).at(-1)?.detail).toMatch(/^in doubt: Evolution unreachable/);
    await fireRetry(lane);
    // Nothing for this contact in Evolution: asked once more before the second send (a hung send
    // may complete late).
    await eventually(async () => (await lane.snapshot()).pending.find((i) => i.checks === 1));
    await fireRetry(lane);
    const row = await waitForStatus(id, ["sent"]);
    expect(row.attempts).toBe(2);
    expect((await sendTexts(t, to)).map((c) => c.status)).toEqual([0, 201]);
  });
});

describe("a look-alike in Evolution's store is never taken for the attempt", () => {
  it("the same text typed on the phone while the attempt never went out: not ours (a phone's id), sent again", async () => {
    const t = await setupTenant();
    const to = "5511933330021";
    const p = await claimedThenLost(t, to, "digitado no celular");
    const phoneId = await lookAlike(t, "phone", { number: to, text: "digitado no celular" });
    await laneStub(t.id, t.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    const row = await waitForStatus(p.row.id, ["sent"], 30_000);
    const calls = await sendTexts(t, to);
    expect(calls).toHaveLength(1);
    expect(row.provider_message_id).toBe(calls[0]!.keyId);
    expect(row.provider_message_id).not.toBe(phoneId);
  }, 40_000);

  it("ours went out and another API client sent the same text meanwhile: cannot tell, sent again with a note", async () => {
    const t = await setupTenant();
    const to = "5511933330022";
    const p = await claimedThenLost(t, to, "promoção de hoje");
    const ours = await sendDirectly(t, to, "promoção de hoje");
    const theirs = await lookAlike(t, "client", { number: to, text: "promoção de hoje" });
    await laneStub(t.id, t.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    const row = await waitForStatus(p.row.id, ["sent"], 30_000);
    // At-least-once: sent again rather than recorded under an id that may be another's.
    const calls = await sendTexts(t, to);
    expect(calls).toHaveLength(2);
    expect(row.provider_message_id).toBe(calls[1]!.keyId);
    expect([ours, theirs]).not.toContain(row.provider_message_id);
    expect((await history(p.row.id)).map((h) => h.detail ?? "")).toContainEqual(
      expect.stringMatching(
        /^reconcile: cannot tell whether it went \(2 messages in Evolution's store could be this one\); sending again, it may arrive twice/,
      ),
    );
  }, 40_000);

  it("a caption-less image: another image of the same type is no proof, sent again with a note", async () => {
    const t = await setupTenant();
    const to = "5511933330023";
    const p = await claimedThenLost(t, to, { media: { type: "image", url: "https://files.example.com/cardapio.png" } });
    await lookAlike(t, "client", { number: to, mediatype: "image", media: "https://files.example.com/outra.png" }, "sendMedia");
    await laneStub(t.id, t.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    const row = await waitForStatus(p.row.id, ["sent"], 30_000);
    const sends = (await simCalls(t.instance)).filter((c) => c.number === to && c.route === "sendMedia");
    expect(sends).toHaveLength(1);
    expect(row.provider_message_id).toBe(sends[0]!.keyId);
    expect((await history(p.row.id)).map((h) => h.detail ?? "")).toContainEqual(expect.stringMatching(/^reconcile: cannot tell whether it went \(.*caption/));
  }, 40_000);

  it("a message another tenant on the same Evolution instance already recorded is not taken again", async () => {
    const a = await setupTenant();
    // Tenant b uses the very same Evolution instance (same URL and name, its own gateway tenant).
    const other = await createTenant();
    const res = await api(`/v1/instances/${a.instance}`, {
      method: "PUT",
      key: other.key,
      json: { evolutionUrl: `${simulatorUrl()}/`, evolutionApiKey: a.evolutionKey, ratePerMinute: 6000 },
    });
    expect(res.status).toBe(201);
    const bInstanceId = (await env.DB.prepare("SELECT id FROM instances WHERE name = ? AND tenant_id = ?").bind(a.instance, other.id).first<{ id: string }>())!
      .id;
    const b: Tenant = { ...a, ...other, instanceId: bInstanceId };
    const to = "5511933330024";
    const sentByA = await waitForStatus((await json(await send(a.key, { instance: a.instance, to, text: "bom dia" }))).id, ["sent"]);
    // b's attempt with the same text never went out.
    const p = await claimedThenLost(b, to, "bom dia");
    await laneStub(b.id, b.instanceId, to).enqueue(p.job.laneKey, [p.job]);
    const row = await waitForStatus(p.row.id, ["sent"], 30_000);
    expect(row.provider_message_id).not.toBe(sentByA.provider_message_id);
    expect(await sendTexts(a, to)).toHaveLength(2);
  }, 40_000);
});

describe("a 5xx may come after Evolution relayed: reconciled, never resent blind", () => {
  it.each([500, 502, 504])(
    "%i after the message went out: found in Evolution, recorded sent, one send",
    async (status) => {
      const t = await setupTenant();
      const to = `5511933331${status}`;
      await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: to, status, relay: true, times: 1 } });
      const id = (await json(await send(t.key, { instance: t.instance, to, text: `relayed then ${status}` }))).id;
      const lane = laneStub(t.id, t.instanceId, to);
      await eventually(async () => (await lane.snapshot()).pending[0]?.phase === "in_doubt");
      await fireRetry(lane);
      const row = await waitForStatus(id, ["sent"], 30_000);
      const calls = await sendTexts(t, to);
      expect(calls.map((c) => c.status)).toEqual([status]);
      expect(row.provider_message_id).toBe(calls[0]!.keyId);
      expect((await history(id)).at(-1)?.detail).toBe(`reconciled: found in Evolution as ${row.provider_message_id}; not sent again`);
    },
    40_000,
  );
});

describe("a send still in flight inside Evolution is never sent again", () => {
  // EVOLUTION_TIMEOUT_MS is 3 s in the worker tests: the lane gives up at 3 s, Evolution sends at
  // 4 s (as the chaos harness's timeout fault does), and the lane asks only after 6 s.
  it("timed out, answered late and sent: found once it settles; exactly one send, and the next message waits behind it", async () => {
    const t = await setupTenant();
    const to = "5511933330006";
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, number: to, status: 201, delayMs: 4_000, times: 1 } });
    const first = (await json(await send(t.key, { instance: t.instance, to, text: "demorou mas foi" }))).id;
    const lane = laneStub(t.id, t.instanceId, to);
    const doubt = await eventually(async () => (await lane.snapshot()).pending.find((p) => p.id === first && p.phase === "in_doubt"));
    // The check is armed for when the attempt cannot be in flight any more, not at once.
    expect(doubt.next_at).toBeGreaterThanOrEqual(doubt.attempt_at + 6_000);
    const second = (await json(await send(t.key, { instance: t.instance, to, text: "a seguinte" }))).id;
    // Forcing the alarm early changes nothing: the lane re-arms for the settled time.
    await fireRetry(lane);
    expect((await lane.snapshot()).pending[0]).toMatchObject({ id: first, phase: "in_doubt", next_at: doubt.attempt_at + 6_000 });
    const row = await waitForStatus(first, ["sent"]);
    await waitForStatus(second, ["sent"]);
    const calls = await sendTexts(t, to);
    expect(calls.map((c) => c.body.text)).toEqual(["demorou mas foi", "a seguinte"]);
    expect(row.provider_message_id).toBe(calls[0]!.keyId);
    expect(row.attempts).toBe(1);
    // Order: the second went out only after the first had gone out inside Evolution.
    expect(calls[1]!.at).toBeGreaterThanOrEqual(calls[0]!.answeredAt ?? Number.POSITIVE_INFINITY);
    const details = (await history(first)).map((h) => h.detail ?? "");
    expect(details.some((d) => d.startsWith("in doubt: "))).toBe(true);
    expect(details.at(-1)).toBe(`reconciled: found in Evolution as ${row.provider_message_id}; not sent again`);
  }, 30_000);

  it("claimed moments before a reset: the lane waits for the attempt to settle before asking", async () => {
    const t = await setupTenant();
    const to = "5511933330007";
    const p = await claimedThenLost(t, to, "reset no meio", 0);
    const lane = laneStub(t.id, t.instanceId, to);
    await lane.enqueue(p.job.laneKey, [p.job]);
    const doubt = await eventually(async () => (await lane.snapshot()).pending.find((i) => i.phase === "in_doubt"));
    expect(doubt.attempts).toBe(1);
    expect(doubt.next_at - doubt.attempt_at).toBe(6_000);
    // Evolution sends it meanwhile (the hung request of the lane that reset).
    const keyId = await sendDirectly(t, to, "reset no meio");
    const row = await waitForStatus(p.row.id, ["sent"]);
    expect(row.provider_message_id).toBe(keyId);
    expect(await sendTexts(t, to)).toHaveLength(1);
    expect((await history(p.row.id)).map((h) => h.detail)).toContain(
      "in doubt: attempt 1 was claimed but its answer was lost; asking Evolution once it cannot be in flight any more",
    );
  }, 30_000);

  it("findMessages fails: asked again on the alarm (bounded), then found; no second send", async () => {
    const t = await setupTenant();
    const to = "5511933330008";
    await simulator("/_sim/faults", {
      method: "POST",
      json: [
        { instance: t.instance, route: "findMessages", status: 500, times: 1 },
        { instance: t.instance, route: "findMessages", status: 0, times: 1 },
      ],
    });
    const p = await claimedThenLost(t, to, "pergunta de novo");
    const keyId = await sendDirectly(t, to, "pergunta de novo");
    const lane = laneStub(t.id, t.instanceId, to);
    await lane.enqueue(p.job.laneKey, [p.job]);
    const first = await eventually(async () => (await lane.snapshot()).pending.find((i) => i.checks === 1));
    expect(first).toMatchObject({ phase: "in_doubt" });
    expect((await lane.snapshot()).alarm).toBeGreaterThanOrEqual(first.next_at);
    await fireRetry(lane);
    await eventually(async () => (await lane.snapshot()).pending.find((i) => i.checks === 2));
    await fireRetry(lane);
    const row = await waitForStatus(p.row.id, ["sent"]);
    expect(row.provider_message_id).toBe(keyId);
    expect(await sendTexts(t, to)).toHaveLength(1);
    const details = (await history(p.row.id)).map((h) => h.detail ?? "");
    expect(details.filter((d) => d.includes("asking again in"))).toHaveLength(2);
    expect(details.at(-1)).toBe(`reconciled: found in Evolution as ${keyId}; not sent again`);
  });

  it("findMessages fails every time: after the bounded checks it is sent again, and the history says so", async () => {
    const t = await setupTenant();
    const to = "5511933330009";
    await simulator("/_sim/faults", { method: "POST", json: { instance: t.instance, route: "findMessages", status: 503, times: 6 } });
    const p = await claimedThenLost(t, to, "sem resposta");
    const lane = laneStub(t.id, t.instanceId, to);
    await lane.enqueue(p.job.laneKey, [p.job]);
    for (let checks = 1; checks <= 5; checks++) {
      await eventually(async () => (await lane.snapshot()).pending.find((i) => i.checks === checks));
      await fireRetry(lane);
    }
    const row = await waitForStatus(p.row.id, ["sent"]);
    expect(row.attempts).toBe(2);
    expect(await sendTexts(t, to)).toHaveLength(1);
    const details = (await history(p.row.id)).map((h) => h.detail ?? "");
    expect(
      details.some((d) => /could not answer \(findMessages answered 503.*\) after 6 checks; sending again without proof, it may arrive twice/.test(d)),
    ).toBe(true);
  });
});

describe("lost receipts (from the cron)", () => {
  it("a sent message with no receipt is checked with findStatusMessage: paced per instance, bounded in checks", async () => {
    const t = await setupTenant();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await json(await send(t.key, { instance: t.instance, to: `55119333301${i}0`, text: `recibo ${i}` }))).id);
    const rows = [];
    for (const id of ids) rows.push(await waitForStatus(id, ["sent"]));
    // The webhooks of these receipts never arrived; Evolution has them in its store.
    const [read, delivered] = rows;
    for (const status of ["DELIVERY_ACK", "READ"]) await simulator("/_sim/chat/status", { method: "POST", json: { keyId: read!.provider_message_id, status } });
    await simulator("/_sim/chat/status", { method: "POST", json: { keyId: delivered!.provider_message_id, status: "DELIVERY_ACK" } });
    // Ten minutes later (the first check is due then): the first three first.
    const due = (id: string, at: number) => env.DB.prepare("UPDATE messages SET receipt_check_at = ? WHERE id = ?").bind(at, id).run();
    for (const [i, id] of ids.entries()) await due(id, i < 3 ? 1 : 2);

    const now = Date.now();
    const first = await catchUpReceipts(env, now);
    // At most five per instance per run.
    expect(first).toMatchObject({ checked: 5, caughtUp: 2, failed: 0 });
    expect(await messageRow(ids[0]!)).toMatchObject({ status: "read", receipt_check_at: null });
    expect((await messageRow(ids[0]!))?.delivered_at).toBeTruthy();
    expect(await messageRow(ids[1]!)).toMatchObject({ status: "delivered", receipt_check_at: null });
    expect(await messageRow(ids[2]!)).toMatchObject({ status: "sent", receipt_checks: 1, receipt_check_at: now + 3600_000 });
    expect((await history(ids[0]!)).at(-1)).toMatchObject({ status: "read", detail: "receipt caught up from Evolution (findStatusMessage: READ)" });
    expect((await catchUpReceipts(env, now)).checked).toBe(2);

    // No receipt ever: three checks, then it rests as `sent`.
    await due(ids[2]!, 1);
    await catchUpReceipts(env, now);
    await due(ids[2]!, 1);
    await catchUpReceipts(env, now);
    expect(await messageRow(ids[2]!)).toMatchObject({ status: "sent", receipt_checks: 3, receipt_check_at: null });
  });
});
