// The faults of a chaos run beside the simulator's own: runtime kills (and restarts by a watchdog
// when the local runtime stops answering), bridge kills and broker restarts, at fixed fractions of
// the load's planned length. Each runtime restart is a window in which 5xx answers are expected.
import { gatewayClient } from "../../src/client.ts";
import type { Gateway } from "../../tools/harness/gateway.ts";

export type Window = { from: number; to: number };
export type ScheduledFault = { at: number; name: string; run: () => Promise<void> };
type Log = (line: string) => void;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Restarts the runtime (SIGKILL, then start on the same state), one at a time, planned (a fault) or
 *  not (the watchdog); `why` is counted. */
export function runtimeRestarts(gateway: Gateway, windows: Window[], count: (what: string) => void): (why: string) => Promise<void> {
  let busy: Promise<void> = Promise.resolve();
  return (why) => {
    const done = busy.then(async () => {
      const w = { from: Date.now(), to: Number.POSITIVE_INFINITY };
      windows.push(w);
      await gateway.crash();
      count(why);
      await sleep(1_000);
      await gateway.resume();
      // A restart window ends a few seconds after the runtime answers again.
      w.to = Date.now() + 3_000;
    });
    busy = done.catch(() => undefined);
    return done;
  };
}

/**
 * The local runtime sometimes stops answering (or its workerd dies) under this load: that is a
 * finding, counted as an unplanned restart, and the run goes on rather than hanging. Returns stop().
 */
export function watchdog(gateway: Gateway, windows: Window[], log: Log, restart: (why: string) => Promise<void>): () => Promise<void> {
  const health = gatewayClient(gateway.url).health;
  let unanswered = 0;
  let watching = true;
  const loop = (async () => {
    while (watching) {
      await sleep(5_000);
      const inWindow = windows.some((w) => Date.now() <= w.to);
      if (inWindow) {
        unanswered = 0;
        continue;
      }
      const ok = await health.$get(undefined, { init: { signal: AbortSignal.timeout(10_000) } }).then(
        (r) => r.status === 200,
        () => false,
      );
      unanswered = ok ? 0 : unanswered + 1;
      if (unanswered >= 4 && watching) {
        log("runtime unresponsive for 40 s: restarting it (unplanned)");
        unanswered = 0;
        await restart("runtime unresponsive, restarted by the harness").catch((err) => log(`restart failed: ${String(err)}`));
      }
    }
  })();
  return async () => {
    watching = false;
    await loop;
  };
}

/** The planned faults in time order; bridge kills and broker restarts only when given. */
export function faultSchedule(
  counts: { runtimeKills: number; bridgeKills: number; brokerRestarts: number },
  loadMs: number,
  does: {
    restartRuntime: (why: string) => Promise<void>;
    count: (what: string) => void;
    bridge?: { kill(): Promise<void>; start(): void };
    restartBroker?: () => Promise<void>;
  },
): ScheduledFault[] {
  const schedule: ScheduledFault[] = [];
  for (let i = 0; i < counts.runtimeKills; i++) {
    schedule.push({
      at: ((0.25 + (0.5 * i) / Math.max(1, counts.runtimeKills - 1)) * loadMs) | 0,
      name: "runtime SIGKILL",
      run: () => does.restartRuntime("runtime SIGKILLs"),
    });
  }
  const bridge = does.bridge;
  if (bridge) {
    for (let i = 0; i < counts.bridgeKills; i++) {
      schedule.push({
        at: ((0.4 + 0.3 * i) * loadMs) | 0,
        name: "bridge SIGKILL",
        run: async () => {
          await bridge.kill();
          does.count("bridge SIGKILLs");
          await sleep(2_000);
          bridge.start();
        },
      });
    }
  }
  const restartBroker = does.restartBroker;
  if (restartBroker) {
    for (let i = 0; i < counts.brokerRestarts; i++) {
      schedule.push({
        at: ((0.6 + 0.2 * i) * loadMs) | 0,
        name: "broker restart",
        run: async () => {
          await restartBroker();
          does.count("broker restarts");
        },
      });
    }
  }
  return schedule.sort((a, b) => a.at - b.at);
}

/** Runs each fault at its time from `loadStart`. */
export async function runFaults(schedule: ScheduledFault[], loadStart: number, log: Log): Promise<void> {
  for (const f of schedule) {
    await sleep(Math.max(0, loadStart + f.at - Date.now()));
    log(`fault: ${f.name}`);
    await f.run();
    log(`fault over: ${f.name}`);
  }
}
