// Outbox event ids: `evt_<seq>_<random>`. The seq is the event's primary key, so an event is found
// by its id through that key and the outbox needs no index of event ids (which cost one more D1
// row written per event: docs/capacity.md). Unique within the database because seq is; the random
// part keeps an id unique beyond it: after a restore to an earlier point the seqs come again, and
// consumers that deduplicate on eventId must not take a new event for one they have seen.
import { type SQL, sql } from "drizzle-orm";

const ID = /^evt_(\d{1,15})_[0-9a-f]{16}$/;

// The next seq, as the rowid would have chosen it (the purge never deletes the newest event, so it
// never restarts). Uncorrelated, so SQLite evaluates it once per statement.
const nextSeq = sql`(SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox_events)`;

function suffix(): string {
  return [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The values of `seq, event_id` for `INSERT INTO outbox_events (seq, event_id, …) SELECT <these>, …`.
 *  One event per statement: a statement that inserted two would give both the same seq (and fail). */
export function newEventKeys(): SQL {
  return sql`${nextSeq}, 'evt_' || ${nextSeq} || '_' || ${suffix()}`;
}

/** The seq an event id carries; undefined for ids of events written before this scheme (UUIDs). */
export function seqOfEventId(id: string): number | undefined {
  const m = ID.exec(id);
  return m ? Number(m[1]) : undefined;
}

/** WHERE terms that find an event by its public id: through the primary key; an older id (until the
 *  purge removes its event) by its tenant's events, the only index it has left. */
export function eventIdIs(id: string, alias = ""): SQL {
  const column = (name: string) => sql.raw(alias ? `${alias}.${name}` : name);
  const seq = seqOfEventId(id);
  return seq === undefined ? sql`${column("event_id")} = ${id}` : sql`${column("seq")} = ${seq} AND ${column("event_id")} = ${id}`;
}
