// npm run deploy -- --env staging|production [more wrangler deploy flags]
// Refuses to deploy while the environment's remote D1 has migrations not yet applied: new code
// against an old schema fails on its first query. Apply them first:
//   npx wrangler d1 migrations apply DB --remote --env <env>
import { spawnSync } from "node:child_process";
import path from "node:path";
import { envOf, migrationGate } from "./deploy-gate.ts";

const args = process.argv.slice(2);
const env = envOf(args);
if (!env) {
  console.error("deploy: name the environment: npm run deploy -- --env staging (or production).");
  process.exit(2);
}
const wrangler = path.join(import.meta.dirname, "..", "node_modules", ".bin", "wrangler");

const list = spawnSync(wrangler, ["d1", "migrations", "list", "DB", "--remote", "--env", env], { encoding: "utf8", env: { ...process.env, CI: "1" } });
const gate = migrationGate(`${list.stdout ?? ""}\n${list.stderr ?? ""}`, list.status);
if (!gate.deploy) {
  console.error(`deploy refused for "${env}": ${gate.reason}.`);
  for (const name of gate.pending) console.error(`  pending: ${name}`);
  if (gate.pending.length) console.error(`Apply them first: npx wrangler d1 migrations apply DB --remote --env ${env}`);
  process.exit(1);
}
console.log(`deploy: remote migrations of "${env}" are up to date; deploying.`);
const deploy = spawnSync(wrangler, ["deploy", ...args], { stdio: "inherit" });
process.exit(deploy.status ?? 1);
