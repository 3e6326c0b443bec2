// One chaos run: the real system on loopback (wrangler dev, the Evolution simulator and its Telegram
// Bot API stand-in, a Kafka broker, the bridge as its own process), a paced load through the API and
// Kafka to WhatsApp and Telegram with inbound messages alongside, faults during the load, then a wait
// for the system to settle and the verdict, per channel.
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { z } from "zod";
import { topicEnv } from "../../tools/harness/bridge.ts";
import { type KafkaHandle, startKafka } from "../../tools/harness/kafka.ts";
import { telegramSimulator } from "../../tools/harness/simulator.ts";
import { gatewayClient } from "../../src/client.ts";
import { percentile } from "../../tools/harness/load.ts";
import { faultCounts, setChaos } from "../../simulator/chaos.ts";
import { startSimulator } from "../../simulator/server.ts";
import { freePort, provisionTenant, ROOT, startGateway } from "../../tools/harness/gateway.ts";
import { apiPoster, chatOf, contactNumber, kafkaSubmitter } from "./load.ts";
import { faultSchedule, runFaults, runtimeRestarts, type Window, watchdog } from "./faults.ts";
import { allMessages, consumerLag, readOutbox, readTopics, type TelegramResult, telegramVerdict } from "./observe.ts";
import { type ApiRequest, judge, type Observed, type Planned, type Verdict } from "./verdict.ts";

export type { TelegramResult };

export type ChaosOptions = {
  messages: number;
  contacts: number;
  seed: number;
  /** Messages submitted per second (API and Kafka together). */
  rate: number;
  /** Inbound messages the simulator emits during the load (WhatsApp). */
  inbound: number;
  /** Share of the contacts (and so of the messages) that are Telegram chats, sent through the API. */
  telegramShare: number;
  /** Inbound Telegram updates played to the gateway's webhook during the load. */
  telegramInbound: number;
  kafka: boolean;
  scheduleLeadSeconds: number;
  settleSeconds: number;
  evolutionTimeoutMs: number;
  faults: {
    sendErrors: number;
    timeouts: number;
    /** Share of contacts that are not on WhatsApp. */
    notOnWhatsApp: number;
    webhookDrops: number;
    webhookDuplicates: number;
    webhookReorder: number;
    /** Share of sends relayed to WhatsApp and then answered 500/502. */
    relayThenFail: number;
    /** Of the sends that hang past the timeout, the share that never goes out. */
    hungNeverSends: number;
    /** Share of hung sends during which a look-alike (same chat, same text) lands in Evolution's store… */
    lookAlikes: number;
    /** …of which this share comes from another API client of the instance (the rest typed on the phone). */
    lookAlikesFromClient: number;
    /** send.message webhooks never sent, sent twice, or late (by 10 s). */
    sendMessageDrops: number;
    sendMessageDuplicates: number;
    sendMessageLate: number;
    runtimeKills: number;
    bridgeKills: number;
    brokerRestarts: number;
    /** Telegram sends answered 500/502 without going out; sent and then answered 502; sent and
     *  answered only after the gateway's timeout; webhook updates posted twice. */
    telegramServerErrors: number;
    telegramSentThenErrors: number;
    telegramHangs: number;
    telegramDuplicateDeliveries: number;
  };
  log: (line: string) => void;
};

export const defaultOptions = (): ChaosOptions => ({
  messages: 5_000,
  contacts: 500,
  seed: 42,
  rate: 50,
  inbound: 0,
  telegramShare: 0.2,
  telegramInbound: 0,
  kafka: true,
  scheduleLeadSeconds: 15,
  settleSeconds: 300,
  evolutionTimeoutMs: 3_000,
  faults: {
    sendErrors: 0.2,
    timeouts: 0.05,
    notOnWhatsApp: 0.02,
    webhookDrops: 0.1,
    webhookDuplicates: 0.1,
    webhookReorder: 0.1,
    relayThenFail: 0.05,
    hungNeverSends: 0.5,
    lookAlikes: 1,
    lookAlikesFromClient: 0.2,
    sendMessageDrops: 0.1,
    sendMessageDuplicates: 0.1,
    sendMessageLate: 0.1,
    runtimeKills: 2,
    bridgeKills: 1,
    brokerRestarts: 1,
    telegramServerErrors: 0.1,
    telegramSentThenErrors: 0.03,
    telegramHangs: 0.03,
    telegramDuplicateDeliveries: 0.1,
  },
  log: (line) => console.error(line),
});

export type ChaosResult = {
  verdict: Verdict;
  settled: boolean;
  seconds: { load: number; settle: number; total: number };
  injected: Record<string, number>;
  /** Inbound messages: emitted by the simulator, dropped by it (chaos), given up by its retries, seen on Kafka, and lost after the gateway took them. */
  inbound: { emitted: number; dropped: number; gaveUp: number; onKafka: number; lost: number; lostJustBeforeKill: number };
  /** Absent when the run had no Telegram share. */
  telegram?: TelegramResult;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TELEGRAM_TOKEN = "7070707:chaos-telegram-secret-00000000000000";
const TELEGRAM_INSTANCE = "tg-chaos";
/** The contacts that are Telegram chats: spread evenly, `share` of them. */
export const telegramContacts = (contacts: number, share: number) =>
  Array.from({ length: contacts }, (_, c) => c).filter((c) => Math.floor((c + 1) * share) > Math.floor(c * share));

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const started = Date.now();
  const log = (line: string) => o.log(`[chaos +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`);
  const workDir = mkdtempSync(path.join(tmpdir(), "mensageiro-chaos-"));
  const cleanups: (() => Promise<void>)[] = [];
  const windows: Window[] = [];
  const injected: Record<string, number> = {};
  const count = (k: string) => {
    injected[k] = (injected[k] ?? 0) + 1;
  };
  let gatewayLogs: (() => string) | undefined;
  const requests: ApiRequest[] = [];
  // Messages not in a terminal state at the end, as the API shows them (with their history).
  const stuck: unknown[] = [];
  // For the contacts sent out of order: their messages (with history) and the simulator's calls.
  let order: unknown[] = [];
  // For the messages sent twice: their history and the simulator's calls of their text.
  let twice: unknown[] = [];
  // For the messages marked sent but never sent: the same.
  let neverSent: unknown[] = [];
  // Telegram's calls of the texts in its findings (sent twice, never sent, out of order), for telegram.json.
  let tgCallsOf: Record<string, unknown> | undefined;

  try {
    // Broker: fixed ports and state folder, so a restart is the same broker.
    let broker: KafkaHandle | undefined;
    let brokers = "";
    const brokerLayout = { port: await freePort(), controllerPort: await freePort(), stateDir: path.join(workDir, "kafka") };
    const restartable = o.kafka && !process.env.KAFKA_BROKERS;
    if (o.kafka) {
      broker = await startKafka(brokerLayout);
      brokers = broker.brokers;
      cleanups.push(async () => broker?.stop());
      log(`broker on ${brokers}`);
    }

    const notOnWhatsApp = Array.from({ length: o.contacts }, (_, c) => c).filter((c) => (c * 7919 + o.seed) % 1000 < o.faults.notOnWhatsApp * 1000);
    const simulator = await startSimulator({
      latencyMs: 10,
      latencyJitterMs: 20,
      failureRate: o.faults.sendErrors,
      notOnWhatsApp: notOnWhatsApp.map(contactNumber),
      sendMessageDelayMs: 50,
      deliveredDelayMs: 300,
      readDelayMs: 800,
      webhookMaxAttempts: 10,
      webhookRetryDelayMs: 500,
    });
    cleanups.push(() => simulator.close());
    setChaos(simulator.state, {
      seed: o.seed,
      timeoutRate: o.faults.timeouts,
      timeoutMs: o.evolutionTimeoutMs + 1_000,
      timeoutStillSends: true,
      webhookDropRate: o.faults.webhookDrops,
      webhookDuplicateRate: o.faults.webhookDuplicates,
      webhookReorderRate: o.faults.webhookReorder,
      webhookReorderMs: 2_000,
      hungNeverSendsRate: o.faults.hungNeverSends,
      relayThenFailRate: o.faults.relayThenFail,
      lookAlikeRate: o.faults.lookAlikes,
      lookAlikeClientShare: o.faults.lookAlikesFromClient,
      sendMessageDropRate: o.faults.sendMessageDrops,
      sendMessageDuplicateRate: o.faults.sendMessageDuplicates,
      sendMessageLateRate: o.faults.sendMessageLate,
      sendMessageLateMs: 10_000,
    });

    const gateway = await startGateway({
      persistDir: path.join(workDir, "gateway"),
      vars: { EVOLUTION_TIMEOUT_MS: String(o.evolutionTimeoutMs), RETRY_BASE_MS: "500", STUCK_QUEUED_MINUTES: "0.5" },
    });
    cleanups.push(() => gateway.stop());
    gatewayLogs = () => gateway.logs();
    log(`gateway on ${gateway.url}, state in ${gateway.persistDir}`);
    // The not-on-WhatsApp contacts are a planned fault: without this the governor would pause the
    // number (invalid-number spike, as it should for a real number) past the end of the run.
    const tenant = await provisionTenant(gateway.url, simulator.url, { ratePerMinute: 60_000, webhooks: "single", pacing: { invalidNumberSpike: null } });
    const headers = { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" };
    const api = gatewayClient(gateway.url, { apiKey: tenant.apiKey });
    // Telegram: a bot at the stand-in with flood control on, its chats started, the faults switched
    // on (drawn from the chaos seed), and an instance connected to it (getMe, setWebhook).
    const tgContacts = new Set(telegramContacts(o.contacts, o.telegramShare));
    const tgSim = telegramSimulator(simulator.url);
    if (tgContacts.size > 0) {
      await tgSim.control("POST", "/bots", { token: TELEGRAM_TOKEN, username: "mensageiro_chaos_bot", first_name: "chaos" });
      for (const c of tgContacts)
        await tgSim.control("PUT", "/chats", { token: TELEGRAM_TOKEN, chatId: chatOf(c), type: "private", first_name: `Contact ${c}` });
      await tgSim.control("PATCH", "/config", {
        limits: { enabled: true },
        faults: {
          serverErrorRate: o.faults.telegramServerErrors,
          sentThenErrorRate: o.faults.telegramSentThenErrors,
          hangRate: o.faults.telegramHangs,
          hangMs: o.evolutionTimeoutMs + 1_000,
          duplicateDeliveryRate: o.faults.telegramDuplicateDeliveries,
        },
        // Telegram keeps redelivering an update for hours: enough attempts to outlast a restart.
        webhook: { maxAttempts: 20, retryDelayMs: 500 },
      });
      const put = await api.v1.instances[":name"].$put({
        param: { name: TELEGRAM_INSTANCE },
        json: { channel: "telegram", telegram: { botToken: TELEGRAM_TOKEN, apiUrl: simulator.url } },
      });
      if (put.status !== 201) throw new Error(`Telegram instance: ${put.status} ${await put.text()}`);
      log(`Telegram: ${tgContacts.size} chats on instance ${TELEGRAM_INSTANCE}`);
    }
    // wrangler dev never fires the cron: run the sweep as the deployed cron would, a bit more often.
    const sweep = setInterval(() => void fetch(`${gateway.url}/cdn-cgi/local/scheduled?cron=*+*+*+*+*`).catch(() => undefined), 20_000);
    cleanups.push(async () => clearInterval(sweep));

    // Kafka side: topics, an idempotent producer for the legacy records, the bridge as a child process.
    const tag = `chaos-${o.seed}-${Date.now().toString(36)}`;
    const topics = topicEnv(tag);
    const bridgeConsumer = `bridge-${tag}`;
    let producer: Producer | undefined;
    let bridge: ChildProcess | undefined;
    const bridgeLog = createWriteStream(path.join(workDir, "bridge.log"));
    const startBridgeProcess = () => {
      const child = spawn(path.join(ROOT, "node_modules/.bin/tsx"), ["bridge/main.ts"], {
        cwd: ROOT,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          ...topics,
          KAFKA_BROKERS: brokers,
          GATEWAY_URL: gateway.url,
          GATEWAY_API_KEY: tenant.apiKey,
          BRIDGE_GROUP_ID: `bridge-${tag}`,
          BRIDGE_CONSUMER_NAME: bridgeConsumer,
          BRIDGE_PORT: "0",
          BRIDGE_EVENTS_WAIT_SECONDS: "2",
          BRIDGE_CREATE_TOPICS: "true",
          LOG_LEVEL: "warn",
          KAFKAJS_NO_PARTITIONER_WARNING: "1",
        },
      });
      child.stdout?.pipe(bridgeLog, { end: false });
      child.stderr?.pipe(bridgeLog, { end: false });
      bridge = child;
    };
    const killBridge = async () => {
      const c = bridge;
      if (!c || c.exitCode !== null || c.pid === undefined) return;
      const exited = new Promise((r) => c.once("exit", r));
      process.kill(-c.pid, "SIGKILL");
      await exited;
    };
    let kafkaAdmin: ReturnType<Kafka["admin"]> | undefined;
    if (o.kafka) {
      const kafka = new Kafka({ clientId: "chaos", brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 20, maxRetryTime: 5_000 } });
      kafkaAdmin = kafka.admin();
      await kafkaAdmin.connect();
      await kafkaAdmin.createTopics({
        waitForLeaders: true,
        topics: [
          { topic: topics.TOPIC_SEND_MESSAGE!, numPartitions: 4 },
          { topic: topics.TOPIC_SCHEDULE_MESSAGE!, numPartitions: 2 },
        ],
      });
      producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      cleanups.push(async () => {
        await killBridge();
        await producer?.disconnect().catch(() => undefined);
        await kafkaAdmin?.disconnect().catch(() => undefined);
      });
      startBridgeProcess();
    }

    // The plan: message n goes to contact n % M; each contact has one channel, so its order is defined.
    // Telegram chats are reached through the API only (the legacy Kafka records carry phone numbers).
    const plan: Planned[] = Array.from({ length: o.messages }, (_, n) => {
      const contact = n % o.contacts;
      const lane = contact % 4;
      const network = tgContacts.has(contact) ? "telegram" : "whatsapp";
      const channel = o.kafka && lane >= 2 && network === "whatsapp" ? "kafka" : "api";
      return { n, contact, k: Math.floor(n / o.contacts), channel, network, scheduled: lane % 2 === 1, text: `chaos s${o.seed} n${n} c${contact}` };
    });

    const acceptedApi = new Map<number, string>();
    const refusedApi = new Map<number, string>();
    const producedKafka = new Set<number>();
    const postApi = apiPoster({
      gatewayUrl: gateway.url,
      headers,
      seed: o.seed,
      scheduleLeadSeconds: o.scheduleLeadSeconds,
      instance: tenant.instance,
      telegramInstance: TELEGRAM_INSTANCE,
      requests,
      acceptedApi,
      refusedApi,
    });

    // Per-contact chains keep each contact's requests in order; a few are in flight at once.
    const chains = new Map<number, Promise<void>>();
    let inFlight = 0;
    const kafkaLoad = kafkaSubmitter({
      producer: () => producer,
      topics,
      seed: o.seed,
      scheduleLeadSeconds: o.scheduleLeadSeconds,
      instance: tenant.instance,
      producedKafka,
      log,
    });

    // Faults at fixed points of the load (fractions of its planned length).
    const loadMs = (o.messages / o.rate) * 1000;
    const restartRuntime = runtimeRestarts(gateway, windows, count);
    cleanups.push(watchdog(gateway, windows, log, restartRuntime));
    const schedule = faultSchedule(o.faults, loadMs, {
      restartRuntime,
      count,
      ...(o.kafka ? { bridge: { kill: killBridge, start: startBridgeProcess } } : {}),
      ...(restartable
        ? {
            restartBroker: async () => {
              await broker?.stop();
              await sleep(1_000);
              broker = await startKafka(brokerLayout);
            },
          }
        : {}),
    });

    // Inbound: the simulator emits messages from the contacts during the load.
    let inboundEmitted = 0;
    const inboundTimer =
      o.inbound > 0
        ? setInterval(
            () => {
              if (inboundEmitted >= o.inbound) return;
              const i = inboundEmitted++;
              void fetch(`${simulator.url}/_sim/inbound`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({
                  instance: tenant.instance,
                  from: contactNumber(i % o.contacts),
                  text: `inbound s${o.seed} i${i}`,
                  id: `3EB0CHAOS${o.seed}I${i}`,
                }),
              }).catch(() => undefined);
            },
            Math.max(5, loadMs / Math.max(1, o.inbound)),
          )
        : undefined;
    // Inbound Telegram: people write to the bot from its chats; the stand-in posts each update to the
    // gateway's webhook with the secret, one chat's updates in sequence, retried until a 2xx.
    const tgList = [...tgContacts];
    let tgInboundEmitted = 0;
    const tgInboundTexts: string[] = [];
    const tgInboundTimer =
      o.telegramInbound > 0 && tgList.length > 0
        ? setInterval(
            () => {
              if (tgInboundEmitted >= o.telegramInbound) return;
              const i = tgInboundEmitted++;
              const chat = chatOf(tgList[i % tgList.length]!);
              const text = `inbound s${o.seed} t${i}`;
              tgInboundTexts.push(text);
              void tgSim
                .control("POST", "/inbound", { token: TELEGRAM_TOKEN, chatId: chat, text, from: { id: chat, first_name: "Contact" } })
                .catch((err: unknown) => log(`Telegram inbound ${i} refused by the simulator: ${String(err)}`));
            },
            Math.max(5, loadMs / Math.max(1, o.telegramInbound)),
          )
        : undefined;

    log(
      `load: ${o.messages} messages over ${o.contacts} contacts at ${o.rate}/s (${(loadMs / 1000).toFixed(0)} s), faults at ${schedule.map((s) => `${s.name} ${(s.at / 1000).toFixed(0)}s`).join(", ")}`,
    );
    const loadStart = Date.now();
    const faults = runFaults(schedule, loadStart, log);
    const kafkaFlusher = setInterval(() => void kafkaLoad.flush(), 200);
    for (const p of plan) {
      await sleep(Math.max(0, loadStart + (p.n / o.rate) * 1000 - Date.now()));
      if (p.channel === "kafka") {
        kafkaLoad.push(p, Date.now());
        continue;
      }
      while (inFlight >= 16) await sleep(5);
      inFlight++;
      const next = (chains.get(p.contact) ?? Promise.resolve()).then(() => postApi(p)).finally(() => inFlight--);
      chains.set(p.contact, next);
    }
    await Promise.all(chains.values());
    clearInterval(kafkaFlusher);
    await kafkaLoad.flush();
    await faults;
    if (inboundTimer) {
      while (inboundEmitted < o.inbound) await sleep(50);
      clearInterval(inboundTimer);
    }
    if (tgInboundTimer) {
      while (tgInboundEmitted < o.telegramInbound) await sleep(50);
      clearInterval(tgInboundTimer);
    }
    const loadSeconds = (Date.now() - loadStart) / 1000;
    log(`load submitted in ${loadSeconds.toFixed(1)} s: API ${acceptedApi.size} accepted, ${refusedApi.size} refused; Kafka ${producedKafka.size} produced`);
    for (const [n, why] of [...refusedApi].slice(0, 3)) log(`  refused n${n}: ${why}`);

    // Settle: nothing pending at the gateway, the bridge caught up both ways, the simulator quiet.
    const settleStart = Date.now();
    let settled = false;
    let calm = 0;
    while (Date.now() - settleStart < o.settleSeconds * 1000) {
      await sleep(2_000);
      try {
        const statsRes = await api.v1.stats.$get();
        if (!statsRes.ok) throw new Error(`GET /v1/stats: ${statsRes.status}`);
        const stats: Record<string, number> = (await statsRes.json()).messages.total;
        const pending = (stats.scheduled ?? 0) + (stats.queued ?? 0) + (stats.processing ?? 0);
        const total = Object.values(stats).reduce((a, b) => a + b, 0);
        const tgPending = tgContacts.size === 0 ? 0 : (await tgSim.deliveries()).filter((d) => d.outcome === "pending").length;
        const hooksPending = simulator.state.webhooks.filter((w) => w.outcome === "pending").length + tgPending;
        let outbox = 0;
        let lag = 0;
        if (o.kafka && kafkaAdmin) {
          const res = await api.v1.events.$get({ query: { consumer: bridgeConsumer, limit: "1" } });
          if (!res.ok) throw new Error(`GET /v1/events: ${res.status}`);
          outbox = (await res.json()).events.length;
          lag = await consumerLag(kafkaAdmin, `bridge-${tag}`, [topics.TOPIC_SEND_MESSAGE!, topics.TOPIC_SCHEDULE_MESSAGE!]);
        }
        const quiet = pending === 0 && hooksPending === 0 && outbox === 0 && lag === 0;
        calm = quiet ? calm + 1 : 0;
        if ((Date.now() - settleStart) % 10_000 < 2_100 || quiet)
          log(
            `settling: ${total} messages, ${pending} pending, ${hooksPending} webhooks pending, outbox ${outbox ? "not drained" : "drained"}, Kafka lag ${lag}`,
          );
        if (calm >= 2) {
          settled = true;
          break;
        }
      } catch (err) {
        log(`settle probe failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const settleSeconds = (Date.now() - settleStart) / 1000;
    log(settled ? `settled in ${settleSeconds.toFixed(1)} s` : `NOT settled after ${settleSeconds.toFixed(0)} s; judging what is there`);
    // What the simulator still holds undelivered, for reading why a run did not settle.
    for (const w of simulator.state.webhooks.filter((w) => w.outcome === "pending").slice(0, 5))
      log(
        `  webhook still pending: #${w.seq} ${w.event} keyId ${w.keyId ?? "-"}, ${w.attempts} attempts, last status ${w.status}${w.error ? ` (${w.error})` : ""}, created ${((Date.now() - w.at) / 1000).toFixed(0)} s ago`,
      );

    // Collect: every message of the tenant with its history, the simulator's sends, Kafka's topics.
    const messages = await allMessages(gateway, headers);
    // For the run's logs: a message as the API shows it (with its history), a simulator call by time.
    const messageView = async (id: string): Promise<unknown> =>
      (await api.v1.messages[":id"].$get({ param: { id } })).json().catch(() => ({ id, unreadable: true }));
    const textOf = (body: unknown) => z.object({ text: z.string() }).safeParse(body).data?.text;
    const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    const callView = (c: (typeof simulator.state.calls)[number]) => ({
      seq: c.seq,
      at: iso(c.at),
      answeredAt: iso(c.answeredAt),
      status: c.status,
      relayed: c.relayed === true,
      route: c.route,
      text: textOf(c.body),
    });
    for (const m of messages.filter((m) => !["sent", "delivered", "read", "failed", "canceled"].includes(m.status)).slice(0, 50))
      stuck.push(await messageView(m.id));
    const kafkaRead = o.kafka
      ? await readTopics(brokers, [
          topics.TOPIC_MESSAGE_STATUS!,
          topics.TOPIC_MESSAGE_RECEIVED!,
          `${topics.TOPIC_SEND_MESSAGE}.dlq`,
          `${topics.TOPIC_SCHEDULE_MESSAGE}.dlq`,
        ])
      : new Map<string, { key: string | null; value: string; headers: Record<string, string> }[]>();
    // Without Kafka the events are read from the outbox itself, as a consumer of its own. Delivery to
    // Kafka is at-least-once (a page produced again after a bridge kill or a broker restart): repeats
    // are dropped by eventId, as consumers are told to.
    const seenEvents = new Set<string>();
    const outboxEvents = o.kafka ? [] : await readOutbox(gateway, headers);
    const statusEvents = (o.kafka ? (kafkaRead.get(topics.TOPIC_MESSAGE_STATUS!) ?? []).map((r) => r.value) : outboxEvents).flatMap((value) => {
      const e = z
        .object({ eventId: z.string().optional(), type: z.literal("message.status"), data: z.object({ messageId: z.string(), status: z.string() }) })
        .safeParse(JSON.parse(value));
      if (!e.success) return [];
      if (e.data.eventId !== undefined) {
        if (seenEvents.has(e.data.eventId)) return [];
        seenEvents.add(e.data.eventId);
      }
      return [e.data.data];
    });
    const deadLettered = new Map<number, string>();
    for (const t of [`${topics.TOPIC_SEND_MESSAGE}.dlq`, `${topics.TOPIC_SCHEDULE_MESSAGE}.dlq`]) {
      for (const r of kafkaRead.get(t) ?? []) {
        const m = /chaos s\d+ n(\d+) /.exec(r.value);
        if (m) deadLettered.set(Number(m[1]), [r.headers["x-dlq-reason"], r.headers["x-dlq-error-code"]].filter(Boolean).join(" "));
        if (m && deadLettered.size === 1) log(`dead-lettered by the bridge: ${r.headers["x-dlq-detail"]}`);
      }
    }
    const receivedTexts = new Set(
      (kafkaRead.get(topics.TOPIC_MESSAGE_RECEIVED!) ?? []).flatMap((r) => {
        // WhatsApp's inbound only: Telegram's is judged on its own.
        const e = z.object({ data: z.object({ channel: z.string().optional(), text: z.string().optional() }) }).safeParse(JSON.parse(r.value));
        return e.success && e.data.data.text && e.data.data.channel !== "telegram" ? [e.data.data.text] : [];
      }),
    );
    // Inbound: each message once (a duplicate delivery is the same message); dropped ones never reached the gateway.
    const inboundHooks = simulator.state.webhooks.filter((w) => w.event === "messages.upsert");
    const inboundIds = new Set(inboundHooks.map((w) => w.keyId));
    const droppedIds = new Set(inboundHooks.filter((w) => w.outcome === "dropped").map((w) => w.keyId));
    const gaveUpIds = new Set(inboundHooks.filter((w) => w.outcome === "failed").map((w) => w.keyId));
    const inboundTexts = new Map(
      inboundHooks.flatMap((w) => {
        const text = z.object({ data: z.object({ message: z.object({ conversation: z.string() }) }) }).safeParse(w.body);
        return text.success ? [[w.keyId, text.data.data.message.conversation] as const] : [];
      }),
    );
    const lostInbound = [...inboundIds].filter((id) => !droppedIds.has(id) && !gaveUpIds.has(id) && !receivedTexts.has(inboundTexts.get(id) ?? ""));
    const inboundLost = lostInbound.length;
    // Where each lost one was taken: answered 2xx by the gateway how long before the next kill
    // (local Queues live in the runtime's memory: a job queued just before a SIGKILL is gone).
    const beforeKill = lostInbound.flatMap((id) => {
      const at = Math.max(...inboundHooks.filter((w) => w.keyId === id && w.deliveredAt !== undefined).map((w) => w.deliveredAt ?? 0));
      const next = windows.filter((w) => w.from >= at).map((w) => w.from - at);
      return next.length > 0 ? [Math.min(...next)] : [];
    });
    const inboundNearKill = beforeKill.filter((ms) => ms <= 5_000).length;

    const calls = simulator.state.calls.map((c) => {
      const body = z.object({ text: z.string().optional() }).safeParse(c.body);
      return { text: body.success ? body.data.text : undefined, number: c.number, status: c.status, answeredAt: c.answeredAt, relayed: c.relayed === true };
    });
    for (const c of simulator.state.calls) {
      if (c.relayed && c.status >= 500) count("simulator 500/502 after relaying");
      else if (c.status === 500) count("simulator 500s");
      if (c.status === 400) count("simulator 400s (not on WhatsApp)");
    }
    for (const w of simulator.state.webhooks) if (w.outcome === "dropped") count("webhooks dropped");
    // A text stored as sent through the API more often than a call of ours relayed it: another API
    // client of the instance sent it too (a look-alike with a Baileys id).
    const relayedTexts = new Map<string, number>();
    for (const c of calls) if (c.relayed && c.text !== undefined) relayedTexts.set(c.text, (relayedTexts.get(c.text) ?? 0) + 1);
    const storedTexts = new Map<string, number>();
    for (const raw of simulator.state.sentMessages()) {
      const text = z.object({ conversation: z.string() }).safeParse(raw.message).data?.conversation;
      if (raw.key.fromMe && raw.source === "web" && text !== undefined) storedTexts.set(text, (storedTexts.get(text) ?? 0) + 1);
    }
    const otherClientTexts = new Set([...storedTexts].filter(([text, n]) => n > (relayedTexts.get(text) ?? 0)).map(([text]) => text));
    for (const [what, n] of Object.entries(faultCounts(simulator.state))) injected[what] = n;
    const observed: Observed = {
      acceptedApi,
      producedKafka,
      deadLettered,
      messages,
      calls,
      statusEvents,
      requests,
      restartWindows: windows.map((w) => ({ from: w.from, to: Number.isFinite(w.to) ? w.to : Date.now() })),
      otherClientTexts,
    };
    const verdict = judge(
      plan.filter((p) => p.network === "whatsapp"),
      observed,
    );
    const telegram =
      tgContacts.size === 0
        ? undefined
        : await telegramVerdict({
            simulatorUrl: simulator.url,
            token: TELEGRAM_TOKEN,
            plan: plan.filter((p) => p.network === "telegram"),
            observed,
            hangMs: o.evolutionTimeoutMs + 1_000,
            inboundTexts: tgInboundTexts,
            received: (o.kafka ? (kafkaRead.get(topics.TOPIC_MESSAGE_RECEIVED!) ?? []).map((r) => r.value) : outboxEvents).map((v) => JSON.parse(v) as unknown),
          });
    if (telegram) tgCallsOf = { restartWindows: observed.restartWindows, calls: telegram.calls };
    order = await Promise.all(
      verdict.outOfOrderContacts.slice(0, 10).map(async (contact) => {
        const mine = plan.filter((p) => p.contact === contact);
        const texts = new Set(mine.map((p) => p.text));
        const rows = messages.filter((m) => m.text !== undefined && texts.has(m.text));
        return {
          contact,
          channel: mine[0]?.channel,
          scheduled: mine[0]?.scheduled,
          messages: await Promise.all(rows.map((m) => messageView(m.id))),
          calls: simulator.state.calls.filter((c) => c.number === contactNumber(contact)).map(callView),
        };
      }),
    );
    // How long the simulator took to answer the sends, next to the gateway's timeout: a lane that
    // timed out on a send the simulator answered quickly waited on its own runtime.
    const answerMs = simulator.state.calls
      .filter((c) => c.route.includes("sendText") && c.answeredAt !== undefined)
      .map((c) => (c.answeredAt ?? c.at) - c.at)
      .sort((a, b) => a - b);
    log(
      `simulator answer time over ${answerMs.length} sends: p50 ${percentile(answerMs, 50)} ms, p90 ${percentile(answerMs, 90)} ms, p99 ${percentile(answerMs, 99)} ms, max ${answerMs.at(-1)} ms`,
    );
    twice = await Promise.all(
      verdict.sentTwiceTexts.slice(0, 20).map(async (text) => {
        const row = messages.find((m) => m.text === text);
        return {
          text,
          message: row ? await messageView(row.id) : null,
          calls: simulator.state.calls.filter((c) => textOf(c.body) === text).map(callView),
        };
      }),
    );
    neverSent = await Promise.all(
      verdict.markedSentTexts.slice(0, 20).map(async (text) => {
        const row = messages.find((m) => m.text === text);
        return {
          text,
          message: row ? await messageView(row.id) : null,
          calls: simulator.state.calls.filter((c) => textOf(c.body) === text).map(callView),
        };
      }),
    );
    return {
      verdict,
      ...(telegram ? { telegram: telegram.result } : {}),
      settled,
      seconds: { load: loadSeconds, settle: settleSeconds, total: (Date.now() - started) / 1000 },
      injected,
      inbound: {
        emitted: inboundIds.size,
        dropped: droppedIds.size,
        gaveUp: gaveUpIds.size,
        onKafka: receivedTexts.size,
        lost: o.kafka ? inboundLost : 0,
        lostJustBeforeKill: o.kafka ? inboundNearKill : 0,
      },
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err) => log(`cleanup: ${String(err)}`));
    // The processes' logs outlive the run, for reading what went wrong.
    const logDir = `${workDir}-logs`;
    mkdirSync(logDir, { recursive: true });
    if (gatewayLogs) writeFileSync(path.join(logDir, "gateway.log"), gatewayLogs());
    if (stuck.length > 0) writeFileSync(path.join(logDir, "stuck.json"), JSON.stringify(stuck, null, 2));
    if (order.length > 0) writeFileSync(path.join(logDir, "order.json"), JSON.stringify(order, null, 2));
    if (twice.length > 0) writeFileSync(path.join(logDir, "twice.json"), JSON.stringify(twice, null, 2));
    if (neverSent.length > 0) writeFileSync(path.join(logDir, "never-sent.json"), JSON.stringify(neverSent, null, 2));
    if (tgCallsOf && Object.keys(tgCallsOf).length > 0) writeFileSync(path.join(logDir, "telegram.json"), JSON.stringify(tgCallsOf, null, 2));
    // Every API request answered 5xx or not at all, next to the restart windows (seconds from the start).
    const s = (t: number) => Number(((t - started) / 1000).toFixed(2));
    writeFileSync(
      path.join(logDir, "server-errors.json"),
      JSON.stringify(
        {
          windows: windows.map((w) => ({ from: s(w.from), to: Number.isFinite(w.to) ? s(w.to) : null })),
          errors: requests
            .filter((r) => r.status === 0 || r.status >= 500)
            .map((r) => ({ at: s(r.at), end: r.end === undefined ? null : s(r.end), status: r.status, path: r.path, detail: r.detail })),
        },
        null,
        2,
      ),
    );
    if (existsSync(path.join(workDir, "bridge.log"))) copyFileSync(path.join(workDir, "bridge.log"), path.join(logDir, "bridge.log"));
    log(`logs in ${logDir}`);
    rmSync(workDir, { recursive: true, force: true });
  }
}
