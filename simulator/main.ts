// `npm run simulator`: the Evolution simulator on SIM_PORT (default 8788), configured from env.
//   SIM_LATENCY_MS, SIM_FAILURE_RATE, SIM_NOT_ON_WHATSAPP=5511900000000,5511900000001
//   SIM_INSTANCES=name:apikey[:webhookUrl],…   SIM_GLOBAL_APIKEY=…
import { z } from "zod";
import type { InstanceSeed } from "./config.ts";
import { startSimulator } from "./server.ts";

const env = z
  .object({
    SIM_PORT: z.coerce.number().int().min(0).max(65535).default(8788),
    SIM_LATENCY_MS: z.coerce.number().int().min(0).optional(),
    SIM_FAILURE_RATE: z.coerce.number().min(0).max(1).optional(),
    SIM_NOT_ON_WHATSAPP: z.string().optional(),
    SIM_INSTANCES: z.string().optional(),
    SIM_GLOBAL_APIKEY: z.string().min(1).optional(),
  })
  .parse(process.env);

const list = (value: string | undefined) =>
  (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

// `name:apikey:http://host/path` — the URL may itself contain colons.
function instanceSeed(entry: string): InstanceSeed {
  const [name, apikey, ...url] = entry.split(":");
  if (!name || !apikey) throw new Error(`SIM_INSTANCES entry "${entry}" is not name:apikey[:webhookUrl]`);
  return url.length > 0 ? { name, apikey, webhookUrl: url.join(":") } : { name, apikey };
}

const simulator = await startSimulator({
  port: env.SIM_PORT,
  log: true,
  ...(env.SIM_LATENCY_MS !== undefined ? { latencyMs: env.SIM_LATENCY_MS } : {}),
  ...(env.SIM_FAILURE_RATE !== undefined ? { failureRate: env.SIM_FAILURE_RATE } : {}),
  ...(env.SIM_GLOBAL_APIKEY ? { globalApiKey: env.SIM_GLOBAL_APIKEY } : {}),
  notOnWhatsApp: list(env.SIM_NOT_ON_WHATSAPP),
  instances: list(env.SIM_INSTANCES).map(instanceSeed),
});
console.log(`Evolution simulator on ${simulator.url} (instances: ${[...simulator.state.instances.keys()].join(", ") || "none; PUT /_sim/instances/:name"})`);

const shutdown = () => void simulator.close().then(() => process.exit(0));
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
