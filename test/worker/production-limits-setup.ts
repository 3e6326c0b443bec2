// Setup of every Worker test file: production limits on D1, DO SQLite and Queues (see
// production-limits.ts), and a check after each test that no code path crossed one, even where
// the Worker caught the error and carried on.
import { afterEach } from "vitest";
import { installProductionLimits, takeViolations } from "./production-limits.ts";

await installProductionLimits();

afterEach(() => {
  const seen = takeViolations();
  if (seen.length > 0) throw new Error(`production limits crossed:\n${seen.join("\n")}`);
});
