// npm run bench:webchat — the web chat on the local runtime (wrangler dev): 1,000 visitor sockets
// open at once, each visitor's messages answered by the echo bot. Measures, from the visitor's side:
//   - memory per idle socket: workerd's RSS before and after opening the sockets, divided;
//   - latency at a steady rate: visitor's send → the reply's message frame, minus the handler's own
//     time (the echo bot records when each call started and ended);
//   - a burst: every visitor sends one message at once; messages per second through the handler
//     round trip, and the same latency under that load.
// Messages not answered within the grace (120 s after the phase) and replies received twice are counted.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { startEchoBot } from "../simulator/echo-bot.ts";
import { gatewayClient } from "../src/client.ts";
import { startGateway } from "../tools/harness/gateway.ts";
import { echoBotSettings } from "../tools/harness/simulator.ts";
import { openVisitor, type Visitor } from "../tools/harness/visitor.ts";
import { percentile, runScript, table } from "../tools/harness/load.ts";
import { waitFor } from "../tools/harness/wait.ts";

const SOCKETS = Number(process.env.BENCH_WEBCHAT_SOCKETS ?? 1000);
const RATE = Number(process.env.BENCH_WEBCHAT_RATE ?? 20);
const SECONDS = Number(process.env.BENCH_WEBCHAT_SECONDS ?? 20);
const HANDLER_MS = Number(process.env.BENCH_WEBCHAT_HANDLER_MS ?? 20);
const GRACE_MS = 120_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const readProc = (pid: string, file: string) => {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return "";
  }
};

/** The workerd processes of the wrangler dev that keeps its state in persistDir. */
function workerdPids(persistDir: string): string[] {
  const procs = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  // `comm` is the field in parentheses; the process group comes three fields after it.
  const groupOf = (pid: string) => Number(readProc(pid, "stat").split(") ")[1]?.split(" ")[2]);
  const wrangler = procs.find((p) => {
    const args = readProc(p, "cmdline").split("\0");
    return args.includes("dev") && args.includes(persistDir);
  });
  if (!wrangler) throw new Error("wrangler dev process not found");
  const group = groupOf(wrangler);
  return procs.filter((p) => groupOf(p) === group && readProc(p, "comm").startsWith("workerd"));
}

/** RSS (bytes) of the workerd processes of the wrangler dev that keeps its state in persistDir. */
function workerdRss(persistDir: string): number {
  let rss = 0;
  for (const p of workerdPids(persistDir)) rss += Number(/VmRSS:\s+(\d+) kB/.exec(readProc(p, "status"))?.[1] ?? 0) * 1024;
  return rss;
}

/** CPU seconds (user + system) the workerd processes of that wrangler dev have used so far. */
function workerdCpuSeconds(persistDir: string): number {
  let ticks = 0;
  for (const pid of workerdPids(persistDir)) {
    const fields = (readProc(pid, "stat").split(") ")[1] ?? "").split(" ");
    // utime and stime: fields 14 and 15 of stat, 11 and 12 after `comm`.
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / 100;
}

// The gateway's own log lines (JSON, one a line; warnings come wrapped in wrangler's colours).
type LogLine = Record<string, unknown> & { msg?: string; at?: string };
function logLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split("\n")) {
    const start = line.indexOf('{"level"');
    if (start < 0) continue;
    const end = line.lastIndexOf("}");
    try {
      out.push(JSON.parse(line.slice(start, end + 1)) as LogLine);
    } catch {
      // a line cut by the pipe: skipped
    }
  }
  return out;
}

async function inBatches<T>(items: T[], size: number, run: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(run));
}

const until = (what: string, ok: () => boolean, timeoutMs = GRACE_MS) => waitFor(what, () => ok() || undefined, { timeoutMs, intervalMs: 50 });

async function main() {
  const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const loadBefore = load();
  const bot = await startEchoBot();
  // The Worker's log lines are read for the gateway-side stage table.
  const gateway = await startGateway({ logLevel: "log" });
  try {
    const tenant = await gatewayClient(gateway.url, { apiKey: "e2e-admin-token" }).v1.admin.tenants.$post({
      json: { name: "bench-webchat", rateLimitPerMinute: 1_000_000 },
    });
    if (tenant.status !== 201) throw new Error(`tenant: ${tenant.status} ${await tenant.text()}`);
    const api = gatewayClient(gateway.url, { apiKey: (await tenant.json()).apiKey });
    const site = await api.v1.instances[":name"].$put({ param: { name: "site" }, json: { channel: "web" } });
    if (!site.ok) throw new Error(`instance: ${site.status} ${await site.text()}`);
    const auto = await api.v1.instances[":name"].automation.$put({ param: { name: "site" }, json: { url: `${bot.url}/bot/bench` } });
    if (!auto.ok) throw new Error(`automation: ${auto.status} ${await auto.text()}`);
    await echoBotSettings(bot.url, "bench", { secret: (await auto.json()).secret, delayMs: HANDLER_MS });

    const socketUrl = async (visitorId: string) => {
      const res = await api.v1.instances[":name"].visitors.$post({ param: { name: "site" }, json: { visitorId, ttlSeconds: 3600 } });
      if (res.status !== 201) throw new Error(`token: ${res.status} ${await res.text()}`);
      return `${gateway.url.replace(/^http/, "ws")}/v1/chat?token=${(await res.json()).token}`;
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
    const cpuSteady = workerdCpuSeconds(gateway.persistDir);
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
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
    lag.disable();
    const steadyCpu = { cpu: workerdCpuSeconds(gateway.persistDir) - cpuSteady, wall: (performance.now() - steadyStart) / 1000 };

    // Phase 3: every visitor sends one message at once.
    const burst = ids.map((id) => `x-${id}`);
    const cpuBurst = workerdCpuSeconds(gateway.persistDir);
    const burstStart = performance.now();
    for (const [i, id] of ids.entries()) say(visitors.get(id)!, burst[i]!);
    await until("burst replies", () => burst.every((t) => repliedAt.has(t))).catch(() => undefined);
    const burstDone = Math.max(...burst.filter((t) => repliedAt.has(t)).map((t) => repliedAt.get(t)!));
    const burstSeconds = (burstDone - burstStart) / 1000;
    const burstLat = latencies(burst);
    const burstCpu = { cpu: workerdCpuSeconds(gateway.persistDir) - cpuBurst, wall: (performance.now() - burstStart) / 1000 };
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

    // The same way on the gateway's clock, from its log lines: the automation lane's line per call
    // (arrived, called, answered, replies handed to the contact lane) and the contact lane's line
    // per delivery attempt (the reply stored for the visitor, which pushes the frame).
    // wrangler passes the lines on a little after the frames: wait for the last replies' lines.
    const lastReplies = [...burst, ...steady].filter((t) => repliedAt.has(t)).length + warm.length;
    await until("log lines", () => (gateway.logs().match(/"msg":"delivery attempt"/g)?.length ?? 0) >= lastReplies, 15_000).catch(() => undefined);
    const lines = logLines(gateway.logs());
    const answered = new Map<string, LogLine>();
    for (const l of lines) if (l.msg === "automation call answered") for (const id of (l.inboundIds as string[]) ?? []) answered.set(id, l);
    const delivered = new Map<string, number>();
    for (const l of lines) if (l.msg === "delivery attempt" && l.outcome === "sent" && l.at) delivered.set(String(l.messageId), Date.parse(l.at));
    const inboundOf = new Map([...textOfInbound].map(([id, text]) => [text, id]));
    const gatewayRows = (name: string, texts: string[], use: { cpu: number; wall: number }) => {
      const calls = texts.map((t) => answered.get(inboundOf.get(t) ?? "")).filter((l): l is LogLine => l !== undefined);
      const num = (l: LogLine, k: string) => Number(l[k]);
      const own = (l: LogLine) => bot.calls.findLast((c) => c.ids.some((id) => ((l.inboundIds as string[]) ?? []).includes(id)) && c.status === 200);
      const spans: [string, (l: LogLine) => number | undefined][] = [
        ["automation lane: arrived → handler called", (l) => num(l, "calledAt") - num(l, "arrivedAt")],
        ["handler call as the lane saw it", (l) => num(l, "answeredAt") - num(l, "calledAt")],
        [
          "  of it outside the handler (request and answer in the runtime)",
          (l) => {
            const c = own(l);
            return c ? num(l, "answeredAt") - num(l, "calledAt") - (c.end - c.start) : undefined;
          },
        ],
        ["reply stored, handed to the contact lane", (l) => num(l, "repliedAt") - num(l, "answeredAt")],
        [
          "contact lane → reply stored for the visitor (frame pushed)",
          (l) => {
            const at = delivered.get(String((l.replyIds as string[] | undefined)?.[0]));
            return at === undefined ? undefined : at - num(l, "repliedAt");
          },
        ],
      ];
      const rows = spans.map(([label, f]) => {
        const d = calls
          .map(f)
          .filter((x): x is number => x !== undefined && Number.isFinite(x))
          .sort((a, b) => a - b);
        return [name, label, d.length, percentile(d, 50), percentile(d, 99)];
      });
      const retried = calls.filter((l) => num(l, "attempts") > 1).length;
      return {
        rows,
        note: `${name}: handler calls retried ${retried}; workerd CPU ${use.cpu.toFixed(1)} s in ${use.wall.toFixed(1)} s (${Math.round((100 * use.cpu) / use.wall)}% of one core)`,
      };
    };
    const gs = gatewayRows("steady", steady, steadyCpu);
    const gb = gatewayRows("burst", burst, burstCpu);
    console.log(`\ngateway side (its log lines, its clock):\n${table(["phase", "stage", "n", "p50 ms", "p99 ms"], [...gs.rows, ...gb.rows])}`);
    console.log(`${gs.note}\n${gb.note}`);
    console.log(
      `this script's event loop delay (visitors and echo bot) in the steady phase: p50 ${(lag.percentile(50) / 1e6).toFixed(0)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms, max ${(lag.max / 1e6).toFixed(0)} ms`,
    );
    if (process.env.BENCH_WEBCHAT_LOGS) writeFileSync(process.env.BENCH_WEBCHAT_LOGS, gateway.logs());
    for (const v of [...visitors.values(), ...warm]) v.close();
  } finally {
    await gateway.stop();
    await bot.close();
  }
}

runScript(main);
