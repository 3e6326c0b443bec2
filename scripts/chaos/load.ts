// The load of a chaos run: messages through the API (retried with the same Idempotency-Key until
// answered) and legacy records through Kafka (flushed one batch at a time, so a contact's records keep
// their order on their partition across a broker restart).
import type { Producer } from "kafkajs";
import { gatewayClient } from "../../src/client.ts";
import { acceptedMessage } from "../../src/contracts/messages.ts";
import type { ApiRequest, Planned } from "./verdict.ts";

export const contactNumber = (c: number) => `5511${String(900_000_000 + c).slice(-9)}`;
export const chatOf = (c: number) => 700_000_000 + c;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Posts one planned message until it is accepted or refused for good; records every request. */
export function apiPoster(a: {
  gatewayUrl: string;
  headers: Record<string, string>;
  seed: number;
  scheduleLeadSeconds: number;
  instance: string;
  telegramInstance: string;
  requests: ApiRequest[];
  acceptedApi: Map<number, string>;
  refusedApi: Map<number, string>;
}): (p: Planned) => Promise<void> {
  const gateway = gatewayClient(a.gatewayUrl, { headers: a.headers });
  return async (p) => {
    const backoff = [250, 500, 1000, 2000, 3000];
    // One body for every attempt: a retry with the same key must be the same request.
    const body = {
      instance: p.network === "telegram" ? a.telegramInstance : a.instance,
      to: p.network === "telegram" ? String(chatOf(p.contact)) : contactNumber(p.contact),
      text: p.text,
      ...(p.scheduled ? { sendAt: new Date(Date.now() + a.scheduleLeadSeconds * 1000).toISOString() } : {}),
    };
    const giveUpAt = Date.now() + 180_000;
    for (let attempt = 0; ; attempt++) {
      const at = Date.now();
      if (at > giveUpAt) {
        a.refusedApi.set(p.n, "gave up after 3 minutes of failed attempts");
        return;
      }
      let status = 0;
      try {
        // Same key on a retry: a request that was taken before the connection broke is not taken twice.
        const res = await gateway.v1.messages.$post(
          { json: body },
          { headers: { "idempotency-key": `chaos-${a.seed}-${p.n}` }, init: { signal: AbortSignal.timeout(30_000) } },
        );
        status = res.status;
        // A body cut by a kill is no answer: retried with the same key, like a refused connection.
        const text = await res.text().catch((err: unknown) => {
          throw new Error(`answer ${res.status} cut before its body ended`, { cause: err });
        });
        const json: unknown = (() => {
          try {
            return JSON.parse(text);
          } catch {
            return undefined;
          }
        })();
        // A 5xx keeps what came with it, to tell the gateway's own errors from the runtime's.
        a.requests.push({ at, end: Date.now(), status, path: "POST /v1/messages", ...(status >= 500 ? { detail: text.slice(0, 300) } : {}) });
        if (status === 202 || status === 200) {
          // Answered through the idempotency wrapper (untyped): checked with the route's documented schema.
          const parsed = acceptedMessage.safeParse(json);
          if (parsed.success) a.acceptedApi.set(p.n, parsed.data.id);
          else a.refusedApi.set(p.n, `${status} without an id: ${text.slice(0, 200)}`);
          return;
        }
        if (status < 500 && status !== 429 && status !== 409) {
          a.refusedApi.set(p.n, `${status} ${text.slice(0, 200)}`);
          return;
        }
      } catch (err) {
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
        a.requests.push({ at, end: Date.now(), status: 0, path: "POST /v1/messages", detail: `${err instanceof Error ? err.message : String(err)}${cause}` });
      }
      await sleep(backoff[Math.min(attempt, backoff.length - 1)]!);
    }
  };
}

/** Legacy records waiting for the next flush; flush() sends them, one flush at a time. */
export function kafkaSubmitter(a: {
  producer: () => Producer | undefined;
  topics: Record<string, string>;
  seed: number;
  scheduleLeadSeconds: number;
  instance: string;
  producedKafka: Set<number>;
  log: (line: string) => void;
}): { push(p: Planned, at: number): void; flush(): Promise<void> } {
  const pending: { p: Planned; at: number }[] = [];
  const flushOnce = async () => {
    const batch = pending.splice(0);
    const producer = a.producer();
    if (batch.length === 0 || !producer) return;
    const byTopic = new Map<string, { key: string; value: string }[]>();
    for (const { p, at } of batch) {
      const topic = p.scheduled ? a.topics.TOPIC_SCHEDULE_MESSAGE! : a.topics.TOPIC_SEND_MESSAGE!;
      const value = p.scheduled
        ? {
            scheduleId: `chaos-${a.seed}-${p.n}`,
            instanceName: a.instance,
            phoneNumber: contactNumber(p.contact),
            message: p.text,
            scheduledFor: new Date(at + a.scheduleLeadSeconds * 1000).toISOString(),
          }
        : { userId: p.n, instanceName: a.instance, phoneNumber: contactNumber(p.contact), message: p.text, timestamp: at };
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), { key: contactNumber(p.contact), value: JSON.stringify(value) }]);
    }
    for (;;) {
      try {
        await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
        for (const { p } of batch) a.producedKafka.add(p.n);
        return;
      } catch (err) {
        a.log(`Kafka produce failed (${err instanceof Error ? err.message : String(err)}); retrying`);
        await sleep(1_000);
      }
    }
  };
  // A batch that fails (broker restart) is retried before any later one goes, else later records
  // overtake it and a contact's records land on its partition out of order.
  let flushing: Promise<void> = Promise.resolve();
  return {
    push: (p, at) => void pending.push({ p, at }),
    flush: () => {
      flushing = flushing.then(flushOnce);
      return flushing;
    },
  };
}
