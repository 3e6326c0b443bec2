// Dead-letter replay: a failed message goes back to its lane with a fresh attempt budget. One path
// for POST /v1/messages/:id/retry and POST /v1/dead-letters/replay.
import { changes, runBatch } from "../db/batch.ts";
import type { Db } from "../db/client.ts";
import { deadLetters } from "../db/queries/index.ts";
import { enqueueJobs } from "./accept.ts";
import { transitionStatements } from "./transitions.ts";

export type Replayable = { id: string; laneKey: string; instanceId: string; priority: number; createdAt: number };

// At most 4 statements a message: 25 messages keep a batch within 100 statements.
const CHUNK = 25;

/** Moves `failed` messages back to `queued` (a history row and a status event each, the dead
 *  letter marked replayed) and hands them to their lanes. All share one due time, so within a
 *  contact the lane sends them in their original order (priority, then arrival), behind what that
 *  contact already has waiting. Returns the ids requeued; the others were no longer failed. */
export async function replayFailed(env: Env, db: Db, rows: Replayable[], detail: string, now = Date.now()): Promise<string[]> {
  const ordered = [...rows].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  const requeued: Replayable[] = [];
  for (let i = 0; i < ordered.length; i += CHUNK) {
    const chunk = ordered.slice(i, i + CHUNK);
    // Each message's statements: its transition (the UPDATE first), then the dead letter's mark.
    const groups = chunk.map((r) => [
      ...transitionStatements({ messageId: r.id, from: ["failed"], to: "queued", at: now, attempt: 0, lastError: null, detail }),
      // changes(): the status event just above went in only when the transition applied.
      deadLetters.markReplayed(r.id, now),
    ]);
    const results = await runBatch(db, groups.flat());
    let offset = 0;
    chunk.forEach((r, k) => {
      if (changes(results[offset]) > 0) requeued.push(r);
      offset += groups[k]?.length ?? 0;
    });
  }
  await enqueueJobs(
    env,
    requeued.map((r) => ({ messageId: r.id, laneKey: r.laneKey, instanceId: r.instanceId, priority: r.priority, readyAt: now, createdAt: r.createdAt })),
  );
  return requeued.map((r) => r.id);
}
