// npm run bench:pacing — one WhatsApp number pacing a campaign, on the local runtime (wrangler dev):
// 1,000 messages to 500 contacts through one instance with random gaps, rate and burst; prints
// the distribution of the gaps the simulator observed between two sends and the most sends seen
// in any 60 s window beside the configured limit (ratePerMinute + burst). At the same time two
// more numbers run: one with a daily cap (it must send exactly the cap, the rest queued with a
// note) and one inside its quiet hours (it must send nothing, everything queued with a note).
//
// Compressed by default so it finishes in a few minutes: gaps of 50–250 ms and 400/min with a
// burst of 5 stand in for a real campaign's 4–12 s and 20/min. The rules are the same; only the
// clock is faster. Override with BENCH_PACING_* variables.
import { startSimulator } from "../simulator/server.ts";
import { type GatewayClient, gatewayClient } from "../src/client.ts";
import { provisionTenant, sendInBatches, startGateway } from "../tools/harness/gateway.ts";
import { type SimCall, simulatorCalls } from "../tools/harness/simulator.ts";
import { percentile, runScript, table } from "../tools/harness/load.ts";

const MESSAGES = Number(process.env.BENCH_PACING_MESSAGES ?? 1000);
const CONTACTS = Number(process.env.BENCH_PACING_CONTACTS ?? 500);
const RATE = Number(process.env.BENCH_PACING_RATE ?? 400);
const BURST = Number(process.env.BENCH_PACING_BURST ?? 5);
const GAP_MIN = Number(process.env.BENCH_PACING_GAP_MIN ?? 50);
const GAP_MAX = Number(process.env.BENCH_PACING_GAP_MAX ?? 250);
const TIMEOUT_S = Number(process.env.BENCH_PACING_TIMEOUT_S ?? 900);
const CAP = 40;
const CAPPED_MESSAGES = 80;
const QUIET_MESSAGES = 40;

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const gateway = await startGateway();
  try {
    const run = Date.now().toString(36);
    // Each number its own tenant: the campaign's, the capped one and the quiet one.
    const number = async (instance: string) => {
      const t = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: RATE, instance });
      return { instance, api: gatewayClient(gateway.url, { apiKey: t.apiKey }) };
    };
    const t = await number(`pacing-${run}`);
    await configure(t, simulator.url, { ratePerMinute: RATE, burst: BURST, gapMs: { min: GAP_MIN, max: GAP_MAX } });
    const capped = await number(`capped-${run}`);
    await configure(capped, simulator.url, { ratePerMinute: RATE, burst: BURST, dailyCap: CAP });
    const quiet = await number(`quiet-${run}`);
    const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);
    await configure(quiet, simulator.url, {
      quietHours: { start: hhmm(Date.now() - 3_600_000), end: hhmm(Date.now() + 3_600_000), timeZone: "UTC" },
    });

    const contact = (c: number) => `55319${String(30000000 + c).padStart(8, "0")}`;
    const campaign = (instance: string, n: number, contacts: number) =>
      Array.from({ length: n }, (_, i) => ({ instance, to: contact(i % contacts), text: `pacing ${Math.floor(i / contacts)}` }));
    const started = Date.now();
    await sendInBatches(capped.api, campaign(capped.instance, CAPPED_MESSAGES, CAPPED_MESSAGES / 2));
    await sendInBatches(quiet.api, campaign(quiet.instance, QUIET_MESSAGES, QUIET_MESSAGES / 2));
    await sendInBatches(t.api, campaign(t.instance, MESSAGES, CONTACTS));
    let calls: SimCall[] = [];
    const deadline = Date.now() + TIMEOUT_S * 1000;
    for (;;) {
      calls = await sent(simulator.url, t.instance);
      if (calls.length >= MESSAGES || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const seconds = (Date.now() - started) / 1000;
    // By now (minutes later) the capped number has long hit its cap, and the quiet one has had
    // the whole run to break its window: what they sent, and what waits with a note.
    const cappedCalls = await sent(simulator.url, capped.instance);
    const quietCalls = await sent(simulator.url, quiet.instance);
    const cappedQueued = await queuedWithNote(capped, "daily cap");
    const quietQueued = await queuedWithNote(quiet, "quiet hours");
    const times = calls.map((c) => c.at).sort((a, b) => a - b);
    const gaps = times.slice(1).map((at, i) => at - times[i]!);
    const sorted = [...gaps].sort((a, b) => a - b);
    let most = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (j < times.length && times[j]! < times[i]! + 60_000) j++;
      most = Math.max(most, j - i);
    }
    const outOfOrder = countOutOfOrder(calls) + countOutOfOrder(cappedCalls);

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
    console.log(
      table(
        ["number", "messages", "sent at the simulator", "expected", "queued", "contacts held", "their first with a note"],
        [
          [`dailyCap ${CAP}`, CAPPED_MESSAGES, cappedCalls.length, CAP, cappedQueued.queued, cappedQueued.contacts, cappedQueued.noted],
          ["inside quietHours", QUIET_MESSAGES, quietCalls.length, 0, quietQueued.queued, quietQueued.contacts, quietQueued.noted],
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
    const held = (q: { queued: number; contacts: number; noted: number }, n: number) => q.queued === n && q.noted === q.contacts;
    if (cappedCalls.length !== CAP || !held(cappedQueued, CAPPED_MESSAGES - CAP)) throw new Error("the daily cap did not hold");
    if (quietCalls.length !== 0 || !held(quietQueued, QUIET_MESSAGES)) throw new Error("quiet hours did not hold");
    if (outOfOrder > 0) throw new Error(`${outOfOrder} sends out of order`);
  } finally {
    await gateway.stop();
    await simulator.close();
  }
}

type PacedNumber = { instance: string; api: GatewayClient };
type Pacing = NonNullable<Parameters<GatewayClient["v1"]["instances"][":name"]["$put"]>[0]["json"]["pacing"]>;

async function configure(n: PacedNumber, simulatorUrl: string, pacing: Pacing) {
  const res = await n.api.v1.instances[":name"].$put({ param: { name: n.instance }, json: { evolutionUrl: simulatorUrl, pacing } });
  if (res.status !== 200) throw new Error(`pacing: ${res.status} ${await res.text()}`);
}

async function sent(simulatorUrl: string, instance: string): Promise<SimCall[]> {
  return (await simulatorCalls(simulatorUrl, instance)).filter((c) => c.route === "sendText" && c.status === 201);
}

// The number's queued messages; each contact's first one (the head its lane holds back; the
// others wait behind it without asking) must carry the wait note in its history.
async function queuedWithNote({ api, instance }: PacedNumber, note: string) {
  const res = await api.v1.messages.$get({ query: { instance, status: "queued", limit: "200" } });
  if (!res.ok) throw new Error(`messages: ${res.status} ${await res.text()}`);
  const page = await res.json();
  const heads = new Map<string, string>();
  // Ids sort by creation: the smallest of a contact is its first.
  for (const m of page.data) if (!heads.has(m.to) || m.id < heads.get(m.to)!) heads.set(m.to, m.id);
  let noted = 0;
  for (const id of heads.values()) {
    const res = await api.v1.messages[":id"].$get({ param: { id } });
    if (!res.ok) throw new Error(`message ${id}: ${res.status} ${await res.text()}`);
    const one = await res.json();
    if (one.history?.some((h) => h.detail?.includes(note))) noted++;
  }
  return { queued: page.data.length, contacts: heads.size, noted };
}

// Each contact's texts carry their position ("pacing 0", "pacing 1"); they must arrive in that order.
function countOutOfOrder(calls: SimCall[]): number {
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
