// Setup of every Worker test file: each outbox row the tests made the Worker write is parsed, as
// consumers read it (GET /v1/events), against the published event contract. A row that drifts from
// src/contracts/events.ts fails the test that wrote it (or, for a row written after its test, the
// next test of the file or the file's end).
import { env } from "cloudflare:workers";
import { afterAll, afterEach } from "vitest";
import { gatewayEvent } from "../../src/contracts/events.ts";
import { type EventRow, eventView } from "../../src/outbox/view.ts";

// Shared through globalThis, like production-limits.ts: the rows already checked, by seq.
const KEY = Symbol.for("mensageiro.outbox-contract");
const globals = globalThis as typeof globalThis & { [KEY]?: { checkedTo: number } };
globals[KEY] ??= { checkedTo: 0 };
const state = globals[KEY];

export async function checkOutboxAgainstContract(): Promise<number> {
  const max = await env.DB.prepare("SELECT COALESCE(MAX(seq), 0) AS seq FROM outbox_events").first<{ seq: number }>();
  // Storage set back (a fresh database): start again from the first row.
  if ((max?.seq ?? 0) < state.checkedTo) state.checkedTo = 0;
  const { results } = await env.DB.prepare("SELECT seq, event_id, type, version, occurred_at, data FROM outbox_events WHERE seq > ? ORDER BY seq")
    .bind(state.checkedTo)
    .all<EventRow>();
  const bad: string[] = [];
  for (const row of results) {
    const { seq: _, ...event } = eventView(row);
    const parsed = gatewayEvent.safeParse(event);
    if (!parsed.success) bad.push(`${row.type} ${row.event_id} ${row.data}: ${parsed.error.message}`);
    state.checkedTo = Math.max(state.checkedTo, row.seq);
  }
  if (bad.length > 0) throw new Error(`outbox rows that break the event contract:\n${bad.join("\n")}`);
  return results.length;
}

afterEach(checkOutboxAgainstContract);
afterAll(checkOutboxAgainstContract);
