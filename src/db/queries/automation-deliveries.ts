// The automation_deliveries table: each inbound message handed to an instance's automation, from
// pending to delivered, dead (given up on) or canceled.
import { sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";
import { isHuman } from "./conversation-handoffs.ts";
import { offeredColumns } from "./inbound-messages.ts";

const countRow = z.object({ status: z.string(), retrying: z.number(), n: z.number() });

/** The instance's deliveries by status, pending ones split by whether an attempt failed already. */
export async function countsByStatus(db: Db, instanceId: string): Promise<z.infer<typeof countRow>[]> {
  return z.array(countRow).parse(
    await db.all(sql`
    SELECT status, attempts > 0 AS retrying, COUNT(*) AS n FROM automation_deliveries WHERE instance_id = ${instanceId}
    GROUP BY status, attempts > 0`),
  );
}

/** The lanes of the instance that have pending deliveries (at most 1000). */
export async function pendingLanes(db: Db, instanceId: string): Promise<string[]> {
  const rows = z
    .array(z.object({ lane_key: z.string() }))
    .parse(await db.all(sql`SELECT DISTINCT lane_key FROM automation_deliveries WHERE instance_id = ${instanceId} AND status = 'pending' LIMIT 1000`));
  return rows.map((r) => r.lane_key);
}

/** Cancels the instance's pending deliveries; un-awaited, for the batch that removes its automation. */
export function cancelPending(instanceId: string, now: number): SQL {
  return sql`UPDATE automation_deliveries SET status = 'canceled', updated_at = ${now} WHERE instance_id = ${instanceId} AND status = 'pending'`;
}

const deadRow = z.object({
  inbound_id: z.string(),
  contact: z.string(),
  attempts: z.number(),
  last_error: z.string().nullable(),
  updated_at: z.number(),
  text: z.string().nullable(),
});

/** The instance's dead deliveries with their message's text, newest first; limit + 1 rows.
 *  `before`: the cursor (updated_at, inbound id). */
export async function deadPage(db: Db, instanceId: string, before: readonly [number, string], limit: number): Promise<z.infer<typeof deadRow>[]> {
  const [at, id] = before;
  return z.array(deadRow).parse(
    await db.all(sql`
    SELECT d.inbound_id, d.contact, d.attempts, d.last_error, d.updated_at, i.text FROM automation_deliveries d
    LEFT JOIN inbound_messages i ON i.id = d.inbound_id
    WHERE d.instance_id = ${instanceId} AND d.status = 'dead' AND (d.updated_at < ${at} OR (d.updated_at = ${at} AND d.inbound_id < ${id}))
    ORDER BY d.updated_at DESC, d.inbound_id DESC LIMIT ${limit + 1}`),
  );
}

const replayRow = offeredColumns.extend({
  lane_key: z.string(),
  status: z.string(),
  tenant_id: z.string(),
  updated_at: z.number(),
  instance_name: z.string(),
});
export type ReplayRow = z.infer<typeof replayRow>;

/** A delivery of the instance with its inbound message, as a replay needs it. */
export async function forReplay(db: Db, instanceId: string, inboundId: string): Promise<ReplayRow | undefined> {
  const rows = await db.all(sql`
    SELECT d.lane_key, d.status, d.tenant_id, d.updated_at, i.instance_name, i.id, i.contact, i.remote_jid, i.participant, i.push_name, i.text, i.media,
      i.timestamp
    FROM automation_deliveries d JOIN inbound_messages i ON i.id = d.inbound_id
    WHERE d.inbound_id = ${inboundId} AND d.instance_id = ${instanceId}`);
  return rows[0] === undefined ? undefined : replayRow.parse(rows[0]);
}

/** A dead delivery pending again, only if nobody touched it since it was read (updatedAt). */
export async function markReplayed(db: Db, inboundId: string, updatedAt: number, now: number): Promise<void> {
  await db.run(sql`UPDATE automation_deliveries SET status = 'pending', attempts = 0, replayed_at = ${now}, updated_at = ${now}
    WHERE inbound_id = ${inboundId} AND status = 'dead' AND updated_at = ${updatedAt}`);
}

/** Deletes delivered, dead (automation dead letters) and canceled deliveries last changed before
 *  cutoff; pending ones are work still under way. Walked instance by instance through (instance_id,
 *  status, updated_at); an instance's rows outlive its automation (DELETE cancels them), so the walk
 *  goes over instances. */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(
    db,
    "automation_deliveries",
    "inbound_id",
    sql`SELECT d.inbound_id FROM instances i CROSS JOIN automation_deliveries d ON d.instance_id = i.id
      AND d.status IN ('delivered', 'dead', 'canceled') AND d.updated_at < ${cutoff}`,
    limits,
  );
}

/** Records an inbound message the automation takes, once it is stored (an INSERT … SELECT over the
 *  stored row): `human` when the contact is with a person then, else pending. Un-awaited, for the
 *  batch that stores the message. */
export function recordOffer(t: { tenantId: string; instanceId: string }, m: { providerMessageId: string; isGroup: boolean; takes: boolean }, now: number): SQL {
  return sql`INSERT INTO automation_deliveries (inbound_id, tenant_id, instance_id, lane_key, contact, status, created_at, updated_at)
    SELECT i.id, ${t.tenantId}, i.instance_id, ${t.tenantId} || ':' || i.instance_id || ':' || i.contact, i.contact,
      CASE WHEN EXISTS (SELECT 1 FROM conversation_handoffs h WHERE h.instance_id = i.instance_id AND h.contact = i.contact
        AND (h.until IS NULL OR h.until > ${now})) THEN 'human' ELSE 'pending' END, ${now}, ${now}
    FROM inbound_messages i JOIN automations a ON a.instance_id = i.instance_id
    WHERE i.instance_id = ${t.instanceId} AND i.provider_message_id = ${m.providerMessageId}
      AND a.enabled = 1 AND ${m.takes ? 1 : 0} = 1 AND (a.include_groups = 1 OR ${m.isGroup ? 0 : 1} = 1)
    ON CONFLICT DO NOTHING`;
}

// D1's in-statement parameter lists stay well under its 100 bound parameters.
const IDS_PER_STATEMENT = 50;
const idList = (ids: string[]) =>
  sql.join(
    ids.map((id) => sql`${id}`),
    sql`, `,
  );

/** Pending deliveries of a contact that is with a person: kept as `human` (the handler's context
 *  after the hand-back), never called. */
export async function markHuman(db: Db, inboundIds: string[], now: number): Promise<void> {
  for (let k = 0; k < inboundIds.length; k += IDS_PER_STATEMENT) {
    await db.run(
      sql`UPDATE automation_deliveries SET status = 'human', updated_at = ${now} WHERE status = 'pending' AND inbound_id IN (${idList(
        inboundIds.slice(k, k + IDS_PER_STATEMENT),
      )})`,
    );
  }
}

/** A failed call of a batch (at most MAX_BATCH ids): its attempts and error, dead when `final`.
 *  Un-awaited, for the batch with the breaker. */
export function recordFailure(inboundIds: string[], attempts: number, error: string, final: boolean, now: number): SQL {
  return sql`UPDATE automation_deliveries SET attempts = ${attempts}, last_error = ${error}, updated_at = ${now},
    status = ${final ? "dead" : "pending"} WHERE inbound_id IN (${idList(inboundIds)})`;
}

/** The handler answered a batch: delivered (a dead letter replayed included). Un-awaited, for the
 *  batch with its replies and the breaker. */
export function markDelivered(inboundIds: string[], attempts: number, note: string | null, now: number): SQL {
  return sql`UPDATE automation_deliveries SET status = 'delivered', attempts = ${attempts}, last_error = ${note}, updated_at = ${now}
    WHERE inbound_id IN (${idList(inboundIds)}) AND status IN ('pending', 'dead')`;
}

const laneKeyRow = z.object({ lane_key: z.string() });

/** Lanes that hold pending deliveries (any instance), up to limit. */
export async function lanesWithPending(db: Db, limit: number): Promise<string[]> {
  const rows = z.array(laneKeyRow).parse(await db.all(sql`SELECT DISTINCT lane_key FROM automation_deliveries WHERE status = 'pending' LIMIT ${limit}`));
  return rows.map((r) => r.lane_key);
}

/** Records inbound messages never recorded for their automation: received while it was on as it is
 *  now (after its last change, never while it was off) within [since, before), something a handler
 *  can answer. Automations outermost (CROSS JOIN), each one's window through
 *  inbound_instance_received. The ids recorded, up to limit. */
export async function recordNeverOffered(db: Db, now: number, w: { since: number; before: number; limit: number }): Promise<string[]> {
  const rows = z.array(z.object({ inbound_id: z.string() })).parse(
    await db.all(sql`
    INSERT OR IGNORE INTO automation_deliveries (inbound_id, tenant_id, instance_id, lane_key, contact, status, created_at, updated_at)
    SELECT i.id, i.tenant_id, i.instance_id, i.tenant_id || ':' || i.instance_id || ':' || i.contact, i.contact,
      CASE WHEN ${isHuman(sql`i.instance_id`, sql`i.contact`, now)} THEN 'human' ELSE 'pending' END, ${now}, ${now}
    FROM automations a CROSS JOIN inbound_messages i ON i.instance_id = a.instance_id
      AND i.received_at >= MAX(a.updated_at, ${w.since}) AND i.received_at < ${w.before}
    WHERE a.enabled = 1 AND i.from_me = 0 AND (a.include_groups = 1 OR (substr(i.remote_jid, -5) != '@g.us' AND NOT (i.channel = 'telegram' AND substr(i.remote_jid, 1, 1) = '-')))
      AND (i.text IS NOT NULL OR i.media IS NOT NULL) AND i.message_type != 'edited_message'
      AND NOT EXISTS (SELECT 1 FROM automation_deliveries d WHERE d.inbound_id = i.id)
    LIMIT ${w.limit}
    RETURNING inbound_id`),
  );
  return rows.map((r) => r.inbound_id);
}

// A pending delivery with its inbound message, as a lane is offered it again.
const pendingRow = offeredColumns.extend({
  lane_key: z.string(),
  tenant_id: z.string(),
  instance_id: z.string(),
  instance_name: z.string(),
  channel: z.string(),
});
export type PendingRow = z.infer<typeof pendingRow>;

const pendingColumns = sql`d.lane_key, d.tenant_id, i.instance_id, i.instance_name, i.channel, i.id, i.contact, i.remote_jid, i.participant, i.push_name,
  i.text, i.media, i.timestamp`;

// Keeps each IN list well under D1's 100 bound parameters.
const ID_PAGE = 50;

/** These deliveries with their inbound messages. */
export async function withInbound(db: Db, ids: readonly string[]): Promise<PendingRow[]> {
  const rows: PendingRow[] = [];
  for (let k = 0; k < ids.length; k += ID_PAGE) {
    const page = sql.join(
      ids.slice(k, k + ID_PAGE).map((id) => sql`${id}`),
      sql`, `,
    );
    rows.push(
      ...z
        .array(pendingRow)
        .parse(
          await db.all(
            sql`SELECT ${pendingColumns} FROM automation_deliveries d JOIN inbound_messages i ON i.id = d.inbound_id WHERE d.inbound_id IN (${page})`,
          ),
        ),
    );
  }
  return rows;
}

/** Pending deliveries of switched-on automations untouched since before, the oldest first, with their
 *  inbound messages; through automation_deliveries_instance (instance, status, updated_at). */
export async function stalePending(db: Db, before: number, limit: number): Promise<PendingRow[]> {
  return z.array(pendingRow).parse(
    await db.all(sql`
    SELECT ${pendingColumns} FROM automations a
    CROSS JOIN automation_deliveries d ON d.instance_id = a.instance_id AND d.status = 'pending' AND d.updated_at < ${before}
    JOIN inbound_messages i ON i.id = d.inbound_id
    WHERE a.enabled = 1 ORDER BY d.updated_at LIMIT ${limit}`),
  );
}

/** Marks these pending deliveries as touched now (the next catch-up takes up others first). */
export async function touchPending(db: Db, ids: readonly string[], now: number): Promise<void> {
  for (let k = 0; k < ids.length; k += ID_PAGE) {
    await db.run(
      sql`UPDATE automation_deliveries SET updated_at = ${now} WHERE status = 'pending' AND inbound_id IN (${sql.join(
        ids.slice(k, k + ID_PAGE).map((id) => sql`${id}`),
        sql`, `,
      )})`,
    );
  }
}
