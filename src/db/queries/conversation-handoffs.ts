// The conversation_handoffs table (the human phases under way, one row per contact handed to a
// person) and its timeline, handoff_changes (every change). src/automation/handoff.ts decides the
// changes and writes their conversation.handoff events in the same batch.
import { type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";

const handoffRow = z.object({ reason: z.string().nullable(), by: z.string(), since: z.number(), until: z.number().nullable() });
export type HandoffRow = z.infer<typeof handoffRow>;

/** Human now: a hand-off row whose until (if any) has not passed. The alarm that hands back at
 *  until only writes the record and the event; the hand-back itself takes effect at until. */
export function isHuman(instanceId: SQL | string, contact: SQL | string, now: number): SQL {
  return sql`EXISTS (SELECT 1 FROM conversation_handoffs h WHERE h.instance_id = ${instanceId} AND h.contact = ${contact}
    AND (h.until IS NULL OR h.until > ${now}))`;
}

/** The contact's hand-off row, whatever its until; un-awaited, for a batch (parse with parseRow). */
export function rowStatement(instanceId: string, contact: string): SQL {
  return sql`SELECT reason, by, since, until FROM conversation_handoffs WHERE instance_id = ${instanceId} AND contact = ${contact}`;
}

export const parseRow = (r: unknown): HandoffRow => handoffRow.parse(r);

/** The contact's hand-off row, whatever its until. */
export async function rowOf(db: Db, instanceId: string, contact: string): Promise<HandoffRow | undefined> {
  const [row] = z.array(handoffRow).parse(await db.all(rowStatement(instanceId, contact)));
  return row;
}

/** The channel of the instance, for a conversation.handoff event. */
export function channelOf(instanceId: string): SQL {
  return sql`(SELECT channel FROM instances WHERE id = ${instanceId})`;
}

export type Change = { tenantId: string; instanceId: string; instanceName: string; contact: string };

/** The source of a take-over's event: written only when the change is new. */
export function newChangeSource(changeId: string): SQL {
  return sql`WHERE NOT EXISTS (SELECT 1 FROM handoff_changes WHERE id = ${changeId})`;
}

/** A take-over: its timeline entry (once per changeId), then the row (since kept when already human;
 *  a row whose until has passed, its alarm not yet run, starts a new phase). Un-awaited, after its event. */
export function takeOver(c: Change, input: { changeId: string; reason: string | null; until: number | null; by: string; now: number }): SQL[] {
  const { changeId, reason, until, by, now } = input;
  return [
    sql`INSERT INTO handoff_changes (id, tenant_id, instance_id, instance_name, contact, state, reason, by, at)
      VALUES (${changeId}, ${c.tenantId}, ${c.instanceId}, ${c.instanceName}, ${c.contact}, 'human', ${reason}, ${by}, ${now})
      ON CONFLICT (id) DO NOTHING`,
    sql`INSERT INTO conversation_handoffs (instance_id, contact, tenant_id, reason, by, since, until, updated_at)
      VALUES (${c.instanceId}, ${c.contact}, ${c.tenantId}, ${reason}, ${by}, ${now}, ${until}, ${now})
      ON CONFLICT (instance_id, contact) DO UPDATE SET reason = excluded.reason, by = excluded.by, until = excluded.until,
        since = CASE WHEN conversation_handoffs.until IS NOT NULL AND conversation_handoffs.until <= ${now} THEN excluded.since
          ELSE conversation_handoffs.since END,
        updated_at = excluded.updated_at`,
  ];
}

/** The phase a hand-back ends: the contact's row, or for a timeout only the phase whose until it is. */
function phase(c: Change, now: number, until: number | undefined): SQL {
  return until === undefined
    ? sql`instance_id = ${c.instanceId} AND contact = ${c.contact}`
    : sql`instance_id = ${c.instanceId} AND contact = ${c.contact} AND until = ${until} AND until <= ${now}`;
}

/** The source of a hand-back's event: written only when the contact is handed off (in that phase). */
export function handBackSource(c: Change, now: number, until: number | undefined): SQL {
  return sql`FROM conversation_handoffs WHERE ${phase(c, now, until)}`;
}

/** A hand-back: its timeline entry and the row's removal, both only when the contact is handed off
 *  (in that phase). Un-awaited, after its event. */
export function handBack(c: Change, input: { changeId: string; by: string; now: number; until?: number }): SQL[] {
  const { changeId, by, now } = input;
  const where = phase(c, now, input.until);
  return [
    sql`INSERT INTO handoff_changes (id, tenant_id, instance_id, instance_name, contact, state, reason, by, at)
      SELECT ${changeId}, ${c.tenantId}, ${c.instanceId}, ${c.instanceName}, ${c.contact}, 'bot', NULL, ${by}, ${now}
      FROM conversation_handoffs WHERE ${where}`,
    sql`DELETE FROM conversation_handoffs WHERE ${where}`,
  ];
}

const overdueRow = z.object({ instance_id: z.string(), contact: z.string(), tenant_id: z.string(), until: z.number(), name: z.string() });

/** Hand-offs whose until passed before `before` (through conversation_handoffs_until), with their instance's name. */
export async function overdue(db: Db, before: number, limit: number): Promise<z.infer<typeof overdueRow>[]> {
  return z.array(overdueRow).parse(
    await db.all(sql`
    SELECT h.instance_id, h.contact, h.tenant_id, h.until, n.name FROM conversation_handoffs h JOIN instances n ON n.id = h.instance_id
    WHERE h.until < ${before} LIMIT ${limit}`),
  );
}
