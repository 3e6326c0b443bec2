// The dead_letters table: messages that failed for good, kept (with replayed_at once replayed)
// for the list and for replay. Read with their messages (a JOIN: it answers about the dead letter).
import { type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";
import { messageIsTerminal } from "./statuses.ts";

/** `%<text>%` with `\`, `%` and `_` escaped, for `LIKE … ESCAPE '\'`. */
export const likeEscaped = (text: string) => `%${text.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;

export type Filter = { instance?: string; error?: string; since?: number; until?: number };

function filterSql(tenantId: string, f: Filter): SQL {
  const where: SQL[] = [sql`d.tenant_id = ${tenantId}`];
  if (f.instance) where.push(sql`m.instance_name = ${f.instance}`);
  if (f.error) where.push(sql`d.error LIKE ${likeEscaped(f.error)} ESCAPE '\\'`);
  if (f.since !== undefined) where.push(sql`d.at >= ${f.since}`);
  if (f.until !== undefined) where.push(sql`d.at <= ${f.until}`);
  return sql.join(where, sql` AND `);
}

// A dead letter whose message may have gone out after all: Evolution accepted the request but its
// answer could not be read (a 2xx), or the last attempt was in doubt and Evolution could not say
// whether it went, or an earlier attempt was resent without proof. Replaying it may send it twice,
// so bulk replay leaves it out unless asked with force. A provider that cannot be asked (Telegram)
// says "may have gone out" in the error of an attempt it gave up on in doubt.
const mayHaveSentSql = sql`(d.error LIKE 'Evolution 2%' OR d.error LIKE '%could not answer%' OR d.error LIKE '%cannot tell%'
  OR d.error LIKE '%may arrive twice%' OR d.error LIKE '%may have gone out%' OR m.history LIKE '%may arrive twice%')`;

const deadRow = z.object({
  message_id: z.string(),
  may_have_sent: z.number(),
  attempts: z.number(),
  error: z.string(),
  at: z.number(),
  replayed_at: z.number().nullable(),
  instance_name: z.string(),
  to: z.string(),
  status: z.string(),
  lane_key: z.string(),
  instance_id: z.string(),
  priority: z.number(),
  created_at: z.number(),
});
export type DeadRow = z.infer<typeof deadRow>;
const deadRows = z.array(deadRow);

const columns = sql`d.message_id, d.attempts, d.error, d.at, d.replayed_at, m.instance_name, m."to", m.status, m.lane_key, m.instance_id, m.priority, m.created_at,
  ${mayHaveSentSql} AS may_have_sent`;

/** A tenant's dead letters, newest first, filtered; limit + 1 rows so the caller knows whether
 *  there is a next page. `before`: the cursor (at, message id). */
export async function page(
  db: Db,
  tenantId: string,
  q: Filter & { replayed: "true" | "false" | "any"; before?: readonly [number, string]; limit: number },
): Promise<DeadRow[]> {
  const where = [filterSql(tenantId, q)];
  if (q.replayed === "false") where.push(sql`d.replayed_at IS NULL`);
  if (q.replayed === "true") where.push(sql`d.replayed_at IS NOT NULL`);
  if (q.before) where.push(sql`(d.at < ${q.before[0]} OR (d.at = ${q.before[0]} AND d.message_id < ${q.before[1]}))`);
  return deadRows.parse(
    await db.all(sql`SELECT ${columns} FROM dead_letters d JOIN messages m ON m.id = d.message_id
    WHERE ${sql.join(where, sql` AND `)} ORDER BY d.at DESC, d.message_id DESC LIMIT ${q.limit + 1}`),
  );
}

// Within D1's 100 bound parameters a statement.
const ID_CHUNK = 50;

/** A tenant's dead letters among these message ids. */
export async function byIds(db: Db, tenantId: string, ids: string[]): Promise<DeadRow[]> {
  const rows: DeadRow[] = [];
  for (let i = 0; i < ids.length; i += ID_CHUNK) {
    const chunk = ids.slice(i, i + ID_CHUNK);
    rows.push(
      ...deadRows.parse(
        await db.all(sql`SELECT ${columns} FROM dead_letters d JOIN messages m ON m.id = d.message_id
          WHERE d.tenant_id = ${tenantId} AND d.message_id IN (${sql.join(
            chunk.map((id) => sql`${id}`),
            sql`, `,
          )})`),
      ),
    );
  }
  return rows;
}

/** The oldest dead letters matching the filter, not replayed and still failed (without those that
 *  may have gone out, unless force), at most limit + 1. */
export async function replayable(db: Db, tenantId: string, f: Filter, force: boolean, limit: number): Promise<DeadRow[]> {
  return deadRows.parse(
    await db.all(sql`SELECT ${columns} FROM dead_letters d JOIN messages m ON m.id = d.message_id
      WHERE ${filterSql(tenantId, f)} AND d.replayed_at IS NULL AND m.status = 'failed'${force ? sql`` : sql` AND NOT ${mayHaveSentSql}`}
      ORDER BY d.at, d.message_id LIMIT ${limit + 1}`),
  );
}

/** Marks a dead letter replayed when the statement just before it in the batch (the message's
 *  status event) changed a row. Un-awaited, for that batch. */
export function markReplayed(messageId: string, at: number): SQL {
  return sql`UPDATE dead_letters SET replayed_at = ${at} WHERE message_id = ${messageId} AND changes() > 0`;
}

/** Dead letters not replayed, of one tenant or all. */
export async function countOpen(db: Db, tenantId: string | undefined): Promise<number> {
  const tenant = tenantId ? sql`tenant_id = ${tenantId}` : sql`1`;
  const [row] = z.array(z.object({ n: z.number() })).parse(await db.all(sql`SELECT COUNT(*) AS n FROM dead_letters WHERE ${tenant} AND replayed_at IS NULL`));
  return row?.n ?? 0;
}

/** Deletes the dead letters of messages the purge is about to delete (children first, so a purge
 *  cut short never leaves a dead letter without its message). */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(
    db,
    "dead_letters",
    "message_id",
    sql`SELECT d.message_id FROM dead_letters d JOIN messages m ON m.id = d.message_id
    WHERE ${messageIsTerminal("m")} AND m.created_at < ${cutoff} AND m.updated_at < ${cutoff}`,
    limits,
  );
}

/** A message given up on; un-awaited, for the batch of its failed transition. */
export function record(messageId: string, tenantId: string, attempts: number, error: string, at: number): SQL {
  return sql`INSERT OR REPLACE INTO dead_letters (message_id, tenant_id, attempts, error, at)
            VALUES (${messageId}, ${tenantId}, ${attempts}, ${error}, ${at})`;
}
