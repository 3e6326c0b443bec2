// An instance's automation row as the lane and the routes read it.
import { sql } from "drizzle-orm";
import type { Db } from "../db/client.ts";

export type AutomationConfig = {
  instanceId: string;
  tenantId: string;
  url: string;
  secret: string;
  enabled: boolean;
  timeoutMs: number;
  contextMessages: number;
  debounceMs: number;
  includeGroups: boolean;
  maxAttempts: number;
  state: "active" | "paused";
  failures: number;
  pausedAt: number | null;
  probeAt: number | null;
};

type Row = {
  instance_id: string;
  tenant_id: string;
  url: string;
  secret: string;
  enabled: number;
  timeout_ms: number;
  context_messages: number;
  debounce_ms: number;
  include_groups: number;
  max_attempts: number;
  state: string;
  failures: number;
  paused_at: number | null;
  probe_at: number | null;
};

export async function loadAutomation(db: Db, instanceId: string): Promise<AutomationConfig | undefined> {
  const [r] = await db.all<Row>(sql`SELECT instance_id, tenant_id, url, secret, enabled, timeout_ms, context_messages, debounce_ms, include_groups,
      max_attempts, state, failures, paused_at, probe_at FROM automations WHERE instance_id = ${instanceId}`);
  if (!r) return undefined;
  return {
    instanceId: r.instance_id,
    tenantId: r.tenant_id,
    url: r.url,
    secret: r.secret,
    enabled: r.enabled === 1,
    timeoutMs: r.timeout_ms,
    contextMessages: r.context_messages,
    debounceMs: r.debounce_ms,
    includeGroups: r.include_groups === 1,
    maxAttempts: r.max_attempts,
    state: r.state === "paused" ? "paused" : "active",
    failures: r.failures,
    pausedAt: r.paused_at,
    probeAt: r.probe_at,
  };
}

/** The lane of one contact of one instance (AutomationLane Durable Object name). */
export const automationLaneKey = (tenantId: string, instanceId: string, contact: string) => `${tenantId}:${instanceId}:${contact}`;

export const automationLane = (env: Env, laneKey: string) => env.AUTOMATION.get(env.AUTOMATION.idFromName(laneKey));
