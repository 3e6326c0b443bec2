// The messages table: every message a tenant sends, its status, history and lane.
import { and, desc, eq, gte, lt, type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import { type MessageStatus, messageStatus } from "../../contracts/events.ts";
import { changes } from "../batch.ts";
import type { Db } from "../client.ts";
import { messages as messagesTable } from "../schema.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";
import { messageIsActive, messageIsTerminal } from "./statuses.ts";

// One row of a contact's timeline: a message sent, one received, or (on request) a hand-off, whose
// state, reason and by ride in the status, push_name and message_type columns.
const timelineRow = z.object({
  direction: z.enum(["outbound", "inbound", "handoff"]),
  id: z.string(),
  at: z.number(),
  instance: z.string(),
  channel: z.string().nullable(),
  text: z.string().nullable(),
  media: z.string().nullable(),
  status: z.string().nullable(),
  from_me: z.number().nullable(),
  push_name: z.string().nullable(),
  message_type: z.string().nullable(),
  provider_message_id: z.string().nullable(),
});
export type TimelineRow = z.infer<typeof timelineRow>;

/** One contact's timeline, newest first, across sent messages, received ones (inbound_messages)
 *  and, with handoffs, its hand-offs (handoff_changes); `forms`: the contact's address as each may
 *  be written. limit + 1 rows so the caller knows whether there is a next page. */
export async function contactTimeline(
  db: Db,
  tenantId: string,
  q: { forms: string[]; instance?: string; handoffs: boolean; before: readonly [number, string]; limit: number },
): Promise<TimelineRow[]> {
  const forms = sql`(${sql.join(
    q.forms.map((f) => sql`${f}`),
    sql`, `,
  )})`;
  const byInstance = (col: string) => (q.instance ? sql`AND ${sql.raw(col)} = ${q.instance}` : sql``);
  const [cursorAt, cursorId] = q.before;
  return z.array(timelineRow).parse(
    await db.all(sql`
    SELECT * FROM (
      SELECT 'outbound' AS direction, id, created_at AS at, instance_name AS instance, channel, text, media, status, 1 AS from_me, NULL AS push_name, NULL AS message_type, provider_message_id
      FROM messages WHERE tenant_id = ${tenantId} AND "to" IN ${forms} ${byInstance("instance_name")}
      UNION ALL
      SELECT 'inbound', id, timestamp, instance_name, channel, text, media, NULL, from_me, push_name, message_type, provider_message_id
      FROM inbound_messages WHERE tenant_id = ${tenantId} AND contact IN ${forms} ${byInstance("instance_name")}
      ${
        q.handoffs
          ? sql`UNION ALL
      SELECT 'handoff', id, at, instance_name, NULL, NULL, NULL, state, NULL, reason, by, NULL
      FROM handoff_changes WHERE tenant_id = ${tenantId} AND contact IN ${forms} ${byInstance("instance_name")}`
          : sql``
      }
    ) WHERE at < ${cursorAt} OR (at = ${cursorAt} AND id < ${cursorId})
    ORDER BY at DESC, id DESC LIMIT ${q.limit + 1}`),
  );
}

const laneRows = z.array(z.object({ lane_key: z.string() }));

/** Lanes with messages waiting or in flight, earliest due first, at most limit. */
export async function activeLanes(db: Db, limit: number): Promise<string[]> {
  const rows = laneRows.parse(
    await db.all(sql`
    SELECT lane_key FROM messages WHERE ${messageIsActive()}
    GROUP BY lane_key ORDER BY MIN(ready_at) LIMIT ${limit}`),
  );
  return rows.map((r) => r.lane_key);
}

/** Lanes with a message `processing` since before threshold (ready and last updated before it),
 *  at most limit; through messages_active_ready. */
export async function stuckLanes(db: Db, threshold: number, limit: number): Promise<string[]> {
  const rows = laneRows.parse(
    await db.all(sql`
    SELECT DISTINCT lane_key FROM messages
    WHERE ${messageIsActive()} AND status = 'processing' AND ready_at < ${threshold} AND updated_at < ${threshold}
    LIMIT ${limit}`),
  );
  return rows.map((r) => r.lane_key);
}

const receiptDueRow = z.object({
  id: z.string(),
  provider_message_id: z.string(),
  receipt_checks: z.number(),
  name: z.string(),
  evolution_url: z.string(),
  evolution_api_key: z.string(),
});
export type ReceiptDue = z.infer<typeof receiptDueRow>;

/** Sent messages whose receipt check is due, oldest due first, with their instance's Evolution
 *  connection: at most `page`, and at most `perInstance` of one instance. */
export async function receiptChecksDue(db: Db, now: number, page: number, perInstance: number): Promise<ReceiptDue[]> {
  return z.array(receiptDueRow).parse(
    await db.all(sql`
    SELECT id, provider_message_id, receipt_checks, name, evolution_url, evolution_api_key FROM (
      SELECT m.id, m.provider_message_id, m.receipt_checks, i.name, i.evolution_url, i.evolution_api_key,
        ROW_NUMBER() OVER (PARTITION BY m.instance_id ORDER BY m.receipt_check_at) AS n
      FROM messages m JOIN instances i ON i.id = m.instance_id
      WHERE m.status = 'sent' AND m.receipt_check_at IS NOT NULL AND m.receipt_check_at <= ${now} AND m.provider_message_id IS NOT NULL
      ORDER BY m.receipt_check_at LIMIT ${page * 4})
    WHERE n <= ${perInstance} LIMIT ${page}`),
  );
}

/** Counts a receipt check and sets the next one (null: none). Un-awaited, for the check's batch. */
export function countReceiptCheck(id: string, checks: number, nextAt: number | null): SQL {
  return sql`UPDATE messages SET receipt_checks = ${checks}, receipt_check_at = ${nextAt} WHERE id = ${id}`;
}

const tenantIs = (tenantId: string | undefined) => (tenantId ? sql`tenant_id = ${tenantId}` : sql`1`);

/** When the oldest queued message was ready, among the first `sample` queued ones by creation (a
 *  queued message was ready at its creation, or at its sendAt for one scheduled before); of one
 *  tenant, or all. */
export async function oldestQueuedReadyAt(db: Db, tenantId: string | undefined, sample: number): Promise<number | null> {
  const [row] = z
    .array(z.object({ at: z.number().nullable() }))
    .parse(
      await db.all(
        sql`SELECT MIN(ready_at) AS at FROM (SELECT ready_at FROM messages WHERE ${tenantIs(tenantId)} AND status = 'queued' ORDER BY created_at LIMIT ${sample})`,
      ),
    );
  return row?.at ?? null;
}

/** Messages sent since `since`, by instance name; of one tenant, or all. */
export async function sentSinceByInstance(db: Db, tenantId: string | undefined, since: number): Promise<{ instance: string; n: number }[]> {
  return z
    .array(z.object({ instance: z.string(), n: z.number() }))
    .parse(
      await db.all(
        sql`SELECT instance_name AS instance, COUNT(*) AS n FROM messages WHERE ${tenantIs(tenantId)} AND sent_at >= ${since} GROUP BY instance_name`,
      ),
    );
}

const strandedRow = z.object({
  id: z.string(),
  lane_key: z.string(),
  instance_id: z.string(),
  priority: z.number(),
  ready_at: z.number(),
  created_at: z.number(),
});

/** Messages waiting since before threshold whose lane never took them (scheduled, or queued and not
 *  touched since), at most limit: touched now (so the next sweep does not hand them out again at
 *  once) and returned. One statement, no id list: no bound-parameter limit however many there are.
 *  Through messages_active_ready: a queued message was ready before it was last updated. */
export async function takeStranded(db: Db, threshold: number, now: number, limit: number): Promise<z.infer<typeof strandedRow>[]> {
  return z.array(strandedRow).parse(
    await db.all(sql`
    UPDATE messages SET updated_at = ${now} WHERE id IN (
      SELECT id FROM messages
      WHERE ${messageIsActive()} AND status IN ('scheduled', 'queued') AND ready_at < ${threshold}
        AND (status = 'scheduled' OR updated_at < ${threshold})
      ORDER BY ready_at LIMIT ${limit})
    RETURNING id, lane_key, instance_id, priority, ready_at, created_at`),
  );
}

/** The ids takeComingDue takes (exported for its query plan's test). */
export const comingDue = (now: number, horizonMs: number, limit: number): SQL => sql`SELECT id FROM messages
  WHERE ${messageIsActive()} AND status = 'scheduled' AND ready_at <= ${now + horizonMs} AND updated_at < ready_at - ${horizonMs}
  ORDER BY ready_at LIMIT ${limit}`;

/** Scheduled messages kept out of their lanes when written (due more than `horizonMs` after their
 *  last write: accept or reschedule) whose time now comes within the horizon, earliest first, at most
 *  limit: touched now, which hands each over once, and returned. One statement, no id list (no
 *  bound-parameter limit however many there are); through messages_active_ready. */
export async function takeComingDue(db: Db, now: number, horizonMs: number, limit: number): Promise<z.infer<typeof strandedRow>[]> {
  return z.array(strandedRow).parse(
    await db.all(sql`
    UPDATE messages SET updated_at = ${now} WHERE id IN (${comingDue(now, horizonMs, limit)})
    RETURNING id, lane_key, instance_id, priority, ready_at, created_at`),
  );
}

/** Deletes finished messages created and last changed before cutoff. Walked tenant by tenant
 *  (CROSS JOIN keeps tenants outermost) through the tenant indexes: no index keeps (status,
 *  updated_at), which every status change would rewrite. A message is created before it was last
 *  updated. Their dead letters go first (deadLetters.purgeOld). */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(
    db,
    "messages",
    "id",
    sql`SELECT m.id FROM tenants t CROSS JOIN messages m ON m.tenant_id = t.id AND m.created_at < ${cutoff}
    WHERE ${messageIsTerminal("m")} AND m.updated_at < ${cutoff}`,
    limits,
  );
}

/** The message of a provider id, as a scalar subquery (a receipt knows only the provider's id). */
export function messageByProviderId(instanceId: string, providerMessageId: string): SQL {
  return sql`(SELECT id FROM messages WHERE instance_id = ${instanceId} AND provider_message_id = ${providerMessageId})`;
}

// A status change's statements (the transition's UPDATE and the row its message.status event reads);
// src/messages/transitions.ts puts them in one batch with the event.

export type Transition = {
  /** The message's id, or a scalar subquery that finds it (a receipt knows only the provider id). */
  messageId: string | SQL;
  from: readonly MessageStatus[];
  to: MessageStatus;
  at: number;
  attempt?: number;
  detail?: string;
  lastError?: string | null;
  providerMessageId?: string;
  /** Extra condition the UPDATE must meet (e.g. no older message waiting in the lane). */
  where?: SQL;
};

/** A sent message with no delivered/read receipt this long after it went is checked with Evolution. */
export const RECEIPT_CHECK_AFTER_MS = 10 * 60_000;

const stampColumn: Partial<Record<MessageStatus, string>> = {
  sent: "sent_at",
  delivered: "delivered_at",
  read: "read_at",
  failed: "failed_at",
  canceled: "canceled_at",
};

/** One history entry, as appended to messages.history. */
export function historyEntry(e: { status: string; at: number; attempt?: number | null; detail?: string | null }): SQL {
  return sql`json_object('status', ${e.status}, 'at', ${e.at}, 'attempt', ${e.attempt ?? null}, 'detail', ${e.detail ?? null})`;
}

/** A SET clause that appends an entry to the message's history (the row's own JSON array). */
export function appendHistory(e: Parameters<typeof historyEntry>[0]): SQL {
  return sql`history = json_insert(history, '$[#]', ${historyEntry(e)})`;
}

/** The conditional UPDATE of a transition (status, stamps, history); changes() says whether it applied. */
export function transitionUpdate(t: Transition): SQL {
  const sets: SQL[] = [sql`status = ${t.to}`, sql`updated_at = ${t.at}`, appendHistory({ status: t.to, at: t.at, attempt: t.attempt, detail: t.detail })];
  const stamp = stampColumn[t.to];
  if (stamp) sets.push(sql`${sql.raw(stamp)} = COALESCE(${sql.raw(stamp)}, ${t.at})`);
  // A read receipt implies delivery even when DELIVERY_ACK never came.
  if (t.to === "read") sets.push(sql`delivered_at = COALESCE(delivered_at, ${t.at})`);
  if (t.to === "queued") sets.push(sql`ready_at = MAX(ready_at, ${t.at})`);
  // A sent message whose receipts never come is checked with Evolution later (sweep/receipts.ts).
  // Only channels with receipts: a Telegram message ends at `sent` (Telegram gives bots none).
  if (t.to === "sent") sets.push(sql`receipt_check_at = CASE WHEN channel = 'whatsapp' THEN ${t.at + RECEIPT_CHECK_AFTER_MS} END`, sql`receipt_checks = 0`);
  if (t.attempt !== undefined) sets.push(sql`attempts = ${t.attempt}`);
  if (t.lastError !== undefined) sets.push(sql`last_error = ${t.lastError}`);
  if (t.providerMessageId !== undefined) sets.push(sql`provider_message_id = ${t.providerMessageId}`);
  const from = sql.join(
    t.from.map((s) => sql`${s}`),
    sql`, `,
  );
  return sql`UPDATE messages SET ${sql.join(sets, sql`, `)} WHERE id = ${t.messageId} AND status IN (${from}) AND ${t.where ?? sql`1`}`;
}

// The message.status event's values, taken from the row as it now stands, so the event always
// matches what was stored; written by src/outbox/write.ts from the contract.
export function statusEventFromRow(messageId: string | SQL, at: number, attempt: number | undefined, guard: SQL = sql`1`) {
  return {
    tenantId: sql`m.tenant_id`,
    occurredAt: at,
    data: {
      messageId: sql`m.id`,
      instance: sql`m.instance_name`,
      channel: sql`m.channel`,
      to: sql`m."to"`,
      status: sql`m.status`,
      attempt: attempt ?? null,
      error: sql`CASE WHEN m.status = 'failed' OR ${attempt ?? 0} > 0 THEN m.last_error END`,
      providerMessageId: sql`m.provider_message_id`,
      metadata: sql`json(m.metadata)`,
    },
    callbackUrl: sql`COALESCE(m.callback_url, t.callback_url)`,
    source: sql`FROM messages m JOIN tenants t ON t.id = m.tenant_id WHERE m.id = ${messageId} AND ${guard}`,
  };
}

/** The guard of a statement that runs only when the one just before it in the batch changed a row. */
export const changedJustBefore = sql`changes() > 0`;

/** Moves a scheduled message to a new send time (with a history entry); false when it is no longer scheduled. */
export async function reschedule(db: Db, id: string, sendAt: number, now: number, detail: string): Promise<boolean> {
  const moved = await db.run(sql`UPDATE messages SET send_at = ${sendAt}, ready_at = ${sendAt}, updated_at = ${now},
        ${appendHistory({ status: "scheduled", at: now, detail })}
        WHERE id = ${id} AND status = 'scheduled'`);
  return changes(moved) > 0;
}

export type MessageRow = typeof messagesTable.$inferSelect;

/** A tenant's message by id. */
export async function owned(db: Db, tenantId: string, id: string): Promise<MessageRow | undefined> {
  const [row] = await db
    .select()
    .from(messagesTable)
    .where(and(eq(messagesTable.id, id), eq(messagesTable.tenantId, tenantId)));
  return row;
}

/** A tenant's messages, newest first, filtered; limit + 1 rows so the caller knows whether there is
 *  a next page. `before`: the last id seen (ids sort by creation). */
export function page(
  db: Db,
  tenantId: string,
  q: { status?: string; instance?: string; channel?: string; to?: string; since?: number; before?: string; limit: number },
): Promise<MessageRow[]> {
  const where: SQL[] = [eq(messagesTable.tenantId, tenantId)];
  if (q.status) where.push(eq(messagesTable.status, q.status));
  if (q.instance) where.push(eq(messagesTable.instanceName, q.instance));
  if (q.channel) where.push(eq(messagesTable.channel, q.channel));
  if (q.to) where.push(eq(messagesTable.to, q.to));
  if (q.since !== undefined) where.push(gte(messagesTable.createdAt, q.since));
  if (q.before) where.push(lt(messagesTable.id, q.before));
  return db
    .select()
    .from(messagesTable)
    .where(and(...where))
    .orderBy(desc(messagesTable.id))
    .limit(q.limit + 1);
}

export type NewMessage = typeof messagesTable.$inferInsert;

/** Inserts a message unless its id or idempotency key is taken; un-awaited, first of its batch
 *  (its changes() say whether the row is new). */
export function insert(db: Db, row: NewMessage) {
  return db.insert(messagesTable).values(row).onConflictDoNothing();
}

const keyedRow = z.object({
  id: z.string(),
  status: z.string(),
  instance_name: z.string(),
  to: z.string(),
  created_at: z.number(),
  send_at: z.number().nullable(),
  key: z.string(),
  hash: z.string().nullable(),
});

/** A tenant's messages carrying these idempotency keys. */
export async function byIdempotencyKeys(db: Db, tenantId: string, keys: string[]): Promise<z.infer<typeof keyedRow>[]> {
  const rows: z.infer<typeof keyedRow>[] = [];
  for (let i = 0; i < keys.length; i += 50) {
    rows.push(
      ...z.array(keyedRow).parse(
        await db.all(sql`
      SELECT id, status, instance_name, "to", created_at, send_at, idempotency_key AS key, idempotency_hash AS hash FROM messages
      WHERE tenant_id = ${tenantId} AND idempotency_key IN (${sql.join(
        keys.slice(i, i + 50).map((k) => sql`${k}`),
        sql`, `,
      )})`),
      ),
    );
  }
  return rows;
}

const SEND_CONFIRMED = "send.message confirmed by Evolution";

/** The provider handed the message to WhatsApp (its id is already ours from the send's answer): a
 *  history entry, once. */
export function confirmSend(instanceId: string, providerMessageId: string, at: number): SQL {
  return sql`UPDATE messages
      SET history = json_insert(history, '$[#]', json_object('status', status, 'at', ${at}, 'attempt', NULL, 'detail', ${SEND_CONFIRMED}))
      WHERE instance_id = ${instanceId} AND provider_message_id = ${providerMessageId}
        AND NOT EXISTS (SELECT 1 FROM json_each(messages.history) WHERE json_extract(value, '$.detail') = ${SEND_CONFIRMED})`;
}

// A message of a contact lane, as the lane takes it up (lane order: priority, due time, arrival).
const laneMessageRow = z.object({ id: z.string(), instance_id: z.string(), priority: z.number(), ready_at: z.number(), created_at: z.number() });
export type LaneMessage = z.infer<typeof laneMessageRow>;

/** The lane's messages not yet over (scheduled, queued, processing), the earliest due first. */
export async function laneActive(db: Db, laneKey: string, limit: number): Promise<LaneMessage[]> {
  return z.array(laneMessageRow).parse(
    await db.all(sql`SELECT id, instance_id, priority, ready_at, created_at FROM messages
      WHERE lane_key = ${laneKey} AND status IN ('scheduled', 'queued', 'processing') ORDER BY ready_at LIMIT ${limit}`),
  );
}

/** Which of these provider ids another message of the same provider instance (same name, same
 *  Evolution URL) already holds; in pages under D1's 100 bound parameters. */
export async function providerIdsTaken(db: Db, instanceName: string, evolutionUrl: string, exceptId: string, ids: readonly string[]): Promise<Set<string>> {
  const taken = new Set<string>();
  for (let i = 0; i < ids.length; i += 90) {
    const chunk = ids.slice(i, i + 90);
    const rows = z.array(z.object({ p: z.string() })).parse(
      await db.all(sql`SELECT provider_message_id AS p FROM messages
        WHERE instance_id IN (SELECT id FROM instances WHERE name = ${instanceName} AND rtrim(evolution_url, '/') = ${evolutionUrl})
          AND id != ${exceptId} AND provider_message_id IN (${sql.join(
            chunk.map((id) => sql`${id}`),
            sql`, `,
          )})`),
    );
    for (const r of rows) taken.add(r.p);
  }
  return taken;
}

/** A history line for an attempt not over yet, with its last error when there is one; `uncount`
 *  gives the attempt's number back (only if nothing claimed another since). One statement. */
export async function noteAttempt(
  db: Db,
  messageId: string,
  n: { attempt: number; detail: string; at: number; lastError?: string; uncount?: boolean },
): Promise<void> {
  const error = n.lastError === undefined ? sql`` : sql`last_error = ${n.lastError}, updated_at = ${n.at},`;
  const count = n.uncount ? sql`attempts = CASE WHEN attempts = ${n.attempt} THEN ${n.attempt - 1} ELSE attempts END,` : sql``;
  await db.run(
    sql`UPDATE messages SET ${error} ${count} ${appendHistory({ status: "processing", at: n.at, attempt: n.attempt, detail: n.detail })} WHERE id = ${messageId}`,
  );
}

/** A wait note in the history of a message still waiting (queued, or scheduled when due), under its current status. */
export async function noteWait(db: Db, messageId: string, detail: string, at: number): Promise<void> {
  await db.run(sql`UPDATE messages SET history = json_insert(history, '$[#]', json_object('status', status, 'at', ${at}, 'attempt', NULL, 'detail', ${detail}))
        WHERE id = ${messageId} AND status IN ('scheduled', 'queued')`);
}

/** Whom a message goes to and its text's length (media: undefined), for "typing…". */
export async function typingTarget(db: Db, id: string): Promise<{ to: string; textLength: number | undefined } | undefined> {
  const [row] = z
    .array(z.object({ to: z.string(), n: z.number().nullable() }))
    .parse(await db.all(sql`SELECT "to", CASE WHEN media IS NULL THEN length(text) END AS n FROM messages WHERE id = ${id}`));
  return row ? { to: row.to, textLength: row.n ?? undefined } : undefined;
}

type LaneHead = { id: string; priority: number; ready_at: number; created_at: number };

/** Due messages of the lane that come before `head` in lane order (priority, due time, arrival):
 *  queued, or scheduled and due but not yet taken up by the lane (its queue hop was lost). A
 *  subquery, for the claim's guards. The first IN (...) term lets SQLite use messages_lane_active. */
export function olderInLane(laneKey: string, head: LaneHead, now: number): SQL {
  return sql`SELECT id, instance_id, priority, ready_at, created_at FROM messages
    WHERE lane_key = ${laneKey} AND status IN ('scheduled', 'queued', 'processing') AND status IN ('scheduled', 'queued') AND id != ${head.id} AND ready_at <= ${now}
      AND (priority < ${head.priority} OR (priority = ${head.priority} AND (ready_at < ${head.ready_at}
        OR (ready_at = ${head.ready_at} AND (created_at < ${head.created_at} OR (created_at = ${head.created_at} AND id < ${head.id}))))))`;
}

/** The claim's guards: due with nothing older waiting (scheduled → queued), nothing older waiting
 *  (queued → processing), still at the attempt the lane knows of (a retry). */
export const claimGuards = {
  dueAndFirst: (older: SQL, now: number): SQL => sql`ready_at <= ${now} AND NOT EXISTS (${older})`,
  first: (older: SQL): SQL => sql`NOT EXISTS (${older})`,
  atAttempt: (attempts: number): SQL => sql`attempts = ${attempts}`,
};

/** Whether the subquery of olderInLane finds any message. */
export async function anyOlder(db: Db, older: SQL): Promise<boolean> {
  const [row] = z.array(z.object({ waiting: z.number() })).parse(await db.all(sql`SELECT EXISTS (${older}) AS waiting`));
  return (row?.waiting ?? 0) > 0;
}

/** Up to limit of the lane's messages older than head (see olderInLane). */
export async function olderInLanePage(db: Db, laneKey: string, head: LaneHead, now: number, limit: number): Promise<LaneMessage[]> {
  return z.array(laneMessageRow).parse(await db.all(sql`SELECT * FROM (${olderInLane(laneKey, head, now)}) LIMIT ${limit}`));
}

// A message as a contact lane sends it: where it goes now (the chat's new address if it moved)
// and its callback URL (its own, else the tenant's).
const sendRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  to: z.string(),
  address: z.string(),
  text: z.string().nullable(),
  media: z.string().nullable(),
  status: messageStatus,
  attempts: z.number(),
  max_attempts: z.number(),
  ready_at: z.number(),
  updated_at: z.number(),
  callback: z.string().nullable(),
});
export type SendRow = z.infer<typeof sendRow>;

/** The message as a lane sends it; un-awaited, for the claim's batch (parse with sendRowOf). */
export function forSend(id: string): SQL {
  return sql`SELECT id, tenant_id, "to", text, media, status, attempts, max_attempts, ready_at, updated_at,
    COALESCE((SELECT to_chat FROM chat_migrations WHERE instance_id = messages.instance_id AND from_chat = messages."to"), "to") AS address,
    COALESCE(callback_url, (SELECT callback_url FROM tenants WHERE id = messages.tenant_id)) AS callback
    FROM messages WHERE id = ${id}`;
}

/** The row of a forSend batch group, parsed; undefined: no such message. */
export function sendRowOf(group: readonly { results?: unknown[] }[] | undefined): SendRow | undefined {
  const r = group?.[0]?.results?.[0];
  return r === undefined ? undefined : sendRow.parse(r);
}
