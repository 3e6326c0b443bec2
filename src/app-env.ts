// Hono's typing for this Worker: bindings plus what middleware puts in c.var.
import type { Db } from "./db/client.ts";

export type Tenant = { id: string; name: string; maxAttempts: number; rateLimitPerMinute?: number | null };

export type AppEnv = {
  Bindings: Env;
  Variables: {
    db: Db;
    tenant: Tenant;
    apiKeyId: string;
    requestId: string;
    /** Set by the compatibility routes: their error answers carry `success: false` (src/errors.ts). */
    compatErrors?: boolean;
  };
};
