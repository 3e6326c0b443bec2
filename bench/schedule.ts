// npm run bench:schedule — 1,000 messages across 100 contacts, all due in the same second a short
// time ahead, on the local runtime (wrangler dev): lateness at the simulator (its receive time
// minus sendAt), how many were delivered, and how many came early.
import { startSimulator } from "../simulator/server.ts";
import { gatewayClient } from "../src/client.ts";
import { provisionTenant, sendInBatches, startGateway } from "../tools/harness/gateway.ts";
import { type SimCall, simulatorCalls } from "../tools/harness/simulator.ts";
import { percentile, runScript, table } from "../tools/harness/load.ts";

const MESSAGES = Number(process.env.BENCH_SCHEDULE_MESSAGES ?? 1000);
const CONTACTS = Number(process.env.BENCH_SCHEDULE_CONTACTS ?? 100);
const LEAD_MS = Number(process.env.BENCH_SCHEDULE_LEAD_MS ?? 15_000);

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const gateway = await startGateway();
  try {
    const t = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: 60000 });
    const api = gatewayClient(gateway.url, { apiKey: t.apiKey });
    // All in the same second: sendAt spread over 0–999 ms of one second, LEAD_MS ahead.
    const second = Math.ceil((Date.now() + LEAD_MS) / 1000) * 1000;
    const messages = Array.from({ length: MESSAGES }, (_, i) => ({
      instance: t.instance,
      to: `55319${String(30000000 + (i % CONTACTS)).padStart(8, "0")}`,
      text: `agendada ${i}`,
      sendAt: new Date(second + ((i * 997) % 1000)).toISOString(),
    }));
    const due = new Map(messages.map((m) => [m.text, Date.parse(m.sendAt)]));
    await sendInBatches(api, messages);
    const acceptedBy = Date.now();
    if (acceptedBy >= second) throw new Error("accepting took longer than the lead time; raise BENCH_SCHEDULE_LEAD_MS");

    let calls: SimCall[] = [];
    const deadline = second + 120_000;
    while (Date.now() < deadline) {
      calls = await simulatorCalls(simulator.url, t.instance);
      if (calls.length >= MESSAGES) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const lateness = calls.map((c) => c.at - due.get(c.body.text ?? "")!).sort((a, b) => a - b);
    const distinct = new Set(calls.map((c) => c.body.text)).size;
    console.log(
      `\n${MESSAGES} messages across ${CONTACTS} contacts due within one second, ${((second - acceptedBy) / 1000).toFixed(1)} s after the last was accepted; wrangler dev on this machine`,
    );
    console.log(
      table(
        ["delivered", "lost", "sent twice", "early", "p50 lateness ms", "p99 lateness ms", "max lateness ms"],
        [
          [
            distinct,
            MESSAGES - distinct,
            calls.length - distinct,
            lateness.filter((l) => l < 0).length,
            percentile(lateness, 50),
            percentile(lateness, 99),
            lateness.at(-1) ?? NaN,
          ],
        ],
      ),
    );
  } finally {
    await gateway.stop();
    await simulator.close();
  }
}

runScript(main);
