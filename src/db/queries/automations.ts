// The automations table: an instance's inbound automation (the handler URL, its settings, its
// signing secrets and its circuit breaker).
import { sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { AutomationInput } from "../../contracts/automation.ts";
import type { Db } from "../client.ts";
import { changes, runBatch } from "../batch.ts";

/** Creates the instance's automation or changes its settings, in one statement; the secret only
 *  goes in on creation. True when this call created it. */
export async function save(db: Db, a: { instanceId: string; tenantId: string; secret: string; now: number } & AutomationInput): Promise<boolean> {
  const rows = z.array(z.object({ created_at: z.number() })).parse(
    await db.all(sql`
    INSERT INTO automations (instance_id, tenant_id, url, secret, enabled, timeout_ms, context_messages, debounce_ms, include_groups, max_attempts,
      state, failures, created_at, updated_at)
    VALUES (${a.instanceId}, ${a.tenantId}, ${a.url}, ${a.secret}, ${a.enabled ? 1 : 0}, ${a.timeoutMs}, ${a.contextMessages},
      ${a.debounceMs}, ${a.includeGroups ? 1 : 0}, ${a.maxAttempts}, 'active', 0, ${a.now}, ${a.now})
    ON CONFLICT (instance_id) DO UPDATE SET url = excluded.url, enabled = excluded.enabled, timeout_ms = excluded.timeout_ms,
      context_messages = excluded.context_messages, debounce_ms = excluded.debounce_ms, include_groups = excluded.include_groups,
      max_attempts = excluded.max_attempts, updated_at = excluded.updated_at
    RETURNING created_at`),
  );
  return rows[0]?.created_at === a.now;
}

/** Deletes the instance's automation; un-awaited, first of the batch that cancels its hand-offs
 *  (its changes() say whether there was one). */
export function remove(instanceId: string): SQL {
  return sql`DELETE FROM automations WHERE instance_id = ${instanceId}`;
}

/** A new signing secret; the current one keeps signing (alongside) until previousUntil. False when
 *  the instance has no automation. */
export async function rotateSecret(db: Db, instanceId: string, secret: string, previousUntil: number, now: number): Promise<boolean> {
  const rotated = await db.run(sql`UPDATE automations SET secret_previous = secret, secret_previous_until = ${previousUntil}, secret = ${secret},
      updated_at = ${now} WHERE instance_id = ${instanceId}`);
  return changes(rotated) > 0;
}

/** The automation row as the lane and the routes read it. */
export const configRow = z.object({
  instance_id: z.string(),
  tenant_id: z.string(),
  url: z.string(),
  secret: z.string(),
  secret_previous: z.string().nullable(),
  secret_previous_until: z.number().nullable(),
  enabled: z.number(),
  timeout_ms: z.number(),
  context_messages: z.number(),
  debounce_ms: z.number(),
  include_groups: z.number(),
  max_attempts: z.number(),
  state: z.string(),
  failures: z.number(),
  paused_at: z.number().nullable(),
  probe_at: z.number().nullable(),
  probe_started_at: z.number().nullable(),
});
export type ConfigRow = z.infer<typeof configRow>;

/** The instance's automation row; un-awaited, for a batch (parse the row with configRow). */
export const configStatement = (instanceId: string): SQL =>
  sql`SELECT instance_id, tenant_id, url, secret, secret_previous, secret_previous_until, enabled, timeout_ms, context_messages, debounce_ms, include_groups,
      max_attempts, state, failures, paused_at, probe_at, probe_started_at FROM automations WHERE instance_id = ${instanceId}`;

export async function config(db: Db, instanceId: string): Promise<ConfigRow | undefined> {
  const [row] = await db.all(configStatement(instanceId));
  return row === undefined ? undefined : configRow.parse(row);
}

/** The instance's context_messages as an expression, for a statement in the same batch as the row's read. */
export const contextMessagesOf = (instanceId: string): SQL => sql`SELECT COALESCE(MAX(context_messages), 0) FROM automations WHERE instance_id = ${instanceId}`;

// The circuit breaker, kept in the automation's row so every contact lane of the instance sees the
// same one (src/automation/breaker.ts decides when each statement runs).

/** The pause a failed call causes, for its automation.paused event: the failure count as the
 *  UPDATE leaves it, and the source that writes the event only when this call reaches the threshold. */
export function breakerPauseEvent(instanceId: string, threshold: number) {
  return {
    failures: sql`failures + 1`,
    source: sql`FROM automations WHERE instance_id = ${instanceId} AND state = 'active' AND failures + 1 >= ${threshold}`,
  };
}

/** A failed call: count it, and pause at the threshold; un-awaited, after its event in the batch. */
export function breakerFailure(instanceId: string, threshold: number, now: number, probeAt: number): SQL {
  return sql`UPDATE automations SET failures = failures + 1,
        paused_at = CASE WHEN state = 'active' AND failures + 1 >= ${threshold} THEN ${now} ELSE paused_at END,
        probe_at = CASE WHEN state = 'active' AND failures + 1 >= ${threshold} THEN ${probeAt} ELSE probe_at END,
        state = CASE WHEN failures + 1 >= ${threshold} THEN 'paused' ELSE state END, probe_started_at = NULL
      WHERE instance_id = ${instanceId}`;
}

/** The source of the automation.resumed event: written only when the breaker is paused. */
export function breakerResumeEventSource(instanceId: string): SQL {
  return sql`FROM automations WHERE instance_id = ${instanceId} AND state = 'paused'`;
}

/** A successful call: reset the count and resume; un-awaited, after its event in the batch. */
export function breakerSuccess(instanceId: string): SQL {
  return sql`UPDATE automations SET failures = 0, state = 'active', paused_at = NULL, probe_at = NULL, probe_started_at = NULL
      WHERE instance_id = ${instanceId} AND (failures != 0 OR state != 'active')`;
}

const breakerRow = z.object({ state: z.string(), probe_at: z.number().nullable() });

/** Takes the one probe of this round (probe_at passed, paused): won, and the breaker as it now stands. */
export async function claimBreakerProbe(db: Db, instanceId: string, now: number, probeMs: number): Promise<{ won: boolean; state: string; probeAt: number }> {
  const [update, read] = await runBatch(db, [
    sql`UPDATE automations SET probe_at = ${now + probeMs}, probe_started_at = ${now} WHERE instance_id = ${instanceId} AND state = 'paused' AND probe_at <= ${now}`,
    sql`SELECT state, probe_at FROM automations WHERE instance_id = ${instanceId}`,
  ]);
  const row = read?.results[0] === undefined ? undefined : breakerRow.parse(read.results[0]);
  return { won: changes(update) > 0, state: row?.state ?? "active", probeAt: row?.probe_at ?? now };
}
