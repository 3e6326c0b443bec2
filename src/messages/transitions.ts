// A status change is one D1 batch: the conditional UPDATE (which also appends to the message's
// history) and its outbox event. The event is guarded by changes(), so a transition that does not
// apply (wrong current status: a duplicate, a cancel race, a status going backwards) writes nothing.
import type { SQL } from "drizzle-orm";
import { changes, runBatch } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { messages } from "../db/queries/index.ts";
import { writeEvent } from "../outbox/write.ts";

export type Transition = messages.Transition;
// Callers in lanes/ and routes/messages.ts still take it from here until they call the owner.
export const appendHistory = messages.appendHistory;

export function transitionStatements(t: Transition): SQL[] {
  return [messages.transitionUpdate(t), outboxStatusEvent(t.messageId, t.at, t.attempt, messages.changedJustBefore)];
}

// message.status event built from the row as it now stands, so it always matches what was stored.
export function outboxStatusEvent(messageId: string | SQL, at: number, attempt: number | undefined, guard?: SQL): SQL {
  return writeEvent("message.status", messages.statusEventFromRow(messageId, at, attempt, guard));
}

// Runs one transition; true when it applied.
export async function applyTransition(db: Db, t: Transition): Promise<boolean> {
  const [update] = await runBatch(db, transitionStatements(t));
  return changes(update) > 0;
}
