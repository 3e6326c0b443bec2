// Calendar arithmetic in a time zone, on fixed instants: daylight-saving changes and local days.
import { describe, expect, it } from "vitest";
import { daysBetween, isTimeZone, localDay, nextLocalMinute } from "../../src/lanes/pacing/calendar.ts";

describe("time zones", () => {
  it("finds local times across daylight-saving changes", () => {
    // New York springs forward on 2026-03-08: midnight after it is 04:00 UTC, before it 05:00 UTC.
    expect(nextLocalMinute(Date.UTC(2026, 2, 7, 12), "America/New_York", 0)).toBe(Date.UTC(2026, 2, 8, 5));
    expect(nextLocalMinute(Date.UTC(2026, 2, 8, 12), "America/New_York", 0)).toBe(Date.UTC(2026, 2, 9, 4));
    expect(localDay(Date.UTC(2026, 10, 24, 2, 59), "America/Sao_Paulo")).toBe("2026-11-23");
    expect(localDay(Date.UTC(2026, 10, 24, 3, 0), "America/Sao_Paulo")).toBe("2026-11-24");
  });

  it("counts whole local days, and knows a time zone from a typo", () => {
    expect(daysBetween(Date.UTC(2026, 10, 23, 2, 59), Date.UTC(2026, 10, 23, 3, 0), "America/Sao_Paulo")).toBe(1);
    expect(daysBetween(Date.UTC(2026, 10, 23, 3, 0), Date.UTC(2026, 10, 30, 2, 0), "America/Sao_Paulo")).toBe(6);
    expect(isTimeZone("America/Sao_Paulo")).toBe(true);
    expect(isTimeZone("America/Sao_Paolo")).toBe(false);
  });
});
