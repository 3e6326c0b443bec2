// An outbox row as its readers hand it out (GET /v1/events, the live stream): the same view for both.

export type EventRow = { seq: number; event_id: string; type: string; version: number; occurred_at: number; data: string };

// JSON nulls from SQL json_object() are absent fields in the contracts.
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, dropNulls(v)]),
    );
  }
  return value;
}

export const eventView = (e: EventRow) => ({
  seq: e.seq,
  eventId: e.event_id,
  type: e.type,
  version: e.version,
  occurredAt: new Date(e.occurred_at).toISOString(),
  data: dropNulls(JSON.parse(e.data)),
});
