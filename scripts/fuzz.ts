// `npm run fuzz`: Schemathesis holds the running Worker to its own OpenAPI document. Starts the
// Evolution simulator and the gateway under `wrangler dev` on free loopback ports, makes a tenant
// and an API key, and runs Schemathesis (test/fuzz/schemathesis.toml, test/fuzz/hooks.py) bounded
// in examples and time. Exit code: Schemathesis's (non-zero on any 5xx or undocumented answer).
// SCHEMATHESIS names the binary (default: the venv .ci/run makes under ~/.cache).
import { spawn } from "node:child_process";
import { homedir } from "node:os";
import path from "node:path";
import { z } from "zod";
import { startEchoBot } from "../simulator/echo-bot.ts";
import { startSimulator } from "../simulator/server.ts";
import { ROOT, startGateway } from "../tools/harness/gateway.ts";

const BIN = process.env.SCHEMATHESIS ?? path.join(homedir(), ".cache/mensageiro-schemathesis/bin/schemathesis");
// The whole run stays under 3 minutes: Schemathesis's own budget, then a hard stop.
const FUZZ_SECONDS = Number(process.env.FUZZ_SECONDS ?? 100);
const ADMIN_TOKEN = "fuzz-admin-token";
const METRICS_TOKEN = "fuzz-metrics-token";

async function main(): Promise<number> {
  const started = Date.now();
  const simulator = await startSimulator({ port: 0 });
  const bot = await startEchoBot({ port: 0 });
  const gateway = await startGateway({ vars: { ADMIN_TOKEN, METRICS_TOKEN } }).catch(async (err) => {
    await simulator.close();
    await bot.close();
    throw err;
  });
  try {
    const created = await fetch(`${gateway.url}/v1/admin/tenants`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "fuzz" }),
    });
    if (created.status !== 201) throw new Error(`tenant: ${created.status} ${await created.text()}`);
    const { apiKey } = (await created.json()) as { apiKey: string };
    const call = async (method: string, route: string, body: unknown) => {
      const res = await fetch(`${gateway.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
      return (await res.json()) as Record<string, string>;
    };
    // Instance "fuzz" at the simulator (which sends its webhooks back), and one scheduled message.
    const instance = await call("PUT", "/v1/instances/fuzz", { evolutionUrl: simulator.url, evolutionApiKey: "fuzz-evolution-key", ratePerMinute: 6000 });
    await fetch(`${simulator.url}/_sim/instances/fuzz`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apikey: "fuzz-evolution-key", webhookUrl: instance.webhookUrl }),
    });
    const message = await call("POST", "/v1/messages", {
      instance: "fuzz",
      to: "5511999990000",
      text: "fuzz",
      sendAt: new Date(Date.now() + 86_400_000).toISOString(),
    });
    const webhookToken = instance.webhookUrl?.split("/").pop() ?? "";
    // An automation on "fuzz" (the echo bot) and one message for it, so the agent queue routes
    // (POST /api/messages, its status) reach the store and the lane instead of stopping at 422/404.
    await call("PUT", "/v1/instances/fuzz/automation", { url: `${bot.url}/bot/fuzz` });
    const job = await call("POST", "/api/messages", { message: "fuzz", channel: "whatsapp", conversationId: "5511999990001" });
    const inboundId = z.object({ data: z.object({ messageId: z.string() }) }).parse(job).data.messageId;
    const args = [
      "--config-file",
      path.join(ROOT, "test/fuzz/schemathesis.toml"),
      "run",
      `${gateway.url}/openapi.json`,
      "--url",
      gateway.url,
      "--phases",
      "examples,coverage,fuzzing",
      "--max-time",
      String(FUZZ_SECONDS),
      "--workers",
      "1",
      "--seed",
      process.env.FUZZ_SEED ?? "20261122",
      "--no-color",
    ];
    const code = await new Promise<number>((resolve) => {
      const child = spawn(BIN, args, {
        cwd: ROOT,
        stdio: "inherit",
        env: {
          ...process.env,
          FUZZ_API_KEY: apiKey,
          FUZZ_ADMIN_TOKEN: ADMIN_TOKEN,
          FUZZ_METRICS_TOKEN: METRICS_TOKEN,
          FUZZ_LOOPBACK_URL: simulator.url,
          FUZZ_MESSAGE_ID: message.id ?? "",
          FUZZ_INBOUND_ID: inboundId,
          FUZZ_WEBHOOK_TOKEN: webhookToken,
          SCHEMATHESIS_HOOKS: "hooks",
          PYTHONPATH: path.join(ROOT, "test/fuzz"),
        },
      });
      const stop = setTimeout(() => child.kill("SIGTERM"), (FUZZ_SECONDS + 45) * 1000);
      child.on("error", (err) => {
        console.error(`could not run ${BIN}: ${err.message} (install it with .ci/run, or set SCHEMATHESIS)`);
        resolve(127);
      });
      child.on("exit", (status, signal) => {
        clearTimeout(stop);
        resolve(status ?? (signal ? 124 : 1));
      });
    });
    if (code !== 0)
      console.error(
        gateway
          .logs()
          .split("\n")
          .filter((l) => /error|Error/.test(l))
          .slice(-30)
          .join("\n"),
      );
    console.log(`fuzz: Schemathesis exited ${code} after ${Math.round((Date.now() - started) / 1000)} s`);
    return code;
  } finally {
    await gateway.stop();
    await simulator.close();
    await bot.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
