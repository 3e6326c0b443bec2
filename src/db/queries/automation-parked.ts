// The automation_parked table: automation lanes waiting for their instance's paused breaker, woken
// together when a probe succeeds.
import { eq } from "drizzle-orm";
import type { Db } from "../client.ts";
import { automationParked } from "../schema.ts";

/** Registers a lane as waiting; registering it again changes nothing. */
export async function register(db: Db, instanceId: string, laneKey: string): Promise<void> {
  await db.insert(automationParked).values({ instanceId, laneKey }).onConflictDoNothing();
}

/** The lanes waiting on the instance, no longer registered once returned. */
export async function takeAll(db: Db, instanceId: string): Promise<string[]> {
  const rows = await db.delete(automationParked).where(eq(automationParked.instanceId, instanceId)).returning({ laneKey: automationParked.laneKey });
  return rows.map((r) => r.laneKey);
}

/** Forgets the instance's waiting lanes (its automation was removed); un-awaited, to batch. */
export function forget(db: Db, instanceId: string) {
  return db.delete(automationParked).where(eq(automationParked.instanceId, instanceId));
}
