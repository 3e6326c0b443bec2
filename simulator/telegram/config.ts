// Settings of the Telegram Bot API stand-in: rate limits, random faults, webhook delivery, and
// the scripted faults and seeds the control API takes, with their zod schemas.
import { z } from "zod";

export const telegramSettings = z.strictObject({
  /** Flood control, on by default with Telegram's published guidance. */
  limits: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** About one message a second to one chat, with a short burst. */
      perChatPerSecond: z.number().positive().optional(),
      perChatBurst: z.number().int().min(1).optional(),
      /** About 20 messages a minute to one group (groups, supergroups, channels). */
      perGroupPerMinute: z.number().positive().optional(),
      /** About 30 messages a second across chats for one bot. */
      perBotPerSecond: z.number().positive().optional(),
    })
    .optional(),
  /** Random faults on send methods, drawn from the chaos seed (`/_sim/chaos`) when one is set. */
  faults: z
    .strictObject({
      /** Share answered 500 or 502 without sending. */
      serverErrorRate: z.number().min(0).max(1).optional(),
      /** Share sent, then answered 502 (the caller cannot know it went out). */
      sentThenErrorRate: z.number().min(0).max(1).optional(),
      /** Share sent, then answered only after `hangMs` (past the caller's timeout). */
      hangRate: z.number().min(0).max(1).optional(),
      hangMs: z.number().int().min(0).optional(),
      /** Share of webhook updates posted twice. */
      duplicateDeliveryRate: z.number().min(0).max(1).optional(),
    })
    .optional(),
  webhook: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(50).optional(),
      /** First backoff after a failed delivery, doubling, capped at 30× this. */
      retryDelayMs: z.number().int().min(0).optional(),
      timeoutMs: z.number().int().min(1).optional(),
    })
    .optional(),
  /** Any numeric chat id counts as an existing chat (for load runs); off: only chats the bot met. */
  anyChat: z.boolean().optional(),
});
export type TelegramSettingsPatch = z.infer<typeof telegramSettings>;

type Filled<T> = { [K in keyof T]-?: NonNullable<T[K]> extends object ? Filled<NonNullable<T[K]>> : NonNullable<T[K]> };
export type TelegramSettings = Filled<TelegramSettingsPatch>;

export const defaultTelegramSettings = (): TelegramSettings => ({
  limits: { enabled: true, perChatPerSecond: 1, perChatBurst: 3, perGroupPerMinute: 20, perBotPerSecond: 30 },
  faults: { serverErrorRate: 0, sentThenErrorRate: 0, hangRate: 0, hangMs: 35_000, duplicateDeliveryRate: 0 },
  webhook: { maxAttempts: 8, retryDelayMs: 250, timeoutMs: 10_000 },
  anyChat: false,
});

export function patchSettings(current: TelegramSettings, patch: TelegramSettingsPatch): TelegramSettings {
  const defined = <T extends object>(o: T | undefined) => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
  return {
    limits: { ...current.limits, ...defined(patch.limits) },
    faults: { ...current.faults, ...defined(patch.faults) },
    webhook: { ...current.webhook, ...defined(patch.webhook) },
    anyChat: patch.anyChat ?? current.anyChat,
  };
}

// A bot token is `<bot id>:<secret>`.
export const botToken = z.string().regex(/^\d{1,15}:[A-Za-z0-9_-]{1,100}$/, "a bot token is <bot id>:<secret>");

export const botSeed = z.strictObject({
  token: botToken,
  username: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{3,31}$/),
  first_name: z.string().min(1).max(64),
  can_join_groups: z.boolean().optional(),
  can_read_all_group_messages: z.boolean().optional(),
});
export type TelegramBotSeed = z.infer<typeof botSeed>;

/** The bot `npm start` wires to the demo instance. */
export const demoTelegramBot: TelegramBotSeed = {
  token: "424242:demo-telegram-secret-0000000000",
  username: "mensageiro_demo_bot",
  first_name: "mensageiro demo",
};

export const sendMethods = ["sendMessage", "sendPhoto", "sendVideo", "sendAudio", "sendDocument", "sendVoice"] as const;
export const methods = [...sendMethods, "getMe", "setWebhook", "deleteWebhook", "getWebhookInfo", "sendChatAction"] as const;
export type Method = (typeof methods)[number];

const chatId = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^-?\d+$/)
    .transform(Number),
  z.string().regex(/^@\w{4,32}$/),
]);

export const faultInput = z.strictObject({
  token: z.string().optional(),
  chatId: chatId.optional(),
  method: z.enum(methods).optional(),
  /** HTTP status (= error_code); 0 drops the connection. A 2xx status with `delayMs` is a late answer. */
  status: z
    .number()
    .int()
    .refine((s) => s === 0 || (s >= 200 && s <= 599), "0 or an HTTP status"),
  description: z.string().optional(),
  parameters: z.strictObject({ retry_after: z.number().int().min(1).optional(), migrate_to_chat_id: z.number().int().optional() }).optional(),
  /** The send goes out before the error answer (a 5xx after the message was delivered). */
  sent: z.boolean().default(false),
  /** Answer this much later (a hang past the caller's timeout). */
  delayMs: z.number().int().min(0).max(300_000).optional(),
  times: z.number().int().min(1).default(1),
});
export type TelegramFault = z.infer<typeof faultInput>;
export const faultsInput = z.union([faultInput, z.array(faultInput)]);

export const chatTypes = ["private", "group", "supergroup", "channel"] as const;
export type ChatType = (typeof chatTypes)[number];

export const chatInput = z.strictObject({
  token: z.string(),
  chatId: chatId,
  type: z.enum(chatTypes).optional(),
  title: z.string().optional(),
  username: z.string().optional(),
  first_name: z.string().optional(),
  last_name: z.string().optional(),
  /** blocked: the user blocked the bot; never-started: the user never wrote to it. */
  state: z.enum(["active", "blocked", "never-started"]).optional(),
  /** The group was upgraded to this supergroup id (-100…), which is created and works. */
  migrateTo: z.number().int().optional(),
});
export type ChatInput = z.infer<typeof chatInput>;

export { chatId as chatIdInput };
