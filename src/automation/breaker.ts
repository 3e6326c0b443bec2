// The circuit breaker of an instance's automation, kept in its D1 row so every contact lane of the
// instance sees the same one: after BREAKER_THRESHOLD consecutive failed calls it pauses, one lane
// at a time may probe once probe_at has passed (probe_started_at marks the call under way), and
// the first success resumes it.
import { sql } from "drizzle-orm";
import { changes, runBatch, type Statement } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { writeEvent } from "../outbox/write.ts";

export const BREAKER_THRESHOLD = 5;

/** A failed call: count it, and pause (with an automation.paused event) when it is the threshold's. */
export function failureStatements(tenantId: string, instanceId: string, instanceName: string, now: number, probeMs: number): Statement[] {
  const probeAt = now + probeMs;
  return [
    writeEvent("automation.paused", {
      tenantId,
      occurredAt: now,
      data: { instance: instanceName, failures: sql`failures + 1`, probeAt: new Date(probeAt).toISOString() },
      source: sql`FROM automations WHERE instance_id = ${instanceId} AND state = 'active' AND failures + 1 >= ${BREAKER_THRESHOLD}`,
    }),
    sql`UPDATE automations SET failures = failures + 1,
        paused_at = CASE WHEN state = 'active' AND failures + 1 >= ${BREAKER_THRESHOLD} THEN ${now} ELSE paused_at END,
        probe_at = CASE WHEN state = 'active' AND failures + 1 >= ${BREAKER_THRESHOLD} THEN ${probeAt} ELSE probe_at END,
        state = CASE WHEN failures + 1 >= ${BREAKER_THRESHOLD} THEN 'paused' ELSE state END, probe_started_at = NULL
      WHERE instance_id = ${instanceId}`,
  ];
}

/** A successful call: reset the count; when paused, resume with an automation.resumed event.
 *  The event statement comes first so its result says whether this call resumed the breaker. */
export function successStatements(tenantId: string, instanceId: string, instanceName: string, now: number): Statement[] {
  return [
    writeEvent("automation.resumed", {
      tenantId,
      occurredAt: now,
      data: { instance: instanceName },
      source: sql`FROM automations WHERE instance_id = ${instanceId} AND state = 'paused'`,
    }),
    sql`UPDATE automations SET failures = 0, state = 'active', paused_at = NULL, probe_at = NULL, probe_started_at = NULL
      WHERE instance_id = ${instanceId} AND (failures != 0 OR state != 'active')`,
  ];
}

/** Takes the one probe of this round: true when this lane may call while paused. */
export async function claimProbe(db: Db, instanceId: string, now: number, probeMs: number): Promise<{ won: boolean; state: string; probeAt: number }> {
  const [update, read] = await runBatch<{ state: string; probe_at: number | null }>(db, [
    sql`UPDATE automations SET probe_at = ${now + probeMs}, probe_started_at = ${now} WHERE instance_id = ${instanceId} AND state = 'paused' AND probe_at <= ${now}`,
    sql`SELECT state, probe_at FROM automations WHERE instance_id = ${instanceId}`,
  ]);
  const row = read?.results[0];
  return { won: changes(update) > 0, state: row?.state ?? "active", probeAt: row?.probe_at ?? now };
}
