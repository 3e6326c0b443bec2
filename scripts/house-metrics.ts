// Measures how the code is laid out for a maintainer: who touches each D1 table, raw SQL outside
// src/db/, outbox insert sites, imports against the floors and import cycles, the longest files,
// hand-written request parses and hand-written test pollers. Text scans, no build: the figures are
// for comparing one commit with another, measured the same way.
//   npm run house:metrics [-- --json]
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const SKIP = new Set(["node_modules", ".git", ".wrangler", "migrations", "dist", "coverage"]);

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name) || name.startsWith(".")) continue;
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (/\.(ts|js|mjs)$/.test(name) && !name.endsWith(".d.ts")) out.push(path.relative(ROOT, full));
  }
  return out;
}

const files = walk(ROOT).sort();
const text = new Map(files.map((f) => [f, readFileSync(path.join(ROOT, f), "utf8")]));
const srcFiles = files.filter((f) => f.startsWith("src/"));
const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;
const sum = (fs: string[], re: RegExp) => fs.reduce((n, f) => n + count(text.get(f) ?? "", re), 0);

// --- D1 tables: SQL name in a statement, or the drizzle table object from db/schema.
const schema = text.get("src/db/schema.ts") ?? "";
const tables = [...schema.matchAll(/export const (\w+) = sqliteTable\(\s*"(\w+)"/g)].map((m) => ({ ident: m[1] as string, name: m[2] as string }));

function touchesTable(file: string, t: { ident: string; name: string }): boolean {
  if (file === "src/db/schema.ts") return false;
  const s = text.get(file) ?? "";
  if (new RegExp(`\\b(FROM|INTO|UPDATE|JOIN|TABLE)\\s+["\`]?${t.name}\\b`, "i").test(s)) return true;
  // Named import of the table object, or `schema.<table>` through a namespace import.
  const named = [...s.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*["'][^"']*db\/schema(?:\.ts)?["']/g)];
  if (named.some((m) => (m[1] as string).split(",").some((n) => n.trim().split(/\s+as\s+/)[0] === t.ident))) return true;
  return new RegExp(`\\bschema\\.${t.ident}\\b`).test(s);
}

const tableRows = tables.map((t) => ({ table: t.name, files: srcFiles.filter((f) => touchesTable(f, t)) })).sort((a, b) => b.files.length - a.files.length);
const filesWithD1 = srcFiles.filter((f) => tables.some((t) => touchesTable(f, t)));

// --- Raw SQL outside src/db/.
const outsideDb = srcFiles.filter((f) => !f.startsWith("src/db/"));
const rawSql = sum(outsideDb, /\bsql(?:`|\.raw\()/g);
const rawSqlInRoutes = sum(
  outsideDb.filter((f) => f.startsWith("src/routes/")),
  /\bsql(?:`|\.raw\()/g,
);
const allCasts = sum(outsideDb, /\.(?:all|get)<[^>(]/g);

// --- Outbox event inserts: each statement that writes outbox_events.
const outboxInsert = /INSERT\s+(?:OR\s+\w+\s+)?INTO\s+outbox_events\b|\.insert\(\s*(?:schema\.)?outboxEvents\s*\)/gi;
const outboxSites = srcFiles.map((f) => ({ f, n: count(text.get(f) ?? "", outboxInsert) })).filter((x) => x.n > 0);

// --- Import graph (relative imports of local files; type imports count: a type has a floor too).
const importRe = /(?:^|[\n;])\s*(?:import|export)\s[^'"`;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;
const graph = new Map<string, string[]>();
for (const f of files) {
  const deps = new Set<string>();
  for (const m of (text.get(f) ?? "").matchAll(importRe)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec?.startsWith(".")) continue;
    let target = path.normalize(path.join(path.dirname(f), spec));
    if (!text.has(target)) target = [".ts", ".js", "/index.ts"].map((e) => target.replace(/\.js$/, "") + e).find((t) => text.has(t)) ?? target;
    if (text.has(target)) deps.add(target);
  }
  graph.set(f, [...deps]);
}

// Floors of src/ (imports run down): routes → flows → domain → base.
const FLOORS: Record<string, number> = {
  "index.ts": 4,
  routes: 3,
  openapi: 3,
  lanes: 2,
  webhooks: 2,
  automation: 2,
  channels: 2,
  queue: 2,
  sweep: 2,
  stream: 2,
  callbacks: 2,
  messages: 1,
  outbox: 1,
  providers: 1,
  evolution: 1,
  limits: 1,
  auth: 1,
  contracts: 0,
  db: 0,
  http: 0,
  signing: 0,
  observability: 0,
  "app-env.ts": 0,
  "config.ts": 0,
  "errors.ts": 0,
  "ids.ts": 0,
  "redact.ts": 0,
  "time.ts": 0,
  "ttl-cache.ts": 0,
};
const srcRoom = (f: string) => f.split("/")[1] as string;
const floorOf = (f: string) => FLOORS[srcRoom(f)];
const upImports: string[] = [];
const unplaced = new Set<string>();
for (const f of srcFiles) {
  for (const d of graph.get(f) ?? []) {
    if (!d.startsWith("src/")) continue;
    const a = floorOf(f);
    const b = floorOf(d);
    if (a === undefined) unplaced.add(srcRoom(f));
    if (b === undefined) unplaced.add(srcRoom(d));
    if (a !== undefined && b !== undefined && b > a) upImports.push(`${f} → ${d}`);
  }
}

// Strongly connected components (Tarjan) of a graph: each with more than one node is a cycle.
function cycles(nodes: string[], edges: (n: string) => string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return out;
}

const inSet = (set: string[]) => new Set(set);
const srcSet = inSet(srcFiles);
const fileCyclesSrc = cycles(srcFiles, (n) => (graph.get(n) ?? []).filter((d) => srcSet.has(d)));
const fileCyclesRepo = cycles(files, (n) => graph.get(n) ?? []);

// Rooms: src/<folder> inside src, top-level folders for the whole repository.
function roomGraph(fs: string[], room: (f: string) => string) {
  const edges = new Map<string, Set<string>>();
  for (const f of fs) {
    for (const d of graph.get(f) ?? []) {
      if (!fs.includes(d) || room(f) === room(d)) continue;
      const set = edges.get(room(f)) ?? new Set<string>();
      set.add(room(d));
      edges.set(room(f), set);
    }
  }
  return cycles([...new Set(fs.map(room))], (r) => [...(edges.get(r) ?? [])]);
}
const roomCyclesSrc = roomGraph(
  srcFiles.filter((f) => f.split("/").length > 2),
  (f) => f.split("/")[1] as string,
);
const topRoom = (f: string) => {
  const parts = f.split("/");
  return parts.length === 1 ? "(root)" : parts[0] === "test" ? `test/${parts[1]}` : (parts[0] as string);
};
const roomCyclesRepo = roomGraph(files, topRoom);
const isTestFile = (f: string) => f.startsWith("test/") || /\.test\.ts$/.test(f);
const productionImportsTests = srcFiles.flatMap((f) => (graph.get(f) ?? []).filter(isTestFile).map((d) => `${f} → ${d}`));
const toolsImportTests = files
  .filter((f) => !isTestFile(f) && !f.startsWith("src/"))
  .flatMap((f) => (graph.get(f) ?? []).filter(isTestFile).map((d) => `${f} → ${d}`));

// --- Longest files.
const lines = (f: string) => (text.get(f) ?? "").split("\n").length;
const longest = (fs: string[]) => [...fs].sort((a, b) => lines(b) - lines(a)).slice(0, 3);
const srcLines = srcFiles.reduce((n, f) => n + lines(f), 0);

// --- Request parsing in routes.
const routeFiles = srcFiles.filter((f) => f.startsWith("src/routes/") || f === "src/index.ts");
const handParses = sum(routeFiles, /\b(?:parseBody|parseWith|readJson)\(/g);
const validCalls = sum(routeFiles, /\bc\.req\.valid\(/g);

// --- Test pollers: functions that loop over a sleep, named like a wait, in tests and tools.
const testish = files.filter((f) => !f.startsWith("src/") && !f.startsWith("public/"));
const pollerDefs: { file: string; name: string }[] = [];
for (const f of testish) {
  const s = text.get(f) ?? "";
  for (const m of s.matchAll(/(?:function\s+(\w+)|const\s+(\w+)\s*=\s*(?:async\s*)?(?:<[^>]*>)?\()/g)) {
    const name = (m[1] ?? m[2]) as string;
    if (!/wait|until|poll|eventually/i.test(name)) continue;
    const body = s.slice(m.index, m.index + 1200).split(/\n(?:export |async function |function |const |\})/)[0] as string;
    if (/\b(while|for)\s*\(/.test(body) && /setTimeout|sleep\(/.test(body)) pollerDefs.push({ file: f, name });
  }
}
// Uses of a poller: calls of its name in its own file and in the files that import that file.
const pollerUses = pollerDefs.reduce((n, def) => {
  const users = testish.filter((f) => f === def.file || (graph.get(f) ?? []).includes(def.file));
  return n + sum(users, new RegExp(`(?<![.\\w])${def.name}\\(`, "g")) - 1;
}, 0);
const idiomUses = sum(testish, /\bvi\.waitFor\(|\bexpect\.poll\(/g);
// Waits through the shared wrappers built on vi.waitFor (where they exist).
const WAIT_WRAPPERS: Record<string, string[]> = {
  "test/support/wait.ts": ["eventually", "waitUntil"],
  "test/worker/helpers.ts": ["eventually", "waitForStatus"],
};
const wrappedUses = Object.entries(WAIT_WRAPPERS)
  .filter(([file]) => text.has(file) && /vi\.waitFor|support\/wait/.test(text.get(file) ?? ""))
  .reduce((n, [file, names]) => {
    const users = testish.filter((f) => f !== file && (graph.get(f) ?? []).includes(file));
    return n + sum(users, new RegExp(`(?<![.\\w])(?:${names.join("|")})\\(`, "g"));
  }, 0);

// --- Output.
const report = {
  srcFiles: srcFiles.length,
  srcLines,
  filesWithD1: filesWithD1.length,
  tables: tableRows.map((r) => ({ table: r.table, files: r.files.length })),
  rawSqlOutsideDb: rawSql,
  rawSqlInRoutes,
  allGetCastsOutsideDb: allCasts,
  outboxInsertSites: outboxSites.reduce((n, x) => n + x.n, 0),
  outboxInsertFiles: outboxSites.map((x) => `${x.f} (${x.n})`),
  upImports,
  unplacedRooms: [...unplaced],
  fileCyclesSrc,
  roomCyclesSrc,
  fileCyclesRepo,
  roomCyclesRepo,
  productionImportsTests,
  toolsImportTests,
  longestSrc: longest(srcFiles).map((f) => `${f} (${lines(f)})`),
  longestRepo: longest(files).map((f) => `${f} (${lines(f)})`),
  handParses,
  validCalls,
  pollerDefs: pollerDefs.map((p) => `${p.file}: ${p.name}`),
  pollerUses,
  idiomUses,
  wrappedUses,
};

if (process.argv.includes("--json")) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const row = (k: string, v: string | number) => console.log(`${k.padEnd(44)} ${v}`);
  const list = (items: string[]) => {
    for (const i of items) console.log(`${"".padEnd(46)}${i}`);
  };
  row("src/ files, lines", `${report.srcFiles}, ${report.srcLines}`);
  row("src/ files with D1 statements", report.filesWithD1);
  for (const t of report.tables) row(`  files touching ${t.table}`, t.files);
  row("raw sql fragments outside src/db/", `${rawSql} (routes: ${rawSqlInRoutes})`);
  row(".all<T>/.get<T> casts outside src/db/", allCasts);
  row("outbox event insert sites", report.outboxInsertSites);
  list(report.outboxInsertFiles);
  row("src/ imports up the floors", upImports.length);
  list(upImports);
  if (unplaced.size) row("  (rooms without a floor)", [...unplaced].join(", "));
  row("src/ import cycles (files)", fileCyclesSrc.length);
  list(fileCyclesSrc.map((c) => c.join(" ↔ ")));
  row("src/ import cycles (folders)", roomCyclesSrc.length);
  list(roomCyclesSrc.map((c) => c.join(" ↔ ")));
  row("repo import cycles (files)", fileCyclesRepo.length);
  list(fileCyclesRepo.filter((c) => !c.every((f) => f.startsWith("src/"))).map((c) => c.join(" ↔ ")));
  row("repo import cycles (top folders)", roomCyclesRepo.length);
  list(roomCyclesRepo.map((c) => c.join(" ↔ ")));
  row("src/ files importing test files", productionImportsTests.length);
  list(productionImportsTests);
  row("tools (non-test, non-src) importing tests", toolsImportTests.length);
  row("longest src/ files", "");
  list(report.longestSrc);
  row("longest files (repo)", "");
  list(report.longestRepo);
  row("hand-written request parses (routes)", handParses);
  row("c.req.valid() calls", validCalls);
  row("hand-written test pollers (defs, uses)", `${pollerDefs.length}, ${pollerUses}`);
  list(report.pollerDefs);
  row("vi.waitFor / expect.poll uses (direct, wrapped)", `${idiomUses}, ${wrappedUses}`);
}
