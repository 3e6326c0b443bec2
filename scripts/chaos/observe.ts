// What a chaos run reads back once the system settled, for the verdict: the gateway's messages and
// outbox, Kafka's topics and consumer lag, and the Telegram stand-in's calls and deliveries.
import { Kafka, logLevel } from "kafkajs";
import { z } from "zod";
import { gatewayClient } from "../../src/client.ts";
import type { Gateway } from "../../tools/harness/gateway.ts";
import { telegramSimulator } from "../../tools/harness/simulator.ts";
import { judgeTelegram, type Observed, type Planned, type TelegramCall, type TelegramVerdict } from "./verdict.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type TelegramResult = {
  verdict: TelegramVerdict;
  injected: Record<string, number>;
  /** Updates played, posted twice by the simulator, given up by its retries, stored by the gateway
   *  (a message.received event), lost after a 2xx, and stored more than once. */
  inbound: { emitted: number; duplicated: number; gaveUp: number; stored: number; lost: number; storedTwice: number };
};

const receivedEvent = z.object({
  eventId: z.string().optional(),
  type: z.literal("message.received"),
  data: z.object({ channel: z.string().optional(), text: z.string().optional() }),
});

/** Telegram's side of the verdict: the stand-in's calls and webhook deliveries next to the gateway's
 *  messages and message.received events. */
export async function telegramVerdict(a: {
  simulatorUrl: string;
  /** The bot whose calls and deliveries are read. */
  token: string;
  plan: Planned[];
  observed: Observed;
  hangMs: number;
  inboundTexts: string[];
  received: unknown[];
}): Promise<{ result: TelegramResult; calls: Record<string, unknown> }> {
  const telegram = telegramSimulator(a.simulatorUrl);
  const raw = await telegram.calls({ token: a.token, pending: true });
  const sends = raw.filter((c) => c.method.startsWith("send") && c.method !== "sendChatAction");
  const calls: TelegramCall[] = sends.map((c) => ({
    text: c.params.text,
    chat: String(c.chatId),
    status: c.status,
    at: c.at,
    sent: c.sent,
    insideRetryAfter: c.insideRetryAfter,
  }));
  const verdict = judgeTelegram(a.plan, a.observed, calls);
  const deliveries = await telegram.deliveries(a.token);
  const injected: Record<string, number> = {};
  const count = (k: string, n: number) => {
    if (n > 0) injected[k] = n;
  };
  count("5xx without sending", sends.filter((c) => c.status >= 500 && !c.sent).length);
  count("502 after sending", sends.filter((c) => c.status >= 500 && c.sent).length);
  count("hangs past the timeout (sent)", sends.filter((c) => c.sent && c.status < 300 && (c.answeredAt ?? Date.now()) - c.at >= a.hangMs - 100).length);
  count("429 flood waits", sends.filter((c) => c.status === 429).length);
  count("webhook updates posted twice", deliveries.filter((d) => d.duplicate).length);

  // Inbound: each update once in the gateway (a duplicate delivery is the same update_id).
  const stored = new Map<string, number>();
  const seen = new Set<string>();
  for (const value of a.received) {
    const e = receivedEvent.safeParse(value);
    if (!e.success || e.data.data.channel !== "telegram" || e.data.data.text === undefined) continue;
    if (e.data.eventId !== undefined) {
      if (seen.has(e.data.eventId)) continue;
      seen.add(e.data.eventId);
    }
    stored.set(e.data.data.text, (stored.get(e.data.data.text) ?? 0) + 1);
  }
  const deliveredTexts = new Set(deliveries.filter((d) => d.outcome === "delivered").map((d) => d.body.message?.text));
  const emitted = new Set(a.inboundTexts);
  const inbound = {
    emitted: emitted.size,
    duplicated: deliveries.filter((d) => d.duplicate && emitted.has(d.body.message?.text ?? "")).length,
    gaveUp: [...emitted].filter((t) => !deliveredTexts.has(t)).length,
    stored: [...emitted].filter((t) => stored.has(t)).length,
    lost: [...emitted].filter((t) => deliveredTexts.has(t) && !stored.has(t)).length,
    storedTwice: [...emitted].filter((t) => (stored.get(t) ?? 0) > 1).length,
  };
  // For telegram.json: the calls of each text in a finding.
  const findings = new Set([
    ...verdict.sentTwiceTexts,
    ...verdict.markedSentTexts,
    ...a.plan.filter((p) => verdict.outOfOrderContacts.includes(p.contact)).map((p) => p.text),
    ...verdict.inDoubtTexts,
  ]);
  const callsOf = Object.fromEntries(
    [...findings].slice(0, 50).map((text) => [text, sends.filter((c) => c.params.text === text).map(({ params: _, ...c }) => c)]),
  );
  return { result: { verdict, injected, inbound }, calls: callsOf };
}

export async function consumerLag(admin: ReturnType<Kafka["admin"]>, groupId: string, topics: string[]): Promise<number> {
  let lag = 0;
  for (const { topic, partitions } of await admin.fetchOffsets({ groupId, topics })) {
    for (const end of await admin.fetchTopicOffsets(topic)) {
      const committed = Number(partitions.find((p) => p.partition === end.partition)?.offset ?? "-1");
      lag += Math.max(0, Number(end.high) - (committed >= 0 ? committed : Number(end.low)));
    }
  }
  return lag;
}

// The typed answer leaves history optional; the verdict needs it, so the answer is still checked.
const oneMessage = z.object({
  id: z.string(),
  text: z.string().optional(),
  status: z.string(),
  lastError: z.string().optional(),
  history: z.array(z.object({ status: z.string(), detail: z.string().optional() })),
});

export async function allMessages(gateway: Gateway, headers: Record<string, string>) {
  const client = gatewayClient(gateway.url, { headers });
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const query = { limit: "200", ...(cursor ? { cursor } : {}) };
    const res = await client.v1.messages.$get({ query });
    if (!res.ok) throw new Error(`GET /v1/messages: ${res.status} ${await res.text()}`);
    const page = await res.json();
    ids.push(...page.data.map((m) => m.id));
    cursor = page.nextCursor;
  } while (cursor);
  const out: z.infer<typeof oneMessage>[] = [];
  for (let i = 0; i < ids.length; i += 16) {
    const got = await Promise.all(
      ids.slice(i, i + 16).map(async (id) => oneMessage.parse(await (await client.v1.messages[":id"].$get({ param: { id } })).json())),
    );
    out.push(...got);
  }
  return out;
}

/** Every event in the tenant's outbox, as JSON text, through a consumer name of its own. */
export async function readOutbox(gateway: Gateway, headers: Record<string, string>): Promise<string[]> {
  const client = gatewayClient(gateway.url, { headers });
  const consumer = `chaos-verdict-${Date.now().toString(36)}`;
  const out: string[] = [];
  for (;;) {
    const res = await client.v1.events.$get({ query: { consumer, limit: "1000" } });
    if (!res.ok) throw new Error(`GET /v1/events: ${res.status} ${await res.text()}`);
    const p = await res.json();
    if (p.events.length === 0) return out;
    for (const e of p.events) out.push(JSON.stringify(e));
    const ack = await client.v1.events.ack.$post({ json: { consumer, seq: p.cursor } });
    if (!ack.ok) throw new Error(`POST /v1/events/ack: ${ack.status} ${await ack.text()}`);
  }
}

/** Reads whole topics from the beginning up to their current end. */
export async function readTopics(brokers: string, topics: string[]) {
  const kafka = new Kafka({ clientId: "chaos-reader", brokers: [brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const existing = new Set(await admin.listTopics());
  const present = topics.filter((t) => existing.has(t));
  const ends = new Map<string, number>();
  for (const t of present) for (const p of await admin.fetchTopicOffsets(t)) if (Number(p.high) > 0) ends.set(`${t}:${p.partition}`, Number(p.high));
  await admin.disconnect();
  const out = new Map<string, { key: string | null; value: string; headers: Record<string, string> }[]>();
  if (ends.size === 0) return out;
  const consumer = kafka.consumer({ groupId: `chaos-reader-${Date.now()}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topics: present, fromBeginning: true });
  const reached = new Set<string>();
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
      const list = out.get(topic) ?? [];
      out.set(topic, list);
      list.push({ key: message.key?.toString() ?? null, value: message.value?.toString() ?? "", headers });
      if (Number(message.offset) + 1 >= (ends.get(`${topic}:${partition}`) ?? 0)) reached.add(`${topic}:${partition}`);
    },
  });
  const deadline = Date.now() + 120_000;
  while (reached.size < ends.size && Date.now() < deadline) await sleep(200);
  await consumer.disconnect();
  return out;
}
