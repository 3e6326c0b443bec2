// npm run bench:capacity — how many messages one D1 database carries, from the per-message figures
// that `npm run bench:cost` measured (docs/cost-figures.json), by simulating D1 as what it is: one
// writer that runs one query at a time. Each message brings its round trips (accept, claim, sent,
// receipts…) spread over its life; each round trip holds the database for a fixed overhead plus a
// time per statement. The simulation raises the offered rate until queries wait too long, and
// prints utilisation and waiting time per rate: where one database saturates.
//
//   npm run bench:capacity
//   npm run bench:capacity -- --overhead-ms 0.5 --statement-ms 0.25 --kind "outbound → read"
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../tools/harness/gateway.ts";
import { percentile, runScript, table } from "../tools/harness/load.ts";

const { values: args } = parseArgs({
  options: {
    figures: { type: "string", default: path.join(ROOT, "docs/cost-figures.json") },
    kind: { type: "string", default: "outbound → read" },
    // Production D1 time per round trip and per statement. The reference figure for D1 is about
    // 1 ms per query (1,000 queries/s); local SQLite measures far less, so both are parameters.
    "overhead-ms": { type: "string", default: "0.5" },
    "statement-ms": { type: "string", default: "0.25" },
    // Over how long one message's round trips spread (accept → read takes seconds).
    "life-s": { type: "string", default: "5" },
    seconds: { type: "string", default: "60" },
    seed: { type: "string", default: "7" },
  },
});

type Figures = Record<string, number | Record<string, { d1RoundTrips: number; d1Statements: number; d1RowsWritten: number; d1Ms: number }>>;

// A small deterministic generator (mulberry32), so a run can be repeated exactly.
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Simulates `seconds` of messages arriving at `rate` per second (Poisson), each issuing
 *  `roundTrips` queries at random points of its life, served one at a time. */
function simulate(
  rate: number,
  roundTrips: number,
  statementsPerTrip: number,
  opts: { overheadMs: number; statementMs: number; lifeMs: number; seconds: number; seed: number },
) {
  const rnd = random(opts.seed);
  const queries: number[] = [];
  let t = 0;
  const end = opts.seconds * 1000;
  while (t < end) {
    t += (-Math.log(1 - rnd()) / rate) * 1000;
    // Fractional round trips: the remainder is a chance of one more.
    const n = Math.floor(roundTrips) + (rnd() < roundTrips % 1 ? 1 : 0);
    for (let i = 0; i < n; i++) queries.push(t + rnd() * opts.lifeMs);
  }
  queries.sort((a, b) => a - b);
  const service = opts.overheadMs + statementsPerTrip * opts.statementMs;
  let free = 0;
  let busy = 0;
  const waits: number[] = [];
  for (const at of queries) {
    const start = Math.max(at, free);
    waits.push(start - at);
    free = start + service;
    busy += service;
  }
  waits.sort((a, b) => a - b);
  const span = Math.max(free, end + opts.lifeMs);
  return { utilisation: busy / span, p50: percentile(waits, 50), p99: percentile(waits, 99), queries: queries.length, serviceMs: service };
}

async function main() {
  const figures = JSON.parse(readFileSync(args.figures as string, "utf8")) as Figures;
  const opts = {
    overheadMs: Number(args["overhead-ms"]),
    statementMs: Number(args["statement-ms"]),
    lifeMs: Number(args["life-s"]) * 1000,
    seconds: Number(args.seconds),
    seed: Number(args.seed),
  };
  for (const [version, kinds] of Object.entries(figures)) {
    if (typeof kinds !== "object") continue;
    const f = kinds[args.kind as string];
    if (!f) throw new Error(`no figures for kind "${args.kind}" in ${args.figures}`);
    const perTrip = f.d1Statements / f.d1RoundTrips;
    const busyPerMessage = f.d1RoundTrips * opts.overheadMs + f.d1Statements * opts.statementMs;
    const ceiling = 1000 / busyPerMessage;
    const rows: (string | number)[][] = [];
    for (const share of [0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.1]) {
      const rate = Math.max(1, Math.round(ceiling * share));
      const r = simulate(rate, f.d1RoundTrips, perTrip, opts);
      rows.push([rate, (rate * 86_400).toLocaleString("en-US"), `${(r.utilisation * 100).toFixed(0)}%`, r.p50.toFixed(1), r.p99.toFixed(1)]);
    }
    console.log(
      `\n${version}, ${args.kind}: ${f.d1RoundTrips.toFixed(2)} round trips and ${f.d1Statements.toFixed(2)} statements per message ` +
        `→ ${busyPerMessage.toFixed(2)} ms of D1 per message at ${opts.overheadMs} ms/round trip + ${opts.statementMs} ms/statement; ceiling ${ceiling.toFixed(0)} msg/s`,
    );
    console.log(table(["msg/s offered", "msgs/day", "D1 busy", "query wait p50 ms", "query wait p99 ms"], rows));
  }
}

runScript(main);
