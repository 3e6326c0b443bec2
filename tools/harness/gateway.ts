// Runs the real Worker under `wrangler dev` (local D1, Queues, Durable Objects) for end-to-end
// tests, benchmarks, the chaos run and `npm start`: migrations applied to its state folder (a copy of
// a state migrated once, for a new folder), then waits for /health.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { type GatewayClient, gatewayClient } from "../../src/client.ts";
import { batchAnswer, MAX_BATCH } from "../../src/contracts/messages.ts";
import { waitFor } from "./wait.ts";

export const ROOT = path.resolve(import.meta.dirname, "../..");
const WRANGLER = path.join(ROOT, "node_modules/.bin/wrangler");

export type Gateway = {
  url: string;
  port: number;
  persistDir: string;
  /** Stops the runtime and removes its state (unless the caller gave persistDir). */
  stop(): Promise<void>;
  /** Stops the runtime, keeping its state, until resume(). */
  halt(): Promise<void>;
  resume(): Promise<void>;
  /** Stops and starts the runtime on the same state; `vars` are added to (or replace) the ones it had. */
  restart(vars?: Record<string, string>): Promise<void>;
  /** SIGKILL of the whole process group (wrangler and workerd), keeping the state, until resume(). */
  crash(): Promise<void>;
  logs(): string;
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function run(args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(WRANGLER, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`wrangler ${args.join(" ")} exited ${code}:\n${out}`))));
  });
}

/** Applies the migrations to a state folder. A new folder gets a copy of a state migrated once per
 *  set of migrations (cached in the temp folder, keyed by their content and the wrangler config):
 *  applying them one by one through wrangler costs tens of seconds on a loaded machine, at each start.
 *  A folder that already holds state (a restart on it) gets the pending migrations applied. */
async function migrate(persistDir: string, root: string, config: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const apply = (dir: string) => run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", dir, ...config], env, root);
  const migrations = path.join(root, "migrations");
  if (existsSync(path.join(persistDir, "v3")) || !existsSync(migrations)) return void (await apply(persistDir));
  const hash = createHash("sha256").update(root).update(config.join(" "));
  hash.update(readFileSync(path.resolve(root, config[1] ?? "wrangler.toml")));
  for (const name of readdirSync(migrations)
    .filter((n) => n.endsWith(".sql"))
    .sort()) {
    hash.update(name).update(readFileSync(path.join(migrations, name)));
  }
  const cached = path.join(tmpdir(), `mensageiro-migrated-${hash.digest("hex").slice(0, 16)}`);
  if (!existsSync(cached)) {
    const fresh = mkdtempSync(path.join(tmpdir(), "mensageiro-migrating-"));
    await apply(fresh);
    try {
      // Atomic: a parallel start that got there first keeps its copy, this one is dropped.
      renameSync(fresh, cached);
    } catch {
      rmSync(fresh, { recursive: true, force: true });
    }
  }
  cpSync(cached, persistDir, { recursive: true });
}

export async function startGateway(
  opts: {
    vars?: Record<string, string>;
    persistDir?: string;
    port?: number;
    /** Another checkout to run (a benchmark's earlier release), and a wrangler config inside it. */
    root?: string;
    config?: string;
    /** wrangler's --log-level; "log" shows the Worker's console.log lines in logs() (a bench reads them). */
    logLevel?: "warn" | "log";
    /** The secrets come from .dev.vars (`npm start`): the test values of ADMIN_TOKEN and the others are not set. */
    devVars?: boolean;
    /** wrangler's output appended to this file instead of kept in memory (logs() then reads the file). */
    logFile?: string;
    /** How long the first /health may take (90 s by default). */
    readyTimeoutMs?: number;
    /** Called when the runtime exits by itself (not through stop, halt, crash or restart). */
    onExit?: (code: number | null) => void;
  } = {},
): Promise<Gateway> {
  const persistDir = opts.persistDir ?? mkdtempSync(path.join(tmpdir(), "mensageiro-e2e-"));
  const port = opts.port ?? (await freePort());
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" };
  const root = opts.root ?? ROOT;
  const config = opts.config ? ["--config", opts.config] : [];
  await migrate(persistDir, root, config, env);
  // ALLOW_PRIVATE_URLS: the simulator and receivers listen on 127.0.0.1. WAKE_LANES_ON_START:
  // wrangler dev restarts lose alarms.
  const testSecrets = { ADMIN_TOKEN: "e2e-admin-token", METRICS_TOKEN: "e2e-metrics-token", WEB_CHAT_SECRET: "e2e-web-chat-secret-0123456789abcdef" };
  let vars: Record<string, string> = {
    ...(opts.devVars ? {} : testSecrets),
    WAKE_LANES_ON_START: "true",
    ALLOW_PRIVATE_URLS: "true",
    ...opts.vars,
  };
  let child: ChildProcess | undefined;
  let logs = "";
  const logFd = opts.logFile ? openSync(opts.logFile, "a") : undefined;
  const readLogs = () => (opts.logFile ? readFileSync(opts.logFile, "utf8") : logs);
  const tail = (lines = 30) => readLogs().trimEnd().split("\n").slice(-lines).join("\n");
  // Set while this harness itself stops the runtime: any other exit is reported to onExit.
  let stopping = false;

  const start = async (readyTimeoutMs = opts.readyTimeoutMs ?? 90_000) => {
    const inspector = await freePort();
    const args = [
      "dev",
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--persist-to",
      persistDir,
      "--inspector-port",
      String(inspector),
      "--show-interactive-dev-session=false",
      "--log-level",
      opts.logLevel ?? "warn",
    ];
    for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
    const stdio = logFd === undefined ? "pipe" : logFd;
    const c = spawn(WRANGLER, [...args, ...config], { cwd: root, env, stdio: ["ignore", stdio, stdio], detached: true });
    child = c;
    stopping = false;
    c.stdout?.on("data", (d) => (logs += d));
    c.stderr?.on("data", (d) => (logs += d));
    c.on("exit", (code) => {
      if (!stopping && child === c) opts.onExit?.(code);
    });
    const ready = await waitFor(
      "wrangler dev to answer /health",
      async () => {
        if (c.exitCode !== null) return "exited";
        // Not listening yet: the probe throws and is tried again.
        return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200 ? "up" : undefined;
      },
      { timeoutMs: readyTimeoutMs, intervalMs: 250 },
    ).catch((err: unknown) => {
      // Nothing left running behind a failed start.
      if (c.pid !== undefined && c.exitCode === null) process.kill(-c.pid, "SIGKILL");
      throw new Error(`wrangler dev did not become healthy (${err instanceof Error ? err.message : String(err)}):\n${tail()}`);
    });
    if (ready === "exited") throw new Error(`wrangler dev exited ${c.exitCode}:\n${tail()}`);
  };

  const stop = async () => {
    const c = child;
    stopping = true;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    // The whole process group: wrangler and its workerd.
    process.kill(-c.pid, "SIGTERM");
    const timer = setTimeout(() => c.pid && process.kill(-c.pid, "SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };

  const crash = async () => {
    const c = child;
    stopping = true;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    process.kill(-c.pid, "SIGKILL");
    await exited;
  };

  await start();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    persistDir,
    logs: readLogs,
    halt: stop,
    crash,
    resume: () => start(),
    restart: async (more) => {
      await stop();
      vars = { ...vars, ...more };
      await start();
    },
    stop: async () => {
      await stop();
      if (!opts.persistDir) rmSync(persistDir, { recursive: true, force: true });
    },
  };
}

/** A tenant with an instance pointing at the simulator, through the public API, and the same
 *  instance registered at the simulator (with Evolution's webhooks back to the gateway if asked). */
export async function provisionTenant(
  gatewayUrl: string,
  simulatorUrl: string,
  opts: {
    adminToken?: string;
    instance?: string;
    ratePerMinute?: number;
    /** null: leave the field out (releases before API rate limits refuse it). */
    rateLimitPerMinute?: number | null;
    simApiKey?: string;
    webhooks?: "single" | "byEvents";
    /** The instance's `pacing` (PUT /v1/instances), e.g. `{ invalidNumberSpike: null }`. */
    pacing?: Record<string, unknown>;
  } = {},
) {
  const admin = gatewayClient(gatewayUrl, { apiKey: opts.adminToken ?? "e2e-admin-token" });
  const tenantRes = await admin.v1.admin.tenants.$post({
    // Benchmarks and load runs measure the pipeline, not the API rate limit: lift it unless asked.
    json: {
      name: `tenant-${Date.now()}`,
      ...(opts.rateLimitPerMinute === null ? {} : { rateLimitPerMinute: opts.rateLimitPerMinute ?? 1_000_000 }),
    },
  });
  if (tenantRes.status !== 201) throw new Error(`tenant: ${tenantRes.status} ${await tenantRes.text()}`);
  const tenant = await tenantRes.json();
  const instance = opts.instance ?? `inst-${Date.now().toString(36)}`;
  const simKey = opts.simApiKey ?? `sim-${Math.random().toString(36).slice(2)}`;
  const put = await gatewayClient(gatewayUrl, { apiKey: tenant.apiKey }).v1.instances[":name"].$put({
    param: { name: instance },
    json: {
      evolutionUrl: simulatorUrl,
      evolutionApiKey: simKey,
      ratePerMinute: opts.ratePerMinute ?? 6000,
      ...(opts.pacing ? { pacing: opts.pacing } : {}),
    },
  });
  if (!put.ok) throw new Error(`instance: ${put.status} ${await put.text()}`);
  const registered = await put.json();
  const atSimulator = { apikey: simKey, ...(opts.webhooks ? { webhookUrl: registered.webhookUrl, byEvents: opts.webhooks === "byEvents" } : {}) };
  const sim = await fetch(`${simulatorUrl}/_sim/instances/${instance}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(atSimulator),
  });
  if (!sim.ok) throw new Error(`simulator instance: ${sim.status} ${await sim.text()}`);
  return { tenantId: tenant.tenant.id, apiKey: tenant.apiKey, instance, simKey, webhookUrl: registered.webhookUrl };
}

type SendRequest = Parameters<GatewayClient["v1"]["messages"]["batch"]["$post"]>[0]["json"]["messages"][number];

/** Posts messages through POST /v1/messages/batch, 500 a request, in order; any refused item fails
 *  the call (a benchmark whose messages were not all taken measures nothing). Returns their ids. */
export async function sendInBatches(api: GatewayClient, messages: SendRequest[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < messages.length; i += MAX_BATCH) {
    const res = await api.v1.messages.batch.$post({ json: { messages: messages.slice(i, i + MAX_BATCH) } });
    if (res.status !== 200) throw new Error(`batch: ${res.status} ${await res.text()}`);
    // The answer comes through the idempotency wrapper (untyped): parsed with the route's own schema.
    for (const r of batchAnswer.parse(await res.json()).results) {
      if ("error" in r) throw new Error(`batch item ${i + r.index}: ${r.error.code} ${r.error.message}`);
      ids.push(r.id);
    }
  }
  return ids;
}
