// The one way tests wait for something to happen: vi.waitFor around a probe that gives a value once
// the condition holds. Only inside Vitest; tools outside it use waitFor from tools/harness/wait.ts.
import { vi } from "vitest";

type Probe<T> = () => T | undefined | null | false | Promise<T | undefined | null | false>;

/** Polls `probe` until it gives a value (anything truthy) and returns it. A probe that throws is
 *  tried again; at the timeout the last error (or "still waiting for <what>") is thrown. */
export function eventually<T>(probe: Probe<T>, opts: { what?: string; timeout?: number; interval?: number } = {}): Promise<T> {
  const { what = "condition", timeout = 15_000, interval = 50 } = opts;
  return vi.waitFor(
    async () => {
      const value = await probe();
      if (!value) throw new Error(`still waiting for ${what}`);
      return value;
    },
    { timeout, interval },
  );
}

/** As `eventually`, with the bridge tests' argument order, and ready as soon as `probe` gives
 *  anything but undefined (0 and false are values here). */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeout = 60_000, interval = 250): Promise<T> {
  const found = await eventually(
    async () => {
      const value = await probe();
      return value === undefined ? undefined : { value };
    },
    { what, timeout, interval },
  );
  return found.value;
}
