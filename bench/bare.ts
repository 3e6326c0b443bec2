// The baseline worker (bench/bare-worker.ts) under wrangler dev, for side-by-side ratios.
import { spawn } from "node:child_process";
import path from "node:path";
import { freePort, ROOT } from "../tools/harness/gateway.ts";

export async function startBare(): Promise<{ url: string; stop(): void }> {
  const port = await freePort();
  const inspector = await freePort();
  const child = spawn(
    path.join(ROOT, "node_modules/.bin/wrangler"),
    [
      "dev",
      "--config",
      "bench/bare.wrangler.toml",
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--inspector-port",
      String(inspector),
      "--show-interactive-dev-session=false",
      "--log-level",
      "warn",
    ],
    { cwd: ROOT, stdio: "ignore", detached: true, env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 240; i++) {
    try {
      await fetch(`${url}/v1/messages`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
      return { url, stop: () => child.pid && process.kill(-child.pid, "SIGTERM") };
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error("bare worker did not start");
}
