// npm run bench:send — on the local runtime (wrangler dev), in one run:
// (a) accept throughput and latency of POST /v1/messages beside a bare Hono route;
// (b) end-to-end drain of 2,000 messages across 200 contacts with 300 ms simulator latency;
// (c) the Telegram share: a drain to one bot at the simulator's Bot API with Telegram's flood
//     control on (1 a second per chat, 30 a second per bot), counting 429s and calls inside retry_after.
//     BENCH_TELEGRAM_ONLY=1 runs (c) alone.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { startSimulator } from "../simulator/server.ts";
import { type GatewayClient, gatewayClient } from "../src/client.ts";
import { provisionTenant, ROOT, sendInBatches, startGateway } from "../tools/harness/gateway.ts";
import { type SimCall, simulatorCalls, type TelegramSimCall, telegramSimulator } from "../tools/harness/simulator.ts";
import { startBare } from "./bare.ts";
import { closedLoop, percentile, runScript, table } from "../tools/harness/load.ts";
import { waitFor } from "../tools/harness/wait.ts";

const ACCEPT_REQUESTS = Number(process.env.BENCH_ACCEPT_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const DRAIN_MESSAGES = Number(process.env.BENCH_DRAIN_MESSAGES ?? 2000);
const DRAIN_CONTACTS = Number(process.env.BENCH_DRAIN_CONTACTS ?? 200);
const DRAIN_LATENCY_MS = Number(process.env.BENCH_DRAIN_LATENCY_MS ?? 300);
const TG_MESSAGES = Number(process.env.BENCH_TELEGRAM_MESSAGES ?? 600);
const TG_CHATS = Number(process.env.BENCH_TELEGRAM_CHATS ?? 60);
// BENCH_ACCEPT_KEYED=1: the scheduled run sends each request with its own Idempotency-Key.
const KEYED = process.env.BENCH_ACCEPT_KEYED === "1";
const TG_TOKEN = "5252525:bench-telegram-secret-00000000000";

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  // The per-tenant message budget (6,000 a minute by default) would cap the accept runs themselves.
  const gateway = await startGateway({ vars: { MESSAGE_LIMIT_PER_MINUTE: "1000000" } });
  const bare = await startBare();
  try {
    if (process.env.BENCH_TELEGRAM_ONLY === "1") return await telegramShare(gateway.url, simulator.url);
    const t = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: 60000 });
    const headers = { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" };
    const api = gatewayClient(gateway.url, { apiKey: t.apiKey });
    const message = (i: number) => ({ instance: t.instance, to: `55119${String(10000000 + (i % 500)).padStart(8, "0")}`, text: `bench accept ${i}` });
    const body = (i: number) => JSON.stringify(message(i));

    // Warm both up so neither pays for its first compile in the figures.
    await closedLoop(100, 8, (i) => fetch(`${bare.url}/v1/messages`, { method: "POST", headers, body: body(i) }));
    await closedLoop(100, 8, (i) => api.v1.messages.$post({ json: message(i) }));
    const bareRun = await closedLoop(ACCEPT_REQUESTS, CONCURRENCY, (i) => fetch(`${bare.url}/v1/messages`, { method: "POST", headers, body: body(i) }));
    // The API path alone: scheduled a day ahead, so no delivery work competes for the runtime meanwhile.
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const run = Date.now().toString(36);
    const scheduledRun = await closedLoop(ACCEPT_REQUESTS, CONCURRENCY, (i) =>
      api.v1.messages.$post({ json: { ...message(i), sendAt: tomorrow } }, KEYED ? { headers: { "idempotency-key": `bench-${run}-${i}` } } : undefined),
    );
    const acceptRun = await closedLoop(ACCEPT_REQUESTS, CONCURRENCY, (i) => api.v1.messages.$post({ json: message(i) }));

    console.log(`\n(a) accept: ${ACCEPT_REQUESTS} requests, ${CONCURRENCY} in flight, wrangler dev on this machine`);
    console.log(
      table(
        ["route", "req/s", "p50 ms", "p99 ms", "errors", "ratio to bare"],
        [
          ["bare Hono POST (no auth, D1, queue)", bareRun.perSecond, bareRun.p50, bareRun.p99, bareRun.errors, "1.00"],
          [
            `POST /v1/messages, scheduled (API path alone${KEYED ? ", Idempotency-Key" : ""})`,
            scheduledRun.perSecond,
            scheduledRun.p50,
            scheduledRun.p99,
            scheduledRun.errors,
            (scheduledRun.perSecond / bareRun.perSecond).toFixed(2),
          ],
          [
            "POST /v1/messages, sent meanwhile (API + delivery)",
            acceptRun.perSecond,
            acceptRun.p50,
            acceptRun.p99,
            acceptRun.errors,
            (acceptRun.perSecond / bareRun.perSecond).toFixed(2),
          ],
        ],
      ),
    );

    // Let the accept run's sends finish before the drain is timed.
    await waitIdle(api);
    const drain = await drainRun(api, simulator.url, t.instance, gateway.persistDir);
    console.log(`\n(b) drain: ${DRAIN_MESSAGES} messages across ${DRAIN_CONTACTS} contacts, simulator latency ${DRAIN_LATENCY_MS} ms`);
    console.log(
      table(
        ["messages", "contacts", "seconds to all sent", "messages/s", "sent", "lost", "out of order", "sent twice"],
        [[DRAIN_MESSAGES, DRAIN_CONTACTS, drain.seconds, DRAIN_MESSAGES / drain.seconds, drain.sent, drain.lost, drain.outOfOrder, drain.duplicates]],
      ),
    );
    await telegramShare(gateway.url, simulator.url);
  } finally {
    bare.stop();
    await gateway.stop();
    await simulator.close();
  }
}

async function count(api: GatewayClient, status: string): Promise<number> {
  const res = await api.v1.stats.$get();
  if (!res.ok) throw new Error(`stats: ${res.status} ${await res.text()}`);
  const total: Record<string, number> = (await res.json()).messages.total;
  return total[status] ?? 0;
}

/** Nothing queued or processing; a gateway still busy after 5 minutes fails the run (its figures would be wrong). */
async function waitIdle(api: GatewayClient) {
  await waitFor("the gateway to be idle", async () => ((await count(api, "queued")) + (await count(api, "processing")) === 0 ? true : undefined), {
    timeoutMs: 300_000,
    intervalMs: 500,
  });
}

async function drainRun(api: GatewayClient, simulatorUrl: string, instance: string, persistDir: string) {
  await fetch(`${simulatorUrl}/_sim/calls`, { method: "DELETE" });
  await fetch(`${simulatorUrl}/_sim/config`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ latencyMs: DRAIN_LATENCY_MS }),
  });
  const contact = (c: number) => `55219${String(20000000 + c).padStart(8, "0")}`;
  const messages = Array.from({ length: DRAIN_MESSAGES }, (_, i) => ({
    instance,
    to: contact(i % DRAIN_CONTACTS),
    text: `drain ${Math.floor(i / DRAIN_CONTACTS)}`,
  }));
  const sentBefore = await count(api, "sent");
  const started = performance.now();
  await sendInBatches(api, messages);
  console.log(`   ${DRAIN_MESSAGES} accepted (batches of 500) by +${((performance.now() - started) / 1000).toFixed(1)} s`);
  let sent = 0;
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    sent = (await count(api, "sent")) - sentBefore;
    if (sent >= DRAIN_MESSAGES) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const seconds = (performance.now() - started) / 1000;
  const startedAt = Date.now() - seconds * 1000;
  const calls = await simulatorCalls(simulatorUrl, instance);
  let outOfOrder = 0;
  const last = new Map<string, number>();
  const seen = new Set<string>();
  let duplicates = 0;
  for (const c of calls) {
    const n = Number((c.body.text ?? "").split(" ")[1]);
    if (n < (last.get(c.number) ?? -1)) outOfOrder++;
    last.set(c.number, n);
    const key = `${c.number}/${n}`;
    if (seen.has(key)) duplicates++;
    seen.add(key);
  }
  const times = calls.map((c) => c.at).sort((a, b) => a - b);
  console.log(
    `   first send reached the simulator at +${((times[0]! - startedAt) / 1000).toFixed(1)} s, the last at +${((times.at(-1)! - startedAt) / 1000).toFixed(1)} s`,
  );
  drainStages(persistDir, calls, startedAt);
  return { seconds, sent, lost: DRAIN_MESSAGES - sent, outOfOrder, duplicates };
}

/** Where each drained message's time went, from its history in the local D1 (read with wrangler) and
 *  the simulator's record of the call. One machine, one clock. */
function drainStages(persistDir: string, calls: SimCall[], startedAt: number) {
  const out = execFileSync(
    path.join(ROOT, "node_modules/.bin/wrangler"),
    [
      "d1",
      "execute",
      "DB",
      "--local",
      "--persist-to",
      persistDir,
      "--json",
      "--command",
      `SELECT "to", text, created_at, history FROM messages WHERE text LIKE 'drain %' AND created_at >= ${Math.floor(startedAt)}`,
    ],
    { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" }, maxBuffer: 64 * 1024 * 1024 },
  ).toString();
  const rows = (JSON.parse(out.slice(out.indexOf("["))) as { results: { to: string; text: string; created_at: number; history: string }[] }[])[0]!.results;
  const call = new Map(calls.filter((c) => c.status < 300).map((c) => [`${c.number}/${c.body.text}`, c]));
  const at = (history: { status: string; at: number }[], status: string) => history.find((h) => h.status === status)?.at;
  const messages = rows
    .map((r) => {
      const history = JSON.parse(r.history) as { status: string; at: number }[];
      const c = call.get(`${r.to}/${r.text}`);
      return {
        to: r.to,
        n: Number(r.text.split(" ")[1]),
        accepted: r.created_at,
        claimed: at(history, "processing"),
        sent: at(history, "sent"),
        call: c?.at,
        answered: c?.answeredAt,
      };
    })
    .sort((a, b) => a.n - b.n);
  // A message is free to go once its contact's previous one is sent (one in flight per contact).
  const previousSent = new Map<string, number>();
  const stages: number[][] = [[], [], [], [], []];
  for (const m of messages) {
    const free = Math.max(m.accepted, previousSent.get(m.to) ?? 0);
    if (m.sent !== undefined) previousSent.set(m.to, m.sent);
    const stamps = [m.accepted, free, m.claimed, m.call, m.answered, m.sent];
    for (let k = 0; k < stages.length; k++) {
      const [from, to] = [stamps[k], stamps[k + 1]];
      if (from !== undefined && to !== undefined) stages[k]!.push(to - from);
    }
  }
  const names = [
    "accepted → free (the contact's previous message sent)",
    "free → claimed in D1 (queue, lane alarm, governor)",
    "claimed → at the simulator",
    "at the simulator → answered (its own latency)",
    "answered → sent recorded in D1",
  ];
  const rowsOut = names.map((name, k) => {
    const v = stages[k]!.sort((x, y) => x - y);
    return [name, v.length, percentile(v, 50), percentile(v, 90), percentile(v, 99), v.at(-1) ?? Number.NaN];
  });
  console.log(`   per stage (ms)\n${table(["stage", "n", "p50", "p90", "p99", "max"], rowsOut)}`);
}

/** (c) A bot on the simulator's Bot API, flood control on: every text reaches Telegram once, in order
 *  per chat, and nothing is called inside a retry_after. */
async function telegramShare(gatewayUrl: string, simulatorUrl: string) {
  const created = await gatewayClient(gatewayUrl, { apiKey: "e2e-admin-token" }).v1.admin.tenants.$post({
    json: { name: "bench-telegram", rateLimitPerMinute: 1_000_000 },
  });
  if (created.status !== 201) throw new Error(`tenant: ${created.status} ${await created.text()}`);
  const api = gatewayClient(gatewayUrl, { apiKey: (await created.json()).apiKey });
  const telegram = telegramSimulator(simulatorUrl);
  await telegram.control("POST", "/bots", { token: TG_TOKEN, username: "bench_bot", first_name: "bench" });
  // Every chat id is one the bot may write to (a person who started it).
  await telegram.control("PATCH", "/config", { anyChat: true, limits: { enabled: true } });
  const put = await api.v1.instances[":name"].$put({
    param: { name: "bench-telegram" },
    json: { channel: "telegram", telegram: { botToken: TG_TOKEN, apiUrl: simulatorUrl } },
  });
  if (!put.ok) throw new Error(`telegram instance: ${put.status} ${await put.text()}`);
  const chat = (c: number) => String(626_000_000 + c);
  const messages = Array.from({ length: TG_MESSAGES }, (_, i) => ({
    instance: "bench-telegram",
    to: chat(i % TG_CHATS),
    text: `tg ${Math.floor(i / TG_CHATS)}`,
  }));
  const started = performance.now();
  await sendInBatches(api, messages);
  const calls = () => telegram.calls({ token: TG_TOKEN, method: "sendMessage" });
  let got: TelegramSimCall[] = [];
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline) {
    got = await calls();
    if (got.filter((c) => c.status === 200).length >= TG_MESSAGES) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const seconds = (performance.now() - started) / 1000;
  const last = new Map<TelegramSimCall["chatId"], number>();
  const seen = new Set<string>();
  let outOfOrder = 0;
  let duplicates = 0;
  for (const c of got.filter((x) => x.status === 200)) {
    const n = Number(String(c.params.text).split(" ")[1]);
    if (n < (last.get(c.chatId) ?? -1)) outOfOrder++;
    last.set(c.chatId, n);
    const key = `${c.chatId}/${n}`;
    if (seen.has(key)) duplicates++;
    seen.add(key);
  }
  const sent = seen.size;
  console.log(`\n(c) Telegram: ${TG_MESSAGES} texts across ${TG_CHATS} chats of one bot, the simulator's flood control on (1/s per chat, 30/s per bot)`);
  console.log(
    table(
      ["messages", "chats", "seconds to all sent", "messages/s", "sent", "lost", "out of order", "sent twice", "429s", "calls inside retry_after"],
      [
        [
          TG_MESSAGES,
          TG_CHATS,
          seconds,
          sent / seconds,
          sent,
          TG_MESSAGES - sent,
          outOfOrder,
          duplicates,
          got.filter((c) => c.status === 429).length,
          got.filter((c) => c.insideRetryAfter).length,
        ],
      ],
    ),
  );
}

runScript(main);
