// npm run bench:pacing — one WhatsApp number pacing a campaign, on the local runtime (wrangler dev):
// 1,000 messages to 500 contacts through one instance with random gaps, rate and burst; prints
// the distribution of the gaps the simulator observed between two sends and the most sends seen
// in any 60 s window beside the configured limit (ratePerMinute + burst).
//
// Compressed by default so it finishes in a few minutes: gaps of 50–250 ms and 400/min with a
// burst of 5 stand in for a real campaign's 4–12 s and 20/min. The rules are the same; only the
// clock is faster. Override with BENCH_PACING_* variables.
import { startSimulator } from "../simulator/server.ts";
import { provisionTenant, startGateway } from "../test/support/gateway.ts";
import { percentile, runScript, table } from "./load.ts";

const MESSAGES = Number(process.env.BENCH_PACING_MESSAGES ?? 1000);
const CONTACTS = Number(process.env.BENCH_PACING_CONTACTS ?? 500);
const RATE = Number(process.env.BENCH_PACING_RATE ?? 400);
const BURST = Number(process.env.BENCH_PACING_BURST ?? 5);
const GAP_MIN = Number(process.env.BENCH_PACING_GAP_MIN ?? 50);
const GAP_MAX = Number(process.env.BENCH_PACING_GAP_MAX ?? 250);
const TIMEOUT_S = Number(process.env.BENCH_PACING_TIMEOUT_S ?? 900);

type Call = { at: number; number: string; route: string; status: number; body: { text?: string } };

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const gateway = await startGateway();
  try {
    const t = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: RATE });
    const headers = { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" };
    const put = await fetch(`${gateway.url}/v1/instances/${t.instance}`, {
      method: "PUT",
      headers,
      body: JSON.stringify({ evolutionUrl: simulator.url, pacing: { ratePerMinute: RATE, burst: BURST, gapMs: { min: GAP_MIN, max: GAP_MAX } } }),
    });
    if (put.status !== 200) throw new Error(`pacing: ${put.status} ${await put.text()}`);

    const contact = (c: number) => `55319${String(30000000 + c).padStart(8, "0")}`;
    const messages = Array.from({ length: MESSAGES }, (_, i) => ({
      instance: t.instance,
      to: contact(i % CONTACTS),
      text: `pacing ${Math.floor(i / CONTACTS)}`,
    }));
    const started = Date.now();
    for (let i = 0; i < messages.length; i += 500) {
      const res = await fetch(`${gateway.url}/v1/messages/batch`, { method: "POST", headers, body: JSON.stringify({ messages: messages.slice(i, i + 500) }) });
      if (res.status !== 200) throw new Error(`batch: ${res.status} ${await res.text()}`);
    }
    let calls: Call[] = [];
    const deadline = Date.now() + TIMEOUT_S * 1000;
    for (;;) {
      calls = ((await (await fetch(`${simulator.url}/_sim/calls?instance=${t.instance}`)).json()) as { calls: Call[] }).calls.filter(
        (c) => c.route === "sendText" && c.status === 201,
      );
      if (calls.length >= MESSAGES || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const seconds = (Date.now() - started) / 1000;
    const times = calls.map((c) => c.at).sort((a, b) => a - b);
    const gaps = times.slice(1).map((at, i) => at - times[i]!);
    const sorted = [...gaps].sort((a, b) => a - b);
    let most = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (j < times.length && times[j]! < times[i]! + 60_000) j++;
      most = Math.max(most, j - i);
    }
    const outOfOrder = countOutOfOrder(calls);

    console.log(`\nbench:pacing — ${MESSAGES} messages to ${CONTACTS} contacts on one number, wrangler dev on this machine`);
    console.log(`configured: ratePerMinute ${RATE}, burst ${BURST}, gapMs [${GAP_MIN}, ${GAP_MAX}] (compressed clock; see the header)`);
    console.log(
      table(
        ["sent", "seconds", "gaps", "min ms", "p10", "p50", "p90", "p99", "max ms", "below min", "max sends in 60 s", "limit (rate + burst)", "out of order"],
        [
          [
            calls.length,
            seconds.toFixed(1),
            gaps.length,
            sorted[0] ?? 0,
            percentile(sorted, 10),
            percentile(sorted, 50),
            percentile(sorted, 90),
            percentile(sorted, 99),
            sorted.at(-1) ?? 0,
            gaps.filter((g) => g < GAP_MIN).length,
            most,
            RATE + BURST,
            outOfOrder,
          ],
        ],
      ),
    );
    console.log("\ngap histogram (ms):");
    const width = Math.max(1, Math.ceil((GAP_MAX - GAP_MIN) / 8));
    const buckets = new Map<number, number>();
    for (const g of gaps) {
      const b = Math.min(Math.floor(Math.max(0, g - GAP_MIN) / width), 10);
      buckets.set(b, (buckets.get(b) ?? 0) + 1);
    }
    for (const [b, n] of [...buckets].sort((x, y) => x[0] - y[0])) {
      const from = GAP_MIN + b * width;
      const label = b === 10 ? `≥ ${from}` : `${from}–${from + width - 1}`;
      console.log(`  ${label.padStart(12)} | ${"#".repeat(Math.ceil((n / gaps.length) * 60))} ${n}`);
    }
    if (calls.length < MESSAGES) throw new Error(`only ${calls.length} of ${MESSAGES} sent within ${TIMEOUT_S} s`);
  } finally {
    await gateway.stop();
    await simulator.close();
  }
}

// Each contact's texts carry their position ("pacing 0", "pacing 1"); they must arrive in that order.
function countOutOfOrder(calls: Call[]): number {
  const last = new Map<string, number>();
  let n = 0;
  for (const c of [...calls].sort((a, b) => a.at - b.at)) {
    const pos = Number((c.body.text ?? "").split(" ")[1]);
    if (pos < (last.get(c.number) ?? -1)) n++;
    last.set(c.number, pos);
  }
  return n;
}

runScript(main);
