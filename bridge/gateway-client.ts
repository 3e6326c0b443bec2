// The gateway's HTTP API as the bridge uses it: batch sends, the outbox read and its ack.
// Requests go through the typed client (paths and bodies checked against the routes); every answer is
// still parsed with zod, since a gateway of another version may answer. Transport failures and 5xx
// become `unavailable`.
import { z } from "zod";
import { gatewayClient as typedClient } from "../src/client.ts";
import { gatewayEvent } from "../src/contracts/events.ts";
import { unlessStopped } from "./backoff.ts";

const itemError = z.object({ code: z.string(), message: z.string(), details: z.array(z.object({ path: z.string(), message: z.string() })).default([]) });
const batchAnswer = z.object({
  results: z.array(z.union([z.object({ index: z.int(), id: z.string(), status: z.string() }), z.object({ index: z.int(), error: itemError })])),
});
const errorBody = z.object({ error: itemError });

export type ItemResult = z.infer<typeof batchAnswer>["results"][number];
export type ItemError = z.infer<typeof itemError>;

export type BatchOutcome =
  | { kind: "answered"; results: ItemResult[]; replayed: boolean }
  /** Try the same request again later: the gateway is down, busy, or still running this key. */
  | { kind: "retry"; reason: string; retryAfterMs: number }
  /** The whole request was refused for good (the key was used with another body): its messages go to the DLQ. */
  | { kind: "refused"; status: number; error: ItemError }
  /**
   * The deployment is wrong, not the messages: a bad key (401/403), a wrong GATEWAY_URL (404/405), a
   * proxy's limits (413/415), a body this gateway version does not take (400/422). Pause and alert;
   * nothing goes to the DLQ and nothing is committed until an operator fixes it.
   */
  | { kind: "misconfigured"; status: number; reason: string; retryAfterMs: number };

// Events are checked one by one, so one event the bridge does not know cannot stall the outbox.
const rawPage = z.object({ events: z.array(z.looseObject({ seq: z.int() })), cursor: z.int(), ackedCursor: z.int().optional() });
export type PageEvent = { seq: number; raw: unknown; event: z.infer<typeof gatewayEvent> | undefined; problem?: string };
export type EventsPage = { events: PageEvent[]; cursor: number; ackedCursor: number | undefined };

export class GatewayUnavailable extends Error {
  constructor(
    message: string,
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

export type GatewayClient = ReturnType<typeof gatewayClient>;
type BatchItems = Parameters<ReturnType<typeof typedClient>["v1"]["messages"]["batch"]["$post"]>[0]["json"]["messages"];

/** `batchTimeoutMs`: a batch POST still unanswered then is given up (and retried by the relay). */
export function gatewayClient(baseUrl: string, apiKey: string, batchTimeoutMs = 30_000) {
  const api = typedClient(baseUrl, { apiKey });
  // Answers read as unknown JSON: the zod schemas below decide what they hold.
  type Answer = Pick<Response, "status" | "statusText" | "headers" | "url" | "body"> & { json(): Promise<unknown> };

  // `what`: "METHOD /path", for the error; `request` sends it with the init given (the abort signal).
  const call = async (what: string, request: (init: RequestInit) => Promise<Answer>, timeoutMs: number, signal?: AbortSignal): Promise<Answer> => {
    const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
    try {
      return await request({ signal: AbortSignal.any(signals) });
    } catch (err) {
      throw new GatewayUnavailable(`${what}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`);
    }
  };

  // With a signal the body read ends when it aborts, whatever the body stream does: an abort that
  // lands while a body is being read does not always settle res.json() (a stopping bridge hung there).
  const json = async (res: Answer, signal?: AbortSignal): Promise<unknown> => {
    try {
      if (!signal) return await res.json();
      const read = await unlessStopped(res.json(), signal);
      if (!read) {
        res.body?.cancel().catch(() => {});
        throw new GatewayUnavailable(`${res.url}: stopped while reading the answer`);
      }
      return read.value;
    } catch (err) {
      if (err instanceof GatewayUnavailable) throw err;
      return undefined;
    }
  };

  const retryAfter = (res: Answer) => {
    const s = Number(res.headers.get("retry-after"));
    return Number.isFinite(s) && s > 0 ? s * 1000 : 0;
  };

  return {
    /** Posts one batch. No signal on purpose: abandoning a send mid-request could leave it half-accepted. */
    async sendBatch(items: unknown[], idempotencyKey: string): Promise<BatchOutcome> {
      let res: Answer;
      try {
        res = await call(
          "POST /v1/messages/batch",
          // The items come from the legacy mapping; the gateway checks each one and answers per item.
          (init) => api.v1.messages.batch.$post({ json: { messages: items as BatchItems } }, { headers: { "idempotency-key": idempotencyKey }, init }),
          batchTimeoutMs,
        );
      } catch (err) {
        return { kind: "retry", reason: err instanceof Error ? err.message : String(err), retryAfterMs: 0 };
      }
      const body = await json(res);
      if (res.status === 200) {
        const parsed = batchAnswer.safeParse(body);
        if (parsed.success) return { kind: "answered", results: parsed.data.results, replayed: res.headers.get("idempotent-replayed") === "true" };
        return { kind: "retry", reason: `unexpected batch answer: ${parsed.error.message}`, retryAfterMs: 0 };
      }
      const error = errorBody.safeParse(body);
      const detail = error.success ? error.data.error : { code: `http_${res.status}`, message: res.statusText, details: [] };
      // 409 with Retry-After: the same key is still being processed (perhaps by our previous life).
      const inFlight = res.status === 409 && res.headers.has("retry-after");
      const reason = `${res.status} ${detail.code}: ${detail.message}`;
      if (res.status >= 500 || res.status === 429 || res.status === 408 || inFlight) return { kind: "retry", reason, retryAfterMs: retryAfter(res) };
      // Per-item refusals come inside a 200; a whole-batch refusal other than a key conflict is never
      // the messages' fault (they passed the same contract here), so it must not dead-letter them.
      if (res.status === 409) return { kind: "refused", status: res.status, error: detail };
      return { kind: "misconfigured", status: res.status, reason, retryAfterMs: retryAfter(res) };
    },

    async readEvents(consumer: string, limit: number, waitSeconds: number, signal?: AbortSignal): Promise<EventsPage> {
      const query = { consumer, limit: String(limit), wait: String(waitSeconds) };
      const res = await call("GET /v1/events", (init) => api.v1.events.$get({ query }, { init }), (waitSeconds + 30) * 1000, signal);
      const body = await json(res, signal);
      if (res.status !== 200) throw new GatewayUnavailable(`GET /v1/events: ${res.status} ${JSON.stringify(body)?.slice(0, 300)}`, retryAfter(res));
      const page = rawPage.safeParse(body);
      if (!page.success) throw new GatewayUnavailable(`GET /v1/events: unexpected answer: ${page.error.message}`);
      const events = page.data.events.map((raw): PageEvent => {
        const event = gatewayEvent.safeParse(raw);
        return event.success ? { seq: raw.seq, raw, event: event.data } : { seq: raw.seq, raw, event: undefined, problem: event.error.message };
      });
      return { events, cursor: page.data.cursor, ackedCursor: page.data.ackedCursor };
    },

    async ack(consumer: string, seq: number, signal?: AbortSignal): Promise<number> {
      const res = await call("POST /v1/events/ack", (init) => api.v1.events.ack.$post({ json: { consumer, seq } }, { init }), 15_000, signal);
      const body = await json(res, signal);
      if (res.status !== 200) throw new GatewayUnavailable(`POST /v1/events/ack: ${res.status} ${JSON.stringify(body)?.slice(0, 300)}`, retryAfter(res));
      const parsed = z.object({ cursor: z.int() }).safeParse(body);
      if (!parsed.success) throw new GatewayUnavailable(`POST /v1/events/ack: unexpected answer: ${parsed.error.message}`);
      return parsed.data.cursor;
    },
  };
}
