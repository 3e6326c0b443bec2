// Faults for chaos runs, beyond the scripted ones of config.ts: sends that hang past the client's
// timeout (and go out anyway, as Evolution may, or not), sends relayed to WhatsApp and then
// answered 500/502, look-alikes landing in the message store while a send hangs (typed on the
// phone, or sent by another client of the instance), and webhooks dropped, duplicated or delayed
// out of order (`send.message` on its own switches too). Each fault is off by default. With a seed every decision is a hash of the seed and what it is about (a send's body and
// attempt number, a webhook's event and message), so a rerun with the same seed meets the same
// faults whatever the timing.
import { Hono } from "hono";
import { z } from "zod";
import type { SimulatorState } from "./state.ts";

const rate = z.number().min(0).max(1);

export const chaosSettings = z.strictObject({
  /** Fixed seed for every chaos decision and for `failureRate`; null draws from Math.random. */
  seed: z.number().int().nullable().optional(),
  /** Share of sends answered only after `timeoutMs` (past the gateway's Evolution timeout). */
  timeoutRate: rate.optional(),
  timeoutMs: z.number().int().min(0).optional(),
  /** Whether a timed-out send still goes out (Evolution sent it, the answer came too late). */
  timeoutStillSends: z.boolean().optional(),
  /** Of the hung sends that would still go out, the share that never does (answered 500 late). */
  hungNeverSendsRate: rate.optional(),
  /** Share of sends relayed to WhatsApp (stored, webhooks emitted) and then answered 500 or 502:
   *  Evolution's own write failing after Baileys relayed, or a proxy in front of it. */
  relayThenFailRate: rate.optional(),
  /** Share of hung sends during which a look-alike lands in the store: same chat, same text (or a
   *  caption-less media of the same type), not sent by this request. */
  lookAlikeRate: rate.optional(),
  /** Of the look-alikes, the share sent by another API client of the instance (a Baileys id,
   *  `source: "web"`, a `send.message` webhook); the rest are typed on the phone. */
  lookAlikeClientShare: rate.optional(),
  /** `send.message` only: share never delivered, posted twice, or held back by `sendMessageLateMs`. */
  sendMessageDropRate: rate.optional(),
  sendMessageDuplicateRate: rate.optional(),
  sendMessageLateRate: rate.optional(),
  sendMessageLateMs: z.number().int().min(0).optional(),
  /** Share of webhooks never delivered, duplicated (posted twice), or held back by up to `webhookReorderMs`. */
  webhookDropRate: rate.optional(),
  webhookDuplicateRate: rate.optional(),
  webhookReorderRate: rate.optional(),
  webhookReorderMs: z.number().int().min(0).optional(),
});
type Settings = z.infer<typeof chaosSettings>;
export type ChaosSettings = { [K in Exclude<keyof Settings, "seed">]-?: NonNullable<Settings[K]> } & { seed: number | null };

const defaults = (): ChaosSettings => ({
  seed: null,
  timeoutRate: 0,
  timeoutMs: 35_000,
  timeoutStillSends: true,
  hungNeverSendsRate: 0,
  relayThenFailRate: 0,
  lookAlikeRate: 0,
  lookAlikeClientShare: 0,
  sendMessageDropRate: 0,
  sendMessageDuplicateRate: 0,
  sendMessageLateRate: 0,
  sendMessageLateMs: 10_000,
  webhookDropRate: 0,
  webhookDuplicateRate: 0,
  webhookReorderRate: 0,
  webhookReorderMs: 2_000,
});

// Kept beside the state rather than in it: these switches are only for chaos runs.
const settingsOf = new WeakMap<SimulatorState, ChaosSettings>();
const attemptsOf = new WeakMap<SimulatorState, Map<string, number>>();
// Provider id → the send attempt that made it, so a webhook's fate does not hang on a random id.
const sendsOf = new WeakMap<SimulatorState, Map<string, string>>();
const emitsOf = new WeakMap<SimulatorState, Map<string, number>>();
// How many of each planted fault happened, for a run's report.
const countsOf = new WeakMap<SimulatorState, Record<string, number>>();

export function countFault(state: SimulatorState, what: string): void {
  const counts = countsOf.get(state) ?? {};
  countsOf.set(state, counts);
  counts[what] = (counts[what] ?? 0) + 1;
}

export const faultCounts = (state: SimulatorState): Record<string, number> => ({ ...countsOf.get(state) });

export function chaosOf(state: SimulatorState): ChaosSettings {
  let s = settingsOf.get(state);
  if (!s) {
    s = defaults();
    settingsOf.set(state, s);
  }
  return s;
}

export function setChaos(state: SimulatorState, patch: z.infer<typeof chaosSettings>): ChaosSettings {
  const next = { ...chaosOf(state) };
  for (const [k, v] of Object.entries(chaosSettings.parse(patch))) if (v !== undefined) Object.assign(next, { [k]: v });
  settingsOf.set(state, next);
  return next;
}

/** A number in [0, 1): from the seed and `about` when seeded, else random. */
export function roll(state: SimulatorState, about: string): number {
  const { seed } = chaosOf(state);
  if (seed === null) return Math.random();
  // FNV-1a over the text, then a murmur3 finaliser: cheap and well spread.
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < about.length; i++) h = Math.imul(h ^ about.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

/** What identifies one send attempt: the request body and how many times it was seen before. */
export function sendAttemptKey(state: SimulatorState, instance: string, body: unknown): string {
  const seen = attemptsOf.get(state) ?? new Map<string, number>();
  attemptsOf.set(state, seen);
  const text = `${instance}:${JSON.stringify(body)}`;
  const n = (seen.get(text) ?? 0) + 1;
  seen.set(text, n);
  return `${text}#${n}`;
}

export function rememberSend(state: SimulatorState, keyId: string, attempt: string): void {
  if (chaosOf(state).seed === null) return;
  const sends = sendsOf.get(state) ?? new Map<string, string>();
  sendsOf.set(state, sends);
  sends.set(keyId, attempt);
}

/** A stable name for the n-th webhook of this event about this message. */
function webhookAbout(state: SimulatorState, event: string, keyId: string | undefined, seq: number): string {
  if (keyId === undefined) return `${event}:#${seq}`;
  const emits = emitsOf.get(state) ?? new Map<string, number>();
  emitsOf.set(state, emits);
  const ref = `${event}:${sendsOf.get(state)?.get(keyId) ?? keyId}`;
  const n = (emits.get(ref) ?? 0) + 1;
  emits.set(ref, n);
  return `${ref}#${n}`;
}

export type WebhookPlan = { drop: boolean; copies: number; delayMs: number };

export function planWebhook(state: SimulatorState, event: string, keyId: string | undefined, seq: number): WebhookPlan {
  const c = chaosOf(state);
  const sendMessage = event === "send.message";
  const own = sendMessage && (c.sendMessageDropRate > 0 || c.sendMessageDuplicateRate > 0 || c.sendMessageLateRate > 0);
  if (!own && c.webhookDropRate === 0 && c.webhookDuplicateRate === 0 && c.webhookReorderRate === 0) return { drop: false, copies: 1, delayMs: 0 };
  const about = webhookAbout(state, event, keyId, seq);
  if (roll(state, `drop:${about}`) < c.webhookDropRate) return { drop: true, copies: 0, delayMs: 0 };
  if (sendMessage && roll(state, `sm-drop:${about}`) < c.sendMessageDropRate) return { drop: true, copies: 0, delayMs: 0 };
  const twice = roll(state, `dup:${about}`) < c.webhookDuplicateRate || (sendMessage && roll(state, `sm-dup:${about}`) < c.sendMessageDuplicateRate);
  let delayMs = roll(state, `reorder:${about}`) < c.webhookReorderRate ? Math.floor(roll(state, `by:${about}`) * c.webhookReorderMs) : 0;
  if (sendMessage && roll(state, `sm-late:${about}`) < c.sendMessageLateRate) delayMs = Math.max(delayMs, c.sendMessageLateMs);
  return { drop: false, copies: twice ? 2 : 1, delayMs };
}

/** What becomes of one send attempt, decided up front from the seed: `relayThenFail` (the status
 *  answered after the message went out), and for a hung send whether it still goes out and
 *  whether a look-alike lands in the store meanwhile (and whose). */
export type SendFate = {
  relayThenFail: 500 | 502 | undefined;
  hangNeverSends: boolean;
  lookAlike: "phone" | "client" | undefined;
};

export function sendFate(state: SimulatorState, attempt: string): SendFate {
  const c = chaosOf(state);
  const relayThenFail = roll(state, `relay-fail:${attempt}`) < c.relayThenFailRate ? (roll(state, `relay-status:${attempt}`) < 0.5 ? 500 : 502) : undefined;
  const hangNeverSends = roll(state, `hang-lost:${attempt}`) < c.hungNeverSendsRate;
  const lookAlike =
    roll(state, `look-alike:${attempt}`) < c.lookAlikeRate
      ? roll(state, `look-alike-who:${attempt}`) < c.lookAlikeClientShare
        ? "client"
        : "phone"
      : undefined;
  return { relayThenFail, hangNeverSends, lookAlike };
}

export function chaosRoutes(state: SimulatorState): Hono {
  const app = new Hono();
  app.get("/", (c) => c.json(chaosOf(state)));
  app.patch("/", async (c) => {
    const parsed = chaosSettings.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: "invalid body", issues: parsed.error.issues }, 400);
    return c.json(setChaos(state, parsed.data));
  });
  return app;
}
