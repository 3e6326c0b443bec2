// ContactLane: one per tenant + instance + contact (or group). It holds that contact's pending
// messages in its own SQLite, sends one at a time in order, and uses its single alarm for
// everything that waits: scheduled sendAt, retry backoff, pacing, and "work now" after an enqueue.
// D1 stays the record: every send claims the message there first, so a duplicate enqueue, a
// canceled message or a redelivered queue message is never sent twice. Decisions live in
// lane-machine.ts; this class asks D1, the governor and Evolution, and carries the actions out.
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { dispatchInBackground } from "../callbacks/dispatch.ts";
import { config } from "../config.ts";
import { applied, runNamed } from "../db/batch.ts";
import { database, type Db } from "../db/client.ts";
import { deadLetters, instances, messages, pendingReceipts } from "../db/queries/index.ts";
import type { MediaJson } from "../db/schema.ts";
import { chatMovedStatement } from "../db/chat-migrations.ts";
import type { Connection, Outgoing, Provider, SendOutcome } from "../providers/provider.ts";
import { channelOf, providerFor } from "../providers/registry.ts";
import { applyPendingReceipts } from "../messages/receipts.ts";
import { transitionStatements } from "../messages/transitions.ts";
import { errorField, log, logDeliveryAttempt } from "../observability/log.ts";
import { backoffMs } from "./backoff.ts";
import {
  afterReconcile,
  afterSend,
  askFor,
  decide,
  needsSlot,
  phaseOf,
  resultOf,
  settleMs,
  storedAfter,
  storedAfterReconcile,
  storedAfterSend,
  storedPhases,
  waitUntil,
  type D1Answer,
  type D1Ask,
  type Outcome,
  type StoredItem,
  type StoredPhase,
} from "./lane-machine.ts";
import { TtlCache } from "../ttl-cache.ts";

export type LaneItem = { messageId: string; priority: number; readyAt: number; createdAt: number; instanceId: string };

export type ItemRow = {
  id: string;
  instance_id: string;
  priority: number;
  ready_at: number;
  created_at: number;
  phase: StoredPhase;
  attempts: number;
  next_at: number;
  /** When the attempt in doubt started (0: unknown, D1's claim time is used). */
  attempt_at: number;
  /** The answer Evolution gave that D1 has not recorded yet (phase unrecorded), as JSON. */
  outcome: string | null;
  /** Questions to Evolution about the attempt in doubt that did not settle it (findMessages
   *  errors and timeouts, a first "not found"). */
  checks: number;
};

type MessageRow = messages.SendRow;

type InstanceRow = instances.SenderRow;

/** The instance's provider and its way there. */
function providerOf(row: InstanceRow, gateway?: Connection["gateway"]): { provider: Provider; conn: Connection } {
  const channel = channelOf(row.channel);
  const conn: Connection =
    channel === "telegram"
      ? { channel, name: row.name, url: row.telegram_api_url ?? "", secret: row.telegram_bot_token ?? "" }
      : channel === "web"
        ? { channel, name: row.name, url: "", secret: "", ...(gateway ? { gateway } : {}) }
        : { channel, name: row.name, url: row.evolution_url, secret: row.evolution_api_key };
  return { provider: providerFor(channel), conn };
}

// One alarm run works for at most this long (and this many steps), then yields and re-arms, so a
// long lane cannot starve others.
const DRAIN_BUDGET_MS = 20_000;
const DRAIN_MAX_STEPS = 200;
const INSTANCE_CACHE_MS = 10_000;
// A head that is ours but not claimable this instant is tried again this much later.
const HOLD_MS = 1_000;
// An attempt's own time window for reconciliation, widened only by this much for the clocks of
// Evolution and the lane (and Evolution's whole-second timestamps): a wider window lets an earlier
// message of the same text pass for this attempt.
const RECONCILE_SKEW_MS = 15_000;
// A step that throws (D1 failing, the governor overloaded) is tried again after this, doubling per
// failure in a row, jittered: never at once, which would hot-loop every due lane during an outage.
const STEP_ERROR_BASE_MS = 2_000;
// Done rows are kept this long so a late redelivery of the same message is recognised.
const DONE_RETENTION_MS = 7 * 24 * 3600_000;
const IN_FLIGHT = `('retrying', 'in_doubt', 'unrecorded')`;
// The longest a request may wait on finished() (Prefer: wait allows 30 s).
const MAX_FINISHED_WAIT_MS = 30_000;
const ITEM_COLUMNS = "id, instance_id, priority, ready_at, created_at, phase, attempts, next_at, attempt_at, outcome, checks";
const PHASES = storedPhases.map((p) => `'${p}'`).join(", ");

// When the alarm is due, in one query: the item in flight's next step; else the head's pacing slot
// or the next message to come due (it may outrank the head), whichever is first; else the earliest
// waiting message. NULL: no work. (Bound twice: now.)
const EARLIEST_DUE = `WITH flight AS (SELECT next_at FROM lane_items WHERE phase IN ${IN_FLIGHT} ORDER BY next_at LIMIT 1),
  head AS (SELECT next_at FROM lane_items WHERE phase = 'waiting' AND ready_at <= ? ORDER BY priority, ready_at, created_at, id LIMIT 1),
  coming AS (SELECT MIN(ready_at) AS due FROM lane_items WHERE phase = 'waiting' AND ready_at > ?)
  SELECT CASE
    WHEN EXISTS (SELECT 1 FROM flight) THEN (SELECT next_at FROM flight)
    WHEN EXISTS (SELECT 1 FROM head) THEN MIN((SELECT next_at FROM head), COALESCE((SELECT due FROM coming), (SELECT next_at FROM head)))
    ELSE (SELECT MIN(MAX(ready_at, next_at)) FROM lane_items WHERE phase = 'waiting')
  END AS due`;

const logWarn = (msg: string, fields: Record<string, unknown>) => log("warn", msg, fields);

export class ContactLane extends DurableObject<Env> {
  private readonly db: Db;
  private instanceCache = new TtlCache<string, InstanceRow | undefined>(INSTANCE_CACHE_MS, 100);
  // Set when a sent message has a callback URL: only then is callback dispatch worth a D1 read.
  private callbacksWritten = false;
  // Requests waiting for a message of this lane to finish (Prefer: wait), answered when it is done.
  private readonly waiters = new Map<string, Set<(done: boolean) => void>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.db = database(env.DB);
    const exec = ctx.storage.sql.exec.bind(ctx.storage.sql);
    const table = (name: string) => `CREATE TABLE ${name} (
      id TEXT PRIMARY KEY,
      instance_id TEXT NOT NULL,
      priority INTEGER NOT NULL,
      ready_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      phase TEXT NOT NULL DEFAULT 'waiting' CHECK (phase IN (${PHASES})),
      attempts INTEGER NOT NULL DEFAULT 0,
      next_at INTEGER NOT NULL DEFAULT 0,
      attempt_at INTEGER NOT NULL DEFAULT 0,
      outcome TEXT,
      done_at INTEGER,
      checks INTEGER NOT NULL DEFAULT 0
    )`;
    const existing = exec<{ sql: string }>(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'lane_items'`).toArray()[0];
    if (!existing) exec(table("lane_items"));
    else if (!existing.sql.includes("CHECK")) {
      // Lanes made before the CHECK on phase (SQLite adds none to a table): rebuilt once, in one
      // transaction; a phase outside the machine's (none was ever written) is read as in doubt,
      // which asks the provider before anything is sent again.
      ctx.storage.transactionSync(() => {
        const columns = exec<{ name: string }>(`SELECT name FROM pragma_table_info('lane_items')`)
          .toArray()
          .map((c) => c.name);
        exec(table("lane_items_checked"));
        exec(`INSERT INTO lane_items_checked (id, instance_id, priority, ready_at, created_at, phase, attempts, next_at, attempt_at, outcome, done_at, checks)
          SELECT id, instance_id, priority, ready_at, created_at, CASE WHEN phase IN (${PHASES}) THEN phase ELSE 'in_doubt' END,
            attempts, next_at, attempt_at, outcome, done_at, ${columns.includes("checks") ? "checks" : "0"} FROM lane_items`);
        exec(`DROP TABLE lane_items`);
        exec(`ALTER TABLE lane_items_checked RENAME TO lane_items`);
      });
    }
    exec(`CREATE INDEX IF NOT EXISTS lane_items_order ON lane_items (phase, priority, ready_at, created_at, id)`);
    // Lanes written before the explicit phases: a started item may have been sent, so it is in doubt.
    if (exec(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'`).toArray().length > 0) {
      exec(`INSERT OR IGNORE INTO lane_items (id, instance_id, priority, ready_at, created_at, phase, attempts, next_at, done_at)
        SELECT id, instance_id, priority, ready_at, created_at,
          CASE WHEN state = 'done' THEN 'done' WHEN started = 1 THEN 'in_doubt' ELSE 'waiting' END, attempts, next_at, done_at FROM items`);
      exec(`DROP TABLE items`);
    }
  }

  /** Adds messages to the lane. A message already here is ignored; a done one is taken up again
   *  (a retry after failure): the claim in D1 decides whether it is really sent again. */
  async enqueue(laneKey: string, items: LaneItem[]): Promise<number> {
    // Written once: every storage write delays the lane's next outgoing call (output gate).
    if (this.ctx.storage.kv.get<string>("laneKey") !== laneKey) this.ctx.storage.kv.put("laneKey", laneKey);
    let added = 0;
    for (const item of items) {
      const cursor = this.ctx.storage.sql.exec(
        `INSERT INTO lane_items (id, instance_id, priority, ready_at, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET phase = 'waiting', attempts = 0, next_at = 0, attempt_at = 0, outcome = NULL, checks = 0,
           ready_at = excluded.ready_at, done_at = NULL
         WHERE lane_items.phase = 'done'`,
        item.messageId,
        item.instanceId,
        item.priority,
        item.readyAt,
        item.createdAt,
      );
      added += cursor.rowsWritten;
    }
    if (added > 0) await this.rearm();
    return added;
  }

  /** True once this lane has finished the message (its outcome is in D1), false after `waitMs` or
   *  at once when the lane does not hold it: a request's Prefer: wait answers on this rather than
   *  polling D1. The wait is a pending answer, not a sleep: the lane's steps go on meanwhile. */
  finished(messageId: string, waitMs: number): Promise<boolean> {
    const held = this.ctx.storage.sql.exec<{ phase: string }>(`SELECT phase FROM lane_items WHERE id = ?`, messageId).toArray()[0];
    if (!held || held.phase === "done") return Promise.resolve(held !== undefined);
    return new Promise((resolve) => {
      const waiting = this.waiters.get(messageId) ?? new Set();
      const answer = (done: boolean) => {
        clearTimeout(timer);
        waiting.delete(answer);
        if (waiting.size === 0) this.waiters.delete(messageId);
        resolve(done);
      };
      const timer = setTimeout(() => answer(false), Math.min(waitMs, MAX_FINISHED_WAIT_MS));
      waiting.add(answer);
      this.waiters.set(messageId, waiting);
    });
  }

  /** Removes a message that has not started; false when it is in flight or unknown. */
  async cancel(messageId: string): Promise<boolean> {
    const removed = this.ctx.storage.sql.exec(`DELETE FROM lane_items WHERE id = ? AND phase = 'waiting'`, messageId).rowsWritten;
    if (removed > 0) await this.rearm();
    return removed > 0;
  }

  /** Moves a waiting message to a new due time and re-arms the alarm. */
  async reschedule(messageId: string, readyAt: number): Promise<boolean> {
    const changed = this.ctx.storage.sql.exec(
      `UPDATE lane_items SET ready_at = ?, next_at = 0 WHERE id = ? AND phase = 'waiting'`,
      readyAt,
      messageId,
    ).rowsWritten;
    if (changed > 0) await this.rearm();
    return changed > 0;
  }

  /** The governor resumed the number: the head waiting on it asks again now (a retry's own
   *  backoff is not cut short: only a wait the governor gave is). */
  async poke(): Promise<boolean> {
    const id = this.ctx.storage.kv.get<string>("paced");
    if (id === undefined) return false;
    const woken = this.ctx.storage.sql.exec(
      `UPDATE lane_items SET next_at = 0 WHERE id = ? AND phase IN ('waiting', 'retrying') AND next_at > ?`,
      id,
      Date.now(),
    ).rowsWritten;
    if (woken > 0) await this.rearm();
    return woken > 0;
  }

  /** After a restart of the local runtime (or from the cron): takes up this lane's pending
   *  messages from D1 (a queue hop may have been lost with the process) and re-arms the alarm. */
  async wake(laneKey: string): Promise<number | null> {
    const pending = await messages.laneActive(this.db, laneKey, 200);
    await this.enqueue(
      laneKey,
      pending.map((p) => ({ messageId: p.id, instanceId: p.instance_id, priority: p.priority, readyAt: p.ready_at, createdAt: p.created_at })),
    );
    await this.ctx.storage.deleteAlarm();
    await this.rearm();
    return this.ctx.storage.getAlarm();
  }

  /** Test seam: every wait of this lane's items (a retry's backoff, a pacing slot, a check) is over,
   *  and the alarm is left where it is for the test to run (time passes without sleeping). Returns
   *  how many items were waiting. */
  async endWaits(): Promise<number> {
    return this.ctx.storage.sql.exec(`UPDATE lane_items SET next_at = 0 WHERE phase != 'done'`).rowsWritten;
  }

  /** What the lane holds, for tests and operators: items not done, in lane order. */
  async snapshot(): Promise<{ pending: ItemRow[]; done: number; alarm: number | null }> {
    const pending = this.ctx.storage.sql
      .exec<ItemRow>(
        `SELECT ${ITEM_COLUMNS} FROM lane_items WHERE phase != 'done'
         ORDER BY phase IN ${IN_FLIGHT} DESC, priority, ready_at, created_at, id`,
      )
      .toArray();
    const done = this.ctx.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM lane_items WHERE phase = 'done'`).one().n;
    return { pending, done, alarm: await this.ctx.storage.getAlarm() };
  }

  override async alarm(): Promise<void> {
    try {
      await this.drain();
      if (this.ctx.storage.kv.get<number>("stepErrors") !== undefined) {
        this.ctx.storage.kv.delete("stepErrors");
        this.ctx.storage.kv.delete("stepErrorUntil");
      }
    } catch (err) {
      // Contained here and retried on this lane's own alarm after a growing, jittered wait (the
      // failures in a row are counted), rather than re-armed at once or left to the runtime's retries.
      const errors = (this.ctx.storage.kv.get<number>("stepErrors") ?? 0) + 1;
      const waitMs = backoffMs(errors, STEP_ERROR_BASE_MS);
      this.ctx.storage.kv.put("stepErrors", errors);
      this.ctx.storage.kv.put("stepErrorUntil", Date.now() + waitMs);
      logWarn("lane step failed; trying again later", { failuresInARow: errors, retryInMs: waitMs, error: errorField(err) });
    } finally {
      // Events with a callback URL were written: hand them out now rather than at the next cron.
      if (this.callbacksWritten) {
        this.callbacksWritten = false;
        dispatchInBackground(this.env, this.ctx);
      }
      this.ctx.storage.sql.exec(`DELETE FROM lane_items WHERE phase = 'done' AND done_at < ?`, Date.now() - DONE_RETENTION_MS);
      await this.rearm();
    }
  }

  private async drain(): Promise<void> {
    const stopAt = Date.now() + DRAIN_BUDGET_MS;
    for (let steps = 0; steps < DRAIN_MAX_STEPS && Date.now() < stopAt; steps++) {
      const head = this.head(Date.now());
      if (!head || !(await this.step(head))) return;
    }
  }

  // An item in flight holds the head of the line. Otherwise: priority, due time, arrival.
  private head(now: number): ItemRow | undefined {
    const sqlite = this.ctx.storage.sql;
    const inFlight = sqlite.exec<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM lane_items WHERE phase IN ${IN_FLIGHT} ORDER BY next_at LIMIT 1`).toArray()[0];
    if (inFlight) return inFlight;
    return sqlite
      .exec<ItemRow>(
        `SELECT ${ITEM_COLUMNS} FROM lane_items WHERE phase = 'waiting' AND ready_at <= ?
         ORDER BY priority, ready_at, created_at, id LIMIT 1`,
        now,
      )
      .toArray()[0];
  }

  /** One step for the head; false when the lane has nothing due now. */
  private async step(head: ItemRow): Promise<boolean> {
    const now = Date.now();
    const phase = phaseOf({ phase: head.phase, readyAt: head.ready_at, nextAt: head.next_at, attempts: head.attempts }, now);
    if (phase === "waiting" || head.next_at > now) return false;
    const laneKey = this.ctx.storage.kv.get<string>("laneKey") ?? "";
    const instance = await this.instance(head.instance_id);
    // Permits are idempotent per messageId; each attempt is its own send, so a retry asks under
    // its own id and takes its own slot (a re-run of the same attempt gets the same go).
    const attempt = head.attempts + 1;
    const messageId = attempt > 1 ? `${head.id}#${attempt}` : head.id;
    // A number with gaps sends one at a time: a go is its turn, given back after the call (or
    // below, when this step makes none), which wakes the next lane in line.
    let turn = false;
    if (needsSlot(phase) && instance) {
      // The provider's own pace for one chat (Telegram: about one a second, twenty a minute to a group).
      const chatGap = providerOf(instance).provider.chatGapMs(contactOfLane(laneKey));
      const calledAt = chatGap > 0 ? (this.ctx.storage.kv.get<number>("calledAt") ?? 0) : 0;
      if (calledAt + chatGap > now) {
        this.write(head.id, this.waitingAgain(head, calledAt + chatGap));
        return false;
      }
      // Typing is shown before a first attempt of a plain text only; the governor scales it.
      const typing = instance.typing && attempt === 1 ? await this.typingTarget(head.id) : undefined;
      const permit = await this.governor(head.instance_id).acquire({
        laneKey,
        messageId,
        priority: head.priority,
        ratePerMinute: instance.rate_per_minute,
        textLength: typing?.textLength,
      });
      // Pacing: come back at the slot; the alarm waits, never this code.
      if (!permit.go) {
        // Long waits a person would ask about (daily cap, quiet hours) go into the history once.
        if (permit.note) await this.waitNote(head.id, permit.note, now);
        this.write(head.id, this.waitingAgain(head, permit.retryAt));
        this.ctx.storage.kv.put("paced", head.id);
        return false;
      }
      if (this.ctx.storage.kv.get<string>("paced") !== undefined) this.ctx.storage.kv.delete("paced");
      turn = instance.gap_max_ms > 0;
      // Typing phase: "composing" is on for the time the governor gave; the text goes when it is
      // over, on this lane's alarm (never a sleep here, never Evolution's blocking `delay`).
      if (permit.sendAt !== undefined && permit.sendAt > now) {
        const typingKey = `typing:${messageId}`;
        if (this.ctx.storage.kv.get<number>(typingKey) !== permit.sendAt) {
          const to = typing?.to;
          const { provider, conn } = providerOf(instance);
          const shown = to ? await provider.typing(conn, to, permit.typingMs ?? permit.sendAt - now) : undefined;
          if (shown?.kind === "failed") logWarn("typing presence failed; the text goes anyway", { messageId: head.id, error: shown.error });
          this.ctx.storage.kv.put(typingKey, permit.sendAt);
        }
        this.write(head.id, this.waitingAgain(head, permit.sendAt));
        return false;
      }
      this.ctx.storage.kv.delete(`typing:${messageId}`);
    }
    const { answer, row } = await this.ask(askFor(phase), head, laneKey, now).catch(async (err: unknown) => {
      // D1 failed the claim: no call, so the number's turn goes back now rather than at its lease.
      if (turn) await this.endTurn(head.instance_id, laneKey, messageId, false);
      throw err;
    });
    const action = decide(phase, { attempts: head.attempts, attemptAt: head.attempt_at }, answer, now, settleMs(config(this.env).EVOLUTION_TIMEOUT_MS));
    if (turn && !(action.kind === "send" && row)) await this.endTurn(head.instance_id, laneKey, messageId, false);
    const item = storedOf(head);
    // First seen in doubt here (the lane restarted after a claim): say so once in the history.
    if (action.kind === "check_at" && head.phase !== "in_doubt")
      await this.note(
        head.id,
        action.attempts,
        `in doubt: attempt ${action.attempts} was claimed but its answer was lost; asking Evolution once it cannot be in flight any more`,
        now,
      );
    const settled = storedAfter(action, item, head.ready_at, now, HOLD_MS);
    if (settled) {
      this.write(head.id, settled);
      return true;
    }
    switch (action.kind) {
      case "send":
        if (row) await this.send(head, row, instance, action.attempt, { laneKey, messageId, turn });
        return true;
      case "reconcile":
        if (row) await this.reconcile(head, row, instance);
        return true;
      case "record":
        // An answer that could not be read back is stored as the doubt it is.
        if (item.phase !== "unrecorded") this.write(head.id, item);
        else if (row) await this.record(head, row, item.outcome, head.attempts);
        return true;
      case "pull_older":
        if ((await this.pullOlder(laneKey, head, now)) === 0) this.write(head.id, waitUntil(item, now + HOLD_MS));
        return true;
      default:
        return true;
    }
  }

  // The claim (or read) for this phase and D1's answer, by name.
  private async ask(ask: D1Ask, head: ItemRow, laneKey: string, now: number): Promise<{ answer: D1Answer; row: MessageRow | undefined }> {
    if (ask === "none") return { answer: { found: false }, row: undefined };
    const older = messages.olderInLane(laneKey, head, now);
    let claimed = false;
    let olderWaiting = false;
    let row: MessageRow | undefined;
    if (ask === "claim_first") {
      // The queue may deliver a contact's messages out of order: the claim only succeeds when no
      // older queued message of this lane exists. A scheduled message passes through queued.
      const attempt = head.attempts + 1;
      const r = await runNamed(this.db, {
        toQueued: transitionStatements({
          messageId: head.id,
          from: ["scheduled"],
          to: "queued",
          at: now,
          detail: "due",
          where: messages.claimGuards.dueAndFirst(older, now),
        }),
        toProcessing: transitionStatements({
          messageId: head.id,
          from: ["queued"],
          to: "processing",
          at: now,
          attempt,
          where: messages.claimGuards.first(older),
        }),
        row: messages.forSend(head.id),
      });
      claimed = applied(r.toProcessing);
      row = messages.sendRowOf(r.row);
      // Only a claim that did not apply needs to know why (kept off the hot path).
      if (!claimed && (row?.status === "queued" || row?.status === "scheduled")) olderWaiting = await messages.anyOlder(this.db, older);
    } else if (ask === "claim_retry") {
      // Only from the attempt this lane knows of: a higher count in D1 means an attempt in doubt.
      const r = await runNamed(this.db, {
        claim: transitionStatements({
          messageId: head.id,
          from: ["processing"],
          to: "processing",
          at: now,
          attempt: head.attempts + 1,
          where: messages.claimGuards.atAttempt(head.attempts),
        }),
        row: messages.forSend(head.id),
      });
      claimed = applied(r.claim);
      row = messages.sendRowOf(r.row);
    } else {
      row = messages.sendRowOf((await runNamed(this.db, { row: messages.forSend(head.id) })).row);
    }
    if (!row) return { answer: { found: false }, row };
    return {
      answer: { found: true, status: row.status, claimed, attempts: row.attempts, readyAt: row.ready_at, olderWaiting, updatedAt: row.updated_at },
      row,
    };
  }

  private governor(instanceId: string) {
    return this.env.GOVERNORS.get(this.env.GOVERNORS.idFromName(instanceId));
  }

  // The number's turn back to its governor: `called` starts the gap before the next send.
  private async endTurn(instanceId: string, laneKey: string, messageId: string, called: boolean) {
    await this.governor(instanceId)
      .release({ laneKey, messageId, called })
      .catch((err) => logWarn("governor release failed", { messageId, error: errorField(err) }));
  }

  // `slot`: what the governor granted this send under; `turn`: the grant is the number's turn,
  // given back when Evolution has answered.
  private async send(
    head: ItemRow,
    row: MessageRow,
    instance: InstanceRow | undefined,
    attempt: number,
    slot: { laneKey: string; messageId: string; turn: boolean },
  ): Promise<void> {
    if (row.callback) this.callbacksWritten = true;
    if (!instance) return this.record(head, row, { kind: "failed", error: "Instance no longer exists." }, attempt);
    const { provider, conn } = providerOf(instance, { env: this.env, tenantId: row.tenant_id, instanceId: head.instance_id });
    const startedAt = Date.now();
    // No storage write between the claim and this call: a DO's outgoing fetch waits for its pending
    // writes to be confirmed (the output gate). D1 already says `processing` with this attempt,
    // which is what a lane that restarts mid-send goes by (it reconciles before sending again).
    const outcome = await provider.send(conn, { ...contentOf(row), messageId: head.id }, config(this.env).EVOLUTION_TIMEOUT_MS);
    if (provider.chatGapMs(row.address) > 0) this.ctx.storage.kv.put("calledAt", Date.now());
    const at = Date.now();
    logDeliveryAttempt({
      messageId: head.id,
      attempt,
      outcome: outcome.kind,
      evolutionLatencyMs: at - startedAt,
      instance: instance.name,
    });
    // The provider's answer goes into the lane's storage before anything else is awaited (the
    // governor's release and report, D1): an object reset after this point loses nothing, and a known
    // answer never becomes a doubt. The outgoing calls below wait for this write to be confirmed.
    // Throttling (WhatsApp's rate-overlimit, Telegram's 429) is not this message's failure: it was not
    // sent, so the attempt does not count (D1's count goes back; the retry is the same attempt) and it
    // waits: for the provider's retry_after (no call inside it), or for the number's pause like every
    // message of the number (its grant is given back).
    const throttled = outcome.kind === "retry" && !outcome.countsAsAttempt ? outcome : undefined;
    const next = throttled
      ? undefined
      : afterSend(
          resultOf(outcome),
          attempt,
          row.max_attempts,
          backoffMs(attempt, config(this.env).RETRY_BASE_MS),
          startedAt + settleMs(config(this.env).EVOLUTION_TIMEOUT_MS) - at,
          provider.inDoubt.kind === "fail" ? provider.inDoubt.reason : undefined,
        );
    // Kept here first: if the D1 write fails or the object resets, the answer is written later and
    // the provider is not called again (phase unrecorded).
    this.write(head.id, storedAfterSend(next ?? { next: "throttled", afterMs: throttled?.afterMs }, attempt, startedAt, at, storedOf(head)));
    // Recorded: now the number's turn goes back (`called` starts its gap), and the governor hears
    // what the answer says about the sender.
    if (slot.turn) await this.endTurn(head.instance_id, slot.laneKey, slot.messageId, true);
    if ((outcome.kind === "refused" || outcome.kind === "retry") && outcome.signal) await this.signal(head.instance_id, outcome, slot.messageId);
    // The chat moved (a group became a supergroup): this and later messages to it go to the new address.
    if (outcome.movedTo) await this.chatMoved(head, row, outcome.movedTo, at);
    if (!next) {
      if (throttled) {
        const why =
          throttled.afterMs === undefined ? "rate-overlimit: waits for the number's pause" : `throttled: waits ${throttled.afterMs} ms as the provider asked`;
        await this.note(head.id, attempt, `${why}; not counted as an attempt`, at, throttled.reason, true);
      }
      return;
    }
    if (next.next === "record") return this.record(head, row, next.outcome, attempt);
    const detail =
      next.next === "retrying"
        ? `retry in ${next.delayMs} ms: ${next.error}`
        : `in doubt: ${next.error}; asking the provider in ${next.delayMs} ms (once it cannot be in flight any more) before sending again`;
    await this.note(head.id, attempt, detail, at, next.error);
  }

  // Ask Evolution whether the attempt in doubt went out, and act on the answer.
  private async reconcile(head: ItemRow, row: MessageRow, instance: InstanceRow | undefined): Promise<void> {
    if (row.callback) this.callbacksWritten = true;
    const now = Date.now();
    const from = (head.phase === "in_doubt" && head.attempt_at > 0 ? Math.min(head.attempt_at, row.updated_at) : row.updated_at) - RECONCILE_SKEW_MS;
    const seam = instance ? providerOf(instance, { env: this.env, tenantId: row.tenant_id, instanceId: head.instance_id }) : undefined;
    const policy = seam?.provider.inDoubt;
    const found =
      !instance || !seam || !policy
        ? { kind: "unanswerable" as const, reason: "the instance no longer exists", retry: false }
        : policy.kind === "fail"
          ? { kind: "unanswerable" as const, reason: policy.reason, retry: false }
          : await policy.reconcile(
              seam.conn,
              {
                to: row.address,
                content: { ...contentOf(row), messageId: head.id },
                from,
                until: now + RECONCILE_SKEW_MS,
                taken: (ids) => this.takenOnEvolution(instance, head.id, ids),
              },
              config(this.env).EVOLUTION_TIMEOUT_MS,
            );
    const next = afterReconcile(
      found,
      row.attempts,
      row.max_attempts,
      head.checks,
      config(this.env).EVOLUTION_TIMEOUT_MS,
      policy?.kind === "fail" ? policy.reason : undefined,
    );
    // Evolution could not answer: ask again later (the alarm waits), the item still heads the lane.
    if (next.next !== "record") await this.note(head.id, row.attempts, next.detail, now);
    this.write(head.id, storedAfterReconcile(next, storedOf(head), row.attempts, row.updated_at, Date.now()));
    if (next.next === "record") return this.record(head, row, next.outcome, row.attempts);
  }

  // Provider ids already recorded for another message on the same Evolution instance (same URL and
  // instance name), whichever tenant holds it: tenants (or gateways) may share one Evolution
  // instance, and one message must never be claimed by two. In chunks: 100 bound parameters a statement.
  private async takenOnEvolution(instance: InstanceRow, messageId: string, ids: string[]): Promise<Set<string>> {
    return messages.providerIdsTaken(this.db, instance.name, instance.evolution_url.replace(/\/+$/, ""), messageId, ids);
  }

  // Writes the attempt's known outcome to D1; on failure it stays `unrecorded` here and is retried.
  private async record(head: ItemRow, row: MessageRow, outcome: Outcome, attempt: number): Promise<void> {
    const at = Date.now();
    try {
      if (outcome.kind === "sent") {
        const r = await runNamed(this.db, {
          sent: transitionStatements({
            messageId: head.id,
            from: ["processing"],
            to: "sent",
            at,
            attempt,
            lastError: null,
            providerMessageId: outcome.providerMessageId,
            ...(outcome.detail ? { detail: outcome.detail } : {}),
          }),
          parked: pendingReceipts.parkedCount(head.instance_id, outcome.providerMessageId),
        });
        // A receipt that raced ahead of this record was parked; apply it now.
        if (pendingReceipts.parkedCountOf(r.parked) > 0) await applyPendingReceipts(this.db, head.instance_id, outcome.providerMessageId);
      } else {
        await runNamed(this.db, {
          failed: transitionStatements({
            messageId: head.id,
            from: ["processing"],
            to: "failed",
            at,
            attempt,
            lastError: outcome.error,
            detail: outcome.error,
          }),
          deadLetter: deadLetters.record(head.id, row.tenant_id, attempt, outcome.error, at),
        });
      }
    } catch (err) {
      logWarn("recording an attempt failed; kept in the lane and retried", { messageId: head.id, error: errorField(err) });
      this.write(head.id, waitUntil(this.storedNow(head.id) ?? storedOf(head), at + HOLD_MS));
      return;
    }
    this.write(head.id, { phase: "done" });
  }

  // Records the chat's new address (later messages to the old one go there) and says so in the history.
  private async chatMoved(head: ItemRow, row: MessageRow, movedTo: string, at: number): Promise<void> {
    try {
      await this.db.run(chatMovedStatement(head.instance_id, row.to, movedTo, at));
    } catch (err) {
      logWarn("recording a chat's new address failed", { messageId: head.id, error: errorField(err) });
    }
    await this.note(head.id, head.attempts + 1, `the chat moved to ${movedTo}: sent there, and later messages to ${row.to} go there too`, at);
  }

  // A history line (and last error) for an attempt that is not over yet. Best effort: the lane's
  // own phase already holds what matters.
  private async note(messageId: string, attempt: number, detail: string, at: number, lastError?: string, uncount = false): Promise<void> {
    try {
      // An attempt that does not count gives its number back (only if nothing claimed another since).
      await messages.noteAttempt(this.db, messageId, { attempt, detail, at, lastError, uncount });
    } catch (err) {
      logWarn("history note failed", { messageId, error: errorField(err) });
    }
  }

  // A wait note in the message's history, under its current status (queued, or scheduled when due).
  private async waitNote(messageId: string, detail: string, at: number): Promise<void> {
    try {
      await messages.noteWait(this.db, messageId, detail, at);
    } catch (err) {
      logWarn("history note failed", { messageId, error: errorField(err) });
    }
  }

  // What a send told about the number (rate-overlimit, not on WhatsApp): its governor decides on a pause.
  private async signal(instanceId: string, outcome: Extract<SendOutcome, { kind: "refused" | "retry" }>, messageId: string): Promise<void> {
    if (!outcome.signal) return;
    try {
      // A provider-given wait (Telegram's retry_after) pauses the sender that long, and no longer.
      const until = outcome.kind === "retry" && outcome.afterMs !== undefined ? Date.now() + outcome.afterMs : undefined;
      await this.governor(instanceId).report({ kind: outcome.signal, instanceId, messageId, detail: outcome.reason, ...(until ? { until } : {}) });
    } catch (err) {
      logWarn("governor report failed", { instanceId, error: errorField(err) });
    }
  }

  // Whom to show "typing…" and how long the text is (media: no typing).
  private async typingTarget(id: string): Promise<{ to: string; textLength: number | undefined } | undefined> {
    return messages.typingTarget(this.db, id);
  }

  private async pullOlder(laneKey: string, head: ItemRow, now: number): Promise<number> {
    const stragglers = await messages.olderInLanePage(this.db, laneKey, head, now, 50);
    return this.enqueue(
      laneKey,
      stragglers.map((s) => ({ messageId: s.id, instanceId: s.instance_id, priority: s.priority, readyAt: s.ready_at, createdAt: s.created_at })),
    );
  }

  /** The one write of an item's state: what the machine said to store, whole. */
  private write(id: string, item: StoredItem): void {
    const sqlite = this.ctx.storage.sql;
    if (item.phase === "done") {
      sqlite.exec(`UPDATE lane_items SET phase = 'done', done_at = ?, outcome = NULL WHERE id = ?`, Date.now(), id);
      // Its outcome is in D1: requests waiting for it (Prefer: wait) answer now.
      for (const answer of [...(this.waiters.get(id) ?? [])]) answer(true);
      return;
    }
    sqlite.exec(
      `UPDATE lane_items SET phase = ?, attempts = ?, next_at = ?, attempt_at = ?, outcome = ?, checks = ?, ready_at = COALESCE(?, ready_at) WHERE id = ?`,
      item.phase,
      item.attempts,
      item.nextAt,
      item.phase === "waiting" ? 0 : item.attemptAt,
      item.phase === "unrecorded" ? JSON.stringify(item.outcome) : null,
      item.phase === "in_doubt" ? item.checks : 0,
      item.phase === "waiting" ? item.readyAt : null,
      id,
    );
  }

  // A wait the step chose after awaiting the governor or D1: built on the item as stored now, so a
  // reschedule that landed during the await keeps its due time.
  private waitingAgain(head: ItemRow, at: number): StoredItem {
    return waitUntil(this.storedNow(head.id) ?? storedOf(head), at);
  }

  // The item as stored now (a step may have written it since its head was read).
  private storedNow(id: string): StoredItem | undefined {
    const row = this.ctx.storage.sql.exec<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM lane_items WHERE id = ?`, id).toArray()[0];
    return row ? storedOf(row) : undefined;
  }

  private async instance(id: string): Promise<InstanceRow | undefined> {
    const hit = this.instanceCache.lookup(id);
    if (hit) return hit.value;
    const row = await instances.senderOf(this.db, id);
    this.instanceCache.set(id, row);
    return row;
  }

  // The alarm always points at the earliest thing due: the item in flight's next step, else the
  // head's pacing slot or the next message to come due (it may outrank the head), else the
  // earliest waiting message. No work: no alarm. The messages behind a head that waits for its
  // slot wait with it: counting them as due would spin the alarm until the slot.
  private async rearm(): Promise<void> {
    const now = Date.now();
    const next = this.ctx.storage.sql.exec<{ due: number | null }>(EARLIEST_DUE, now, now).one().due;
    if (next === null) {
      await this.ctx.storage.deleteAlarm();
      return;
    }
    // After a failed step, nothing runs before its wait is over (new work included: it needs D1 too).
    await this.ctx.storage.setAlarm(Math.max(next, Date.now(), this.ctx.storage.kv.get<number>("stepErrorUntil") ?? 0));
  }
}

/** The contact a lane serves: its key is tenant:instance:contact. */
const contactOfLane = (laneKey: string) => laneKey.split(":").slice(2).join(":");

function contentOf(row: MessageRow): Outgoing {
  return { to: row.address, text: row.text, media: row.media ? (JSON.parse(row.media) as MediaJson) : null };
}

/** The item's stored state as the machine reads it. An answer that cannot be read back (should not
 *  happen) is a doubt: the provider is asked rather than the answer guessed. */
function storedOf(row: ItemRow): StoredItem {
  switch (row.phase) {
    case "waiting":
      return { phase: "waiting", attempts: row.attempts, readyAt: row.ready_at, nextAt: row.next_at };
    case "retrying":
      return { phase: "retrying", attempts: row.attempts, attemptAt: row.attempt_at, nextAt: row.next_at };
    case "in_doubt":
      return { phase: "in_doubt", attempts: row.attempts, attemptAt: row.attempt_at, nextAt: row.next_at, checks: row.checks };
    case "unrecorded": {
      const outcome = parseOutcome(row.outcome);
      if (!outcome) return { phase: "in_doubt", attempts: row.attempts, attemptAt: row.attempt_at, nextAt: row.next_at, checks: 0 };
      return { phase: "unrecorded", attempts: row.attempts, attemptAt: row.attempt_at, nextAt: row.next_at, outcome };
    }
    case "done":
      return { phase: "done" };
  }
}

const storedOutcome = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("sent"), providerMessageId: z.string().min(1), detail: z.string().optional() }),
  z.object({ kind: z.literal("failed"), error: z.string() }),
]);

function parseOutcome(json: string | null): Outcome | undefined {
  try {
    return storedOutcome.parse(JSON.parse(json ?? "null"));
  } catch {
    return undefined;
  }
}
