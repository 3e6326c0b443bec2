// A number's pacing settings: what PUT /v1/instances/:name takes (`pacing`), every default filled
// in, the stored form (D1 `instances` columns) and the view GET shows. The rules that apply them
// are in policy.ts.
import { z } from "zod";
import { isTimeZone } from "./calendar.ts";

export const DEFAULT_RATE_PER_MINUTE = 60;
export const DEFAULT_TIME_ZONE = "UTC";
export const DEFAULT_SPIKE = { count: 10, windowMinutes: 10 } as const;
export const DEFAULT_OVERLIMIT_PAUSE_MINUTES = 15;

/** How many sends may go back to back when no burst is configured (as before: one second's worth). */
export const burstFor = (ratePerMinute: number) => Math.max(1, Math.ceil(ratePerMinute / 60));

const timeZone = z.string().min(1).max(64).refine(isTimeZone, "Not an IANA time zone (e.g. America/Sao_Paulo).");
const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "A time of day as HH:MM (24 h).");

/** The `pacing` object of PUT /v1/instances/:name. Omitted fields keep their value; null turns a feature off. */
export const pacingInput = z
  .strictObject({
    ratePerMinute: z.int().min(1).max(60000).optional(),
    burst: z.int().min(1).max(1000).nullable().optional(),
    gapMs: z
      .strictObject({ min: z.int().min(0).max(3_600_000), max: z.int().min(0).max(3_600_000) })
      .refine((g) => g.min <= g.max, { message: "min must not exceed max.", path: ["max"] })
      .optional(),
    dailyCap: z.int().min(1).max(1_000_000).nullable().optional(),
    timeZone: timeZone.optional(),
    warmup: z
      .strictObject({ days: z.int().min(1).max(365), startPerDay: z.int().min(1).max(1_000_000) })
      .nullable()
      .optional(),
    quietHours: z
      .strictObject({ start: clock, end: clock, timeZone: timeZone.optional() })
      .refine((q) => q.start !== q.end, { message: "start and end must differ.", path: ["end"] })
      .nullable()
      .optional(),
    typing: z.boolean().optional(),
    invalidNumberSpike: z
      .strictObject({ count: z.int().min(1).max(10_000), windowMinutes: z.int().min(1).max(1440) })
      .nullable()
      .optional(),
    overlimitPauseMinutes: z.int().min(1).max(1440).optional(),
  })
  .refine((p) => !p.warmup || p.dailyCap !== null, {
    message: "Warm-up grows the daily cap: it needs dailyCap.",
    path: ["warmup"],
  });
export type PacingInput = z.infer<typeof pacingInput>;

/** A number's pacing with every default filled in. */
export type Pacing = {
  ratePerMinute: number;
  burst: number;
  gapMs: { min: number; max: number };
  dailyCap: number | null;
  timeZone: string;
  // `since`: when warm-up was configured (epoch ms); day 0 is that calendar day.
  warmup: { days: number; startPerDay: number; since: number } | null;
  quietHours: { start: string; end: string; timeZone: string } | null;
  typing: boolean;
  invalidNumberSpike: { count: number; windowMinutes: number } | null;
  overlimitPauseMinutes: number;
};

export const defaultPacing = (ratePerMinute = DEFAULT_RATE_PER_MINUTE): Pacing => ({
  ratePerMinute,
  burst: burstFor(ratePerMinute),
  gapMs: { min: 0, max: 0 },
  dailyCap: null,
  timeZone: DEFAULT_TIME_ZONE,
  warmup: null,
  quietHours: null,
  typing: false,
  invalidNumberSpike: { ...DEFAULT_SPIKE },
  overlimitPauseMinutes: DEFAULT_OVERLIMIT_PAUSE_MINUTES,
});

// Stored form (D1 `instances` columns) ↔ Pacing.

export type PacingColumns = {
  ratePerMinute: number;
  burst: number | null;
  gapMinMs: number;
  gapMaxMs: number;
  dailyCap: number | null;
  timeZone: string;
  warmupDays: number | null;
  warmupStartPerDay: number | null;
  warmupSince: number | null;
  quietStart: string | null;
  quietEnd: string | null;
  quietTimeZone: string | null;
  typing: boolean;
  spikeCount: number | null;
  spikeWindowMinutes: number | null;
  overlimitPauseMinutes: number;
};

export function pacingOf(c: PacingColumns): Pacing {
  return {
    ratePerMinute: c.ratePerMinute,
    burst: c.burst ?? burstFor(c.ratePerMinute),
    gapMs: { min: c.gapMinMs, max: Math.max(c.gapMinMs, c.gapMaxMs) },
    dailyCap: c.dailyCap,
    timeZone: c.timeZone,
    warmup: c.warmupDays !== null && c.warmupStartPerDay !== null ? { days: c.warmupDays, startPerDay: c.warmupStartPerDay, since: c.warmupSince ?? 0 } : null,
    quietHours: c.quietStart && c.quietEnd ? { start: c.quietStart, end: c.quietEnd, timeZone: c.quietTimeZone ?? c.timeZone } : null,
    typing: c.typing,
    invalidNumberSpike: c.spikeCount !== null && c.spikeWindowMinutes !== null ? { count: c.spikeCount, windowMinutes: c.spikeWindowMinutes } : null,
    overlimitPauseMinutes: c.overlimitPauseMinutes,
  };
}

/** The columns to write for an input on top of what is stored (omitted: kept; null: off). */
export function pacingColumns(input: PacingInput, stored: PacingColumns, now: number): PacingColumns {
  // Only the pacing fields: `stored` may be a whole instance row.
  const next: PacingColumns = {
    ratePerMinute: stored.ratePerMinute,
    burst: stored.burst,
    gapMinMs: stored.gapMinMs,
    gapMaxMs: stored.gapMaxMs,
    dailyCap: stored.dailyCap,
    timeZone: stored.timeZone,
    warmupDays: stored.warmupDays,
    warmupStartPerDay: stored.warmupStartPerDay,
    warmupSince: stored.warmupSince,
    quietStart: stored.quietStart,
    quietEnd: stored.quietEnd,
    quietTimeZone: stored.quietTimeZone,
    typing: stored.typing,
    spikeCount: stored.spikeCount,
    spikeWindowMinutes: stored.spikeWindowMinutes,
    overlimitPauseMinutes: stored.overlimitPauseMinutes,
  };
  if (input.ratePerMinute !== undefined) next.ratePerMinute = input.ratePerMinute;
  if (input.burst !== undefined) next.burst = input.burst;
  if (input.gapMs) {
    next.gapMinMs = input.gapMs.min;
    next.gapMaxMs = input.gapMs.max;
  }
  if (input.dailyCap !== undefined) next.dailyCap = input.dailyCap;
  if (input.timeZone !== undefined) next.timeZone = input.timeZone;
  if (input.warmup !== undefined) {
    const changed = input.warmup?.days !== stored.warmupDays || input.warmup?.startPerDay !== stored.warmupStartPerDay;
    next.warmupDays = input.warmup?.days ?? null;
    next.warmupStartPerDay = input.warmup?.startPerDay ?? null;
    // Warm-up counts its days from when it was (re)configured.
    next.warmupSince = input.warmup ? (changed || stored.warmupSince === null ? now : stored.warmupSince) : null;
  }
  if (input.quietHours !== undefined) {
    next.quietStart = input.quietHours?.start ?? null;
    next.quietEnd = input.quietHours?.end ?? null;
    next.quietTimeZone = input.quietHours?.timeZone ?? null;
  }
  if (input.typing !== undefined) next.typing = input.typing;
  if (input.invalidNumberSpike !== undefined) {
    next.spikeCount = input.invalidNumberSpike?.count ?? null;
    next.spikeWindowMinutes = input.invalidNumberSpike?.windowMinutes ?? null;
  }
  if (input.overlimitPauseMinutes !== undefined) next.overlimitPauseMinutes = input.overlimitPauseMinutes;
  return next;
}

/** The `pacing` object shown on GET /v1/instances/:name. */
export function pacingView(p: Pacing) {
  return {
    ratePerMinute: p.ratePerMinute,
    burst: p.burst,
    gapMs: p.gapMs,
    dailyCap: p.dailyCap,
    timeZone: p.timeZone,
    warmup: p.warmup ? { days: p.warmup.days, startPerDay: p.warmup.startPerDay, since: new Date(p.warmup.since).toISOString() } : null,
    quietHours: p.quietHours,
    typing: p.typing,
    invalidNumberSpike: p.invalidNumberSpike,
    overlimitPauseMinutes: p.overlimitPauseMinutes,
  };
}
