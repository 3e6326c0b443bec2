// InstanceGovernor: one per Evolution instance (named by instance id). Every lane of that number
// asks it before a send (`acquire`); it answers go, or when to ask again. The rules live in
// ./pacing/policy.ts; this object holds their state, reads the number's pacing from D1, and turns the
// signals of a number in trouble (rate-overlimit, a closed connection, a spike of numbers that are
// not on WhatsApp) into a pause, announced as an `instance.status` event.
//
// Storage on the hot path: one write per grant (the day's count, bucket, gap and the last grants),
// put with allowUnconfirmed so the answer does not wait behind the output gate. An eviction keeps
// it (writes are flushed); only a failed storage commit could lose the last few, which at worst
// lets a day go a few sends over its cap. Waiters (for fairness and staggered retries) and the
// spike window stay in memory: losing them only reshuffles who asks first.
import { DurableObject } from "cloudflare:workers";
import { runBatch } from "../db/batch.ts";
import { database } from "../db/client.ts";
import { instances } from "../db/queries/index.ts";
import { config } from "../config.ts";
import { errorField, log } from "../observability/log.ts";
import { writeEvent } from "../outbox/write.ts";
import { type AcquireAnswer, type AcquireRequest, type Durable, grantKey, PacingPolicy, type Pause, type WaitReason } from "./pacing/policy.ts";
import { defaultPacing, type Pacing, pacingOf } from "./pacing/settings.ts";

export type { AcquireAnswer, AcquireRequest } from "./pacing/policy.ts";

export type GovernorSignal =
  // messageId (as given to acquire): that send was refused, so its grant is given back.
  // until: when the provider said the sender may go again (Telegram's retry_after); absent: the
  // instance's overlimitPauseMinutes.
  | { kind: "rate-overlimit"; instanceId: string; messageId?: string; detail?: string; now?: number; until?: number }
  | { kind: "invalid-number"; instanceId: string; detail?: string; now?: number }
  | { kind: "connection"; instanceId: string; state: string; statusReason?: number | null; now?: number };

export type PauseReason = "rate-overlimit" | "connection-closed" | "invalid-number-spike";
export type ResumeSource = "operator" | "connection-open" | "pause-expired";

// A stronger pause is not replaced by a weaker one: a spike needs an operator, a closed
// connection needs `open`, an overlimit pause also ends by itself.
const strength: Record<string, number> = { "rate-overlimit": 1, "connection-closed": 2, "invalid-number-spike": 3 };
const CONFIG_CACHE_MS = 10_000;
// On resume, at most this many waiting lanes are woken (in line order, a few at a time); the
// rest ask again on their own poll (PAUSED_POLL_MS).
const WAKE_LANES = 200;
const WAKE_CONCURRENCY = 10;
const PAUSED: ReadonlySet<WaitReason> = new Set(["paused"]);

export class InstanceGovernor extends DurableObject<Env> {
  // Public for tests (they move its clock state, e.g. to a new day) and operators.
  readonly policy = new PacingPolicy();
  private config: { at: number; pacing: Pacing } | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.policy.callMs = config(env).EVOLUTION_TIMEOUT_MS;
    this.policy.durable = ctx.storage.kv.get<Durable>("durable") ?? this.policy.durable;
    this.policy.pause = ctx.storage.kv.get<Pause>("pause") ?? null;
  }

  /** May this lane's head go now? Idempotent per messageId: asking again after a go answers go. */
  async acquire(req: AcquireRequest): Promise<AcquireAnswer> {
    const now = req.now ?? Date.now();
    const instanceId = this.instanceId(req.laneKey);
    const pacing = await this.pacing(instanceId, req.ratePerMinute);
    const pause = this.policy.pause;
    if (pause?.until != null && pause.until <= now) await this.resume(instanceId, "pause-expired", now);
    const before = this.policy.durable;
    const answer = this.policy.decide(req, pacing, now);
    if (this.policy.durable !== before) this.saveDurable(instanceId);
    return answer;
  }

  private saveDurable(instanceId: string) {
    this.ctx.storage
      .put("durable", this.policy.durable, { allowUnconfirmed: true })
      .catch((err) => log("error", "governor state write failed", { instanceId, error: errorField(err) }));
  }

  /** A number with gaps: the lane is done with its turn (see PacingPolicy.release). The first
   *  lane in line is woken for the next one, so no lane has to poll for it. */
  async release(req: { laneKey: string; messageId: string; called?: boolean; now?: number }): Promise<void> {
    const now = req.now ?? Date.now();
    const pacing = await this.pacing(this.instanceId(req.laneKey));
    // A lane that gives its turn back after its lease ran out (it stopped between grant and answer).
    if (this.policy.turnOf(now) !== grantKey(req.messageId)) log("warn", "governor turn given back after its lease", { messageId: req.messageId });
    for (const laneKey of this.policy.release(grantKey(req.messageId), pacing, now, req.called ?? true)) {
      if (await this.wake(laneKey, "its turn")) break;
    }
  }

  /** Something the lanes or webhooks saw about this number. */
  async report(signal: GovernorSignal): Promise<Pause | null> {
    const now = signal.now ?? Date.now();
    this.rememberInstance(signal.instanceId);
    const pacing = await this.pacing(signal.instanceId);
    if (signal.kind === "rate-overlimit") {
      if (signal.messageId && this.policy.forgetGrant(grantKey(signal.messageId))) this.saveDurable(signal.instanceId);
      await this.pauseFor(signal.instanceId, "rate-overlimit", now, signal.until ?? now + pacing.overlimitPauseMinutes * 60_000, signal.detail);
    } else if (signal.kind === "invalid-number") {
      if (this.policy.noteInvalidNumber(pacing, now)) {
        const spike = pacing.invalidNumberSpike;
        const detail = spike ? `${spike.count} numbers not on WhatsApp within ${spike.windowMinutes} min` : signal.detail;
        await this.pauseFor(signal.instanceId, "invalid-number-spike", now, null, detail);
      }
    } else if (signal.state === "close") {
      await this.pauseFor(signal.instanceId, "connection-closed", now, null, `statusReason ${signal.statusReason ?? "unknown"}`);
    } else if (signal.state === "open") {
      await this.resume(signal.instanceId, "connection-open", now);
    }
    return this.policy.pause;
  }

  /** Ends a pause. An `open` connection does not end a spike pause: that one needs an operator. */
  async resume(instanceId: string, source: ResumeSource, now = Date.now()): Promise<boolean> {
    this.rememberInstance(instanceId);
    const pause = this.policy.pause;
    if (!pause) return false;
    if (source === "connection-open" && pause.reason === "invalid-number-spike") return false;
    this.policy.pause = null;
    this.ctx.storage.kv.delete("pause");
    await this.announce(instanceId, null, now, source);
    // Lanes parked on the pause would ask again only at their next poll: wake them now. A pause
    // that simply expired needs none (its waiters were given retry times after its end).
    if (source !== "pause-expired") await this.wakeLanes(this.policy.waitingLanes(PAUSED, WAKE_LANES));
    return true;
  }

  private async wakeLanes(laneKeys: string[]) {
    for (let i = 0; i < laneKeys.length; i += WAKE_CONCURRENCY) {
      await Promise.all(laneKeys.slice(i, i + WAKE_CONCURRENCY).map((key) => this.wake(key, "resume")));
    }
  }

  // Wakes a lane parked on this governor; true when it had a request waiting here.
  private wake(laneKey: string, why: string): Promise<boolean> {
    return this.env.LANES.get(this.env.LANES.idFromName(laneKey))
      .poke()
      .catch((err) => {
        log("warn", `lane wake for ${why} failed`, { laneKey, error: errorField(err) });
        return false;
      });
  }

  /** Drops the cached pacing so a PUT applies at once. */
  refresh(): void {
    this.config = undefined;
  }

  /** Pause, today's count against the cap, waiters: for GET /v1/instances/:name and tests. */
  async status(instanceId: string, now = Date.now()) {
    this.rememberInstance(instanceId);
    const pacing = await this.pacing(instanceId);
    return { pause: this.policy.pause, today: this.policy.today(pacing, now) };
  }

  private async pauseFor(instanceId: string, reason: PauseReason, now: number, until: number | null, detail?: string) {
    const current = this.policy.pause;
    if (current && (current.until === null || current.until > now)) {
      if ((strength[current.reason] ?? 0) > (strength[reason] ?? 0)) return;
      // The same pause again (a duplicate webhook, several lanes hitting overlimit): no new event.
      if (current.reason === reason) return;
    }
    const pause: Pause = { reason, at: now, until, detail };
    this.policy.pause = pause;
    this.ctx.storage.kv.put("pause", pause);
    await this.announce(instanceId, pause, now);
  }

  // Mirrors the pause into D1 and writes the instance.status event in the same batch.
  private async announce(instanceId: string, pause: Pause | null, now: number, resumedBy?: ResumeSource) {
    const stored = instances.statusEventFromRow(instanceId);
    const row = stored.row;
    const data = pause
      ? {
          ...row,
          sending: "paused" as const,
          reason: pause.reason,
          pausedUntil: pause.until === null ? null : new Date(pause.until).toISOString(),
          detail: pause.detail ?? null,
        }
      : { ...row, sending: "active" as const, reason: resumedBy ?? "operator" };
    await runBatch(database(this.env.DB), [
      instances.mirrorPause(instanceId, pause, now),
      writeEvent("instance.status", { tenantId: stored.tenantId, occurredAt: now, data, callbackUrl: stored.callbackUrl, source: stored.source }),
    ]);
    log("info", pause ? "number paused" : "number resumed", { instanceId, reason: pause?.reason ?? resumedBy });
  }

  private async pacing(instanceId: string, fallbackRate?: number): Promise<Pacing> {
    if (this.config && Date.now() - this.config.at < CONFIG_CACHE_MS) return this.config.pacing;
    const row = await instances.byId(database(this.env.DB), instanceId);
    const pacing = row ? pacingOf(row) : defaultPacing(fallbackRate);
    this.config = { at: Date.now(), pacing };
    return pacing;
  }

  // Lane keys are tenant:instance:contact; the governor is named by the instance id.
  private instanceId(laneKey: string): string {
    const known = this.ctx.storage.kv.get<string>("instanceId");
    if (known) return known;
    const id = laneKey.split(":")[1] ?? "";
    this.rememberInstance(id);
    return id;
  }

  private rememberInstance(id: string) {
    if (id && this.ctx.storage.kv.get<string>("instanceId") !== id) this.ctx.storage.kv.put("instanceId", id);
  }
}
