// AutomationLane: one per tenant + instance + contact (or group). It holds that contact's inbound
// messages waiting for the tenant's handler in its own SQLite (written before the webhook job is
// acked), calls the handler one batch at a time in Evolution's timestamp order, and uses its single
// alarm for everything that waits: debounce, retry backoff, a paused breaker's probe, the end of a
// hand-off to a person (handoff.ts). Each of those due times is stored (the waits table) where it is
// decided, and the alarm is set from the earliest stored one: a run cut off before it armed the
// alarm loses no wait, the next start arms it. While the contact is with a person it calls nothing new.
// D1 keeps the record (automation_deliveries: delivered, dead letters); the breaker is the
// instance's D1 row, shared by all its lanes (breaker.ts).
import { DurableObject } from "cloudflare:workers";
import type { Tenant } from "../app-env.ts";
import { dispatchInBackground } from "../callbacks/dispatch.ts";
import { config as appConfig } from "../config.ts";
import type { SendMessageRequest } from "../contracts/messages.ts";
import type { SendJob } from "../contracts/send-job.ts";
import { applied, firstRow, runNamed, type Statement } from "../db/batch.ts";
import { database, type Db } from "../db/client.ts";
import { automationDeliveries, automationParked, automations, inboundMessages, tenants } from "../db/queries/index.ts";
import { z } from "zod";
import { backoffMs } from "../lanes/backoff.ts";
import { errorField, log } from "../observability/log.ts";
import { newId } from "../ids.ts";
import { writeEvent } from "../outbox/write.ts";
import { enqueueJobs, idempotencyHashOf, insertStatements, type Prepared, prepareMessage } from "../messages/accept.ts";
import { providerFor } from "../providers/registry.ts";
import { claimProbe, failureStatements, successStatements } from "./breaker.ts";
import { type AutomationConfig, automationLane, automationOf, automationStatement, loadAutomation } from "./config.ts";
import { callHandler, type ConversationRow, conversationFrom, conversationStatement, type InboundView, type LaneInfo } from "./handler.ts";
import { type Conversation, handBackStatements, type HandoffRow, handoffStatement, takeOverStatements } from "./handoff.ts";
import {
  type Answer,
  afterFailure,
  answered,
  attempting,
  type BatchRow,
  batchOf,
  formed,
  type ItemState,
  itemStates,
  MAX_BATCH,
  nextBatch,
  rowOf,
  type StoredBatch,
  type WaitKind,
  waitKinds,
  waitsHere,
} from "./lane-machine.ts";
import { TtlCache } from "../ttl-cache.ts";

export type OfferedItem = { id: string; ts: number; message: InboundView };

// One alarm run calls for at most this long, then yields and re-arms.
const DRAIN_BUDGET_MS = 20_000;
// Done ids are kept this long so a late duplicate of the same inbound message is recognised.
const DONE_RETENTION_MS = 7 * 24 * 3600_000;
const TENANT_CACHE_MS = 60_000;
// An unexpected error in a run (D1 down): try again after this long.
const ERROR_RETRY_MS = 5_000;

// A stored wait's row. conversation: the hand-off's (the contact handed back at due), else null.
type WaitRow = { id: number; kind: WaitKind; due: number; conversation: string | null };

export class AutomationLane extends DurableObject<Env> {
  private readonly db: Db;
  private draining = false;
  // The pause this lane already registered itself for (automation_parked), to write it once.
  private parkedFor: number | null = null;
  // When the current call was made (for the answered log line; unknown after a restart).
  private calledAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.db = database(env.DB);
    const exec = <T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]) => ctx.storage.sql.exec<T>(query, ...bindings);
    const STATES = itemStates.map((s) => `'${s}'`).join(", ");
    const table = (name: string) => `CREATE TABLE ${name} (
      id TEXT PRIMARY KEY,
      ts INTEGER NOT NULL,
      seq INTEGER NOT NULL,
      arrived_at INTEGER NOT NULL,
      message TEXT NOT NULL,
      state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN (${STATES})),
      done_at INTEGER
    )`;
    const existing = exec<{ sql: string }>(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'`).toArray()[0];
    if (!existing) exec(table("items"));
    else if (!existing.sql.includes("CHECK")) {
      // Lanes made before the CHECK on state (SQLite adds none to a table): rebuilt once, in one
      // transaction; a state outside the machine's (none was ever written) waits again.
      ctx.storage.transactionSync(() => {
        exec(`DROP INDEX IF EXISTS items_order`);
        exec(table("items_checked"));
        exec(`INSERT INTO items_checked (id, ts, seq, arrived_at, message, state, done_at)
          SELECT id, ts, seq, arrived_at, message, CASE WHEN state IN (${STATES}) THEN state ELSE 'pending' END, done_at FROM items`);
        exec(`DROP TABLE items`);
        exec(`ALTER TABLE items_checked RENAME TO items`);
      });
    }
    ctx.storage.sql.exec(`CREATE INDEX IF NOT EXISTS items_order ON items (state, ts, seq)`);
    // At most one row: the batch being called (and retried) now. webhook_id: the calls' webhook-id,
    // the same on every retry of this batch, new for the next one (a replayed dead letter included).
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS batch (
      id TEXT PRIMARY KEY,
      item_ids TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_at INTEGER NOT NULL DEFAULT 0,
      last_error TEXT,
      answer TEXT,
      webhook_id TEXT
    )`);
    // Lanes made before the column: added once.
    const columns = ctx.storage.sql.exec<{ name: string }>(`PRAGMA table_info(batch)`).toArray();
    if (!columns.some((c) => c.name === "webhook_id")) ctx.storage.sql.exec(`ALTER TABLE batch ADD COLUMN webhook_id TEXT`);
    // What the lane waits for, one row a kind (lane-machine.ts), each with its due time. A wait
    // stored again gets a new id (AUTOINCREMENT never reuses one): a run keeps what came meanwhile.
    if (!exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'waits'`).toArray().length) {
      // Lanes made before it keep a retry in the batch row and a hand-off's end apart: moved in
      // once, in one transaction. A debounce or probe they wait for is stored by their next run.
      ctx.storage.transactionSync(() => {
        exec(`CREATE TABLE waits (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          kind TEXT NOT NULL UNIQUE CHECK (kind IN (${waitKinds.map((k) => `'${k}'`).join(", ")})),
          due INTEGER NOT NULL,
          conversation TEXT,
          CHECK ((kind = 'handoff') = (conversation IS NOT NULL))
        )`);
        exec(`INSERT INTO waits (kind, due) SELECT 'retry', next_at FROM batch WHERE next_at > 0 AND answer IS NULL`);
        const timer = ctx.storage.kv.get<{ conversation: Conversation; at: number }>("handoff");
        if (timer) {
          exec(`INSERT INTO waits (kind, due, conversation) VALUES ('handoff', ?, ?)`, timer.at, JSON.stringify(timer.conversation));
          ctx.storage.kv.delete("handoff");
        }
      });
    }
    // A wait stored by a run that ended before it armed the alarm (a crash, an eviction): armed now.
    void ctx.blockConcurrencyWhile(async () => {
      const due = this.earliestWait();
      const alarm = await ctx.storage.getAlarm();
      if (due !== null && (alarm === null || alarm > due)) await ctx.storage.setAlarm(due);
    });
  }

  private info(): LaneInfo | undefined {
    return this.ctx.storage.kv.get<LaneInfo>("info");
  }

  /** Adds inbound messages; ids already known (a duplicate webhook) change nothing. Returns how many were new. */
  async offer(info: LaneInfo, items: OfferedItem[]): Promise<number> {
    const known = this.info();
    if (!known || known.replyTo !== info.replyTo) this.ctx.storage.kv.put("info", info);
    const now = Date.now();
    let added = 0;
    for (const item of items) {
      added += this.ctx.storage.sql.exec(
        `INSERT INTO items (id, ts, seq, arrived_at, message) VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM items), ?, ?)
         ON CONFLICT (id) DO NOTHING`,
        item.id,
        item.ts,
        now,
        JSON.stringify(item.message),
      ).rowsWritten;
    }
    if (added > 0) await this.poke();
    return added;
  }

  /** A dead letter sent again: back in line (by its timestamp), attempts from zero. True when it
   *  waits here now (also when an earlier replay already put it back). */
  async replay(info: LaneInfo, item: OfferedItem): Promise<boolean> {
    if (!this.info()) this.ctx.storage.kv.put("info", info);
    const changed = this.ctx.storage.sql.exec(
      `INSERT INTO items (id, ts, seq, arrived_at, message) VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM items), ?, ?)
       ON CONFLICT (id) DO UPDATE SET state = 'pending', done_at = NULL, arrived_at = excluded.arrived_at WHERE items.state = 'dead'`,
      item.id,
      item.ts,
      Date.now(),
      JSON.stringify(item.message),
    ).rowsWritten;
    if (changed > 0) await this.poke();
    const [row] = this.ctx.storage.sql.exec<{ state: string }>(`SELECT state FROM items WHERE id = ?`, item.id).toArray();
    return waitsHere(row?.state as ItemState | undefined);
  }

  /** Run now: the breaker resumed, the automation was re-enabled, or the runtime restarted. */
  async kick(): Promise<void> {
    await this.poke();
  }

  /** Test seam: every stored wait (a retry, a debounce, a probe, a hand-off's end) is due now; the
   *  alarm is left where it is for the test to run (time passes without sleeping). Returns whether
   *  one was waiting. */
  async endWaits(): Promise<boolean> {
    const now = Date.now();
    this.ctx.storage.sql.exec(`UPDATE batch SET next_at = 0 WHERE next_at != 0`);
    return this.ctx.storage.sql.exec(`UPDATE waits SET due = ? WHERE due > ?`, now, now).rowsWritten > 0;
  }

  /** Test seam: the lane as a run cut off right after its D1 batch leaves it: the messages answered
   *  last are batched again with the handler's `answer` kept, for the next run to finish. Returns their ids. */
  async cutOffAfterAnswer(answer: Answer): Promise<string[]> {
    const last = this.ctx.storage.sql.exec<{ at: number | null }>(`SELECT MAX(done_at) AS at FROM items WHERE state = 'done'`).one().at;
    const ids = this.ctx.storage.sql
      .exec<{ id: string }>(`SELECT id FROM items WHERE state = 'done' AND done_at = ? ORDER BY ts, seq`, last)
      .toArray()
      .map((r) => r.id);
    if (ids.length === 0) return [];
    for (const id of ids) this.settle(["done"], "batched", null, id);
    this.writeBatch(answered({ ...formed(ids, newId("call")), attempts: answer.attempts }, answer));
    return ids;
  }

  /** What the lane holds, for tests and operators: `waits` explain `alarm` (the earliest due). */
  async snapshot(): Promise<{
    pending: string[];
    batch: BatchRow | null;
    done: number;
    dead: number;
    waits: { kind: WaitKind; due: number }[];
    alarm: number | null;
  }> {
    const pending = this.ctx.storage.sql
      .exec<{ id: string }>(`SELECT id FROM items WHERE state IN ('pending', 'batched') ORDER BY ts, seq`)
      .toArray()
      .map((r) => r.id);
    const batch = this.ctx.storage.sql.exec<BatchRow>(`SELECT * FROM batch`).toArray()[0] ?? null;
    const count = (state: string) => this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM items WHERE state = ?`, state).one().n;
    const waits = this.ctx.storage.sql.exec<{ kind: WaitKind; due: number }>(`SELECT kind, due FROM waits ORDER BY due, kind`).toArray();
    return { pending, batch, done: count("done"), dead: count("dead"), waits, alarm: await this.ctx.storage.getAlarm() };
  }

  /** The contact was handed to a person until `until`: hand it back then. */
  async armHandoff(conversation: Conversation, until: number): Promise<void> {
    this.storeWait("handoff", until, conversation);
    // A run under way arms the alarm as it ends.
    if (!this.draining) await this.rearm();
  }

  // The hand-off's end is due: D1's row says whether this phase still ends now (an operator may have
  // handed back already, or taken over again with another until).
  private async expireHandoff(): Promise<void> {
    const timer = this.ctx.storage.sql.exec<WaitRow>(`SELECT id, kind, due, conversation FROM waits WHERE kind = 'handoff'`).toArray()[0];
    const now = Date.now();
    if (!timer?.conversation || timer.due > now) return;
    const conversation = JSON.parse(timer.conversation) as Conversation;
    const [row] = await this.db.all<HandoffRow>(handoffStatement(conversation.instanceId, conversation.contact));
    let changed = false;
    let later: number | null = null;
    if (row?.until != null && row.until > now) later = row.until;
    else if (row?.until != null) {
      // Its first statement is the hand-back's event: written only when the hand-off really ended.
      const r = await runNamed(this.db, { handBack: handBackStatements(conversation, { by: "timeout", now, until: row.until }) });
      changed = applied(r.handBack);
    }
    // Unless an armHandoff came in meanwhile (stored again, with a new id).
    const current = this.ctx.storage.sql.exec<{ id: number }>(`SELECT id FROM waits WHERE kind = 'handoff'`).toArray()[0];
    if (current?.id === timer.id) this.storeWait("handoff", later, conversation);
    if (changed) {
      log("info", "hand-off timed out; the contact is back with the handler", { instance: conversation.instanceName, contact: conversation.contact });
      this.dispatchEvents();
    }
  }

  // The contact is with a person: what waits here is recorded as `human` (the handler's context
  // after the hand-back), never called.
  private async holdForPerson(info: LaneInfo): Promise<void> {
    const ids = this.ctx.storage.sql
      .exec<{ id: string }>(`SELECT id FROM items WHERE state = 'pending'`)
      .toArray()
      .map((r) => r.id);
    const now = Date.now();
    await automationDeliveries.markHuman(this.db, ids, now);
    for (const id of ids) this.settle(["pending"], "done", now, id);
    log("info", "contact is with a person; inbound messages kept as context", { laneKey: info.laneKey, held: ids.length });
  }

  // A run is wanted now: stored first, so it survives the lane's end before the alarm fires.
  private async poke(): Promise<void> {
    this.storeWait("run", Date.now());
    // A run under way keeps this wait (it is newer than what the run serves) and arms it as it ends.
    if (!this.draining) await this.rearm();
  }

  override async alarm(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const startedAt = Date.now();
    // The waits this run serves: those due as it starts. One stored meanwhile (a new message, the
    // run's own next step) has a newer id and stays. A run cut off keeps them all for the next start.
    const served = this.ctx.storage.sql.exec<{ id: number }>(`SELECT COALESCE(MAX(id), 0) AS id FROM waits`).one().id;
    try {
      await this.expireHandoff();
      await this.drain();
      this.ctx.storage.sql.exec(`DELETE FROM waits WHERE id <= ? AND due <= ?`, served, startedAt);
    } catch (err) {
      log("error", "automation lane run failed; retrying", { laneKey: this.info()?.laneKey, error: errorField(err) });
      // D1 down, say: what this run served (a hand-off's end included) waits a little, and a run
      // follows even when nothing was due (an alarm set before the waits were stored).
      const retryAt = Date.now() + ERROR_RETRY_MS;
      this.ctx.storage.sql.exec(`UPDATE waits SET due = ? WHERE id <= ? AND due <= ?`, retryAt, served, startedAt);
      this.ctx.storage.sql.exec(`INSERT INTO waits (kind, due) VALUES ('run', ?) ON CONFLICT (kind) DO NOTHING`, retryAt);
    } finally {
      this.draining = false;
      this.ctx.storage.sql.exec(`DELETE FROM items WHERE state IN ('done', 'dropped') AND done_at < ?`, Date.now() - DONE_RETENTION_MS);
      await this.rearm();
    }
  }

  // The one place the alarm is set: the earliest stored wait; none stored, no alarm.
  private async rearm(): Promise<void> {
    const at = this.earliestWait();
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }

  private earliestWait(): number | null {
    return this.ctx.storage.sql.exec<{ due: number | null }>(`SELECT MIN(due) AS due FROM waits`).one().due;
  }

  // The one place a wait is stored: its due time, or none (null). Stored again, it gets a new id.
  // A due time that depends on the automation's settings (debounce, breaker) is computed from them
  // as read then; a setting changed later applies from the next time it is computed.
  private storeWait(kind: WaitKind, due: number | null, conversation?: Conversation): void {
    this.ctx.storage.sql.exec(`DELETE FROM waits WHERE kind = ?`, kind);
    if (due === null) return;
    this.ctx.storage.sql.exec(`INSERT INTO waits (kind, due, conversation) VALUES (?, ?, ?)`, kind, due, conversation ? JSON.stringify(conversation) : null);
  }

  private storedDue(kind: WaitKind): number | null {
    return this.ctx.storage.sql.exec<{ due: number }>(`SELECT due FROM waits WHERE kind = ?`, kind).toArray()[0]?.due ?? null;
  }

  // What the run waits for next besides a retry (stored with the batch) and a hand-off's end: the
  // debounce's end, the breaker's probe, or neither.
  private waitNext(kind: "debounce" | "probe" | null, due: number | null = null): void {
    this.storeWait("debounce", kind === "debounce" ? due : null);
    this.storeWait("probe", kind === "probe" ? due : null);
  }

  /** Calls while something is due, then stores what it waits for next. */
  private async drain(): Promise<void> {
    const info = this.info();
    if (!info) return;
    const stopAt = Date.now() + DRAIN_BUDGET_MS;
    while (Date.now() < stopAt) {
      // Nothing waits here: no need to read the configuration.
      if (!this.currentBatch() && !this.ctx.storage.sql.exec(`SELECT 1 FROM items WHERE state = 'pending' LIMIT 1`).toArray().length) {
        return this.waitNext(null);
      }
      const { config, conversation, human } = await this.read(info);
      if (!config) {
        // The automation was deleted: what waited here was canceled with it (D1 says so already).
        this.settle(["pending", "batched"], "dropped", Date.now());
        this.writeBatch(null);
        return this.waitNext(null);
      }
      // Disabled: messages stay here until it is enabled again (the PUT kicks the lanes).
      if (!config.enabled) return this.waitNext(null);
      const now = Date.now();
      let batch = this.currentBatch();
      if (!batch) {
        // A call already under way finishes; nothing new is called while a person has the contact.
        if (human) {
          await this.holdForPerson(info);
          return this.waitNext(null);
        }
        const formed = this.formBatch(config, now);
        if (formed === null) return this.waitNext(null);
        if (typeof formed === "number") return this.waitNext("debounce", formed);
        batch = formed;
      }
      if (batch.phase === "answered") {
        await this.finish(info, config, batch, batch.answer);
        continue;
      }
      if (batch.phase === "retrying") return this.waitNext(null);
      if (config.state === "paused") {
        const wait = await this.waitForBreaker(info, config, now);
        if (wait !== null) return this.waitNext("probe", wait);
      }
      if (await this.attempt(info, config, batch, conversation)) return this.waitNext(null);
    }
    // Out of time: the rest in a new run, at once.
    this.storeWait("run", Date.now());
  }

  // The configuration, and when a call may follow, the contact's recent messages with it: one D1
  // round trip on the way to a call.
  private async read(info: LaneInfo): Promise<{ config: AutomationConfig | undefined; conversation: ConversationRow[] | null; human: boolean }> {
    const batch = this.currentBatch();
    if (batch && batch.phase !== "calling") return { config: await loadAutomation(this.db, info.instanceId), conversation: null, human: false };
    // The call excludes its own messages: read as many more as wait here.
    const waiting = this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM items WHERE state IN ('pending', 'batched')`).one().n;
    const r = await runNamed(this.db, {
      config: automationStatement(info.instanceId),
      conversation: conversationStatement(info, automations.contextMessagesOf(info.instanceId), Math.min(waiting, MAX_BATCH)),
      handoff: handoffStatement(info.instanceId, info.contact),
    });
    const row = firstRow<HandoffRow>(r.handoff);
    return {
      config: automationOf(firstRow<unknown>(r.config)),
      conversation: z.array(inboundMessages.historyRow).parse(r.conversation[0]?.results ?? []),
      human: row !== undefined && (row.until === null || row.until > Date.now()),
    };
  }

  private currentBatch(): StoredBatch | undefined {
    const row = this.ctx.storage.sql.exec<BatchRow>(`SELECT id, item_ids, attempts, next_at, last_error, answer, webhook_id FROM batch LIMIT 1`).toArray()[0];
    return row ? batchOf(row, Date.now()) : undefined;
  }

  // The one place the batch row is written: the machine's batch whole, or none; its retry's due
  // time is stored with it.
  private writeBatch(batch: StoredBatch | null): void {
    this.storeWait("retry", batch?.phase === "retrying" ? batch.nextAt : null);
    this.ctx.storage.sql.exec(`DELETE FROM batch`);
    if (!batch) return;
    const row = rowOf(batch);
    this.ctx.storage.sql.exec(
      `INSERT INTO batch (id, item_ids, attempts, next_at, last_error, answer, webhook_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      row.id,
      row.item_ids,
      row.attempts,
      row.next_at,
      row.last_error,
      row.answer,
      row.webhook_id,
    );
  }

  // The one place a message's state changes (all in `from`, or the one with `id`).
  private settle(from: ItemState[], to: ItemState, doneAt: number | null, id?: string): void {
    const states = from.map((f) => `'${f}'`).join(", ");
    if (id === undefined) this.ctx.storage.sql.exec(`UPDATE items SET state = ?, done_at = ? WHERE state IN (${states})`, to, doneAt);
    else this.ctx.storage.sql.exec(`UPDATE items SET state = ?, done_at = ? WHERE id = ? AND state IN (${states})`, to, doneAt, id);
  }

  // The next call's messages in order: one, or a debounced burst. A number: not before then.
  private formBatch(config: AutomationConfig, now: number): StoredBatch | number | null {
    const pending = this.ctx.storage.sql
      .exec<{ id: string; arrived_at: number }>(`SELECT id, arrived_at FROM items WHERE state = 'pending' ORDER BY ts, seq LIMIT ?`, MAX_BATCH)
      .toArray()
      .map((p) => ({ id: p.id, arrivedAt: p.arrived_at }));
    const next = nextBatch(pending, config.debounceMs, now, this.storedDue("debounce"));
    if (next.kind === "none") return null;
    if (next.kind === "wait") return next.at;
    // A new webhook-id for every batch: a replayed dead letter is a new call, which a handler that
    // dedupes on webhook-id must not drop as a repeat of the calls that failed.
    const batch = formed(next.ids, newId("call"));
    this.storeWait("debounce", null);
    this.writeBatch(batch);
    for (const itemId of next.ids) this.settle(["pending"], "batched", null, itemId);
    return batch;
  }

  // Paused breaker: null when this lane holds the probe and may call; else when to look again.
  private async waitForBreaker(info: LaneInfo, config: AutomationConfig, now: number): Promise<number | null> {
    const probeMs = appConfig(this.env).AUTOMATION_PROBE_MS;
    if ((config.probeAt ?? 0) <= now) {
      const probe = await claimProbe(this.db, info.instanceId, now, probeMs);
      if (probe.won || probe.state !== "paused") return null;
      await this.park(info, config);
      return probe.probeAt;
    }
    await this.park(info, config);
    return config.probeAt ?? now + probeMs;
  }

  private async park(info: LaneInfo, config: AutomationConfig): Promise<void> {
    if (this.parkedFor === config.pausedAt) return;
    await automationParked.register(this.db, info.instanceId, info.laneKey);
    this.parkedFor = config.pausedAt;
  }

  // One call. false: answered or given up (move on); true: a retry waits (stored with the batch).
  private async attempt(
    info: LaneInfo,
    config: AutomationConfig,
    current: StoredBatch & { phase: "calling" },
    rows: ConversationRow[] | null,
  ): Promise<boolean> {
    const ids = current.itemIds;
    const batch = attempting(current);
    const attempt = batch.attempts;
    this.writeBatch(batch);
    const messages = this.ctx.storage.sql
      .exec<{ message: string }>(`SELECT message FROM items WHERE state = 'batched' ORDER BY ts, seq`)
      .toArray()
      .map((r) => JSON.parse(r.message) as InboundView);
    const conversation = conversationFrom(
      rows ?? z.array(inboundMessages.historyRow).parse(await this.db.all(conversationStatement(info, config.contextMessages, ids.length))),
      config.contextMessages,
      ids,
    );
    const payload = {
      type: "automation.inbound" as const,
      instance: info.instanceName,
      channel: info.channel ?? "whatsapp",
      contact: info.contact,
      replyTo: info.replyTo,
      messages,
      conversation,
    };
    // A channel that shows the handler at work (the web chat's `processing` frame) hears of the call.
    await providerFor(payload.channel)
      .handling?.({ env: this.env, tenantId: info.tenantId, instanceId: info.instanceId }, info.contact, ids)
      .catch((err: unknown) => log("warn", "telling the contact of the handler call failed", { error: errorField(err) }));
    this.calledAt = Date.now();
    const outcome = await callHandler(config, batch.webhookId ?? batch.id, payload, batch.id, this.env);
    const now = Date.now();
    if (outcome.ok) {
      const answer: Answer = {
        replies: outcome.replies,
        dropped: outcome.dropped,
        attempts: attempt,
        ...(outcome.handoff ? { handoff: outcome.handoff } : {}),
      };
      const done = answered(batch, answer);
      this.writeBatch(done);
      await this.finish(info, config, done, answer);
      return false;
    }
    const retryAt = now + backoffMs(attempt, appConfig(this.env).AUTOMATION_RETRY_BASE_MS);
    const next = afterFailure(batch, config.maxAttempts, outcome.error, retryAt);
    const final = next.kind === "dead";
    const failed: Statement[] = [automationDeliveries.recordFailure(ids, attempt, outcome.error, final, now)];
    if (final) {
      failed.push(
        writeEvent("automation.failed", {
          tenantId: info.tenantId,
          occurredAt: now,
          data: {
            instance: info.instanceName,
            channel: info.channel ?? "whatsapp",
            contact: info.contact,
            inboundIds: ids,
            attempts: attempt,
            error: outcome.error,
          },
        }),
      );
    }
    const r = await runNamed(this.db, {
      breaker: failureStatements(info.tenantId, info.instanceId, info.instanceName, now, appConfig(this.env).AUTOMATION_PROBE_MS),
      failed,
    });
    // The breaker's first statement pauses it (an instance.status event was written).
    if (applied(r.breaker) || final) this.dispatchEvents();
    log("warn", final ? "automation call failed; dead letter" : "automation call failed; retrying", { laneKey: info.laneKey, attempt, error: outcome.error });

    if (next.kind === "dead") {
      this.settle(["batched"], "dead", now);
      this.writeBatch(null);
      return false;
    }
    this.writeBatch(next.batch);
    return true;
  }

  // The handler answered: its replies, the record and the breaker in one D1 batch (one transaction),
  // then the replies straight into the contact's send lane.
  private async finish(info: LaneInfo, config: AutomationConfig, batch: StoredBatch, answer: Answer): Promise<void> {
    const ids = batch.itemIds;
    const now = Date.now();
    // The replies' ids are kept with the answer before they are written: a second pass after a
    // crash writes nothing new (their rows exist) but still hands the same ids to the send lane.
    const rerun = answer.replyIds !== undefined;
    const replyIds = answer.replyIds ?? answer.replies.map(() => newId("msg"));
    // The hand-off the handler asked for is named (and timed) once too: a second pass writes no second event.
    const handoff = answer.handoff ? (answer.handoffChange ?? { id: newId("ho"), at: now }) : undefined;
    if (!rerun && (replyIds.length > 0 || handoff)) {
      this.writeBatch(answered(batch, { ...answer, replyIds, handoffChange: handoff }));
    }
    const conversation: Conversation = { tenantId: info.tenantId, instanceId: info.instanceId, instanceName: info.instanceName, contact: info.contact };
    const until = handoff && answer.handoff?.ttlMinutes ? handoff.at + answer.handoff.ttlMinutes * 60_000 : null;
    // After the replies in the same transaction: they are sent, then the contact is with a person.
    const takeOver =
      handoff && answer.handoff
        ? takeOverStatements(conversation, { reason: answer.handoff.reason, until, by: "handler", now: handoff.at, changeId: handoff.id })
        : [];
    const replies = replyIds.length > 0 ? await this.prepareReplies(info, answer.replies, replyIds, now) : [];
    const note = answer.dropped > 0 ? `${answer.dropped} replies dropped: the contact's phone number is not known (@lid without remoteJidAlt)` : null;
    // Idempotency keys (automation:<inbound id>:<n>) make a second pass after a crash a no-op:
    // the insert of a reply already stored changes nothing.
    const replyGroups = Object.fromEntries(replies.map((p, k) => [`reply${k}`, insertStatements(this.db, p)]));
    const r = await runNamed(this.db, {
      ...replyGroups,
      breaker: successStatements(info.tenantId, info.instanceId, info.instanceName, now),
      delivered: automationDeliveries.markDelivered(ids, answer.attempts, note, now),
      takeOver,
    });
    // A reply is new when its first statement (the message insert) wrote a row.
    const created = replies.filter((_, k) => applied((r as Record<string, D1Result[]>)[`reply${k}`]));
    const toLane = rerun ? replies : created;
    if (toLane.length > 0) await this.enqueueReplies(toLane.map((p) => p.job));
    // One line a call, with the times an operator (and npm run bench:automation) needs to see where
    // a contact's wait went: in this lane before the call, and the replies' way into the send lane.
    const arrivedAt = this.ctx.storage.sql.exec<{ at: number }>(`SELECT MIN(arrived_at) AS at FROM items WHERE state = 'batched'`).one().at;
    log("info", "automation call answered", {
      laneKey: info.laneKey,
      inboundIds: ids,
      attempts: answer.attempts,
      replies: created.length,
      // The replies' message ids: their delivery attempt lines (from the contact lane) carry them.
      replyIds: toLane.map((p) => p.job.messageId),
      arrivedAt,
      calledAt: this.calledAt,
      answeredAt: now,
      repliedAt: Date.now(),
    });
    this.settle(["batched"], "done", now);
    this.writeBatch(null);
    if (handoff) {
      log("info", "the handler handed the contact to a person", { laneKey: info.laneKey, reason: answer.handoff?.reason ?? null });
      if (until !== null) this.storeWait("handoff", until, conversation);
      this.dispatchEvents();
    }
    // The breaker's first statement resumes it.
    if (applied(r.breaker) || config.state === "paused") {
      this.dispatchEvents();
      await this.wakeParked(info);
    }
  }

  private async prepareReplies(info: LaneInfo, replies: SendMessageRequest[], ids: string[], now: number): Promise<Prepared[]> {
    const tenant = await tenantOf(this.db, info.tenantId, now);
    if (!tenant) return [];
    const instances = new Map([[info.instanceName, { id: info.instanceId, name: info.instanceName, channel: info.channel ?? "whatsapp" }]]);
    return Promise.all(
      replies.map(async (input, k) => {
        const prepared = prepareMessage(tenant, instances, input, now, "automation", "", ids[k]);
        prepared.row.idempotencyHash = await idempotencyHashOf(input);
        return prepared;
      }),
    );
  }

  // Straight into the contact's send lane (the sends queue's batching would add up to a second);
  // the lane holds them durably once this returns. The sends queue only when that fails: a copy
  // through it as well would reopen each reply in the lane after it was sent, for a claim that
  // can only fail. A crash before this point leaves the answer here: the next run hands them over.
  private async enqueueReplies(jobs: SendJob[]): Promise<void> {
    const first = jobs[0];
    if (!first) return;
    const items = jobs.map((j) => ({ messageId: j.messageId, instanceId: j.instanceId, priority: j.priority, readyAt: j.readyAt, createdAt: j.createdAt }));
    try {
      await this.env.LANES.get(this.env.LANES.idFromName(first.laneKey)).enqueue(first.laneKey, items);
    } catch (err) {
      log("warn", "direct lane enqueue failed; the sends queue delivers", { laneKey: first.laneKey, error: errorField(err) });
      await enqueueJobs(this.env, jobs);
    }
  }

  // The breaker resumed: lanes that waited for it run now instead of at their next probe time.
  private async wakeParked(info: LaneInfo): Promise<void> {
    // Taken in one statement: a lane that parks meanwhile stays registered for the next resume.
    const parked = await automationParked.takeAll(this.db, info.instanceId);
    if (parked.length === 0) return;
    this.parkedFor = null;
    await Promise.all(
      parked
        .filter((laneKey) => laneKey !== info.laneKey)
        .map((laneKey) =>
          automationLane(this.env, laneKey)
            .kick()
            .catch((err) => log("warn", "could not wake a parked automation lane", { laneKey, error: errorField(err) })),
        ),
    );
  }

  private dispatchEvents(): void {
    dispatchInBackground(this.env, this.ctx);
  }
}

// The tenant's send defaults (maxAttempts) for replies, per isolate (shared by its lanes: a
// contact's lane is often new, and a read per call would sit on the reply's path).
const tenantCache = new TtlCache<string, Tenant>(TENANT_CACHE_MS, 1_000);

async function tenantOf(db: Db, tenantId: string, now: number): Promise<Tenant | undefined> {
  const hit = tenantCache.get(tenantId, now);
  if (hit) return hit;
  const value = await tenants.sendDefaults(db, tenantId);
  if (!value) return undefined;
  tenantCache.set(tenantId, value, now);
  return value;
}
