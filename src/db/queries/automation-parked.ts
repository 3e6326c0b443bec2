// The automation_parked table: inbound messages an automation lane set aside.
import { sql, type SQL } from "drizzle-orm";

/** Drops what the instance's automation had parked; un-awaited, for the batch that removes it. */
export function clearInstance(instanceId: string): SQL {
  return sql`DELETE FROM automation_parked WHERE instance_id = ${instanceId}`;
}
