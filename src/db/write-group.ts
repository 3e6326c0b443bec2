// Group commit: concurrent requests of one isolate share one D1 batch. D1 runs one query at a time
// per database and commits each batch on its own; under load most of a small write's time is that
// turn and commit. While one batch is in flight, what the next requests bring waits and then goes
// together. Each request still answers only once its own statements are committed, and a quiet
// isolate writes at once (no timer). A batch that fails is tried again one request at a time, so one
// request's bad statement never fails another's.
import { runBatch, type Statement } from "./batch.ts";
import type { Db } from "./client.ts";

// Statements in one shared batch (a request's own list is never split).
const MAX_STATEMENTS = 200;

type Signal = { promise: Promise<void>; resolve(): void; reject(err: unknown): void };
type Entry = { statements: Statement[]; done: Signal; turn?: Signal };

function signal(): Signal {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class WriteGroup {
  private readonly waiting: Entry[] = [];
  private flying = false;

  /** Commits `statements` as one unit, with whatever other requests write at the same time.
   *  `keepAlive` (the request's waitUntil) keeps a batch this request leads going if its client leaves. */
  async write(db: Db, statements: Statement[], keepAlive?: (work: Promise<unknown>) => void): Promise<void> {
    // Made in this request: a promise settled from another request's batch wakes this one.
    const entry: Entry = { statements, done: signal() };
    this.waiting.push(entry);
    while (this.waiting.includes(entry)) {
      if (this.flying) {
        entry.turn = signal();
        await entry.turn.promise;
        continue;
      }
      const led = this.lead(db);
      keepAlive?.(led);
      await led;
    }
    return entry.done.promise;
  }

  // Runs one batch of what waits, from the request whose turn it is (its I/O belongs to a live request).
  private async lead(db: Db): Promise<void> {
    this.flying = true;
    const group: Entry[] = [];
    let size = 0;
    while (this.waiting[0] && (group.length === 0 || size + this.waiting[0].statements.length <= MAX_STATEMENTS)) {
      const next = this.waiting.shift()!;
      size += next.statements.length;
      group.push(next);
      // A request waiting for its turn is in this batch now: it goes on to wait for the batch.
      next.turn?.resolve();
    }
    try {
      await runBatch(
        db,
        group.flatMap((e) => e.statements),
      );
      for (const e of group) e.done.resolve();
    } catch (err) {
      if (group.length === 1) group[0]!.done.reject(err);
      else
        for (const e of group) {
          await runBatch(db, e.statements).then(
            () => e.done.resolve(),
            (alone: unknown) => e.done.reject(alone),
          );
        }
    } finally {
      this.flying = false;
      // The first still waiting runs the next batch.
      this.waiting[0]?.turn?.resolve();
    }
  }
}
