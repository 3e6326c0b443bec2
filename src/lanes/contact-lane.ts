// ContactLane: one per tenant + instance + contact (or group). It holds that contact's pending
// messages in its own SQLite, sends one at a time in order, and uses its single alarm for
// everything that waits: scheduled sendAt, retry backoff, and "work now" after an enqueue.
// D1 stays the record: every dispatch claims the message there first, so a duplicate enqueue,
// a canceled message or a redelivered queue message is never sent twice.
import { DurableObject } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { dispatchCallbacks } from "../callbacks/dispatch.ts";
import { config } from "../config.ts";
import { changes, runBatch } from "../db/batch.ts";
import { database, type Db } from "../db/client.ts";
import type { MediaJson } from "../db/schema.ts";
import { sendThroughEvolution, type EvolutionInstance } from "../evolution/client.ts";
import { applyPendingReceipts } from "../messages/receipts.ts";
import { transitionStatements } from "../messages/transitions.ts";
import { backoffMs } from "./backoff.ts";

export type LaneItem = { messageId: string; priority: number; readyAt: number; createdAt: number; instanceId: string };

type ItemRow = {
  id: string;
  instance_id: string;
  priority: number;
  ready_at: number;
  created_at: number;
  next_at: number;
  started: number;
  attempts: number;
  scheduled: number;
};
type StragglerRow = { id: string; instance_id: string; priority: number; ready_at: number; created_at: number };

// Queued messages of this lane that come before `head` in lane order (priority, due time, arrival).
function olderQueued(laneKey: string, head: ItemRow, now: number) {
  return sql`SELECT id, instance_id, priority, ready_at, created_at FROM messages
    WHERE lane_key = ${laneKey} AND status = 'queued' AND id != ${head.id} AND ready_at <= ${now}
      AND (priority < ${head.priority} OR (priority = ${head.priority} AND (ready_at < ${head.ready_at}
        OR (ready_at = ${head.ready_at} AND (created_at < ${head.created_at} OR (created_at = ${head.created_at} AND id < ${head.id}))))))`;
}

type MessageRow = {
  id: string;
  tenant_id: string;
  instance_id: string;
  to: string;
  text: string | null;
  media: string | null;
  status: string;
  attempts: number;
  max_attempts: number;
  ready_at: number;
  callback: string | null;
};

type InstanceRow = { name: string; evolution_url: string; evolution_api_key: string; rate_per_minute: number };

// One alarm run sends for at most this long, then yields and re-arms, so a long lane cannot starve others.
const DRAIN_BUDGET_MS = 20_000;
const INSTANCE_CACHE_MS = 10_000;
// Done rows are kept this long so a late redelivery of the same message is recognised.
const DONE_RETENTION_MS = 7 * 24 * 3600_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ContactLane extends DurableObject<Env> {
  private readonly db: Db;
  private instanceCache = new Map<string, { at: number; row: InstanceRow | undefined }>();
  // Set when a sent message has a callback URL: only then is callback dispatch worth a D1 read.
  private callbacksWritten = false;
  // Claims that did not apply in this drain, and the pause they cause, so a stuck head cannot spin.
  private missedClaims = 0;
  private pauseUntil = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.db = database(env.DB);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS items (
      id TEXT PRIMARY KEY,
      instance_id TEXT NOT NULL,
      priority INTEGER NOT NULL,
      ready_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      next_at INTEGER NOT NULL DEFAULT 0,
      started INTEGER NOT NULL DEFAULT 0,
      attempts INTEGER NOT NULL DEFAULT 0,
      scheduled INTEGER NOT NULL DEFAULT 0,
      state TEXT NOT NULL DEFAULT 'waiting',
      done_at INTEGER
    )`);
    ctx.storage.sql.exec(`CREATE INDEX IF NOT EXISTS items_order ON items (state, started, priority, ready_at, created_at, id)`);
  }

  /** Adds messages to the lane. A message already waiting is ignored; a done one is taken up again
   *  (a retry after failure): the claim in D1 decides whether it is really sent again. */
  async enqueue(laneKey: string, items: LaneItem[]): Promise<number> {
    // Written once: every storage write delays the lane's next outgoing call (output gate).
    if (this.ctx.storage.kv.get<string>("laneKey") !== laneKey) this.ctx.storage.kv.put("laneKey", laneKey);
    let added = 0;
    for (const item of items) {
      const cursor = this.ctx.storage.sql.exec(
        `INSERT INTO items (id, instance_id, priority, ready_at, created_at, scheduled) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET state = 'waiting', started = 0, attempts = 0, next_at = 0, ready_at = excluded.ready_at,
           scheduled = excluded.scheduled, done_at = NULL
         WHERE items.state = 'done'`,
        item.messageId,
        item.instanceId,
        item.priority,
        item.readyAt,
        item.createdAt,
        // Due later than accepted: it was scheduled, and passes through scheduled → queued when due.
        item.readyAt > item.createdAt ? 1 : 0,
      );
      added += cursor.rowsWritten;
    }
    if (added > 0) await this.rearm();
    return added;
  }

  /** Removes a message that has not started; false when it is in flight or unknown. */
  async cancel(messageId: string): Promise<boolean> {
    const removed = this.ctx.storage.sql.exec(`DELETE FROM items WHERE id = ? AND state = 'waiting' AND started = 0`, messageId).rowsWritten;
    if (removed > 0) await this.rearm();
    return removed > 0;
  }

  /** Moves a waiting message to a new due time and re-arms the alarm. */
  async reschedule(messageId: string, readyAt: number): Promise<boolean> {
    const changed = this.ctx.storage.sql.exec(
      `UPDATE items SET ready_at = ? WHERE id = ? AND state = 'waiting' AND started = 0`,
      readyAt,
      messageId,
    ).rowsWritten;
    if (changed > 0) await this.rearm();
    return changed > 0;
  }

  /** After a restart of the runtime: takes up this lane's pending messages from D1 (a queue hop
   *  may have been lost with the process) and re-arms the alarm. */
  async wake(laneKey: string): Promise<number | null> {
    const pending = await this.db.all<StragglerRow>(sql`SELECT id, instance_id, priority, ready_at, created_at FROM messages
      WHERE lane_key = ${laneKey} AND status IN ('scheduled', 'queued', 'processing')`);
    await this.enqueue(
      laneKey,
      pending.map((p) => ({ messageId: p.id, instanceId: p.instance_id, priority: p.priority, readyAt: p.ready_at, createdAt: p.created_at })),
    );
    await this.ctx.storage.deleteAlarm();
    await this.rearm();
    return this.ctx.storage.getAlarm();
  }

  /** What the lane holds, for tests and operators. */
  async snapshot(): Promise<{ waiting: ItemRow[]; done: number; alarm: number | null }> {
    const waiting = this.ctx.storage.sql
      .exec<ItemRow>(
        `SELECT id, instance_id, priority, ready_at, created_at, next_at, started, attempts, scheduled FROM items WHERE state = 'waiting' ORDER BY started DESC, priority, ready_at, created_at, id`,
      )
      .toArray();
    const done = this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM items WHERE state = 'done'`).one().n;
    return { waiting, done, alarm: await this.ctx.storage.getAlarm() };
  }

  override async alarm(): Promise<void> {
    try {
      await this.drain();
    } finally {
      // Events with a callback URL were written: hand them out now rather than at the next cron.
      if (this.callbacksWritten) {
        this.callbacksWritten = false;
        this.ctx.waitUntil(
          dispatchCallbacks(this.env).catch((err) => console.error(JSON.stringify({ level: "warn", msg: "callback dispatch failed", error: String(err) }))),
        );
      }
      this.ctx.storage.sql.exec(`DELETE FROM items WHERE state = 'done' AND done_at < ?`, Date.now() - DONE_RETENTION_MS);
      await this.rearm();
    }
  }

  private async drain(): Promise<void> {
    const stopAt = Date.now() + DRAIN_BUDGET_MS;
    this.missedClaims = 0;
    while (Date.now() < stopAt) {
      if (this.missedClaims >= 3) {
        this.pauseUntil = Date.now() + 1000;
        return;
      }
      const now = Date.now();
      const head = this.head(now);
      if (!head || head.next_at > now) return;
      await this.dispatch(head);
    }
  }

  // Started (retrying) first: a retry holds the head of the line. Then priority, due time, arrival.
  private head(now: number): ItemRow | undefined {
    return this.ctx.storage.sql
      .exec<ItemRow>(
        `SELECT id, instance_id, priority, ready_at, created_at, next_at, started, attempts, scheduled FROM items
         WHERE state = 'waiting' AND (started = 1 OR ready_at <= ?)
         ORDER BY started DESC, priority, ready_at, created_at, id LIMIT 1`,
        now,
      )
      .toArray()[0];
  }

  private markDone(id: string) {
    this.ctx.storage.sql.exec(`UPDATE items SET state = 'done', done_at = ? WHERE id = ?`, Date.now(), id);
  }

  private async dispatch(head: ItemRow): Promise<void> {
    const laneKey = this.ctx.storage.kv.get<string>("laneKey") ?? "";
    const instance = await this.instance(head.instance_id);
    if (instance) {
      // Pacing: wait for this instance's next send slot (a reservation, so lanes take turns).
      const wait = await this.env.GOVERNORS.get(this.env.GOVERNORS.idFromName(head.instance_id)).reserve(instance.rate_per_minute);
      if (wait > 0) await sleep(wait);
    }
    const now = Date.now();
    const attempt = head.attempts + 1;
    // The queue may deliver a contact's messages out of order: the claim only succeeds when no
    // older queued message of this lane exists; one that does is pulled into the lane first.
    const older = olderQueued(laneKey, head, now);
    const claim =
      head.started === 0 && head.scheduled === 1
        ? [
            ...transitionStatements({
              messageId: head.id,
              from: ["scheduled"],
              to: "queued",
              at: now,
              detail: "due",
              where: sql`ready_at <= ${now} AND NOT EXISTS (${older})`,
            }),
            ...transitionStatements({ messageId: head.id, from: ["queued"], to: "processing", at: now, attempt, where: sql`NOT EXISTS (${older})` }),
          ]
        : head.started === 0
          ? transitionStatements({ messageId: head.id, from: ["queued"], to: "processing", at: now, attempt, where: sql`NOT EXISTS (${older})` })
          : transitionStatements({ messageId: head.id, from: ["processing"], to: "processing", at: now, attempt });
    const results = await runBatch(this.db, [
      sql`SELECT id, tenant_id, instance_id, "to", text, media, status, attempts, max_attempts, ready_at,
        COALESCE(callback_url, (SELECT callback_url FROM tenants WHERE id = messages.tenant_id)) AS callback
        FROM messages WHERE id = ${head.id}`,
      ...claim,
    ]);
    const row = results[0]?.results[0] as MessageRow | undefined;
    // The last transition's UPDATE says whether the claim applied.
    const claimed = changes(results[results.length - 2]) > 0;
    if (!claimed || !row) {
      const stragglers = head.started === 0 ? await this.db.all<StragglerRow>(sql`SELECT * FROM (${older}) LIMIT 50`) : [];
      return this.unclaimed(head, laneKey, row, stragglers);
    }
    if (row.callback) this.callbacksWritten = true;
    if (!instance) {
      await this.fail(row, attempt, "Instance no longer exists.", now);
      return this.markDone(head.id);
    }

    const evolution: EvolutionInstance = { name: instance.name, url: instance.evolution_url, apiKey: instance.evolution_api_key };
    const media = row.media ? (JSON.parse(row.media) as MediaJson) : null;
    // No storage write between the claim and this call: a DO's outgoing fetch waits for its pending
    // writes to be confirmed (the output gate). D1 already says `processing`, which is what a lane
    // that restarts mid-send goes by (see unclaimed()).
    const outcome = await sendThroughEvolution(evolution, { to: row.to, text: row.text, media }, config(this.env).EVOLUTION_TIMEOUT_MS);
    const at = Date.now();
    this.ctx.storage.sql.exec(`UPDATE items SET started = 1, attempts = ? WHERE id = ?`, attempt, head.id);

    if (outcome.kind === "sent") {
      const sent = await runBatch(this.db, [
        ...transitionStatements({
          messageId: head.id,
          from: ["processing"],
          to: "sent",
          at,
          attempt,
          lastError: null,
          providerMessageId: outcome.providerMessageId,
        }),
        sql`SELECT COUNT(*) AS n FROM pending_receipts WHERE instance_id = ${head.instance_id} AND provider_message_id = ${outcome.providerMessageId}`,
      ]);
      // A receipt that raced ahead of this record was parked; apply it now.
      if (Number((sent[2]?.results[0] as { n?: number } | undefined)?.n ?? 0) > 0)
        await applyPendingReceipts(this.db, head.instance_id, outcome.providerMessageId);
      return this.markDone(head.id);
    }
    if (outcome.kind === "permanent" || attempt >= row.max_attempts) {
      const why = outcome.kind === "permanent" ? outcome.error : `${outcome.error} (gave up after ${attempt} attempts)`;
      await this.fail(row, attempt, why, at);
      return this.markDone(head.id);
    }
    const delay = Math.max(backoffMs(attempt, config(this.env).RETRY_BASE_MS), outcome.retryAfterMs ?? 0);
    await runBatch(this.db, [
      sql`UPDATE messages SET last_error = ${outcome.error}, updated_at = ${at} WHERE id = ${head.id}`,
      sql`INSERT INTO message_history (message_id, status, at, attempt, detail)
        VALUES (${head.id}, 'processing', ${at}, ${attempt}, ${`retry in ${delay} ms: ${outcome.error}`})`,
    ]);
    this.ctx.storage.sql.exec(`UPDATE items SET next_at = ? WHERE id = ?`, at + delay, head.id);
  }

  // Why a claim did not apply, and what the lane does about it.
  private async unclaimed(head: ItemRow, laneKey: string, row: MessageRow | undefined, stragglers: StragglerRow[]): Promise<void> {
    if (stragglers.length > 0 && head.started === 0) {
      const added = await this.enqueue(
        laneKey,
        stragglers.map((s) => ({ messageId: s.id, instanceId: s.instance_id, priority: s.priority, readyAt: s.ready_at, createdAt: s.created_at })),
      );
      if (added > 0) return;
    }
    // D1 holds the due time: a reschedule that reached D1 but not this lane still counts.
    if (row?.status === "scheduled" && row.ready_at > Date.now()) {
      this.ctx.storage.sql.exec(`UPDATE items SET ready_at = ? WHERE id = ?`, row.ready_at, head.id);
      return;
    }
    // Still scheduled in D1 (e.g. taken up again after a retry): claim it through scheduled next time.
    if (row?.status === "scheduled" && head.scheduled === 0) {
      this.ctx.storage.sql.exec(`UPDATE items SET scheduled = 1 WHERE id = ?`, head.id);
      return;
    }
    // Claimed earlier, but the lane stopped before it noted so: carry on as a retry.
    if (row?.status === "processing" && head.started === 0) {
      this.ctx.storage.sql.exec(`UPDATE items SET started = 1, attempts = ? WHERE id = ?`, row.attempts, head.id);
      return;
    }
    // Still ours but not claimable this instant (an older message came and went): keep its place
    // in line and let the drain try again; after a few misses it pauses (see drain()).
    if (row && ["scheduled", "queued"].includes(row.status)) {
      this.missedClaims++;
      return;
    }
    // Sent, failed, canceled or gone: not ours to send.
    this.markDone(head.id);
  }

  private async fail(row: MessageRow, attempt: number, error: string, at: number) {
    await runBatch(this.db, [
      ...transitionStatements({ messageId: row.id, from: ["processing"], to: "failed", at, attempt, lastError: error, detail: error }),
      sql`INSERT OR REPLACE INTO dead_letters (message_id, tenant_id, attempts, error, at) VALUES (${row.id}, ${row.tenant_id}, ${attempt}, ${error}, ${at})`,
    ]);
  }

  private async instance(id: string): Promise<InstanceRow | undefined> {
    const hit = this.instanceCache.get(id);
    if (hit && Date.now() - hit.at < INSTANCE_CACHE_MS) return hit.row;
    const [row] = await this.db.all<InstanceRow>(sql`SELECT name, evolution_url, evolution_api_key, rate_per_minute FROM instances WHERE id = ${id}`);
    this.instanceCache.set(id, { at: Date.now(), row });
    return row;
  }

  // The alarm always points at the earliest thing due: a retrying head's next try, else the
  // earliest due waiting message. No work: no alarm.
  private async rearm(): Promise<void> {
    const started = this.ctx.storage.sql.exec<{ next_at: number }>(`SELECT next_at FROM items WHERE state = 'waiting' AND started = 1 LIMIT 1`).toArray()[0];
    const next = started
      ? started.next_at
      : this.ctx.storage.sql.exec<{ due: number | null }>(`SELECT MIN(ready_at) AS due FROM items WHERE state = 'waiting'`).one().due;
    if (next === null || next === undefined) {
      await this.ctx.storage.deleteAlarm();
      return;
    }
    const at = Math.max(next, Date.now(), this.pauseUntil);
    await this.ctx.storage.setAlarm(at);
  }
}
