// Environment parsed once per isolate with zod: a bad var fails loudly, not as NaN later.
import { z } from "zod";

const configSchema = z.object({
  PUBLIC_URL: z.string().default(""),
  RETENTION_DAYS: z.coerce.number().int().positive().default(30),
  STUCK_QUEUED_MINUTES: z.coerce.number().positive().default(5),
  RETRY_BASE_MS: z.coerce.number().int().nonnegative().default(2000),
  EVOLUTION_TIMEOUT_MS: z.coerce.number().int().positive().default(30000),
  // Local runtime only: wake lanes with pending work on the first event after a start (sweep/wake.ts).
  WAKE_LANES_ON_START: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true"),
  // API requests per minute a tenant may make when its own rateLimitPerMinute is not set.
  DEFAULT_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(6000),
  // Messages per minute a tenant may hand in (a batch counts each item), whatever its request count.
  MESSAGE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(6000),
  AUTOMATION_RETRY_BASE_MS: z.coerce.number().int().nonnegative().default(1000),
  AUTOMATION_PROBE_MS: z.coerce.number().int().positive().default(30000),
});

export type Config = z.infer<typeof configSchema>;

let cached: { source: Env; config: Config } | undefined;

export function config(env: Env): Config {
  if (cached?.source === env) return cached.config;
  const parsed = configSchema.parse(env);
  cached = { source: env, config: parsed };
  return parsed;
}
