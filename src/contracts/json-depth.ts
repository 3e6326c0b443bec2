// How deeply a parsed JSON value nests, counted without recursion: a hostile body nested
// thousands deep must be refused before anything recursive (JSON.stringify, stableStringify,
// zod) walks it and overflows the stack (a RangeError, then a 500).
export const MAX_JSON_DEPTH = 32;

/** True when `value` nests deeper than `max` arrays/objects. Stops as soon as it knows. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop()!;
    if (current === null || typeof current !== "object") continue;
    if (depth + 1 > max) return true;
    for (const child of Object.values(current)) {
      if (child !== null && typeof child === "object") stack.push({ value: child, depth: depth + 1 });
    }
  }
  return false;
}
