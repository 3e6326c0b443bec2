// /v1/instances: register instances: an Evolution instance (WhatsApp) or a Telegram bot. The
// Evolution API key and the bot token are stored, never echoed.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { instances } from "../db/queries/index.ts";
import { config } from "../config.ts";
import { runBatch } from "../db/batch.ts";
import { ApiError } from "../errors.ts";
import { headerSafe } from "../contracts/credentials.ts";
import { MAX_URL_LENGTH } from "../contracts/messages.ts";
import { connectInstance } from "../evolution/client.ts";
import { refusePrivateUrl } from "../http/outbound-url.ts";
import { newId, randomToken } from "../ids.ts";
import { connectionStatements } from "../webhooks/apply.ts";
import { DEFAULT_RATE_PER_MINUTE, defaultPacing, type PacingColumns, pacingColumns, pacingInput, pacingOf, pacingView } from "../lanes/pacing/settings.ts";
import { documented } from "../openapi/describe.ts";
import { connectBot, disconnectBot, telegramAnswer, telegramInput, webhookOf } from "../channels/telegram.ts";
import { DEFAULT_API_URL } from "../providers/telegram/api.ts";
import { type Channel, channels } from "../providers/provider.ts";
import { chatSocketUrl } from "../providers/web/settings.ts";
import { channelOf, providerFor } from "../providers/registry.ts";
import { webAnswer, webInput } from "../providers/web/settings.ts";
import { iso } from "../time.ts";

export { DEFAULT_RATE_PER_MINUTE };
const instanceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "Letters, digits, '.', '_' and '-', at most 100.");

const putInstance = z
  .strictObject({
    channel: z
      .enum(channels)
      .optional()
      .describe("whatsapp (the default: an Evolution instance), telegram (a bot) or web (a website's chat). Fixed once registered."),
    evolutionUrl: z
      .url({ protocol: /^https?$/, message: "Must be the http(s) base URL of the Evolution API." })
      .max(MAX_URL_LENGTH)
      .optional(),
    evolutionApiKey: headerSafe(z.string().min(1).max(500)).optional(),
    telegram: telegramInput.optional().describe("The bot, for channel telegram."),
    web: webInput.optional().describe("The website's chat, for channel web."),
    ratePerMinute: z.int().min(1).max(60000).optional(),
    pacing: pacingInput.optional(),
  })
  .superRefine((b, ctx) => {
    if ((b.channel ?? "whatsapp") === "whatsapp") {
      if (b.evolutionUrl === undefined) ctx.addIssue({ code: "custom", path: ["evolutionUrl"], message: "Required for a WhatsApp instance." });
      if (b.telegram !== undefined) ctx.addIssue({ code: "custom", path: ["telegram"], message: 'Only for channel "telegram".' });
    } else {
      if (b.channel !== "telegram" && b.telegram !== undefined) ctx.addIssue({ code: "custom", path: ["telegram"], message: 'Only for channel "telegram".' });
      for (const field of ["evolutionUrl", "evolutionApiKey"] as const)
        if (b[field] !== undefined) ctx.addIssue({ code: "custom", path: [field], message: "Only for a WhatsApp instance." });
    }
    if (b.channel !== "web" && b.web !== undefined) ctx.addIssue({ code: "custom", path: ["web"], message: 'Only for channel "web".' });
  });

type Row = instances.InstanceRow;

const tags = ["Instances"];
const isoTime = z.iso.datetime({ offset: true });
const window = z.object({ min: z.int(), max: z.int() });
const pacingAnswer = z
  .object({
    ratePerMinute: z.int(),
    burst: z.int().describe("Sends that may go back to back (GCRA tolerance)."),
    gapMs: window.describe("A random gap in [min, max] between two sends of the number (0: none)."),
    dailyCap: z.int().nullable().describe("Sends per calendar day in timeZone; past it, messages wait for the next day (null: no cap)."),
    timeZone: z.string(),
    warmup: z.object({ days: z.int(), startPerDay: z.int(), since: isoTime }).nullable().describe("The cap grows from startPerDay to dailyCap over days."),
    quietHours: z.object({ start: z.string(), end: z.string(), timeZone: z.string() }).nullable().describe("Nothing is sent in this window."),
    typing: z.boolean().describe("Presence 'composing' before each text, for a time scaled to its length."),
    invalidNumberSpike: z
      .object({ count: z.int(), windowMinutes: z.int() })
      .nullable()
      .describe("This many numbers not on WhatsApp in the window pause the number."),
    overlimitPauseMinutes: z.int().describe("How long a rate-overlimit answer pauses the number (a connection open ends it sooner)."),
  })
  .meta({ id: "Pacing" });
const sendingAnswer = z.object({
  paused: z.boolean(),
  reason: z.enum(["rate-overlimit", "connection-closed", "invalid-number-spike"]).optional(),
  since: isoTime.optional(),
  until: isoTime.optional().describe("When the pause ends by itself (absent: on connection open or POST /resume)."),
});
const instanceAnswer = z
  .object({
    name: z.string(),
    channel: z.enum(channels).describe("What recipients see: whatsapp, telegram or web."),
    evolutionUrl: z.string().optional().describe("WhatsApp instances."),
    telegram: telegramAnswer.optional().describe("Telegram instances: the bot. Telegram gives bots no delivery or read receipts: messages end at sent."),
    web: webAnswer.optional().describe("Web chat instances: who may open a visitor's socket."),
    ratePerMinute: z.int(),
    state: z.string().describe("Evolution's connection state, from connection.update webhooks (unknown until the first); open for a connected bot."),
    stateChangedAt: isoTime.optional(),
    pacing: pacingAnswer.describe("How sends on this instance are paced."),
    sending: sendingAnswer.describe("Whether the governor paused sending, and why."),
    webhookUrl: z
      .string()
      .describe(
        "WhatsApp: configure this URL as the instance's webhook in Evolution. Telegram: set by the gateway itself. Web: the visitors' socket (add ?token= from POST /v1/instances/:name/visitors).",
      ),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .meta({ id: "Instance" });
const instanceParams = z.object({ name: instanceName });

export function webhookUrl(env: Env, requestUrl: string, token: string, channel: Channel = "whatsapp"): string {
  const base = (env.PUBLIC_URL || new URL(requestUrl).origin).replace(/\/+$/, "");
  // The web chat has no webhook: its visitors come in through their socket.
  if (channel === "web") return chatSocketUrl(base);
  return `${base}/webhooks/${channel === "telegram" ? "telegram" : "evolution"}/${token}`;
}

const view = (row: Row, env: Env, requestUrl: string) => ({
  name: row.name,
  channel: channelOf(row.channel),
  ...(channelOf(row.channel) === "telegram"
    ? { telegram: { botUsername: row.telegramBotUsername, apiUrl: row.telegramApiUrl ?? DEFAULT_API_URL } }
    : channelOf(row.channel) === "web"
      ? { web: { allowedOrigins: row.webAllowedOrigins ?? null } }
      : { evolutionUrl: row.evolutionUrl }),
  ratePerMinute: row.ratePerMinute,
  state: row.state,
  stateChangedAt: iso(row.stateChangedAt),
  pacing: pacingView(pacingOf(row)),
  // Sending paused by the governor (rate-overlimit, closed connection, invalid-number spike).
  sending: row.pausedReason ? { paused: true, reason: row.pausedReason, since: iso(row.pausedAt), until: iso(row.pausedUntil) } : { paused: false },
  webhookUrl: webhookUrl(env, requestUrl, row.webhookToken, channelOf(row.channel)),
  createdAt: new Date(row.createdAt).toISOString(),
  updatedAt: new Date(row.updatedAt).toISOString(),
});

async function findOwn(c: { var: AppEnv["Variables"] }, name: string): Promise<Row | undefined> {
  return instances.ownedByName(c.var.db, c.var.tenant.id, name);
}

// A stored code younger than this is shown as is; Evolution refreshes it about every 20 s and says so
// through qrcode.updated. Older (or none): ask Evolution, which also starts pairing.
const QR_FRESH_MS = 15_000;
// How long the route waits for Evolution's code: a person is looking at the screen, and the
// console asks again on its own.
const QR_WAIT_MS = 5_000;
const QR_RETRY_AFTER_S = 5;

export const instanceRoutes = new Hono<AppEnv>()
  .put(
    "/:name",
    documented({
      summary: "Register or update an instance (an Evolution instance, or a Telegram bot)",
      description:
        "WhatsApp: the Evolution API key is stored and never returned; changing evolutionUrl requires evolutionApiKey again. " +
        'Telegram ({"channel":"telegram","telegram":{"botToken"}}): the token is checked with getMe (422 with Telegram\'s description when refused) and ' +
        "the gateway sets the bot's webhook to itself with a secret; the token is stored and never returned.",
      tags,
      caller: "apiKey",
      params: instanceParams,
      body: putInstance,
      responses: {
        200: { description: "Updated.", schema: instanceAnswer },
        201: { description: "Registered.", schema: instanceAnswer },
      },
      errors: ["conflict", "unprocessable", "unavailable"],
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      const input = c.req.valid("json");
      const channel = input.channel ?? "whatsapp";
      if (input.evolutionUrl) refusePrivateUrl(c.env, input.evolutionUrl, "evolutionUrl");
      if (input.telegram?.apiUrl) refusePrivateUrl(c.env, input.telegram.apiUrl, "telegram.apiUrl");
      if (input.ratePerMinute !== undefined && input.pacing?.ratePerMinute !== undefined && input.ratePerMinute !== input.pacing.ratePerMinute) {
        throw new ApiError("invalid_request", "The request is invalid.", [
          { path: "pacing.ratePerMinute", message: "Differs from ratePerMinute; give one of them." },
        ]);
      }
      const existing = await findOwn(c, name);
      if (existing && channelOf(existing.channel) !== channel) {
        throw new ApiError("unprocessable", `Instance ${name} is on ${channelOf(existing.channel)}; its channel cannot change.`, [
          { path: "channel", message: "Differs from the registered channel." },
        ]);
      }
      const now = Date.now();
      const capabilities = providerFor(channel).capabilities;
      const stored: PacingColumns = existing ?? { ...columnsOfDefaults(), ratePerMinute: capabilities.defaultRatePerMinute, burst: capabilities.defaultBurst };
      const pacing = pacingColumns({ ...input.pacing, ratePerMinute: input.pacing?.ratePerMinute ?? input.ratePerMinute }, stored, now);
      if (pacing.warmupDays !== null && pacing.dailyCap === null) {
        throw new ApiError("invalid_request", "The request is invalid.", [
          { path: "pacing.warmup", message: "Warm-up grows the daily cap: it needs dailyCap." },
        ]);
      }
      // Every channel stores the same way: an existing row is updated (its governor re-reads the
      // pacing), a new one inserted (201). `created`: columns only a new row takes.
      type Columns = Partial<instances.NewInstance>;
      const save = async (changes: Columns, created: Columns = {}) => {
        if (existing) {
          const row = await instances.change(c.var.db, existing.id, { ...changes, ...pacing, updatedAt: now });
          await governor(c.env, existing.id).refresh();
          return c.json(view(row ?? existing, c.env, c.req.url), 200);
        }
        const row = await instances.register(c.var.db, {
          id: newId("ins"),
          tenantId: c.var.tenant.id,
          name,
          channel,
          evolutionUrl: "",
          evolutionApiKey: "",
          webhookToken: randomToken(24),
          createdAt: now,
          ...created,
          ...changes,
          ...pacing,
          updatedAt: now,
        });
        if (!row) throw new ApiError("conflict", `Instance ${name} was registered concurrently; retry.`);
        return c.json(view(row, c.env, c.req.url), 201);
      };
      if (channel === "web") {
        // Nothing to connect: the gateway itself carries the chat. Origins replace the stored ones when given.
        const origins = input.web?.allowedOrigins !== undefined ? { webAllowedOrigins: input.web.allowedOrigins } : {};
        return save(origins, { state: "open", stateChangedAt: now });
      }
      if (channel === "telegram") {
        const given = input.telegram;
        const apiUrl = given?.apiUrl ?? existing?.telegramApiUrl ?? DEFAULT_API_URL;
        // The stored token is a secret of its server: never hand it to another one.
        if (existing && !given?.botToken && apiUrl !== (existing.telegramApiUrl ?? DEFAULT_API_URL)) {
          throw new ApiError("invalid_request", "The request is invalid.", [{ path: "telegram.botToken", message: "Required again when apiUrl changes." }]);
        }
        const token = given?.botToken ?? existing?.telegramBotToken;
        if (!token)
          throw new ApiError("invalid_request", "The request is invalid.", [{ path: "telegram.botToken", message: "Required when registering a bot." }]);
        const webhookToken = existing?.webhookToken ?? randomToken(24);
        // A new token or server: check it and point its webhook here (a pacing-only update calls nobody).
        const bot =
          given?.botToken || given?.apiUrl || !existing
            ? await connectBot({ botToken: token, apiUrl }, webhookUrl(c.env, c.req.url, webhookToken, "telegram"), config(c.env).EVOLUTION_TIMEOUT_MS)
            : undefined;
        const connection = bot
          ? {
              telegramBotToken: bot.botToken,
              telegramApiUrl: bot.apiUrl,
              telegramWebhookSecret: bot.webhookSecret,
              telegramBotUsername: bot.botUsername,
              state: "open",
              stateChangedAt: now,
            }
          : {};
        return save(connection, { webhookToken });
      }
      // WhatsApp: the schema made evolutionUrl present.
      const evolutionUrl = input.evolutionUrl ?? "";
      // The stored key is a secret of the old URL: never hand it to a new one.
      if (existing && evolutionUrl !== existing.evolutionUrl && !input.evolutionApiKey) {
        throw new ApiError("invalid_request", "The request is invalid.", [{ path: "evolutionApiKey", message: "Required again when evolutionUrl changes." }]);
      }
      const evolutionApiKey = input.evolutionApiKey ?? existing?.evolutionApiKey;
      if (!evolutionApiKey) {
        throw new ApiError("invalid_request", "The request is invalid.", [{ path: "evolutionApiKey", message: "Required when registering an instance." }]);
      }
      return save({ evolutionUrl, evolutionApiKey });
    },
  )
  .get(
    "/",
    documented({
      summary: "List this tenant's instances",
      tags,
      caller: "apiKey",
      responses: { 200: { description: "All of them, by name.", schema: z.object({ data: z.array(instanceAnswer) }) } },
    }),
    async (c) => {
      const rows = await instances.listOwned(c.var.db, c.var.tenant.id);
      return c.json({ data: rows.map((r) => view(r, c.env, c.req.url)) });
    },
  )
  .get(
    "/:name",
    documented({
      summary: "One instance, with today's sends against its cap",
      tags,
      caller: "apiKey",
      responses: {
        200: {
          description: "The instance.",
          schema: instanceAnswer.extend({
            today: z
              .object({ day: z.string(), sent: z.int(), cap: z.int().nullable(), waiting: z.int() })
              .describe("Today's sends (in the pacing time zone) against the warmed-up cap, and the requests waiting."),
          }),
        },
      },
      errors: ["not_found"],
    }),
    async (c) => {
      const row = await findOwn(c, c.req.param("name"));
      if (!row) throw new ApiError("not_found", `No instance ${c.req.param("name")}.`);
      // Today's sends against the (warmed-up) cap, as the governor counts them.
      const { today } = await governor(c.env, row.id).status(row.id);
      const shown = view(row, c.env, c.req.url);
      // A bot's webhook as Telegram sees it: pending updates, the last delivery error.
      const apiUrl = row.telegramApiUrl ?? DEFAULT_API_URL;
      const telegram =
        "telegram" in shown && row.telegramBotToken
          ? { telegram: { ...shown.telegram, ...(await webhookOf({ botToken: row.telegramBotToken, apiUrl }, config(c.env).EVOLUTION_TIMEOUT_MS)) } }
          : {};
      return c.json({ ...shown, ...telegram, today: { day: today.day, sent: today.sent, cap: today.cap, waiting: today.waiting } });
    },
  )
  // GET /v1/instances/:name/qr — the pairing QR code of a number that is not connected, for the console.
  .get(
    "/:name/qr",
    documented({
      summary: "The pairing QR code of a number that is not connected",
      tags,
      caller: "apiKey",
      responses: { 200: { description: "The state, and the QR code while not open.", schema: z.looseObject({ name: z.string(), state: z.string() }) } },
      errors: ["not_found", "unprocessable", "unavailable"],
    }),
    async (c) => {
      const row = await findOwn(c, c.req.param("name"));
      if (!row) throw new ApiError("not_found", `No instance ${c.req.param("name")}.`);
      if (channelOf(row.channel) !== "whatsapp") throw new ApiError("unprocessable", "Only WhatsApp instances pair with a QR code.");
      if (row.state === "open") return c.json({ name: row.name, state: "open" });
      const now = Date.now();
      if (row.qrCode && row.qrUpdatedAt && now - row.qrUpdatedAt < QR_FRESH_MS) {
        return c.json({ name: row.name, state: row.state, qr: { base64: row.qrCode, count: row.qrCount, updatedAt: new Date(row.qrUpdatedAt).toISOString() } });
      }
      const wait = Math.min(QR_WAIT_MS, config(c.env).EVOLUTION_TIMEOUT_MS);
      const answer = await connectInstance({ name: row.name, url: row.evolutionUrl, apiKey: row.evolutionApiKey }, wait);
      // Evolution does not know this instance, refuses its key or its name: a configuration to fix, not an outage.
      if (answer.kind === "refused")
        throw new ApiError("unprocessable", `Evolution refused the instance: check its name and evolutionApiKey there. ${answer.error}`);
      if (answer.kind === "error")
        throw new ApiError("unavailable", `Could not get a QR code from Evolution; try again in a few seconds. ${answer.error}`, [], {
          "retry-after": String(QR_RETRY_AFTER_S),
        });
      if (answer.kind === "open") {
        // The connection.update webhook may have been lost: record what Evolution says now, and let the
        // governor resume a number it paused for the closed connection.
        await runBatch(
          c.var.db,
          connectionStatements({ tenantId: row.tenantId, instanceId: row.id, instanceName: row.name, state: "open", statusReason: null, at: now }),
        );
        await governor(c.env, row.id).report({ kind: "connection", instanceId: row.id, state: "open", now });
        return c.json({ name: row.name, state: "open" });
      }
      await instances.storeQrCode(c.var.db, row.id, { base64: answer.base64, count: answer.count, at: now });
      return c.json({ name: row.name, state: row.state, qr: { base64: answer.base64, count: answer.count, updatedAt: new Date(now).toISOString() } });
    },
  )
  // Sending paused by the governor resumes here (an invalid-number spike resumes only here).
  .post(
    "/:name/resume",
    documented({
      summary: "Resume sending paused by the governor",
      tags,
      caller: "apiKey",
      responses: { 200: { description: "The instance now.", schema: instanceAnswer } },
      errors: ["not_found"],
    }),
    async (c) => {
      const row = await findOwn(c, c.req.param("name"));
      if (!row) throw new ApiError("not_found", `No instance ${c.req.param("name")}.`);
      await governor(c.env, row.id).resume(row.id, "operator");
      const fresh = await instances.byId(c.var.db, row.id);
      return c.json(view(fresh ?? row, c.env, c.req.url));
    },
  )
  // Removing an instance: a bot's webhook is deleted at Telegram first, so updates stop coming.
  .delete(
    "/:name",
    documented({
      summary: "Remove an instance",
      description:
        "A Telegram bot's webhook is removed (deleteWebhook). A web chat's visitor tokens stop opening sockets; its open sockets close (instance_removed) when the visitor next writes, or when their token expires. Messages not yet sent on the instance fail.",
      tags,
      caller: "apiKey",
      responses: { 204: { description: "Removed." } },
      errors: ["not_found", "unavailable"],
    }),
    async (c) => {
      const row = await findOwn(c, c.req.param("name"));
      if (!row) throw new ApiError("not_found", `No instance ${c.req.param("name")}.`);
      if (channelOf(row.channel) === "telegram" && row.telegramBotToken) {
        await disconnectBot({ botToken: row.telegramBotToken, apiUrl: row.telegramApiUrl ?? DEFAULT_API_URL }, config(c.env).EVOLUTION_TIMEOUT_MS);
      }
      await instances.remove(c.var.db, row.id);
      return c.body(null, 204);
    },
  );

const governor = (env: Env, instanceId: string) => env.GOVERNORS.get(env.GOVERNORS.idFromName(instanceId));

function columnsOfDefaults(): Omit<PacingColumns, "ratePerMinute"> {
  const d = defaultPacing();
  return {
    burst: null,
    gapMinMs: d.gapMs.min,
    gapMaxMs: d.gapMs.max,
    dailyCap: d.dailyCap,
    timeZone: d.timeZone,
    warmupDays: null,
    warmupStartPerDay: null,
    warmupSince: null,
    quietStart: null,
    quietEnd: null,
    quietTimeZone: null,
    typing: d.typing,
    spikeCount: d.invalidNumberSpike?.count ?? null,
    spikeWindowMinutes: d.invalidNumberSpike?.windowMinutes ?? null,
    overlimitPauseMinutes: d.overlimitPauseMinutes,
  };
}
