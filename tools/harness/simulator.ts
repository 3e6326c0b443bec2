// The stand-ins' control routes as tests, benchmarks and the chaos run read them: the Evolution
// simulator's recorded sends, the Telegram Bot API stand-in (bots, chats, config, its calls and webhook
// deliveries) and the echo bot's settings per path. Plain fetch: these are not the gateway's API.
import { z } from "zod";

const simCalls = z.object({
  calls: z.array(
    z.object({
      at: z.number(),
      answeredAt: z.number().optional(),
      route: z.string(),
      number: z.string(),
      body: z.looseObject({ text: z.string().optional() }),
      status: z.int(),
    }),
  ),
});
export type SimCall = z.infer<typeof simCalls>["calls"][number];

/** The Evolution simulator's answered calls of one instance, in the order they came. */
export async function simulatorCalls(simulatorUrl: string, instance: string): Promise<SimCall[]> {
  const res = await fetch(`${simulatorUrl}/_sim/calls?instance=${encodeURIComponent(instance)}`);
  return simCalls.parse(await res.json()).calls;
}

const telegramCalls = z.object({
  calls: z.array(
    z.object({
      seq: z.number(),
      at: z.number(),
      answeredAt: z.number().optional(),
      method: z.string(),
      chatId: z.union([z.number(), z.string()]).optional(),
      params: z.looseObject({ text: z.string().optional() }),
      status: z.number(),
      description: z.string().optional(),
      sent: z.boolean(),
      insideRetryAfter: z.boolean(),
    }),
  ),
});
export type TelegramSimCall = z.infer<typeof telegramCalls>["calls"][number];

const telegramDeliveries = z.object({
  deliveries: z.array(
    z.object({
      outcome: z.enum(["pending", "delivered", "failed"]),
      duplicate: z.boolean(),
      body: z.looseObject({ message: z.looseObject({ text: z.string().optional() }).optional() }),
    }),
  ),
});
export type TelegramDelivery = z.infer<typeof telegramDeliveries>["deliveries"][number];

/** The Telegram Bot API stand-in under the simulator's /_sim/telegram. */
export function telegramSimulator(simulatorUrl: string) {
  const base = `${simulatorUrl}/_sim/telegram`;
  return {
    /** A control call (POST /bots, PUT /chats, PATCH /config, POST /inbound…); a refusal throws. */
    async control(method: "POST" | "PUT" | "PATCH", route: string, body: unknown): Promise<unknown> {
      const res = await fetch(`${base}${route}`, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`simulator ${method} /_sim/telegram${route}: ${res.status} ${await res.text()}`);
      return res.json();
    },
    /** A person writes to the bot: the update is posted to the bot's webhook. The answer as is (a load loop counts statuses). */
    inbound(update: { token: string; chatId: number; text: string; wait?: boolean }): Promise<Response> {
      return fetch(`${base}/inbound`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(update) });
    },
    /** The Bot API calls a bot received; `pending` adds those still unanswered. */
    async calls(query: { token: string; method?: string; pending?: boolean }): Promise<TelegramSimCall[]> {
      const q = new URLSearchParams({ token: query.token, ...(query.method ? { method: query.method } : {}), ...(query.pending ? { pending: "true" } : {}) });
      return telegramCalls.parse(await (await fetch(`${base}/calls?${q}`)).json()).calls;
    },
    /** Webhook deliveries of updates to the gateway: one bot's, or every bot's. */
    async deliveries(token?: string): Promise<TelegramDelivery[]> {
      const q = token ? `?${new URLSearchParams({ token })}` : "";
      return telegramDeliveries.parse(await (await fetch(`${base}/deliveries${q}`)).json()).deliveries;
    },
  };
}

/** Settings of one echo bot path (simulator/echo-bot.ts): the signing secret, a handler delay, … */
export async function echoBotSettings(botUrl: string, path: string, settings: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${botUrl}/_bot/${path}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(settings) });
  if (!res.ok) throw new Error(`echo bot PUT /_bot/${path}: ${res.status} ${await res.text()}`);
}
