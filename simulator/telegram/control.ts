// Control API under /_sim/telegram: bots, chats and their marks (blocked, never started,
// migrated), settings, scripted faults, inbound updates played to the webhook, and the records
// of calls and deliveries a test asserts on.
import { type Context, Hono } from "hono";
import { z } from "zod";
import { botSeed, chatInput, faultsInput, telegramSettings, patchSettings } from "./config.ts";
import { buildUpdate, inboundInput } from "./inbound.ts";
import type { Bot, TelegramState } from "./state.ts";
import { enqueue, pendingCount } from "./webhook.ts";

const recordsQuery = z.object({
  token: z.string().optional(),
  chatId: z.string().optional(),
  method: z.string().optional(),
  since: z.coerce.number().int().optional(),
  pending: z.enum(["true", "false", "1", "0"]).optional(),
});

type Parsed<T> = { ok: true; data: T } | { ok: false; response: Response };

async function body<T>(c: Context, schema: z.ZodType<T>): Promise<Parsed<T>> {
  const json: unknown = await c.req.json().catch(() => undefined);
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    return {
      ok: false,
      response: c.json({ error: json === undefined ? "body must be JSON" : "invalid body", issues: parsed.success ? [] : parsed.error.issues }, 400),
    };
  return { ok: true, data: parsed.data };
}

// The token stays out of views: it is the bot's secret.
const botView = (bot: Bot) => ({
  id: bot.user.id,
  username: bot.user.username,
  first_name: bot.user.first_name,
  webhook: bot.webhook ? { ...bot.webhook } : null,
  pendingUpdateCount: pendingCount(bot),
});

export function telegramControlRoutes(tg: TelegramState): Hono {
  const app = new Hono();
  const bot = (token: string | undefined) => (token === undefined ? undefined : tg.botByToken(token));
  const noBot = (c: Context) => c.json({ error: "no bot with this token" }, 404);

  app.get("/bots", (c) => c.json({ bots: [...tg.bots.values()].map(botView) }));

  app.post("/bots", async (c) => {
    const input = await body(c, botSeed);
    if (!input.ok) return input.response;
    const existed = tg.botByToken(input.data.token) !== undefined;
    return c.json({ bot: botView(tg.addBot(input.data)) }, existed ? 200 : 201);
  });

  app.delete("/bots/:id", (c) => (tg.bots.delete(Number(c.req.param("id"))) ? c.body(null, 204) : c.json({ error: "no such bot" }, 404)));

  app.get("/chats", (c) => {
    const found = bot(c.req.query("token"));
    if (!found) return noBot(c);
    return c.json({ chats: [...tg.chatsOf(found).values()].map(({ chat, state, migratedTo, lastMessageId }) => ({ chat, state, migratedTo, lastMessageId })) });
  });

  app.put("/chats", async (c) => {
    const input = await body(c, chatInput);
    if (!input.ok) return input.response;
    const { token, chatId, migrateTo, ...fields } = input.data;
    const found = bot(token);
    if (!found) return noBot(c);
    if (typeof chatId !== "number") return c.json({ error: "chatId must be numeric (give the username as `username`)" }, 400);
    const chat = tg.upsertChat(found, chatId, fields);
    if (migrateTo !== undefined) {
      if (chat.chat.type !== "group") return c.json({ error: "only a basic group migrates to a supergroup" }, 400);
      chat.migratedTo = migrateTo;
      tg.upsertChat(found, migrateTo, { type: "supergroup", ...(chat.chat.title ? { title: chat.chat.title } : {}) });
    }
    return c.json({ chat: chat.chat, state: chat.state, migratedTo: chat.migratedTo });
  });

  app.get("/config", (c) => c.json(tg.settings));

  app.patch("/config", async (c) => {
    const input = await body(c, telegramSettings);
    if (!input.ok) return input.response;
    tg.settings = patchSettings(tg.settings, input.data);
    return c.json(tg.settings);
  });

  app.get("/faults", (c) => c.json({ faults: tg.faults }));

  app.post("/faults", async (c) => {
    const input = await body(c, faultsInput);
    if (!input.ok) return input.response;
    for (const fault of Array.isArray(input.data) ? input.data : [input.data]) tg.addFault(fault);
    return c.json({ faults: tg.faults }, 201);
  });

  app.delete("/faults", (c) => {
    tg.faults = [];
    return c.body(null, 204);
  });

  app.get("/calls", (c) => {
    const q = recordsQuery.safeParse(c.req.query());
    if (!q.success) return c.json({ error: "invalid query", issues: q.error.issues }, 400);
    const { token, chatId, method, since, pending } = q.data;
    const botId = token === undefined ? undefined : bot(token)?.user.id;
    if (token !== undefined && botId === undefined) return noBot(c);
    const withPending = pending === "true" || pending === "1";
    const calls = tg.calls.filter(
      (call) =>
        (withPending || !call.pending) &&
        (botId === undefined || call.botId === botId) &&
        (chatId === undefined || String(call.chatId) === chatId) &&
        (method === undefined || call.method === method) &&
        (since === undefined || call.seq > since),
    );
    return c.json({ calls });
  });

  app.delete("/calls", (c) => {
    tg.clearRecords();
    return c.body(null, 204);
  });

  app.get("/deliveries", (c) => {
    const q = recordsQuery.safeParse(c.req.query());
    if (!q.success) return c.json({ error: "invalid query", issues: q.error.issues }, 400);
    const { token, chatId, since } = q.data;
    const botId = token === undefined ? undefined : bot(token)?.user.id;
    if (token !== undefined && botId === undefined) return noBot(c);
    const deliveries = tg.deliveries.filter(
      (d) => (botId === undefined || d.botId === botId) && (chatId === undefined || String(d.chatId) === chatId) && (since === undefined || d.seq > since),
    );
    return c.json({ deliveries });
  });

  app.post("/inbound", async (c) => {
    const input = await body(c, inboundInput);
    if (!input.ok) return input.response;
    const found = bot(input.data.token);
    if (!found) return noBot(c);
    const built = buildUpdate(tg, found, input.data);
    if ("error" in built) return c.json({ error: built.error }, 400);
    const queued = enqueue(tg, found, built.chat.chat.id, built.update, input.data.duplicate);
    if (input.data.wait && found.webhook) await queued.done;
    const deliveries = tg.deliveries.filter((d) => d.botId === found.user.id && d.updateId === built.update.update_id);
    return c.json({ update: built.update, queued: queued.queued, deliveries }, input.data.wait ? 200 : 202);
  });

  app.post("/reset", (c) => {
    tg.reset();
    return c.body(null, 204);
  });

  return app;
}
