// What the Telegram stand-in remembers: bots (with their webhook and update queue), the chats
// each bot knows, files, the calls received and the webhook deliveries made. It lives beside the
// Evolution simulator's state and borrows its timers, so one stop() ends both.
import type { SimulatorState } from "../state.ts";
import { defaultTelegramSettings, type ChatType, type TelegramBotSeed, type TelegramFault, type TelegramSettings } from "./config.ts";
import { type BotUser, type Chat, fileFields, type Message, type StoredFile, type Update } from "./shapes.ts";

/** A flood-control token bucket (limits.ts): tokens left at time `at`. */
export type Bucket = { tokens: number; at: number };

export type Webhook = { url: string; secretToken?: string; allowedUpdates: string[]; maxConnections: number; setAt: number };

export type Bot = {
  token: string;
  user: BotUser;
  webhook?: Webhook;
  lastErrorDate?: number;
  lastErrorMessage?: string;
  updateSeq: number;
  /** Updates not yet delivered, per chat, oldest first. */
  queues: Map<number, Update[]>;
  /** Chats whose queue a delivery loop is draining. */
  draining: Set<number>;
  /** Bot-wide flood control: no call before this (ms). */
  retryUntil: number;
  bucket?: Bucket;
};

export type ChatState = "active" | "blocked" | "never-started";

export type KnownChat = {
  chat: Chat;
  state: ChatState;
  migratedTo?: number;
  lastMessageId: number;
  retryUntil: number;
  buckets: { chat?: Bucket; group?: Bucket };
  /** Recent messages of this chat by id (for edits and callback queries). */
  messages: Map<number, Message>;
};

export type TelegramCall = {
  seq: number;
  at: number;
  botId: number;
  method: string;
  /** The chat_id as sent (number or @username); absent when the method has none. */
  chatId?: number | string;
  params: Record<string, unknown>;
  /** HTTP status (= error_code); 0 when the connection was dropped, or while in flight. */
  status: number;
  description?: string;
  retryAfter?: number;
  /** Made while a retry_after answered earlier to that chat or bot was still running. */
  insideRetryAfter: boolean;
  /** The message went out (also when the answer was an error or came late). */
  sent: boolean;
  messageId?: number;
  pending?: boolean;
  answeredAt?: number;
};

export type Delivery = {
  seq: number;
  at: number;
  botId: number;
  updateId: number;
  chatId: number;
  url: string;
  /** Last HTTP status from the receiver; 0 for a network error or before the first answer. */
  status: number;
  attempts: number;
  outcome: "pending" | "delivered" | "failed";
  /** A second post of an update already delivered (the duplicate fault). */
  duplicate: boolean;
  /** The X-Telegram-Bot-Api-Secret-Token header sent (the simulator is a test tool). */
  secretToken?: string;
  deliveredAt?: number;
  error?: string;
  body: Update;
};

type PendingFault = TelegramFault & { remaining: number };

const keptMessagesPerChat = 200;

export class TelegramState {
  settings: TelegramSettings = defaultTelegramSettings();
  readonly bots = new Map<number, Bot>();
  readonly chats = new Map<number, Map<number, KnownChat>>();
  readonly files = new Map<string, StoredFile>();
  readonly calls: TelegramCall[] = [];
  readonly deliveries: Delivery[] = [];
  faults: PendingFault[] = [];
  private callSeq = 0;
  private deliverySeq = 0;

  constructor(
    readonly sim: SimulatorState,
    private readonly seeds: TelegramBotSeed[] = [],
  ) {
    for (const seed of seeds) this.addBot(seed);
  }

  addBot(seed: TelegramBotSeed): Bot {
    const id = Number(seed.token.split(":")[0]);
    const existing = this.bots.get(id);
    const bot: Bot = {
      token: seed.token,
      user: {
        id,
        is_bot: true,
        first_name: seed.first_name,
        username: seed.username,
        can_join_groups: seed.can_join_groups ?? true,
        can_read_all_group_messages: seed.can_read_all_group_messages ?? false,
        supports_inline_queries: false,
        can_connect_to_business: false,
        has_main_web_app: false,
      },
      updateSeq: existing?.updateSeq ?? 100_000_000 + Math.floor(Math.random() * 800_000_000),
      queues: existing?.queues ?? new Map(),
      draining: existing?.draining ?? new Set(),
      retryUntil: 0,
      ...(existing?.webhook ? { webhook: existing.webhook } : {}),
    };
    this.bots.set(id, bot);
    return bot;
  }

  botByToken(token: string): Bot | undefined {
    const bot = this.bots.get(Number(token.split(":")[0]));
    return bot && bot.token === token ? bot : undefined;
  }

  chatsOf(bot: Bot): Map<number, KnownChat> {
    let chats = this.chats.get(bot.user.id);
    if (!chats) {
      chats = new Map();
      this.chats.set(bot.user.id, chats);
    }
    return chats;
  }

  /** A chat by id or @username; with `anyChat` a numeric id the bot never met is created. */
  findChat(bot: Bot, ref: number | string): KnownChat | undefined {
    const chats = this.chatsOf(bot);
    if (typeof ref === "string") {
      const name = ref.slice(1).toLowerCase();
      return [...chats.values()].find((c) => c.chat.username?.toLowerCase() === name);
    }
    return chats.get(ref) ?? (this.settings.anyChat ? this.upsertChat(bot, ref, {}) : undefined);
  }

  upsertChat(
    bot: Bot,
    id: number,
    fields: { type?: ChatType; title?: string; username?: string; first_name?: string; last_name?: string; state?: ChatState },
  ): KnownChat {
    const chats = this.chatsOf(bot);
    const existing = chats.get(id);
    const type = fields.type ?? existing?.chat.type ?? chatTypeOf(id);
    const names = { ...existing?.chat, ...defined(fields) };
    const chat: Chat =
      type === "private"
        ? { id, ...(names.first_name ? {} : { first_name: `User ${id}` }), ...pick(names, ["first_name", "last_name", "username"]), type }
        : { id, title: names.title ?? `${type === "channel" ? "Channel" : "Group"} ${id}`, ...pick(names, ["username"]), type };
    const known: KnownChat = existing ?? { chat, state: "active", lastMessageId: 0, retryUntil: 0, buckets: {}, messages: new Map() };
    known.chat = chat;
    if (fields.state) known.state = fields.state;
    chats.set(id, known);
    return known;
  }

  /** Message ids count up per chat, shared by the bot's and the users' messages. */
  nextMessageId(chat: KnownChat): number {
    chat.lastMessageId += 1;
    return chat.lastMessageId;
  }

  keepMessage(chat: KnownChat, message: Message): void {
    chat.messages.set(message.message_id, message);
    if (chat.messages.size > keptMessagesPerChat) {
      const oldest = chat.messages.keys().next().value;
      if (oldest !== undefined) chat.messages.delete(oldest);
    }
  }

  /** A photo's smaller sizes are files too: a client may send any of them back by file_id. */
  rememberFile(file: StoredFile): void {
    this.files.set(file.file_id, file);
    if (file.kind !== "photo") return;
    for (const size of fileFields(file).photo ?? []) if (!this.files.has(size.file_id)) this.files.set(size.file_id, { kind: "photo", file_size: 0, ...size });
  }

  beginCall(call: Omit<TelegramCall, "seq" | "at" | "status" | "pending" | "insideRetryAfter" | "sent">): TelegramCall {
    const record: TelegramCall = { seq: ++this.callSeq, at: Date.now(), status: 0, pending: true, insideRetryAfter: false, sent: false, ...call };
    this.calls.push(record);
    return record;
  }

  recordDelivery(delivery: Omit<Delivery, "seq" | "at" | "status" | "attempts" | "outcome">): Delivery {
    const record: Delivery = { seq: ++this.deliverySeq, at: Date.now(), status: 0, attempts: 0, outcome: "pending", ...delivery };
    this.deliveries.push(record);
    return record;
  }

  addFault(fault: TelegramFault): void {
    this.faults.push({ ...fault, remaining: fault.times });
  }

  /** Takes one use of the first queued fault matching this call (FIFO). */
  takeFault(call: { token: string; method: string; chatId?: number | string }): TelegramFault | undefined {
    const index = this.faults.findIndex(
      (f) =>
        (f.token === undefined || f.token === call.token) &&
        (f.method === undefined || f.method === call.method) &&
        (f.chatId === undefined || f.chatId === call.chatId),
    );
    const fault = this.faults[index];
    if (!fault) return undefined;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.faults.splice(index, 1);
    return fault;
  }

  /** Clears calls, deliveries, faults and flood-control windows; sequence numbers keep counting. */
  clearRecords(): void {
    this.calls.length = 0;
    this.deliveries.length = 0;
    this.faults = [];
    for (const bot of this.bots.values()) {
      bot.retryUntil = 0;
      delete bot.bucket;
    }
    for (const chats of this.chats.values())
      for (const chat of chats.values()) {
        chat.retryUntil = 0;
        chat.buckets = {};
      }
  }

  /** Back to the seeded bots and default settings, nothing else remembered. */
  reset(): void {
    this.clearRecords();
    this.bots.clear();
    this.chats.clear();
    this.files.clear();
    this.settings = defaultTelegramSettings();
    for (const seed of this.seeds) this.addBot(seed);
  }
}

/** Positive ids are users; -100… supergroups (or channels); other negative ids basic groups. */
export function chatTypeOf(id: number): ChatType {
  if (id > 0) return "private";
  return id <= -1_000_000_000_000 ? "supergroup" : "group";
}

const defined = <T extends object>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
const pick = <T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> =>
  defined(Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>);
