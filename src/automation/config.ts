// An instance's automation row as the lane and the routes read it.
import type { Db } from "../db/client.ts";
import { automations } from "../db/queries/index.ts";

export type AutomationConfig = {
  instanceId: string;
  tenantId: string;
  url: string;
  secret: string;
  /** The secret before the last rotation, still signing until previousSecretUntil. */
  previousSecret: string | null;
  previousSecretUntil: number | null;
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
  probeStartedAt: number | null;
};

export type AutomationRow = automations.ConfigRow;

/** The automation row's read, for the caller's own batch (automationOf reads its row). */
export const automationStatement = automations.configStatement;

export async function loadAutomation(db: Db, instanceId: string): Promise<AutomationConfig | undefined> {
  return automationOf(await automations.config(db, instanceId));
}

/** The row as read by automationStatement (in the caller's own batch). */
export function automationOf(row: unknown): AutomationConfig | undefined {
  if (row === undefined) return undefined;
  const r = automations.configRow.parse(row);
  return {
    instanceId: r.instance_id,
    tenantId: r.tenant_id,
    url: r.url,
    secret: r.secret,
    previousSecret: r.secret_previous,
    previousSecretUntil: r.secret_previous_until,
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
    probeStartedAt: r.probe_started_at,
  };
}

/** The breaker as an operator reads it: closed (calls flow), paused (waiting for the next probe),
 *  probing (one call is testing the handler; a probe cut off by a crash stops counting after its timeout). */
export function breakerOf(a: Pick<AutomationConfig, "state" | "probeStartedAt" | "timeoutMs">, now = Date.now()): "closed" | "paused" | "probing" {
  if (a.state === "active") return "closed";
  return a.probeStartedAt !== null && a.probeStartedAt + a.timeoutMs > now ? "probing" : "paused";
}

/** The secrets that sign a call at `now`: the current one, and the previous one during the overlap
 *  after a rotation (two signatures in one webhook-signature header). */
export const signingSecrets = (a: Pick<AutomationConfig, "secret" | "previousSecret" | "previousSecretUntil">, now = Date.now()): string[] =>
  a.previousSecret && (a.previousSecretUntil ?? 0) > now ? [a.secret, a.previousSecret] : [a.secret];

/** The lane of one contact of one instance (AutomationLane Durable Object name). */
export const automationLaneKey = (tenantId: string, instanceId: string, contact: string) => `${tenantId}:${instanceId}:${contact}`;

export const automationLane = (env: Env, laneKey: string) => env.AUTOMATION.get(env.AUTOMATION.idFromName(laneKey));
