// The pending_receipts table: receipts that came before the send they belong to was recorded.
import { type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../client.ts";
import { deleteInPages, type PurgeLimits } from "../purge.ts";
import { messageByProviderId } from "./messages.ts";

/** Deletes receipts parked before cutoff. */
export function purgeOld(db: Db, cutoff: number, limits: PurgeLimits): Promise<number> {
  return deleteInPages(db, "pending_receipts", "rowid", sql`SELECT rowid FROM pending_receipts WHERE at < ${cutoff}`, limits);
}

/** Parks a receipt whose send is not recorded yet (no message has the provider id); un-awaited, last
 *  of the receipt's batch, so exactly one of the transition and the parking happens. */
export function park(instanceId: string, providerMessageId: string, status: string, at: number): SQL {
  return sql`INSERT INTO pending_receipts (instance_id, provider_message_id, status, at)
      SELECT ${instanceId}, ${providerMessageId}, ${status}, ${at} WHERE NOT EXISTS ${messageByProviderId(instanceId, providerMessageId)}
      ON CONFLICT DO NOTHING`;
}

const parkedRow = z.object({ id: z.string(), status: z.enum(["delivered", "read", "failed"]), at: z.number() });

/** The receipts parked for a provider id, with the id of the message that now has it. */
export async function parkedFor(db: Db, instanceId: string, providerMessageId: string): Promise<z.infer<typeof parkedRow>[]> {
  return z.array(parkedRow).parse(
    await db.all(sql`SELECT m.id, p.status, p.at FROM pending_receipts p
      JOIN messages m ON m.instance_id = p.instance_id AND m.provider_message_id = p.provider_message_id
      WHERE p.instance_id = ${instanceId} AND p.provider_message_id = ${providerMessageId}`),
  );
}

/** Drops the receipts parked for a provider id; un-awaited, for the batch that applies them. */
export function clear(instanceId: string, providerMessageId: string): SQL {
  return sql`DELETE FROM pending_receipts WHERE instance_id = ${instanceId} AND provider_message_id = ${providerMessageId}`;
}

/** How many receipts are parked for this provider id; un-awaited, for a batch (read with parkedCountOf). */
export function parkedCount(instanceId: string, providerMessageId: string): SQL {
  return sql`SELECT COUNT(*) AS n FROM pending_receipts WHERE instance_id = ${instanceId} AND provider_message_id = ${providerMessageId}`;
}

export function parkedCountOf(group: readonly { results?: unknown[] }[] | undefined): number {
  const r = group?.[0]?.results?.[0];
  return r === undefined ? 0 : z.object({ n: z.number() }).parse(r).n;
}
