// The outbox_events table: every event the gateway publishes, in seq order. Rows are built from the
// event contracts by src/outbox/write.ts, which calls insertEvent here.
//
// Event ids: `evt_<seq>_<random>`. The seq is the event's primary key, so an event is found by its
// id through that key and the outbox needs no index of event ids (which cost one more D1 row written
// per event: docs/capacity.md). Unique within the database because seq is; the random part keeps an
// id unique beyond it: after a restore to an earlier point the seqs come again, and consumers that
// deduplicate on eventId must not take a new event for one they have seen.
import { is, SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";

const ID = /^evt_(\d{1,15})_[0-9a-f]{16}$/;

// The next seq, as the rowid would have chosen it (the purge never deletes the newest event, so it
// never restarts). Uncorrelated, so SQLite evaluates it once per statement.
const nextSeq = sql`(SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox_events)`;

function suffix(): string {
  return [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The values of `seq, event_id`. One event per statement: a statement that inserted two would give
 *  both the same seq (and fail). */
function newEventKeys(): SQL {
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

/** One field of an event's data: a value the Worker holds (bound, or embedded as JSON when it is an
 *  object, an array or a boolean), or an SQL expression over the statement's source rows. */
export type EventField = readonly [key: string, value: unknown];

const NAME = /^[A-Za-z][A-Za-z0-9.]*$/;

function literal(name: string): SQL {
  // Types and keys come from the contracts, never from input; checked anyway, as they are inlined.
  if (!NAME.test(name)) throw new Error(`not an event name or key: ${name}`);
  return sql.raw(`'${name}'`);
}

function fieldValue(value: unknown): SQL {
  if (is(value, SQL)) return value;
  if (value === null || value === undefined) return sql`NULL`;
  if (typeof value === "boolean") return sql.raw(value ? "json('true')" : "json('false')");
  if (typeof value === "object") return sql`json(${JSON.stringify(value)})`;
  return sql`${value}`;
}

/** The INSERT of one event: `INSERT … SELECT`, so the event can take values from the rows of the
 *  state change it records and be guarded like it (`source`: a `FROM … WHERE …` or a bare `WHERE …`).
 *  Un-awaited: it belongs in the state change's batch. */
export function insertEvent(e: {
  type: string;
  tenantId: string | SQL;
  occurredAt: number;
  data: readonly EventField[];
  /** Where the event's callback goes; by default the tenant's callback URL. */
  callbackUrl?: SQL;
  source?: SQL;
}): SQL {
  const data = sql.join(
    e.data.map(([key, value]) => sql`${literal(key)}, ${fieldValue(value)}`),
    sql`, `,
  );
  const callbackUrl = e.callbackUrl ?? sql`(SELECT callback_url FROM tenants WHERE id = ${e.tenantId})`;
  return sql`INSERT INTO outbox_events (seq, event_id, tenant_id, type, version, occurred_at, data, callback_url)
    SELECT ${newEventKeys()}, ${e.tenantId}, ${literal(e.type)}, 1, ${e.occurredAt}, json_object(${data}), ${callbackUrl}
    ${e.source ?? sql``}`;
}

// An event as stored, in the columns its readers serve (src/outbox/view.ts).
const eventRow = z.object({ seq: z.number(), event_id: z.string(), type: z.string(), version: z.number(), occurred_at: z.number(), data: z.string() });
export type StoredEvent = z.infer<typeof eventRow>;

/** A tenant's events after seq, in order. */
export async function tenantEventsAfter(db: Db, tenantId: string, seq: number, limit: number): Promise<StoredEvent[]> {
  return z.array(eventRow).parse(
    await db.all(sql`SELECT seq, event_id, type, version, occurred_at, data FROM outbox_events
      WHERE tenant_id = ${tenantId} AND seq > ${seq} ORDER BY seq LIMIT ${limit}`),
  );
}

const maxRow = z.object({ seq: z.number().nullable() });

/** The newest event's seq (of one tenant, when given); 0 when there is none. */
export async function lastSeq(db: Db, tenantId?: string): Promise<number> {
  const where = tenantId === undefined ? sql`` : sql`WHERE tenant_id = ${tenantId}`;
  const [row] = z.array(maxRow).parse(await db.all(sql`SELECT MAX(seq) AS seq FROM outbox_events ${where}`));
  return row?.seq ?? 0;
}

const callbackEventRow = z.object({ seq: z.number(), event_id: z.string(), tenant_id: z.string(), callback_url: z.string() });

/** Events after seq that have a callback URL, in order (all tenants: the callback dispatch). */
export async function withCallbacksAfter(db: Db, seq: number, limit: number): Promise<z.infer<typeof callbackEventRow>[]> {
  return z
    .array(callbackEventRow)
    .parse(
      await db.all(
        sql`SELECT seq, event_id, tenant_id, callback_url FROM outbox_events WHERE seq > ${seq} AND callback_url IS NOT NULL ORDER BY seq LIMIT ${limit}`,
      ),
    );
}

/** Deletes events older than cutoff. The newest event always stays: seq is the rowid, and an empty
 *  table would start it again at 1 behind the consumers' cursors. */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(
    db,
    "outbox_events",
    "seq",
    sql`SELECT seq FROM outbox_events WHERE occurred_at < ${cutoff} AND seq < (SELECT MAX(seq) FROM outbox_events)`,
    limits,
  );
}

/** An event's source that writes it only when the statement just before it in the batch changed a row. */
export const whenChangedJustBefore = sql`WHERE changes() > 0`;
