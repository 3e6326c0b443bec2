// The verdict as a Markdown table (what docs/reliability.md records): WhatsApp's rows, then Telegram's.
import { table } from "../../tools/harness/load.ts";
import type { ChaosOptions, ChaosResult, TelegramResult } from "./run.ts";

export function verdictTable(o: ChaosOptions, r: ChaosResult): string {
  const v = r.verdict;
  const mark = (ok: boolean) => (ok ? "ok" : "MISSED");
  const terminal = Object.entries(v.terminal)
    .map(([s, n]) => `${s} ${n}`)
    .join(", ");
  const lostDetail = Object.entries(v.lostDetail)
    .map(([why, n]) => `${why}: ${n}`)
    .join("; ");
  const rows: (string | number)[][] = [
    ["accepted (API + Kafka)", `${v.accepted.total} (${v.accepted.api} + ${v.accepted.kafka})`, "", ""],
    ["in exactly one terminal state", v.accepted.total - v.notTerminal, terminal, mark(v.notTerminal === 0 && v.failedWithoutReason === 0)],
    ["failed without a reason", v.failedWithoutReason, "", mark(v.failedWithoutReason === 0)],
    ["lost", v.lost, lostDetail, mark(v.lost === 0)],
    [
      "marked sent but never sent (at the simulator)",
      v.markedSentNeverSent,
      "recorded sent, its request never relayed to WhatsApp",
      mark(v.markedSentNeverSent === 0),
    ],
    ["sent twice (at the simulator)", v.sentTwice, `${v.extraSends} extra sends`, mark(v.sentTwice === 0)],
    [
      "another API client sent the same text while an attempt hung (cannot be told apart)",
      v.otherClient.neverSent + v.otherClient.sentTwice,
      `${v.otherClient.neverSent} recorded sent under that client's message (ours never went), ${v.otherClient.sentTwice} sent again after "cannot tell"`,
      "expected",
    ],
    ["out of per-contact order (at the simulator)", v.outOfOrder, "", mark(v.outOfOrder === 0)],
    ["status regressions (history and Kafka)", v.regressions, "", mark(v.regressions === 0)],
    [o.kafka ? "status events missing on Kafka" : "status events missing in the outbox (no Kafka)", v.missingEvents, "", mark(v.missingEvents === 0)],
    [
      "5xx to valid requests outside restart windows",
      v.serverErrors.outside,
      `${v.serverErrors.inside} inside restart windows`,
      mark(v.serverErrors.outside === 0),
    ],
    [
      "inbound messages lost after the gateway took them",
      o.kafka ? r.inbound.lost : "n/a (no Kafka)",
      `${r.inbound.emitted} emitted, ${r.inbound.dropped} dropped by the simulator, ${r.inbound.gaveUp} given up after its retries, ${r.inbound.onKafka} on Kafka; of the lost, ${r.inbound.lostJustBeforeKill} taken less than 5 s before a runtime SIGKILL`,
      o.kafka ? mark(r.inbound.lost === 0) : "",
    ],
    ...(r.telegram ? telegramRows(o, r.telegram) : []),
    [
      "settled",
      r.settled ? "yes" : "NO",
      `load ${r.seconds.load.toFixed(0)} s, settle ${r.seconds.settle.toFixed(0)} s, total ${r.seconds.total.toFixed(0)} s`,
      mark(r.settled),
    ],
    [
      "faults injected",
      "",
      Object.entries(r.injected)
        .map(([k, n]) => `${k} ${n}`)
        .join(", "),
      "",
    ],
  ];
  const lines = [table(["check", "value", "detail", "goal"], rows)];
  for (const [kind, list] of Object.entries(v.examples)) lines.push(`- ${kind}: ${list.join("; ")}`);
  for (const [kind, list] of Object.entries(r.telegram?.verdict.examples ?? {})) lines.push(`- Telegram, ${kind}: ${list.join("; ")}`);
  return lines.join("\n");
}

function telegramRows(o: ChaosOptions, t: TelegramResult): (string | number)[][] {
  const v = t.verdict;
  const mark = (ok: boolean) => (ok ? "ok" : "MISSED");
  const list = (r: Record<string, number>, sep = ", ", colon = " ") =>
    Object.entries(r)
      .map(([k, n]) => `${k}${colon}${n}`)
      .join(sep);
  return [
    ["Telegram: accepted (API)", v.accepted, `${Math.round(o.telegramShare * 100)}% of the contacts are Telegram chats`, ""],
    ["Telegram: in exactly one terminal state", v.accepted - v.notTerminal, list(v.terminal), mark(v.notTerminal === 0 && v.failedWithoutReason === 0)],
    ["Telegram: failed without a reason", v.failedWithoutReason, "", mark(v.failedWithoutReason === 0)],
    ["Telegram: lost", v.lost, list(v.lostDetail, "; ", ": "), mark(v.lost === 0)],
    [
      "Telegram: marked sent but never sent (at the simulator)",
      v.markedSentNeverSent,
      "recorded sent, no call of its text went out",
      mark(v.markedSentNeverSent === 0),
    ],
    ["Telegram: sent twice (at the simulator)", v.sentTwice, `${v.extraSends} extra sends, other than after a 5xx below`, mark(v.sentTwice === 0)],
    [
      "Telegram: sent twice after a 5xx that took effect (Telegram retries 5xx)",
      v.sentTwiceAfter5xx,
      `${v.extraSendsAfter5xx} extra sends; ${t.injected["502 after sending"] ?? 0} sends answered 502 after going out`,
      "expected",
    ],
    [
      "Telegram: failed in doubt, may have gone out (at most once)",
      v.failedInDoubt,
      `${v.inDoubtWentOut} went out, ${v.failedInDoubt - v.inDoubtWentOut} did not; none sent again`,
      "expected",
    ],
    ["Telegram: out of per-chat order (at the simulator)", v.outOfOrder, "", mark(v.outOfOrder === 0)],
    ["Telegram: status regressions (history and Kafka)", v.regressions, "", mark(v.regressions === 0)],
    [o.kafka ? "Telegram: status events missing on Kafka" : "Telegram: status events missing in the outbox", v.missingEvents, "", mark(v.missingEvents === 0)],
    ["Telegram: calls inside a retry_after", v.insideRetryAfter, "", mark(v.insideRetryAfter === 0)],
    [
      "Telegram: inbound updates lost after the gateway took them",
      t.inbound.lost,
      `${t.inbound.emitted} played, ${t.inbound.duplicated} posted twice, ${t.inbound.gaveUp} given up after the retries, ${t.inbound.stored} stored, ${t.inbound.storedTwice} stored twice`,
      mark(t.inbound.lost === 0 && t.inbound.storedTwice === 0),
    ],
    ["Telegram: faults injected", "", list(t.injected), ""],
  ];
}
