// Prefer: wait=N — hold the answer until the message is sent or failed, at most N (≤ 30) seconds.
import { eq } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { messages } from "../db/schema.ts";

export const MAX_WAIT_SECONDS = 30;
const finished = new Set(["sent", "delivered", "read", "failed", "canceled"]);

export function preferredWait(prefer: string | undefined): number | undefined {
  const match = /(?:^|[,;\s])wait=(\d+(?:\.\d+)?)/i.exec(prefer ?? "");
  if (!match?.[1]) return undefined;
  return Math.min(MAX_WAIT_SECONDS, Number(match[1]));
}

/** The message's lane (ContactLane.finished): answers once it has recorded the message. */
export type FinishSignal = { finished(messageId: string, waitMs: number): Promise<boolean> };

/** The message once finished, or undefined after `seconds`. With the lane that holds it, the wait
 *  ends when the lane records the outcome; D1 is read then, and polled only if the lane could not
 *  say (it does not hold the message, or the call failed). */
export async function waitUntilFinished(db: Db, id: string, seconds: number, lane?: FinishSignal) {
  const deadline = Date.now() + seconds * 1000;
  if (lane) await lane.finished(id, seconds * 1000).catch(() => false);
  // Short pauses: a lane that has the message at once finishes at the provider's pace.
  let pause = 20;
  for (;;) {
    const [row] = await db.select().from(messages).where(eq(messages.id, id));
    if (row && finished.has(row.status)) return row;
    if (Date.now() + pause > deadline) return undefined;
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(100, pause * 1.5);
  }
}
