// A number's pacing settings: defaults, the stored columns read back, and an input on top of them.
import { describe, expect, it } from "vitest";
import { defaultPacing, pacingColumns, pacingInput, pacingOf, pacingView } from "../../src/lanes/pacing/settings.ts";

const NOW = Date.UTC(2026, 10, 23, 15, 0, 0);
const stored = {
  ratePerMinute: 120,
  burst: null,
  gapMinMs: 0,
  gapMaxMs: 0,
  dailyCap: null,
  timeZone: "UTC",
  warmupDays: null,
  warmupStartPerDay: null,
  warmupSince: null,
  quietStart: null,
  quietEnd: null,
  quietTimeZone: null,
  typing: false,
  spikeCount: 10,
  spikeWindowMinutes: 10,
  overlimitPauseMinutes: 15,
};

describe("pacing settings", () => {
  it("stored columns without a burst read as a second's worth, like the defaults", () => {
    expect(pacingOf(stored)).toEqual({ ...defaultPacing(120), invalidNumberSpike: { count: 10, windowMinutes: 10 } });
    expect(defaultPacing(120).burst).toBe(2);
  });

  it("an input keeps what it omits, turns off what it nulls, and starts warm-up when it is set", () => {
    const input = pacingInput.parse({ dailyCap: 500, warmup: { days: 10, startPerDay: 50 }, invalidNumberSpike: null, timeZone: "America/Sao_Paulo" });
    const next = pacingColumns(input, stored, NOW);
    expect(next).toMatchObject({ ratePerMinute: 120, dailyCap: 500, warmupDays: 10, warmupStartPerDay: 50, warmupSince: NOW, spikeCount: null });
    // The same warm-up again: its days keep counting from when it was set.
    expect(pacingColumns(input, next, NOW + 86_400_000).warmupSince).toBe(NOW);
    expect(pacingView(pacingOf(next))).toMatchObject({ warmup: { days: 10, startPerDay: 50, since: new Date(NOW).toISOString() }, invalidNumberSpike: null });
  });

  it("refuses a time zone that is not one, and gaps whose min exceeds their max", () => {
    expect(pacingInput.safeParse({ timeZone: "Mars/Olympus" }).success).toBe(false);
    expect(pacingInput.safeParse({ gapMs: { min: 5_000, max: 1_000 } }).success).toBe(false);
  });
});
