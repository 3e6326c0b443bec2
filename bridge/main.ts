// Entry point (`npm run bridge`): configuration from the environment, SIGTERM/SIGINT stop cleanly.
import { ConfigError, loadConfig } from "./config.ts";
import { startBridge } from "./bridge.ts";
import { errorText, jsonLogger } from "./log.ts";

async function main(): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\nSee bridge/README.md for the variables.\n`);
      return 2;
    }
    throw err;
  }
  const log = jsonLogger(config.logLevel);
  // Listening before anything starts, so an early SIGTERM still gets a clean stop.
  const signalled = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log("info", "signal received; stopping", { signal });
      resolve();
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  const bridge = await startBridge(config, { log });
  await signalled;
  await bridge.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    jsonLogger("error")("error", "bridge failed", { error: errorText(err) });
    process.exit(1);
  },
);
