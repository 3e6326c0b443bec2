// npm run bench:send — on the local runtime (wrangler dev), in one run:
// (a) accept throughput and latency of POST /v1/messages beside a bare Hono route;
// (b) end-to-end drain of 2,000 messages across 200 contacts with 300 ms simulator latency.
import { startSimulator } from "../simulator/server.ts";
import { provisionTenant, startGateway } from "../test/support/gateway.ts";
import { startBare } from "./bare.ts";
import { closedLoop, runScript, table } from "./load.ts";

const ACCEPT_REQUESTS = Number(process.env.BENCH_ACCEPT_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const DRAIN_MESSAGES = Number(process.env.BENCH_DRAIN_MESSAGES ?? 2000);
const DRAIN_CONTACTS = Number(process.env.BENCH_DRAIN_CONTACTS ?? 200);
const DRAIN_LATENCY_MS = Number(process.env.BENCH_DRAIN_LATENCY_MS ?? 300);

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const gateway = await startGateway();
  const bare = await startBare();
  try {
    const t = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: 60000 });
    const headers = { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" };
    const body = (i: number) =>
      JSON.stringify({ instance: t.instance, to: `55119${String(10000000 + (i % 500)).padStart(8, "0")}`, text: `bench accept ${i}` });

    // Warm both up so neither pays for its first compile in the figures.
    await closedLoop(100, 8, (i) => fetch(`${bare.url}/v1/messages`, { method: "POST", headers, body: body(i) }));
    await closedLoop(100, 8, (i) => fetch(`${gateway.url}/v1/messages`, { method: "POST", headers, body: body(i) }));
    const bareRun = await closedLoop(ACCEPT_REQUESTS, CONCURRENCY, (i) => fetch(`${bare.url}/v1/messages`, { method: "POST", headers, body: body(i) }));
    // The API path alone: scheduled a day ahead, so no delivery work competes for the runtime meanwhile.
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const scheduledRun = await closedLoop(ACCEPT_REQUESTS, CONCURRENCY, (i) =>
      fetch(`${gateway.url}/v1/messages`, { method: "POST", headers, body: JSON.stringify({ ...JSON.parse(body(i)), sendAt: tomorrow }) }),
    );
    const acceptRun = await closedLoop(ACCEPT_REQUESTS, CONCURRENCY, (i) => fetch(`${gateway.url}/v1/messages`, { method: "POST", headers, body: body(i) }));

    console.log(`\n(a) accept: ${ACCEPT_REQUESTS} requests, ${CONCURRENCY} in flight, wrangler dev on this machine`);
    console.log(
      table(
        ["route", "req/s", "p50 ms", "p99 ms", "errors", "ratio to bare"],
        [
          ["bare Hono POST (no auth, D1, queue)", bareRun.perSecond, bareRun.p50, bareRun.p99, bareRun.errors, "1.00"],
          [
            "POST /v1/messages, scheduled (API path alone)",
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
    await waitIdle(gateway.url, headers);
    const drain = await drainRun(gateway.url, simulator.url, headers, t.instance);
    console.log(`\n(b) drain: ${DRAIN_MESSAGES} messages across ${DRAIN_CONTACTS} contacts, simulator latency ${DRAIN_LATENCY_MS} ms`);
    console.log(
      table(
        ["messages", "contacts", "seconds to all sent", "messages/s", "sent", "lost", "out of order", "sent twice"],
        [[DRAIN_MESSAGES, DRAIN_CONTACTS, drain.seconds, DRAIN_MESSAGES / drain.seconds, drain.sent, drain.lost, drain.outOfOrder, drain.duplicates]],
      ),
    );
  } finally {
    bare.stop();
    await gateway.stop();
    await simulator.close();
  }
}

async function count(gatewayUrl: string, headers: Record<string, string>, status: string): Promise<number> {
  const stats = (await (await fetch(`${gatewayUrl}/v1/stats`, { headers })).json()) as { messages: { total: Record<string, number> } };
  return stats.messages.total[status] ?? 0;
}

async function waitIdle(gatewayUrl: string, headers: Record<string, string>) {
  for (let i = 0; i < 600; i++) {
    const busy = (await count(gatewayUrl, headers, "queued")) + (await count(gatewayUrl, headers, "processing"));
    if (busy === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function drainRun(gatewayUrl: string, simulatorUrl: string, headers: Record<string, string>, instance: string) {
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
  const sentBefore = await count(gatewayUrl, headers, "sent");
  const started = performance.now();
  for (let i = 0; i < messages.length; i += 500) {
    const res = await fetch(`${gatewayUrl}/v1/messages/batch`, { method: "POST", headers, body: JSON.stringify({ messages: messages.slice(i, i + 500) }) });
    if (res.status !== 200) throw new Error(`batch: ${res.status} ${await res.text()}`);
  }
  console.log(`   ${DRAIN_MESSAGES} accepted in 4 batches by +${((performance.now() - started) / 1000).toFixed(1)} s`);
  let sent = 0;
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    sent = (await count(gatewayUrl, headers, "sent")) - sentBefore;
    if (sent >= DRAIN_MESSAGES) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const seconds = (performance.now() - started) / 1000;
  const startedAt = Date.now() - seconds * 1000;
  const calls = (
    (await (await fetch(`${simulatorUrl}/_sim/calls?instance=${instance}`)).json()) as { calls: { number: string; body: { text: string }; status: number }[] }
  ).calls;
  let outOfOrder = 0;
  const last = new Map<string, number>();
  const seen = new Set<string>();
  let duplicates = 0;
  for (const c of calls) {
    const n = Number(c.body.text.split(" ")[1]);
    if (n < (last.get(c.number) ?? -1)) outOfOrder++;
    last.set(c.number, n);
    const key = `${c.number}/${n}`;
    if (seen.has(key)) duplicates++;
    seen.add(key);
  }
  const times = calls.map((c) => (c as unknown as { at: number }).at).sort((a, b) => a - b);
  console.log(
    `   first send reached the simulator at +${((times[0]! - startedAt) / 1000).toFixed(1)} s, the last at +${((times.at(-1)! - startedAt) / 1000).toFixed(1)} s`,
  );
  return { seconds, sent, lost: DRAIN_MESSAGES - sent, outOfOrder, duplicates };
}

runScript(main);
