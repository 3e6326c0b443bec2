// Pacing policy of one number, kept pure (no I/O, time and randomness passed in) so the
// InstanceGovernor stays a thin shell and every rule can be tested with a hand-set clock.
//
// A send may go when all of these hold: the number is not paused, it is outside quiet hours, the
// day's count (in the number's time zone, grown by warm-up) is below the cap, the random gap since
// the last send has passed, and the GCRA token bucket (ratePerMinute + burst) has room. Requests
// that cannot go are remembered as waiters and given staggered retry times ("tickets"), so 500
// lanes do not all come back at once, and so transactional messages (priority 1–3) are granted
// the next free slot before campaign messages (priority ≥ 4).
//
// A number with gaps also sends one message at a time, like a person: its grant is the number's
// *turn*, held from the grant until the lane's call to Evolution has its answer (release), and the
// next turn starts no sooner than that answer plus the gap drawn at the grant. So the gaps hold at
// Evolution, not only between grants (each lane claims its message in D1 between the two, and
// claims finish in bunches). The released turn wakes the first lane in line; the others come back
// at their staggered times, so a campaign to 500 contacts never has 500 lanes polling.
//
// Settings and their stored form: settings.ts; time-zone arithmetic: calendar.ts.
import { ExpiryHeap, type LineKey, WaitingLine } from "../waiting-line.ts";
import { daysBetween, localDay, localTime, minuteOf, nextLocalMinute } from "./calendar.ts";
import type { Pacing } from "./settings.ts";

// Typing presence: a person types about 40 ms per character; never shorter than 1 s, never longer
// than 12 s (WhatsApp drops a "typing…" indicator after ~25 s without a refresh).
export const TYPING_MS_PER_CHAR = 40;
export const TYPING_MIN_MS = 1_000;
export const TYPING_MAX_MS = 12_000;

/** When the quiet window that contains `now` ends, or null when `now` is outside it. */
export function quietUntil(now: number, quiet: Pacing["quietHours"]): number | null {
  if (!quiet) return null;
  const start = minuteOf(quiet.start);
  const end = minuteOf(quiet.end);
  const cur = localTime(now, quiet.timeZone).minute;
  const inside = start < end ? cur >= start && cur < end : cur >= start || cur < end;
  return inside ? nextLocalMinute(now, quiet.timeZone, end) : null;
}

/** The daily cap on the day of `now`: warm-up grows it linearly from startPerDay to dailyCap. */
export function capOn(now: number, p: Pacing): number | null {
  if (p.dailyCap === null) return null;
  if (!p.warmup) return p.dailyCap;
  const day = Math.max(0, daysBetween(p.warmup.since, now, p.timeZone));
  if (day >= p.warmup.days) return p.dailyCap;
  const start = Math.min(p.warmup.startPerDay, p.dailyCap);
  return Math.round(start + ((p.dailyCap - start) * day) / p.warmup.days);
}

export function typingMsFor(textLength: number): number {
  return Math.min(TYPING_MAX_MS, Math.max(TYPING_MIN_MS, textLength * TYPING_MS_PER_CHAR));
}

// ---------------------------------------------------------------------------------------------
// The decision
// ---------------------------------------------------------------------------------------------

export type AcquireRequest = {
  laneKey: string;
  messageId: string;
  priority: number;
  ratePerMinute: number;
  now?: number;
  // A retry is another send and takes its own slot: grants are remembered per messageId + attempt.
  attempt?: number;
  // Characters of the text about to go; with `typing` on, the answer carries how long to type.
  textLength?: number;
};

export type WaitReason = "paused" | "quiet-hours" | "daily-cap" | "rate" | "gap" | "fairness" | "sending";

export type AcquireAnswer = { go: true; typingMs?: number; sendAt?: number } | { go: false; retryAt: number; reason?: WaitReason; note?: string };

export type Pause = { reason: string; at: number; until: number | null; detail?: string };

/** What must survive eviction: the day's count (a broken cap would be a broken promise), the
 *  bucket and gap (so a restart does not grant a burst), and the last grants (idempotency):
 *  [grant key, send time, the gap drawn for it]. */
export type Durable = { day: string; count: number; tat: number; gapUntil: number; recent: [string, number, number?][] };

type Waiter = { priority: number; laneKey: string; firstAt: number; retryAt: number; reason?: WaitReason; noted?: WaitReason; place: LineKey };

/** The key a grant is remembered under: one per message and attempt. */
export const grantKey = (messageId: string, attempt = 1) => `${messageId}#${attempt}`;

// A waiter that does not come back within this long after its retry time is forgotten (its
// message was canceled or sent elsewhere); it then no longer holds a slot for fairness.
const WAITER_GRACE_MS = 60_000;
// While paused with no end in sight, lanes ask again this often (a resume is seen within it).
export const PAUSED_POLL_MS = 60_000;
// Grants remembered for idempotency.
const RECENT_GRANTS = 64;
// A turn not given back (its lane stopped between grant and answer) frees the number this long
// after the grant's send time, on top of the Evolution timeout: the claim in between takes
// milliseconds; this is only a safety net.
export const TURN_CLAIM_MS = 5_000;

export const isUrgent = (priority: number) => priority <= 3;
// Lanes offered the next turn when one ends (a waiter whose message went away meanwhile declines).
const WAKE_NEXT = 3;
// Waiters a turn's end may concern (not those held by a pause, quiet hours or the day's cap).
const TURN_REASONS: ReadonlySet<WaitReason> = new Set(["sending", "gap", "rate", "fairness"]);
// Only a number with gaps sends one at a time (turns); without, calls may overlap.
const spaced = (p: Pacing) => p.gapMs.max > 0;

export class PacingPolicy {
  durable: Durable = { day: "", count: 0, tat: 0, gapUntil: 0, recent: [] };
  pause: Pause | null = null;
  // The waiters by message id, the same in line order, and their expiry times: every per-request
  // step is O(log n) in the number of waiters (a 50,000-contact campaign on one number).
  private waiters = new Map<string, Waiter>();
  private line = new WaitingLine();
  private expiry = new ExpiryHeap();
  private urgentWaiters = 0;
  private invalidNumbers: number[] = [];
  // The turn of a number with gaps (whose grant it is, until when at the latest) and the floor of
  // the next: the last answer plus its gap. Memory only: an eviction (only when idle, so the floor
  // has passed) forgets them; the grants' own gap and bucket are durable.
  // Public for tests, which move time by hand.
  sends: { turn: { key: string; until: number } | null; floor: number } = { turn: null, floor: 0 };

  /** `callMs`: how long a call to Evolution may take (its timeout), for the turn's lease. */
  constructor(
    private readonly random: () => number = Math.random,
    public callMs = 30_000,
  ) {}

  /** Decides one request; mutates the state only when it grants. */
  decide(req: AcquireRequest, p: Pacing, now: number): AcquireAnswer {
    const key = grantKey(req.messageId, req.attempt);
    const granted = this.durable.recent.find(([k]) => k === key);
    // Asked again (a re-run of the lane's step, the end of its typing): the same go, without a new
    // count. A number with gaps goes on only with its turn: still this grant's, or free again past
    // the floor (the lane was slower than the turn's lease).
    if (granted) {
      if (spaced(p)) {
        const held = this.turnOf(now) === key;
        const busy = this.turnTaken(key, now);
        if (busy || (!held && this.sends.floor > now))
          return this.wait(req.messageId, this.waiterFor(req, now), busy ? now + this.spacing(p) : this.sends.floor, busy ? "sending" : "gap", p, now);
        this.takeTurn(key, Math.max(now, granted[1]));
      }
      this.forgetWaiter(req.messageId);
      return granted[1] > now ? { go: true, typingMs: granted[1] - now, sendAt: granted[1] } : { go: true };
    }

    this.forgetStale(now);
    const waiter = this.waiterFor(req, now);
    const day = localDay(now, p.timeZone);
    if (this.durable.day !== day) this.durable = { ...this.durable, day, count: 0 };

    // Closed for reasons that hold every request alike: one retry time, staggered per waiter.
    if (this.pause && (this.pause.until === null || now < this.pause.until)) {
      return this.wait(req.messageId, waiter, this.pause.until ?? now + PAUSED_POLL_MS, "paused", p, now);
    }
    const quiet = quietUntil(now, p.quietHours);
    if (quiet !== null) return this.wait(req.messageId, waiter, quiet, "quiet-hours", p, now);
    const cap = capOn(now, p);
    if (cap !== null && this.durable.count >= cap) {
      let open = nextLocalMinute(now, p.timeZone, 0);
      open = quietUntil(open, p.quietHours) ?? open;
      return this.wait(req.messageId, waiter, open, "daily-cap", p, now);
    }

    // A number with gaps: one turn at a time. The first in line is woken when it ends.
    if (spaced(p) && this.turnTaken(key, now)) return this.wait(req.messageId, waiter, now + this.spacing(p), "sending", p, now);

    // The bucket: GCRA with `burst` sends of tolerance.
    const interval = 60_000 / p.ratePerMinute;
    const bucketAt = this.durable.tat - interval * (p.burst - 1);
    // The gap counts from the last answer (the floor), or from the last grant when that is later.
    const gapUntil = Math.max(this.durable.gapUntil, this.sends.floor);
    const free = Math.max(bucketAt, gapUntil);
    if (free > now) return this.wait(req.messageId, waiter, free, gapUntil >= bucketAt ? "gap" : "rate", p, now);
    // Fairness: a free slot goes to a transactional waiter before any campaign message.
    if (!isUrgent(req.priority) && this.urgentWaiting(req.messageId)) {
      return this.wait(req.messageId, waiter, now + this.spacing(p), "fairness", p, now);
    }

    const typingMs = p.typing && req.textLength ? typingMsFor(req.textLength) : 0;
    const sendAt = now + typingMs;
    const gap = this.drawGap(p);
    this.durable = {
      day,
      count: this.durable.count + 1,
      tat: Math.max(this.durable.tat, sendAt) + interval,
      gapUntil: sendAt + gap,
      recent: [...this.durable.recent, [key, sendAt, gap] as [string, number, number]].slice(-RECENT_GRANTS),
    };
    this.forgetWaiter(req.messageId);
    if (spaced(p)) this.takeTurn(key, sendAt);
    return typingMs > 0 ? { go: true, typingMs, sendAt } : { go: true };
  }

  /** The lane of `key` is done with its turn: its call has Evolution's answer (`called`), or it
   *  made no call after all (its claim found the message canceled, or older ones first). The next
   *  turn starts after the gap drawn at the grant, counted from now. Returns the lanes to wake,
   *  first in line first: the first that still waits takes the turn. */
  release(key: string, p: Pacing, now: number, called = true): string[] {
    if (!spaced(p)) return [];
    const s = this.sends;
    let floor = s.floor;
    if (called) {
      const drawn = this.durable.recent.find(([k]) => k === key)?.[2];
      floor = Math.max(floor, now + (drawn ?? this.drawGap(p)));
    }
    const mine = s.turn?.key === key;
    this.sends = { turn: mine ? null : s.turn, floor };
    return mine ? this.waitingLanes(TURN_REASONS, WAKE_NEXT) : [];
  }

  /** Whose turn it is, when a number with gaps has one out. */
  turnOf(now: number): string | null {
    const t = this.sends.turn;
    return t && t.until > now ? t.key : null;
  }

  // The waiter of this request, created on its first wait; its priority as last asked.
  private waiterFor(req: AcquireRequest, now: number): Waiter {
    const known = this.waiters.get(req.messageId);
    if (known && isUrgent(known.priority) === isUrgent(req.priority)) {
      known.priority = req.priority;
      return known;
    }
    // New, or moved to the other class: (re)placed in line, keeping its arrival.
    if (known) this.forgetWaiter(req.messageId);
    const firstAt = known?.firstAt ?? now;
    const waiter: Waiter = {
      priority: req.priority,
      laneKey: req.laneKey,
      firstAt,
      retryAt: known?.retryAt ?? now,
      reason: known?.reason,
      noted: known?.noted,
      place: { urgent: isUrgent(req.priority), firstAt, id: req.messageId },
    };
    this.waiters.set(req.messageId, waiter);
    this.line.insert(waiter.place);
    if (waiter.place.urgent) this.urgentWaiters++;
    return waiter;
  }

  private forgetWaiter(id: string) {
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    this.waiters.delete(id);
    this.line.remove(waiter.place);
    if (waiter.place.urgent) this.urgentWaiters--;
  }

  /** Steps taken over the waiters since creation (line and expiry): for tests that bound the work. */
  get work(): number {
    return this.line.visits + this.expiry.moves;
  }

  // A gap in [min, max], drawn anew for each send.
  private drawGap(p: Pacing): number {
    return p.gapMs.min + Math.floor(this.random() * (p.gapMs.max - p.gapMs.min + 1));
  }

  private turnTaken(key: string, now: number): boolean {
    const t = this.sends.turn;
    return t !== null && t.key !== key && t.until > now;
  }

  private takeTurn(key: string, sendAt: number) {
    this.sends = { ...this.sends, turn: { key, until: sendAt + TURN_CLAIM_MS + this.callMs } };
  }

  /** WhatsApp refused the send (rate-overlimit): it was not sent, so its grant and count go back
   *  and the retry asks again (and waits for the pause). */
  forgetGrant(key: string): boolean {
    const before = this.durable.recent.length;
    const recent = this.durable.recent.filter(([k]) => k !== key);
    if (recent.length === before) return false;
    this.durable = { ...this.durable, count: Math.max(0, this.durable.count - 1), recent };
    return true;
  }

  /** A permanent "not on WhatsApp" answer; true when it tips the number into a spike pause. */
  noteInvalidNumber(p: Pacing, now: number): boolean {
    if (!p.invalidNumberSpike) return false;
    const from = now - p.invalidNumberSpike.windowMinutes * 60_000;
    this.invalidNumbers = [...this.invalidNumbers.filter((t) => t > from), now];
    if (this.invalidNumbers.length < p.invalidNumberSpike.count) return false;
    this.invalidNumbers = [];
    return true;
  }

  /** Sends granted today and today's cap, for operators. */
  today(p: Pacing, now: number) {
    const day = localDay(now, p.timeZone);
    return { day, sent: this.durable.day === day ? this.durable.count : 0, cap: capOn(now, p), waiting: this.waiters.size };
  }

  /** Lanes with a request waiting here for one of `reasons`, first in line first (to wake them on
   *  resume, or when a turn ends). */
  waitingLanes(reasons: ReadonlySet<WaitReason>, limit = Number.POSITIVE_INFINITY): string[] {
    const lanes = new Set<string>();
    for (const place of this.line.inOrder()) {
      if (lanes.size >= limit) break;
      const w = this.waiters.get(place.id);
      if (w?.reason !== undefined && reasons.has(w.reason)) lanes.add(w.laneKey);
    }
    return [...lanes];
  }

  private wait(id: string, waiter: Waiter, openAt: number, reason: WaitReason, p: Pacing, now: number): AcquireAnswer {
    const retryAt = Math.max(now + 1, Math.ceil(openAt + this.position(waiter) * this.spacing(p)));
    waiter.retryAt = retryAt;
    waiter.reason = reason;
    this.expiry.push(retryAt, id);
    // A history note once per message and reason, for the long waits a person would ask about.
    let note: string | undefined;
    if ((reason === "daily-cap" || reason === "quiet-hours") && waiter.noted !== reason) {
      waiter.noted = reason;
      const until = new Date(retryAt).toISOString();
      note = reason === "daily-cap" ? `daily cap of ${capOn(now, p)} reached; waits until ${until}` : `quiet hours; waits until ${until}`;
    }
    return note ? { go: false, retryAt, reason, note } : { go: false, retryAt, reason };
  }

  // Waiters ahead of this one: transactional before campaign, then first come first served.
  private position(me: Waiter): number {
    return this.line.ahead(me.place);
  }

  // Expected time between two sends, used to stagger tickets.
  private spacing(p: Pacing): number {
    return Math.max(60_000 / p.ratePerMinute, (p.gapMs.min + p.gapMs.max) / 2, 1);
  }

  private urgentWaiting(except: string): boolean {
    const mine = this.waiters.get(except)?.place.urgent ? 1 : 0;
    return this.urgentWaiters - mine > 0;
  }

  // Waiters past their retry time and grace, earliest first; an entry whose waiter has asked again
  // since (a later retry time) is skipped.
  private forgetStale(now: number) {
    for (let top = this.expiry.peek(); top && top[0] + WAITER_GRACE_MS < now; top = this.expiry.peek()) {
      this.expiry.pop();
      const w = this.waiters.get(top[1]);
      if (w && w.retryAt === top[0]) this.forgetWaiter(top[1]);
    }
    // Entries outlived by later ones pile up under waiters that keep asking: rebuilt when they
    // outnumber the waiters.
    if (this.expiry.length > 2 * this.waiters.size + 1024) {
      this.expiry.clear();
      for (const [id, w] of this.waiters) this.expiry.push(w.retryAt, id);
    }
  }
}
