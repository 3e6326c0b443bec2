// The provider seam. A *channel* is what the recipient sees (WhatsApp, Telegram, a website's chat);
// a *provider* is how a message travels there (Evolution, the Bot API, the gateway's own socket);
// a *connection* is one instance's credentials and sender. The lanes, pacing, automation, events
// and the console speak only this interface; each provider lives in its own folder behind it, and
// nothing outside that folder knows its URLs, ids or error bodies.
//
// A provider never decides a message's fate: it says what its answer means (sent, refused for good,
// retry later, in doubt) and the lane machine (src/lanes/lane-machine.ts) decides.
import type { Channel } from "../contracts/channels.ts";
import type { MediaJson } from "../db/schema.ts";

export { type Channel, channels } from "../contracts/channels.ts";

/** One instance's way to its provider: base URL, secret (API key, bot token) and sender name. */
export type Connection = {
  channel: Channel;
  name: string;
  url: string;
  secret: string;
  /** For a provider that delivers inside the gateway (the web chat): its bindings and whose instance. */
  gateway?: { env: Env; tenantId: string; instanceId: string };
};

/** `messageId`: the gateway's id of the message; a provider that stores the message itself keys it
 *  by this, so a second attempt stores nothing new. */
export type Outgoing = { to: string; text?: string | null; media?: MediaJson | null; messageId?: string };

/** What a send told about the sender itself, for its governor: `rate-overlimit` pauses the whole
 *  sender (for the outcome's `afterMs` when it has one, else the instance's overlimitPauseMinutes);
 *  `invalid-number` counts towards a spike pause. */
export type SenderSignal = "rate-overlimit" | "invalid-number";

/** One attempt's answer. `movedTo`: the provider moved the chat to a new address (a Telegram group
 *  that became a supergroup); later messages to the old address go there. */
export type SendOutcome = (
  | { kind: "sent"; providerMessageId: string }
  /** Refused for good: sending again cannot help (blocked, no such chat, bad content). */
  | { kind: "refused"; reason: string; signal?: SenderSignal }
  /** Not sent, for sure. `afterMs`: the provider's own wait (never call this chat inside it);
   *  `countsAsAttempt` false: throttling, not a failure of this message. */
  | { kind: "retry"; reason: string; afterMs?: number; countsAsAttempt: boolean; signal?: SenderSignal }
  /** The request may have reached the provider and gone out (a timeout, a dropped answer). */
  | { kind: "in_doubt"; reason: string }
) & { movedTo?: string };

/** An attempt in doubt, as the lane asks about it. */
export type AttemptQuery = {
  to: string;
  content: Outgoing;
  /** The attempt's time window, epoch ms. */
  from: number;
  until: number;
  /** Provider ids already recorded for other messages of this contact: never matched again. */
  taken: (ids: string[]) => Promise<Set<string>>;
};

/** The answer to "did this attempt go out?". `unanswerable`: the question itself failed (`retry`: it
 *  may be asked again; false when the provider cannot know). `cannot_tell`: the provider holds a
 *  message that may be this attempt's but nothing proves it; asking again would not settle it. */
export type Reconciled =
  | { kind: "found"; providerMessageId: string }
  | { kind: "not_found" }
  | { kind: "unanswerable"; reason: string; retry: boolean }
  | { kind: "cannot_tell"; reason: string };

/** How a provider settles an attempt in doubt: ask it, or (it cannot be asked) a stated policy.
 *  `fail`: at most once, the message fails with `reason` and can be replayed on purpose. */
export type InDoubtPolicy =
  | { kind: "reconcile"; reconcile: (conn: Connection, attempt: AttemptQuery, timeoutMs: number) => Promise<Reconciled> }
  | { kind: "fail"; reason: string };

export type ReceiptKind = "delivered" | "read";

export type Capabilities = {
  /** Receipts the provider gives after `sent`; none: a message ends at `sent`. */
  receipts: readonly ReceiptKind[];
  /** A "typing…" indicator before a text. */
  typing: boolean;
  media: readonly MediaJson["type"][];
  /** Longest text (characters) and caption. */
  maxTextLength: number;
  maxCaptionLength: number;
  /** The shape of `to`, in words (errors and docs). */
  addressFormat: string;
  /** Sends per minute for the whole sender, and back-to-back sends (null: a second's worth), when
   *  the instance sets none. */
  defaultRatePerMinute: number;
  defaultBurst: number | null;
};

export type Addressed = { ok: true; to: string } | { ok: false; message: string };

export interface Provider {
  readonly channel: Channel;
  readonly capabilities: Capabilities;
  /** Validates and normalises `to`. */
  address(to: string): Addressed;
  /** Content this provider cannot carry (too long, a media kind it lacks), as a field and a reason. */
  refuseContent(msg: Outgoing): { path: string; message: string } | undefined;
  send(conn: Connection, msg: Outgoing, timeoutMs: number): Promise<SendOutcome>;
  readonly inDoubt: InDoubtPolicy;
  /** Shows "typing…" to `to` for about `durationMs`; best effort. */
  typing(conn: Connection, to: string, durationMs: number): Promise<{ kind: "ok" } | { kind: "failed"; error: string }>;
  /** The least time between two sends to one chat (0: none beyond the sender's pacing). */
  chatGapMs(to: string): number;
  /** Tells the contact its messages went to the automation's handler (the web chat's `processing`
   *  frame); best effort. */
  handling?(gateway: NonNullable<Connection["gateway"]>, contact: string, inboundIds: string[]): Promise<void>;
  /** Its webhooks, for a provider whose webhooks come in at /webhooks/<channel>/:token. (Evolution's
   *  have their own route and queue: src/routes/webhooks.ts.) */
  readonly inbound?: InboundAdapter;
}

export type InboundAdapter = {
  /** Whether the request carries the connection's webhook secret (constant time). */
  verify(headers: Headers, secret: string | null): Promise<boolean>;
  /** The inbound messages a verified body carries; undefined: not the provider's shape. */
  parse(body: unknown, receivedAt: number): InboundMessage[] | undefined;
};

/** An inbound message as every provider hands it in. `dedupeKey` makes a redelivery a no-op (null:
 *  the provider's message id alone does). */
export type InboundMessage = {
  dedupeKey: string | null;
  /** `message`, an `edit` of an earlier one, or a button press (`callback`). */
  kind: "message" | "edit" | "callback";
  /** Whom the conversation is with: a phone number, a group, a chat id. */
  contact: string;
  /** Where replies go (null: nowhere known). */
  replyTo: string | null;
  /** The provider's own address of the chat (a JID, a chat id). */
  chat: string;
  /** In groups: who wrote. */
  participant: string | null;
  providerMessageId: string;
  /** Sent from the connected account itself (another device of the number): kept, never answered. */
  fromMe?: boolean;
  /** The sender's display name. */
  pushName: string | null;
  messageType: string;
  text: string | null;
  media: Record<string, unknown> | null;
  isGroup: boolean;
  /** Epoch ms. */
  timestamp: number;
  /** What a message posted through the API carried besides its text; providers give none. */
  metadata?: Record<string, unknown> | null;
};
