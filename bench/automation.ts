// npm run bench:automation — inbound automation on the local runtime (wrangler dev): messages.upsert
// webhooks at a steady rate over many contacts, each answered by the echo bot, until the reply
// reaches the Evolution simulator. Latency per message = reply sent − webhook posted − the
// handler's own time; also counts what was lost, called twice, or answered out of order.
import upsertFixture from "../test/fixtures/evolution/messages.upsert.text.json" with { type: "json" };
import { startEchoBot } from "../simulator/echo-bot.ts";
import { startSimulator } from "../simulator/server.ts";
import { gatewayClient } from "../src/client.ts";
import { provisionTenant, startGateway } from "../tools/harness/gateway.ts";
import { echoBotSettings } from "../tools/harness/simulator.ts";
import { z } from "zod";
import { percentile, runScript, table } from "../tools/harness/load.ts";

const RATE = Number(process.env.BENCH_AUTOMATION_RATE ?? 10);
const SECONDS = Number(process.env.BENCH_AUTOMATION_SECONDS ?? 30);
const CONTACTS = Number(process.env.BENCH_AUTOMATION_CONTACTS ?? 200);
const HANDLER_MS = Number(process.env.BENCH_AUTOMATION_HANDLER_MS ?? 50);

const answeredLine = z.object({
  inboundIds: z.array(z.string()),
  arrivedAt: z.number(),
  calledAt: z.number().nullable(),
  answeredAt: z.number(),
  repliedAt: z.number(),
});

const contactOf = (i: number) => `55119${String(50000000 + (i % CONTACTS))}`;

function upsert(i: number, instance: string) {
  const body = structuredClone(upsertFixture);
  // The webhook URL refuses a body of another instance.
  body.instance = instance;
  body.data.key.id = `AUTO${String(i).padStart(28, "0")}`;
  body.data.key.remoteJid = `${contactOf(i)}@s.whatsapp.net`;
  body.data.message.conversation = `m${i}`;
  body.data.messageTimestamp = Math.floor(Date.now() / 1000);
  return JSON.stringify(body);
}

async function main() {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const bot = await startEchoBot();
  const gateway = await startGateway({ logLevel: "log" });
  try {
    const t = await provisionTenant(gateway.url, simulator.url);
    const api = gatewayClient(gateway.url, { apiKey: t.apiKey });
    const put = await api.v1.instances[":name"].automation.$put({ param: { name: t.instance }, json: { url: `${bot.url}/bot/bench`, contextMessages: 10 } });
    if (!put.ok) throw new Error(`automation: ${put.status} ${await put.text()}`);
    const { secret } = await put.json();
    await echoBotSettings(bot.url, "bench", { secret, delayMs: HANDLER_MS });
    // The webhooks are posted as Evolution does, to the URL the gateway gave for the instance.
    const headers = { "content-type": "application/json" };

    // Warm-up on other contacts' numbers, not measured.
    const warm = Array.from({ length: 20 }, (_, i) => 1_000_000 + i);
    await Promise.all(warm.map((i) => fetch(t.webhookUrl, { method: "POST", headers, body: upsert(i, t.instance) })));

    const total = RATE * SECONDS;
    const postedAt = new Map<number, number>();
    const acceptedAt = new Map<number, number>();
    const started = Date.now();
    const posts: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / RATE;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      postedAt.set(i, Date.now());
      posts.push(
        fetch(t.webhookUrl, { method: "POST", headers, body: upsert(i, t.instance) })
          .then((r) => r.arrayBuffer())
          .then(() => acceptedAt.set(i, Date.now())),
      );
    }
    await Promise.all(posts);

    const sentAt = () => {
      const map = new Map<number, { at: number; n: number }>();
      for (const c of simulator.state.calls) {
        const m = /^echo: m(\d+)$/.exec((c.body as { text?: string }).text ?? "");
        if (!m || c.status !== 201) continue;
        const i = Number(m[1]);
        const prev = map.get(i);
        map.set(i, { at: prev?.at ?? c.at, n: (prev?.n ?? 0) + 1 });
      }
      return map;
    };
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && [...sentAt().keys()].filter((i) => i < total).length < total) await new Promise((r) => setTimeout(r, 250));

    const sent = sentAt();
    const calls = bot.calls.filter((c) => c.path === "bench");
    const handlerMs = new Map<number, number>();
    const indexOfInbound = new Map<string, number>();
    const callStart = new Map<number, number>();
    const callEnd = new Map<number, number>();
    const callCount = new Map<number, number>();
    for (const c of calls) {
      for (const [k, text] of c.texts.entries()) {
        const i = Number(/^m(\d+)$/.exec(text ?? "")?.[1] ?? -1);
        const inboundId = c.ids[k];
        if (inboundId) indexOfInbound.set(inboundId, i);
        handlerMs.set(i, c.end - c.start);
        if (!callStart.has(i)) callStart.set(i, c.start);
        callEnd.set(i, c.end);
        callCount.set(i, (callCount.get(i) ?? 0) + 1);
      }
    }
    const latencies: number[] = [];
    let outOfOrder = 0;
    const lastPerContact = new Map<string, number>();
    for (let i = 0; i < total; i++) {
      const s = sent.get(i);
      if (!s) continue;
      latencies.push(s.at - (postedAt.get(i) ?? 0) - (handlerMs.get(i) ?? 0));
      const contact = contactOf(i);
      if ((lastPerContact.get(contact) ?? -1) > s.at) outOfOrder++;
      lastPerContact.set(contact, s.at);
    }
    latencies.sort((a, b) => a - b);
    // Where the time goes: webhook posted → handler called, handler answered → reply at Evolution.
    const inbound = [...callStart]
      .filter(([i]) => i >= 0 && i < total)
      .map(([i, at]) => at - (postedAt.get(i) ?? at))
      .sort((a, b) => a - b);
    const outbound = [...sent]
      .filter(([i]) => i < total && callEnd.has(i))
      .map(([i, v]) => v.at - (callEnd.get(i) ?? v.at))
      .sort((a, b) => a - b);
    const lost = total - latencies.length;
    const calledTwice = [...callCount].filter(([i, n]) => i >= 0 && i < total && n > 1).length;
    const sentTwice = [...sent].filter(([i, v]) => i < total && v.n > 1).length;
    console.log(
      `\ninbound automation: ${total} messages.upsert at ${RATE}/s over ${CONTACTS} contacts for ${SECONDS} s, handler ${HANDLER_MS} ms (subtracted), wrangler dev on this machine`,
    );
    console.log(
      table(
        ["messages", "answered", "p50 ms", "p90 ms", "p99 ms", "max ms", "lost", "called twice", "sent twice", "out of order"],
        [
          [
            total,
            latencies.length,
            percentile(latencies, 50),
            percentile(latencies, 90),
            percentile(latencies, 99),
            latencies.at(-1) ?? Number.NaN,
            lost,
            calledTwice,
            sentTwice,
            outOfOrder,
          ],
        ],
      ),
    );
    console.log(
      `\nof which: webhook → handler called p50 ${percentile(inbound, 50).toFixed(0)} ms, p99 ${percentile(inbound, 99).toFixed(0)} ms; ` +
        `handler answered → reply at Evolution p50 ${percentile(outbound, 50).toFixed(0)} ms, p99 ${percentile(outbound, 99).toFixed(0)} ms`,
    );
    // Per stage, from the bench's clock, the echo bot's, the simulator's and the lane's log line
    // ("automation call answered": when the message reached its contact's lane, when the replies
    // were in the send lane). One machine, one clock.
    const answered = new Map<number, z.infer<typeof answeredLine>>();
    for (const line of gateway.logs().split("\n")) {
      if (!line.includes('"automation call answered"')) continue;
      let value: unknown;
      try {
        value = JSON.parse(line.slice(line.indexOf("{")));
      } catch {
        continue;
      }
      const entry = answeredLine.safeParse(value);
      if (!entry.success) continue;
      for (const id of entry.data.inboundIds) {
        const i = indexOfInbound.get(id);
        if (i !== undefined) answered.set(i, entry.data);
      }
    }
    // Each message's path as timestamps; a stage is the difference of two neighbours.
    const stamps = (i: number) => {
      const a = answered.get(i);
      return [postedAt.get(i), a?.arrivedAt, a?.calledAt ?? undefined, callStart.get(i), callEnd.get(i), a?.answeredAt, a?.repliedAt, sent.get(i)?.at];
    };
    const names = [
      "webhook posted → in the contact's automation lane",
      "in the automation lane → call made (lane's clock)",
      "call made → at the handler",
      "(the handler's own time, subtracted)",
      "handler answered → answer in the lane",
      "answer in the lane → replies in the send lane",
      "replies in the send lane → sent at Evolution",
    ];
    const rows = names.map((name, k) => {
      const v: number[] = [];
      for (let i = 0; i < total; i++) {
        const [from, to] = [stamps(i)[k], stamps(i)[k + 1]];
        if (from !== undefined && to !== undefined) v.push(to - from);
      }
      v.sort((x, y) => x - y);
      return [name, v.length, percentile(v, 50), percentile(v, 90), percentile(v, 99), v.at(-1) ?? Number.NaN];
    });
    console.log(`\nper stage (ms)\n${table(["stage", "n", "p50", "p90", "p99", "max"], rows)}`);
    // Beside the path, not on it: the hand-off runs after the response, which reaches the bench late.
    const accepted = [...acceptedAt].map(([i, at]) => at - (postedAt.get(i) ?? at)).sort((x, y) => x - y);
    console.log(`webhook posted → its 200 at the bench (not on the path): p50 ${percentile(accepted, 50)} ms, p99 ${percentile(accepted, 99)} ms`);
    const failures = gateway.logs().match(/automation call failed[^\n]*/g) ?? [];
    if (failures.length > 0) console.log(`\n${failures.length} failed handler calls, e.g. ${failures[0]}`);
  } finally {
    await gateway.stop();
    await bot.close();
    await simulator.close();
  }
}

runScript(main);
