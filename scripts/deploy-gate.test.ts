// The deploy gate against wrangler's recorded output (there is no Cloudflare account here).
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { envOf, migrationGate } from "./deploy-gate.ts";

const recorded = (name: string) => readFileSync(path.join(import.meta.dirname, "..", "test", "fixtures", "wrangler", name), "utf8");

describe("deploy gate", () => {
  it("refuses while migrations are pending, and names them", () => {
    expect(migrationGate(recorded("migrations-list-pending.txt"), 0)).toEqual({
      deploy: false,
      reason: "2 migration(s) not applied to the remote database",
      pending: ["0000_init.sql", "0001_limits.sql"],
    });
  });

  it("deploys when wrangler says there is nothing to apply", () => {
    expect(migrationGate(recorded("migrations-list-none.txt"), 0)).toEqual({ deploy: true });
  });

  it("refuses when the remote state cannot be read, with wrangler's reason", () => {
    const gate = migrationGate(recorded("migrations-list-not-logged-in.txt"), 1);
    expect(gate.deploy).toBe(false);
    expect(gate).toMatchObject({ reason: expect.stringContaining("CLOUDFLARE_API_TOKEN"), pending: [] });
  });

  it("refuses on output it does not recognise, even with exit code 0", () => {
    expect(migrationGate("something new from a future wrangler", 0)).toMatchObject({ deploy: false, reason: expect.stringContaining("unrecognised") });
  });

  it("reads --env in every form wrangler takes", () => {
    expect(envOf(["--env", "production"])).toBe("production");
    expect(envOf(["--minify", "-e", "staging"])).toBe("staging");
    expect(envOf(["--env=production"])).toBe("production");
    expect(envOf(["--minify"])).toBeUndefined();
  });
});
