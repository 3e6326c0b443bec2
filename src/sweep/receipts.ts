// Lost receipts (from the cron): a message `sent` a while ago with no delivered/read receipt is
// checked with Evolution's findStatusMessage, because Evolution's webhooks are not durable.
// Paced and bounded so it never floods Evolution: a few messages per instance per run, one call
// at a time, at most RECEIPT_MAX_CHECKS checks per message, spaced further apart each time.
// Bounded in time too, so one tenant's slow or hostile Evolution cannot hold the sweep: each call
// has a short timeout and a capped answer, the run has a total budget, and an instance that fails
// a check is not asked again in the same run (its other messages wait for the next).
import { config } from "../config.ts";
import { runNamed } from "../db/batch.ts";
import { database } from "../db/client.ts";
import { messages } from "../db/queries/index.ts";
import { findReceipt } from "../evolution/reconcile.ts";
import { receiptStatements, receiptStatus } from "../messages/receipts.ts";

// Per cron run (every minute): at most this many checks in all, and this many per instance.
const RECEIPT_PAGE = 25;
const RECEIPT_PER_INSTANCE = 5;
// One check's timeout at most (less when the budget left is shorter), and the run's budget.
export const RECEIPT_CHECK_TIMEOUT_MS = 5_000;
export const RECEIPT_BUDGET_MS = 15_000;
// After the first check (10 min after the send, see transitions.ts), the next ones wait this long.
const RECHECK_AFTER_MS = [60 * 60_000, 6 * 60 * 60_000];
export const RECEIPT_MAX_CHECKS = RECHECK_AFTER_MS.length + 1;

export type ReceiptReport = { checked: number; caughtUp: number; failed: number; skipped: number };

export async function catchUpReceipts(env: Env, now = Date.now(), budgetMs = RECEIPT_BUDGET_MS): Promise<ReceiptReport> {
  const db = database(env.DB);
  // Wall clock, not `now` (which tests and the caller may set).
  const deadline = Date.now() + budgetMs;
  const due = await messages.receiptChecksDue(db, now, RECEIPT_PAGE, RECEIPT_PER_INSTANCE);
  const report: ReceiptReport = { checked: 0, caughtUp: 0, failed: 0, skipped: 0 };
  const failing = new Set<string>();
  for (const m of due) {
    const left = deadline - Date.now();
    const instance = `${m.evolution_url}\n${m.name}`;
    // Not checked, not counted: the message stays due for the next run.
    if (left <= 0 || failing.has(instance)) {
      report.skipped++;
      continue;
    }
    const found = await findReceipt(
      { name: m.name, url: m.evolution_url, apiKey: m.evolution_api_key },
      m.provider_message_id,
      Math.min(config(env).EVOLUTION_TIMEOUT_MS, RECEIPT_CHECK_TIMEOUT_MS, left),
    );
    report.checked++;
    if (!found.ok) failing.add(instance);
    const checks = m.receipt_checks + 1;
    const nextAt = checks < RECEIPT_MAX_CHECKS ? now + (RECHECK_AFTER_MS[checks - 1] ?? 0) : null;
    const status = found.ok && found.status ? receiptStatus(found.status) : undefined;
    if (!found.ok) report.failed++;
    await runNamed(db, {
      receipt:
        status && status !== "failed"
          ? receiptStatements(m.id, status, now, `receipt caught up from Evolution (findStatusMessage: ${found.ok ? found.status : ""})`)
          : [],
      // Counted either way; once a receipt is found the message needs no further check.
      counted: messages.countReceiptCheck(m.id, checks, status ? null : nextAt),
    });
    if (status) report.caughtUp++;
  }
  return report;
}
