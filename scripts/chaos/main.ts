// `npm run chaos`: the chaos run with its verdict table. Every fault can be switched or sized:
//   npm run chaos -- --messages 600 --contacts 60 --seed 7 --runtime-kills 1 --no-kafka
//   npm run chaos -- --telegram-share 0.3 --telegram-hangs 0.05   (0 leaves Telegram out)
// Exit code 1 when a goal is missed (0 lost, 0 marked sent but never sent, 0 sent twice, 0 out of
// order, 0 regressions, 0 missing events, no 5xx outside restart windows; for Telegram also no call
// inside a retry_after).
import { parseArgs } from "node:util";
import { defaultOptions, runChaos } from "./run.ts";
import { goalsMet, telegramGoalsMet } from "./verdict.ts";
import { verdictTable } from "./table.ts";

const d = defaultOptions();
const { values } = parseArgs({
  options: {
    messages: { type: "string", default: String(d.messages) },
    contacts: { type: "string", default: String(d.contacts) },
    seed: { type: "string", default: String(d.seed) },
    rate: { type: "string", default: String(d.rate) },
    inbound: { type: "string" },
    "telegram-share": { type: "string", default: String(d.telegramShare) },
    "telegram-inbound": { type: "string" },
    "telegram-5xx": { type: "string", default: String(d.faults.telegramServerErrors) },
    "telegram-sent-then-5xx": { type: "string", default: String(d.faults.telegramSentThenErrors) },
    "telegram-hangs": { type: "string", default: String(d.faults.telegramHangs) },
    "telegram-duplicate-deliveries": { type: "string", default: String(d.faults.telegramDuplicateDeliveries) },
    "no-kafka": { type: "boolean", default: false },
    "schedule-lead": { type: "string", default: String(d.scheduleLeadSeconds) },
    "settle-seconds": { type: "string", default: String(d.settleSeconds) },
    "send-errors": { type: "string", default: String(d.faults.sendErrors) },
    timeouts: { type: "string", default: String(d.faults.timeouts) },
    "not-on-whatsapp": { type: "string", default: String(d.faults.notOnWhatsApp) },
    "webhook-drops": { type: "string", default: String(d.faults.webhookDrops) },
    "webhook-duplicates": { type: "string", default: String(d.faults.webhookDuplicates) },
    "webhook-reorder": { type: "string", default: String(d.faults.webhookReorder) },
    "relay-then-fail": { type: "string", default: String(d.faults.relayThenFail) },
    "hung-never-sends": { type: "string", default: String(d.faults.hungNeverSends) },
    "look-alikes": { type: "string", default: String(d.faults.lookAlikes) },
    "look-alikes-from-client": { type: "string", default: String(d.faults.lookAlikesFromClient) },
    "send-message-drops": { type: "string", default: String(d.faults.sendMessageDrops) },
    "send-message-duplicates": { type: "string", default: String(d.faults.sendMessageDuplicates) },
    "send-message-late": { type: "string", default: String(d.faults.sendMessageLate) },
    "runtime-kills": { type: "string", default: String(d.faults.runtimeKills) },
    "bridge-kills": { type: "string", default: String(d.faults.bridgeKills) },
    "broker-restarts": { type: "string", default: String(d.faults.brokerRestarts) },
    "no-faults": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

const num = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number ≥ 0 (got ${v})`);
  return n;
};
const off = values["no-faults"];
const messages = num("messages", values.messages);
const inbound = values.inbound === undefined ? Math.round(messages / 5) : num("inbound", values.inbound);
const telegramShare = Math.min(1, num("telegram-share", values["telegram-share"]));
const options = {
  ...d,
  messages,
  contacts: Math.max(1, num("contacts", values.contacts)),
  seed: num("seed", values.seed),
  rate: Math.max(1, num("rate", values.rate)),
  inbound,
  telegramShare,
  // Telegram's share of the inbound, played beside the WhatsApp inbound.
  telegramInbound: values["telegram-inbound"] === undefined ? Math.round(inbound * telegramShare) : num("telegram-inbound", values["telegram-inbound"]),
  kafka: !values["no-kafka"],
  scheduleLeadSeconds: num("schedule-lead", values["schedule-lead"]),
  settleSeconds: num("settle-seconds", values["settle-seconds"]),
  faults: {
    sendErrors: off ? 0 : num("send-errors", values["send-errors"]),
    timeouts: off ? 0 : num("timeouts", values.timeouts),
    notOnWhatsApp: off ? 0 : num("not-on-whatsapp", values["not-on-whatsapp"]),
    webhookDrops: off ? 0 : num("webhook-drops", values["webhook-drops"]),
    webhookDuplicates: off ? 0 : num("webhook-duplicates", values["webhook-duplicates"]),
    webhookReorder: off ? 0 : num("webhook-reorder", values["webhook-reorder"]),
    relayThenFail: off ? 0 : num("relay-then-fail", values["relay-then-fail"]),
    hungNeverSends: off ? 0 : num("hung-never-sends", values["hung-never-sends"]),
    lookAlikes: off ? 0 : num("look-alikes", values["look-alikes"]),
    lookAlikesFromClient: num("look-alikes-from-client", values["look-alikes-from-client"]),
    sendMessageDrops: off ? 0 : num("send-message-drops", values["send-message-drops"]),
    sendMessageDuplicates: off ? 0 : num("send-message-duplicates", values["send-message-duplicates"]),
    sendMessageLate: off ? 0 : num("send-message-late", values["send-message-late"]),
    runtimeKills: off ? 0 : num("runtime-kills", values["runtime-kills"]),
    bridgeKills: off ? 0 : num("bridge-kills", values["bridge-kills"]),
    brokerRestarts: off ? 0 : num("broker-restarts", values["broker-restarts"]),
    telegramServerErrors: off ? 0 : num("telegram-5xx", values["telegram-5xx"]),
    telegramSentThenErrors: off ? 0 : num("telegram-sent-then-5xx", values["telegram-sent-then-5xx"]),
    telegramHangs: off ? 0 : num("telegram-hangs", values["telegram-hangs"]),
    telegramDuplicateDeliveries: off ? 0 : num("telegram-duplicate-deliveries", values["telegram-duplicate-deliveries"]),
  },
};

const argv = process.argv.slice(2).join(" ");
runChaos(options).then(
  (result) => {
    if (values.json) console.log(JSON.stringify(result, null, 2));
    console.log(`\nnpm run chaos${argv ? ` -- ${argv}` : ""}\n`);
    console.log(verdictTable(options, result));
    const telegramOk = result.telegram === undefined || telegramGoalsMet(result.telegram.verdict);
    process.exit(goalsMet(result.verdict) && telegramOk && result.settled ? 0 : 1);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
