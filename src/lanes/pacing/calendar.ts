// Calendar arithmetic in a time zone, for the pacing rules (quiet hours, the day's cap, warm-up):
// Intl only, no tz database of our own.

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const formats = new Map<string, Intl.DateTimeFormat>();
function format(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formats.set(tz, f);
  }
  return f;
}

type LocalTime = { year: number; month: number; day: number; minute: number; second: number };

export function localTime(ms: number, tz: string): LocalTime {
  const p: Record<string, number> = {};
  for (const part of format(tz).formatToParts(ms)) if (part.type !== "literal") p[part.type] = Number(part.value);
  return { year: p.year ?? 1970, month: p.month ?? 1, day: p.day ?? 1, minute: (p.hour ?? 0) * 60 + (p.minute ?? 0), second: p.second ?? 0 };
}

/** The calendar day of `ms` in `tz`, as YYYY-MM-DD. */
export function localDay(ms: number, tz: string): string {
  const t = localTime(ms, tz);
  return `${t.year}-${String(t.month).padStart(2, "0")}-${String(t.day).padStart(2, "0")}`;
}

/** Whole calendar days from the day of `from` to the day of `to`, both in `tz`. */
export function daysBetween(from: number, to: number, tz: string): number {
  const a = localTime(from, tz);
  const b = localTime(to, tz);
  return Math.round((Date.UTC(b.year, b.month - 1, b.day) - Date.UTC(a.year, a.month - 1, a.day)) / 86_400_000);
}

/** Minutes after midnight of an HH:MM time of day. */
export const minuteOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** The first instant after `now` at which the wall clock in `tz` reads `minute` (minutes after midnight). */
export function nextLocalMinute(now: number, tz: string, minute: number): number {
  const t = localTime(now, tz);
  let delta = minute - t.minute;
  if (delta <= 0) delta += 1440;
  let at = now - (t.second * 1000 + (((now % 1000) + 1000) % 1000)) + delta * 60_000;
  // Daylight-saving shifts move the wall clock by up to an hour: correct, then settle.
  for (let i = 0; i < 3; i++) {
    const got = localTime(at, tz).minute;
    let diff = minute - got;
    if (diff === 0) break;
    if (diff > 720) diff -= 1440;
    if (diff < -720) diff += 1440;
    at += diff * 60_000;
  }
  return at > now ? at : now + delta * 60_000;
}
