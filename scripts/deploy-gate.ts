// The deploy gate's decision, kept apart from the process calls so it can be tested against
// recorded `wrangler d1 migrations list` output (wrangler has no JSON form of that command).
import { stripVTControlCharacters } from "node:util";

export type Gate = { deploy: true } | { deploy: false; reason: string; pending: string[] };

/** Whether the remote database has every migration, from `wrangler d1 migrations list --remote`. */
export function migrationGate(output: string, exitCode: number | null): Gate {
  // wrangler colours its errors; the decision reads plain text.
  const text = stripVTControlCharacters(output);
  if (exitCode !== 0) {
    const error = /✘ \[ERROR\] ([^\n]+)/.exec(text)?.[1]?.trim().replace(/\.$/, "");
    return { deploy: false, reason: `could not read the remote migration state${error ? `: ${error}` : ` (wrangler exited ${exitCode})`}`, pending: [] };
  }
  if (/No migrations to apply/.test(text)) return { deploy: true };
  const pending = [...text.matchAll(/│\s*([^\s│]+\.sql)\s*│/g)].flatMap((m) => (m[1] ? [m[1]] : []));
  if (/Migrations to be applied/.test(text) && pending.length > 0) {
    return { deploy: false, reason: `${pending.length} migration(s) not applied to the remote database`, pending };
  }
  // Anything else is output this script does not know: refusing is the safe answer.
  return { deploy: false, reason: "unrecognised output from wrangler d1 migrations list", pending: [] };
}

/** The --env (or -e) argument's value, in any of the forms wrangler accepts. */
export function envOf(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const inline = /^(?:--env|-e)=(.+)$/.exec(arg);
    if (inline?.[1]) return inline[1];
    if ((arg === "--env" || arg === "-e") && args[i + 1]) return args[i + 1];
  }
  return undefined;
}
