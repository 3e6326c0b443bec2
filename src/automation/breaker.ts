// The circuit breaker of an instance's automation, kept in its D1 row so every contact lane of the
// instance sees the same one: after BREAKER_THRESHOLD consecutive failed calls it pauses, one lane
// at a time may probe once probe_at has passed (probe_started_at marks the call under way), and
// the first success resumes it.
import type { Statement } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { automations } from "../db/queries/index.ts";
import { writeEvent } from "../outbox/write.ts";

export const BREAKER_THRESHOLD = 5;

/** A failed call: count it, and pause (with an automation.paused event) when it is the threshold's. */
export function failureStatements(tenantId: string, instanceId: string, instanceName: string, now: number, probeMs: number): Statement[] {
  const probeAt = now + probeMs;
  const pause = automations.breakerPauseEvent(instanceId, BREAKER_THRESHOLD);
  return [
    writeEvent("automation.paused", {
      tenantId,
      occurredAt: now,
      data: { instance: instanceName, failures: pause.failures, probeAt: new Date(probeAt).toISOString() },
      source: pause.source,
    }),
    automations.breakerFailure(instanceId, BREAKER_THRESHOLD, now, probeAt),
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
      source: automations.breakerResumeEventSource(instanceId),
    }),
    automations.breakerSuccess(instanceId),
  ];
}

/** Takes the one probe of this round: true when this lane may call while paused. */
export function claimProbe(db: Db, instanceId: string, now: number, probeMs: number): Promise<{ won: boolean; state: string; probeAt: number }> {
  return automations.claimBreakerProbe(db, instanceId, now, probeMs);
}
