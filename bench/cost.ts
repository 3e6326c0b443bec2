// npm run bench:cost — what each message costs the platform, counted by the runtime itself, for this
// tree and an earlier release side by side (default: v0.1.0, the release before the cost work).
// Each version runs under wrangler dev with bench/cost/meter.ts wrapped around its bindings, so the
// same meter reads both. Per message kind: D1 statements, round trips, rows read and written and D1
// time (from D1's result meta), Durable Object requests and alarms, DO SQLite rows written, storage
// writes, queue operations and Worker invocations; then list-price dollars per million messages and
// the messages per second one D1 database carries at the measured busy time.
//
//   npm run bench:cost                      # this tree vs v0.1.0, 200 messages per kind
//   npm run bench:cost -- --base <rev> --messages 500
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import upsertFixture from "../test/fixtures/evolution/messages.upsert.text.json" with { type: "json" };
import { startSimulator } from "../simulator/server.ts";
import { gatewayClient } from "../src/client.ts";
import { provisionTenant, ROOT, startGateway, type Gateway } from "../tools/harness/gateway.ts";
import { telegramSimulator } from "../tools/harness/simulator.ts";
import type { Counters } from "./cost/meter.ts";
import { closedLoop, runScript, table } from "../tools/harness/load.ts";

const { values: args } = parseArgs({
  options: {
    base: { type: "string", default: "v0.1.0" },
    messages: { type: "string", default: "200" },
    contacts: { type: "string", default: "50" },
  },
});
const N = Number(args.messages);
const CONTACTS = Number(args.contacts);
// The commit v0.1.0 names, for a clone that did not fetch tags.
const RELEASES: Record<string, string> = { "v0.1.0": "a72e247" };

// List prices (Workers Paid, beyond the included amounts), as of 2026; see docs/capacity.md.
const PRICE_PER_MILLION = {
  workerRequests: 0.3,
  d1RowsWritten: 1.0,
  d1RowsRead: 0.001,
  doRequests: 0.15,
  doRowsWritten: 1.0,
  queueOperations: 0.4,
};

type Kind = "outbound → read" | "scheduled → read" | "inbound" | "telegram outbound → sent" | "telegram inbound";
const KINDS: Kind[] = ["outbound → read", "scheduled → read", "inbound", "telegram outbound → sent", "telegram inbound"];
// Telegram is measured on this tree only (earlier releases have no channels).
const TELEGRAM_KINDS: ReadonlySet<Kind> = new Set(["telegram outbound → sent", "telegram inbound"]);
const BOT_TOKEN = "5353535:bench-cost-telegram-secret-000000000";

type Version = { label: string; root: string; cleanup: () => void };

/** A checkout of `rev` beside this one, sharing its node_modules. */
function checkout(rev: string): Version {
  const dir = mkdtempSync(path.join(tmpdir(), "mensageiro-cost-"));
  let commit = rev;
  try {
    execFileSync("git", ["rev-parse", "--verify", `${rev}^{commit}`], { cwd: ROOT, stdio: "ignore" });
  } catch {
    commit = RELEASES[rev] ?? rev;
  }
  execFileSync("git", ["worktree", "add", "--detach", dir, commit], { cwd: ROOT, stdio: "ignore" });
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  return {
    label: rev,
    root: dir,
    cleanup: () => {
      execFileSync("git", ["worktree", "remove", "--force", dir], { cwd: ROOT, stdio: "ignore" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes .cost/ into a tree: the meter, an entry that wraps the tree's Worker and Durable Objects,
 *  and a wrangler config pointing at that entry (paths rewritten to stay relative to the tree). */
function instrument(root: string): string {
  const dir = path.join(root, ".cost");
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(ROOT, "bench/cost/meter.ts"), path.join(dir, "meter.ts"));
  const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const classes = [...new Set([...toml.matchAll(/class_name\s*=\s*"(\w+)"/g)].map((m) => m[1] as string))];
  const main = /^main\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "src/index.ts";
  writeFileSync(
    path.join(dir, "entry.ts"),
    [
      `import worker, * as original from "../${main.replace(/^\.\//, "")}";`,
      `import { meterDurableObject, meterWorker } from "./meter.ts";`,
      `export default meterWorker(worker as never);`,
      ...classes.map((c) => `export const ${c} = meterDurableObject((original as Record<string, never>).${c});`),
    ].join("\n"),
  );
  const config = toml
    .replace(/^main\s*=.*$/m, 'main = "entry.ts"')
    .replace(/^(\s*(?:migrations_dir|directory)\s*=\s*")(?:\.\/)?([^"]*)"/gm, '$1../$2"')
    // The sweep would add its own work on a timer; the bench measures messages only.
    .replace(/^crons\s*=.*$/m, "crons = []");
  writeFileSync(path.join(dir, "wrangler.toml"), config);
  return path.join(dir, "wrangler.toml");
}

async function meter(gateway: Gateway, reset: boolean): Promise<Counters> {
  return (await (await fetch(`${gateway.url}/__meter${reset ? "?reset=1" : ""}`)).json()) as Counters;
}

type Progress = { messages: Record<string, number>; inbound: number };

async function progress(gateway: Gateway): Promise<Progress> {
  return (await (await fetch(`${gateway.url}/__meter/progress`)).json()) as Progress;
}

/** Waits until `done` holds (read through the unmetered progress probe), then a little longer for
 *  work finishing behind it, and returns the counters since the last reset. */
async function settle(gateway: Gateway, done: (p: Progress) => boolean, what: string): Promise<Counters> {
  const deadline = Date.now() + 180_000;
  while (!done(await progress(gateway))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await progress(gateway))}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await new Promise((r) => setTimeout(r, 1500));
  return meter(gateway, true);
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((x, y) => x + y, 0);
const phone = (i: number) => `55119${String(30000000 + (i % CONTACTS)).padStart(8, "0")}`;

/** What one kind cost, and over how many messages the system took (202/200 answers). */
type Measured = { counters: Counters; count: number };

async function measure(version: Version): Promise<Record<Kind, Measured>> {
  const config = instrument(version.root);
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: 20, deliveredDelayMs: 50, readDelayMs: 100 });
  // Tests and the simulator run on loopback: allow private addresses where the version has the switch.
  const gateway = await startGateway({ root: version.root, config, vars: { ALLOW_PRIVATE_URLS: "true", RETRY_BASE_MS: "1000" } });
  const results = {} as Record<Kind, Measured>;
  try {
    // The API rate limit (a later release's) is lifted by default; the earlier release has no such field.
    const t = await provisionTenant(gateway.url, simulator.url, {
      ratePerMinute: 60_000,
      webhooks: "single",
      rateLimitPerMinute: version.root === ROOT ? undefined : null,
    });
    // The same requests to both versions: the client is typed by this tree's routes.
    const api = gatewayClient(gateway.url, { apiKey: t.apiKey });
    // Warm-up: compile, first D1 pages, wake-on-start, caches.
    await closedLoop(20, 4, (i) => api.v1.messages.$post({ json: { instance: t.instance, to: phone(i), text: `warm ${i}` } }));
    await settle(gateway, (p) => (p.messages.read ?? 0) >= 20, "warm-up");

    let reads = 20;
    let telegramSent = 0;
    let inboundTotal = (await progress(gateway)).inbound;
    const telegram = telegramSimulator(simulator.url);
    for (const kind of KINDS) {
      if (TELEGRAM_KINDS.has(kind) && version.root !== ROOT) continue;
      await meter(gateway, true);
      if (kind === "telegram outbound → sent" || kind === "telegram inbound") {
        if (kind === "telegram outbound → sent") {
          // The bot connected outside the meter's window (getMe, setWebhook); chats are any the bot may write to.
          await telegram.control("POST", "/bots", { token: BOT_TOKEN, username: "cost_bot", first_name: "cost" });
          await telegram.control("PATCH", "/config", { anyChat: true, limits: { enabled: false } });
          const put = await api.v1.instances[":name"].$put({
            param: { name: "cost-telegram" },
            json: { channel: "telegram", telegram: { botToken: BOT_TOKEN, apiUrl: simulator.url }, pacing: { ratePerMinute: 60_000 } },
          });
          if (put.status !== 201) throw new Error(`telegram instance: ${put.status} ${await put.text()}`);
          await meter(gateway, true);
          const run = await closedLoop(N, 8, (i) =>
            api.v1.messages.$post({ json: { instance: "cost-telegram", to: String(636_000_000 + (i % CONTACTS)), text: `${kind} ${i}` } }),
          );
          const taken = run.statuses[202] ?? 0;
          telegramSent += taken;
          const target = telegramSent;
          results[kind] = { counters: await settle(gateway, (p) => (p.messages.sent ?? 0) >= target, `${kind}: all sent`), count: taken };
        } else {
          // People write to the bot: the simulator posts each update to the gateway's webhook with the secret.
          const run = await closedLoop(N, 8, (i) =>
            telegram.inbound({ token: BOT_TOKEN, chatId: 636_000_000 + (i % CONTACTS), text: `inbound ${i}`, wait: true }),
          );
          const taken = run.statuses[200] ?? 0;
          const target = inboundTotal + taken;
          results[kind] = { counters: await settle(gateway, (p) => p.inbound >= target, "telegram inbound stored"), count: taken };
        }
        continue;
      }
      if (kind === "inbound") {
        const body = (i: number) => {
          const b = structuredClone(upsertFixture);
          b.data.key.id = `COST${String(i).padStart(28, "0")}`;
          b.data.key.remoteJid = `${phone(i)}@s.whatsapp.net`;
          b.data.message.conversation = `inbound ${i}`;
          b.instance = t.instance;
          return JSON.stringify(b);
        };
        // Posted as Evolution does, to the URL the gateway gave for the instance.
        const run = await closedLoop(N, 8, (i) => fetch(t.webhookUrl, { method: "POST", headers: { "content-type": "application/json" }, body: body(i) }));
        // A machine under load may time requests out: the figures are per message the system took.
        const taken = run.statuses[200] ?? 0;
        inboundTotal += taken;
        results[kind] = { counters: await settle(gateway, (p) => p.inbound >= taken, "inbound stored"), count: taken };
      } else {
        // Due 3 s after each request is made (a time fixed before the loop passes on a loaded machine).
        const sendAt = () => (kind === "scheduled → read" ? new Date(Date.now() + 3000).toISOString() : undefined);
        const run = await closedLoop(N, 8, (i) =>
          api.v1.messages.$post({ json: { instance: t.instance, to: phone(i), text: `${kind} ${i}`, sendAt: sendAt() } }),
        );
        const taken = run.statuses[202] ?? 0;
        reads += taken;
        const target = reads;
        results[kind] = { counters: await settle(gateway, (p) => (p.messages.read ?? 0) >= target, `${kind}: all read`), count: taken };
      }
    }
  } catch (err) {
    console.error(gateway.logs().slice(-4000));
    throw err;
  } finally {
    await gateway.stop();
    await simulator.close();
  }
  return results;
}

type Row = { key: string; metric: string; of: (c: Counters) => number; price?: number };
const ROWS: Row[] = [
  { key: "d1Statements", metric: "D1 statements", of: (c) => c.d1Statements },
  { key: "d1RoundTrips", metric: "D1 round trips", of: (c) => c.d1RoundTrips },
  { key: "d1RowsRead", metric: "D1 rows read", of: (c) => c.d1RowsRead, price: PRICE_PER_MILLION.d1RowsRead },
  { key: "d1RowsWritten", metric: "D1 rows written", of: (c) => c.d1RowsWritten, price: PRICE_PER_MILLION.d1RowsWritten },
  { key: "d1Ms", metric: "D1 busy ms", of: (c) => c.d1Ms },
  { key: "doRequests", metric: "DO requests (RPC + alarms)", of: (c) => sum(c.doRequests) + c.doAlarms, price: PRICE_PER_MILLION.doRequests },
  { key: "doAlarms", metric: "  of which alarms", of: (c) => c.doAlarms },
  { key: "doSqlStatements", metric: "DO SQLite statements", of: (c) => c.doSqlStatements },
  {
    key: "doRowsWritten",
    metric: "DO rows written (SQL + setAlarm/kv)",
    of: (c) => c.doSqlRowsWritten + c.doStorageWrites,
    price: PRICE_PER_MILLION.doRowsWritten,
  },
  { key: "queueOperations", metric: "queue operations", of: (c) => c.queueOperations, price: PRICE_PER_MILLION.queueOperations },
  { key: "workerInvocations", metric: "Worker invocations", of: (c) => sum(c.invocations), price: PRICE_PER_MILLION.workerRequests },
];

const per = (m: Measured, r: Row) => r.of(m.counters) / Math.max(1, m.count);

/** Rows written per message by statement kind (the meter's labels), the costliest first; only
 *  statements that write. */
function byStatement(m: Measured): Record<string, { statements: number; rowsWritten: number }> {
  const n = Math.max(1, m.count);
  return Object.fromEntries(
    Object.entries(m.counters.d1ByStatement ?? {})
      .filter(([, s]) => s.rowsWritten > 0)
      .sort(([, x], [, y]) => y.rowsWritten - x.rowsWritten)
      .map(([label, s]) => [label, { statements: Number((s.statements / n).toFixed(3)), rowsWritten: Number((s.rowsWritten / n).toFixed(3)) }]),
  );
}

function breakdown(before: Measured, after: Measured): string[][] {
  const b = byStatement(before);
  const a = byStatement(after);
  const labels = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort(
    (x, y) => (a[y]?.rowsWritten ?? 0) - (a[x]?.rowsWritten ?? 0) || (b[y]?.rowsWritten ?? 0) - (b[x]?.rowsWritten ?? 0),
  );
  const cell = (v: number | undefined) => (v === undefined ? "–" : v.toFixed(2));
  const rows = labels.map((l) => [l, cell(b[l]?.statements), cell(b[l]?.rowsWritten), cell(a[l]?.statements), cell(a[l]?.rowsWritten)]);
  const total = (x: typeof a) => Object.values(x).reduce((t, s) => t + s.rowsWritten, 0);
  rows.push(["total", "", total(b).toFixed(2), "", total(a).toFixed(2)]);
  return rows;
}
const dollars = (m: Measured) => ROWS.reduce((total, r) => total + (r.price ? per(m, r) * r.price : 0), 0);

async function main() {
  const base = checkout(args.base ?? "v0.1.0");
  const current: Version = { label: "this tree", root: ROOT, cleanup: () => rmSync(path.join(ROOT, ".cost"), { recursive: true, force: true }) };
  const measured: [Version, Record<Kind, Measured>][] = [];
  try {
    for (const v of [base, current]) {
      console.error(`measuring ${v.label} …`);
      measured.push([v, await measure(v)]);
    }
  } finally {
    base.cleanup();
    current.cleanup();
  }
  console.log(`\nbench:cost — per message, ${N} messages per kind over ${CONTACTS} contacts, wrangler dev with metered bindings`);
  for (const kind of KINDS) {
    const [[bv, b], [cv, c]] = measured as [[Version, Record<Kind, Measured>], [Version, Record<Kind, Measured>]];
    if (TELEGRAM_KINDS.has(kind)) {
      // Per message by channel: this tree only.
      const rows = ROWS.map((r) => [r.metric, per(c[kind], r).toFixed(2)]);
      rows.unshift(["messages measured (accepted of sent)", `${c[kind].count} of ${N}`]);
      rows.push(["$ per million messages (list prices)", dollars(c[kind]).toFixed(2)]);
      console.log(`\n${kind}`);
      console.log(table(["metric", cv.label], rows));
      continue;
    }
    const rows = ROWS.map((r) => {
      const before = per(b[kind], r);
      const after = per(c[kind], r);
      return [r.metric, before.toFixed(2), after.toFixed(2), before > 0 ? `${((after / before - 1) * 100).toFixed(0)}%` : "–"];
    });
    rows.push([
      "$ per million messages (list prices)",
      dollars(b[kind]).toFixed(2),
      dollars(c[kind]).toFixed(2),
      `${((dollars(c[kind]) / dollars(b[kind]) - 1) * 100).toFixed(0)}%`,
    ]);
    rows.unshift(["messages measured (accepted of sent)", `${b[kind].count} of ${N}`, `${c[kind].count} of ${N}`, ""]);
    const busy = (m: Measured) => m.counters.d1Ms / Math.max(1, m.count);
    rows.push(["msgs/s one D1 carries (1000 / busy ms)", (1000 / busy(b[kind])).toFixed(0), (1000 / busy(c[kind])).toFixed(0), ""]);
    console.log(`\n${kind}`);
    console.log(table(["metric", bv.label, cv.label, "change"], rows));
    console.log(`\n${kind}: D1 rows written by statement, per message`);
    console.log(table(["statement", `${bv.label} statements`, `${bv.label} rows`, `${cv.label} statements`, `${cv.label} rows`], breakdown(b[kind], c[kind])));
  }
  // Per-message figures for the capacity model (npm run bench:capacity).
  const figures = Object.fromEntries(
    measured.map(([v, kinds]) => [
      v.label,
      Object.fromEntries(
        KINDS.filter((k) => kinds[k]).map((k) => [
          k,
          {
            messages: kinds[k].count,
            ...Object.fromEntries(ROWS.map((r) => [r.key, Number(per(kinds[k], r).toFixed(3))])),
            d1RowsWrittenBy: byStatement(kinds[k]),
          },
        ]),
      ),
    ]),
  );
  writeFileSync(path.join(ROOT, "docs/cost-figures.json"), `${JSON.stringify({ messagesPerKind: N, contacts: CONTACTS, ...figures }, null, 2)}\n`);
}

runScript(main);
