// npm run bench:webchat — the web chat on the local runtime (wrangler dev): 1,000 visitor sockets
// open at once, each visitor's messages answered by the echo bot. Measures, from the visitor's side:
//   - memory per idle socket: workerd's RSS before and after opening the sockets, divided;
//   - latency at a steady rate: visitor's send → the reply's message frame, minus the handler's own
//     time (the echo bot records when each call started and ended);
//   - a burst: every visitor sends one message at once; messages per second through the handler
//     round trip, and the same latency under that load.
// Messages not answered within the grace (120 s after the phase) and replies received twice are counted.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { startEchoBot } from "../simulator/echo-bot.ts";
import { startGateway } from "../test/support/gateway.ts";
import { openVisitor, type Visitor } from "../test/support/visitor.ts";
import { percentile, runScript, table } from "./load.ts";

const SOCKETS = Number(process.env.BENCH_WEBCHAT_SOCKETS ?? 1000);
const RATE = Number(process.env.BENCH_WEBCHAT_RATE ?? 20);
const SECONDS = Number(process.env.BENCH_WEBCHAT_SECONDS ?? 20);
const HANDLER_MS = Number(process.env.BENCH_WEBCHAT_HANDLER_MS ?? 20);
const GRACE_MS = 120_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RSS (bytes) of the workerd processes of the wrangler dev that keeps its state in persistDir. */
function workerdRss(persistDir: string): number {
  const procs = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  const read = (pid: string, file: string) => {
    try {
      return readFileSync(`/proc/${pid}/${file}`, "utf8");
    } catch {
      return "";
    }
  };
  // `comm` is the field in parentheses; the process group comes three fields after it.
  const groupOf = (pid: string) => Number(read(pid, "stat").split(") ")[1]?.split(" ")[2]);
  const wrangler = procs.find((p) => {
    const args = read(p, "cmdline").split("\0");
    return args.includes("dev") && args.includes(persistDir);
  });
  if (!wrangler) throw new Error("wrangler dev process not found");
  const group = groupOf(wrangler);
  let rss = 0;
  for (const p of procs) {
    if (groupOf(p) !== group || !read(p, "comm").startsWith("workerd")) continue;
    const kb = /VmRSS:\s+(\d+) kB/.exec(read(p, "status"))?.[1];
    rss += Number(kb ?? 0) * 1024;
  }
  return rss;
}

async function inBatches<T>(items: T[], size: number, run: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(run));
}

async function until(what: string, ok: () => boolean, timeoutMs = GRACE_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

async function main() {
  const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const loadBefore = load();
  const bot = await startEchoBot();
  const gateway = await startGateway(process.env.BENCH_WEBCHAT_LOGS ? { logLevel: "log" } : {});
  try {
    const admin = { authorization: "Bearer e2e-admin-token", "content-type": "application/json" };
    const tenant = await fetch(`${gateway.url}/v1/admin/tenants`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "bench-webchat", rateLimitPerMinute: 1_000_000 }),
    });
    const { apiKey } = (await tenant.json()) as { apiKey: string };
    const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
    await fetch(`${gateway.url}/v1/instances/site`, { method: "PUT", headers, body: JSON.stringify({ channel: "web" }) });
    const auto = await fetch(`${gateway.url}/v1/instances/site/automation`, { method: "PUT", headers, body: JSON.stringify({ url: `${bot.url}/bot/bench` }) });
    const { secret } = (await auto.json()) as { secret: string };
    await fetch(`${bot.url}/_bot/bench`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ secret, delayMs: HANDLER_MS }),
    });

    const socketUrl = async (visitorId: string) => {
      const res = await fetch(`${gateway.url}/v1/instances/site/visitors`, { method: "POST", headers, body: JSON.stringify({ visitorId, ttlSeconds: 3600 }) });
      if (res.status !== 201) throw new Error(`token: ${res.status} ${await res.text()}`);
      return `${gateway.url.replace(/^http/, "ws")}/v1/chat?token=${((await res.json()) as { token: string }).token}`;
    };

    // Replies by text: "echo: <text>" → when it arrived (first time), and how many times.
    const sentAt = new Map<string, number>();
    const repliedAt = new Map<string, number>();
    const replyIds = new Map<string, Set<string>>();
    // Stages on the visitor's clock: `queued` (stored), `processing` (the handler is called).
    const queuedAt = new Map<string, number>();
    const textOfInbound = new Map<string, string>();
    const processingAt = new Map<string, number>();
    const watch = (v: Visitor) => {
      v.onFrame = (f, at) => {
        if (f.type === "queued" && f.data.clientMessageId) {
          if (!queuedAt.has(f.data.clientMessageId)) queuedAt.set(f.data.clientMessageId, at);
          textOfInbound.set(String(f.data.messageId), f.data.clientMessageId);
        }
        if (f.type === "processing") {
          const text = textOfInbound.get(String(f.data.messageId));
          if (text && !processingAt.has(text)) processingAt.set(text, at);
        }
        if (f.type !== "message") return;
        const text = String(f.data.message).replace(/^echo: /, "");
        if (!repliedAt.has(text)) repliedAt.set(text, at);
        const ids = replyIds.get(text) ?? new Set();
        ids.add(String(f.data.messageId));
        replyIds.set(text, ids);
      };
    };
    const say = (v: Visitor, text: string) => {
      sentAt.set(text, performance.now());
      v.say(text, text);
    };

    // Warm-up: the code paths loaded, a few conversations, not measured.
    const warm = await Promise.all(Array.from({ length: 10 }, async (_, i) => openVisitor(await socketUrl(`warm-${i}`))));
    for (const v of warm) watch(v);
    await until("warm sockets", () => warm.every((v) => v.isOpen()));
    for (const [i, v] of warm.entries()) say(v, `warm-${i}`);
    await until("warm replies", () => warm.every((_, i) => repliedAt.has(`warm-${i}`)));
    await sleep(2_000);
    const rssBefore = workerdRss(gateway.persistDir);

    // Phase 1: SOCKETS idle sockets.
    const ids = Array.from({ length: SOCKETS }, (_, i) => `b-${String(i).padStart(5, "0")}`);
    const urls = new Map<string, string>();
    await inBatches(ids, 25, async (id) => {
      urls.set(id, await socketUrl(id));
    });
    const visitors = new Map<string, Visitor>();
    const openStarted = performance.now();
    await inBatches(ids, 50, async (id) => {
      const v = openVisitor(urls.get(id)!, { retryMs: 1_000 });
      watch(v);
      visitors.set(id, v);
      await until(`socket ${id}`, () => v.frames.some((f) => f.type === "connected"));
    });
    const openSeconds = (performance.now() - openStarted) / 1000;
    await sleep(3_000);
    const rssIdle = workerdRss(gateway.persistDir);
    const reconnects = [...visitors.values()].reduce((n, v) => n + v.connects - 1, 0);

    const latencies = (texts: string[]) =>
      texts
        .filter((t) => repliedAt.has(t))
        .map((t) => {
          const call = bot.calls.find((c) => c.texts.includes(t) && c.status === 200);
          return repliedAt.get(t)! - sentAt.get(t)! - (call ? call.end - call.start : 0);
        })
        .sort((a, b) => a - b);

    // Phase 2: a steady RATE a second over the open sockets, one visitor after another.
    const steady: string[] = [];
    const steadyStart = performance.now();
    for (let i = 0; i < RATE * SECONDS; i++) {
      const due = steadyStart + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const id = ids[i % ids.length]!;
      const text = `s-${i}-${id}`;
      steady.push(text);
      say(visitors.get(id)!, text);
    }
    await until("steady replies", () => steady.every((t) => repliedAt.has(t))).catch(() => undefined);
    const steadyLat = latencies(steady);

    // Phase 3: every visitor sends one message at once.
    const burst = ids.map((id) => `x-${id}`);
    const burstStart = performance.now();
    for (const [i, id] of ids.entries()) say(visitors.get(id)!, burst[i]!);
    await until("burst replies", () => burst.every((t) => repliedAt.has(t))).catch(() => undefined);
    const burstDone = Math.max(...burst.filter((t) => repliedAt.has(t)).map((t) => repliedAt.get(t)!));
    const burstSeconds = (burstDone - burstStart) / 1000;
    const burstLat = latencies(burst);
    const rssAfter = workerdRss(gateway.persistDir);

    const lost = (texts: string[]) => texts.filter((t) => !repliedAt.has(t)).length;
    const twice = (texts: string[]) => texts.filter((t) => (replyIds.get(t)?.size ?? 0) > 1).length;
    const handlerMs = bot.calls.map((c) => c.end - c.start).sort((a, b) => a - b);
    const mb = (b: number) => (b / 1024 / 1024).toFixed(1);

    console.log(`\nbench:webchat — ${SOCKETS} visitor sockets, wrangler dev, echo bot answering after ${HANDLER_MS} ms (subtracted per call)`);
    console.log(`load average before: ${loadBefore}; after: ${load()}\n`);
    console.log(
      table(
        ["phase", "messages", "unanswered after grace", "answered twice", "msg/s", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [
          [
            `steady ${RATE}/s for ${SECONDS} s`,
            steady.length,
            lost(steady),
            twice(steady),
            (steady.length - lost(steady)) / SECONDS,
            percentile(steadyLat, 50),
            percentile(steadyLat, 90),
            percentile(steadyLat, 99),
            steadyLat.at(-1) ?? NaN,
          ],
          [
            `burst: ${SOCKETS} at once`,
            burst.length,
            lost(burst),
            twice(burst),
            (burst.length - lost(burst)) / burstSeconds,
            percentile(burstLat, 50),
            percentile(burstLat, 90),
            percentile(burstLat, 99),
            burstLat.at(-1) ?? NaN,
          ],
        ],
      ),
    );
    console.log(
      `\n${table(
        ["sockets", "opened in s", "reconnects", "workerd RSS before MB", "with idle sockets MB", "per idle socket KB", "after the burst MB"],
        [[SOCKETS, openSeconds, reconnects, mb(rssBefore), mb(rssIdle), (rssIdle - rssBefore) / SOCKETS / 1024, mb(rssAfter)]],
      )}`,
    );
    const stage = (texts: string[], from: Map<string, number>, to: Map<string, number>) =>
      texts
        .filter((t) => from.has(t) && to.has(t))
        .map((t) => to.get(t)! - from.get(t)!)
        .sort((a, b) => a - b);
    const stageRows = (name: string, texts: string[]) =>
      (
        [
          ["send → queued (stored)", sentAt, queuedAt],
          ["queued → processing (handler called)", queuedAt, processingAt],
          ["processing → reply frame (handler time included)", processingAt, repliedAt],
        ] as const
      ).map(([label, from, to]) => {
        const d = stage(texts, from, to);
        return [name, label, d.length, percentile(d, 50), percentile(d, 99)];
      });
    console.log(`\n${table(["phase", "stage", "n", "p50 ms", "p99 ms"], [...stageRows("steady", steady), ...stageRows("burst", burst)])}`);
    console.log(`\nhandler's own time (subtracted): p50 ${percentile(handlerMs, 50)} ms, p99 ${percentile(handlerMs, 99)} ms`);
    if (process.env.BENCH_WEBCHAT_LOGS) writeFileSync(process.env.BENCH_WEBCHAT_LOGS, gateway.logs());
    for (const v of [...visitors.values(), ...warm]) v.close();
  } finally {
    await gateway.stop();
    await bot.close();
  }
}

runScript(main);
