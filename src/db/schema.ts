// D1 schema: the queryable record of the gateway. Times are epoch milliseconds.
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { callbackIsOpen, messageIsActive } from "./queries/statuses.ts";

export const tenants = sqliteTable("tenants", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  // Default attempts for messages that do not say; configurable per tenant and per message.
  maxAttempts: integer("max_attempts").notNull().default(3),
  callbackUrl: text("callback_url"),
  // Standard Webhooks secret (`whsec_…`) for callback signatures; shown at creation and at rotation
  // only. A tenant created before Standard Webhooks has a plain token here: see src/callbacks/keys.ts.
  callbackSecret: text("callback_secret").notNull(),
  // The secret before the last rotation, still signing (alongside) until callbackSecretPreviousUntil.
  callbackSecretPrevious: text("callback_secret_previous"),
  callbackSecretPreviousUntil: integer("callback_secret_previous_until"),
  // API requests per minute, all keys together; null: the DEFAULT_RATE_LIMIT_PER_MINUTE var.
  rateLimitPerMinute: integer("rate_limit_per_minute"),
  createdAt: integer("created_at").notNull(),
});

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    // SHA-256 hex of the key; the key itself is shown once and never stored.
    keyHash: text("key_hash").notNull(),
    prefix: text("prefix").notNull(),
    createdAt: integer("created_at").notNull(),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_hash").on(t.keyHash), index("api_keys_tenant").on(t.tenantId)],
);

export const instances = sqliteTable(
  "instances",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id")
      .notNull()
      .references(() => tenants.id),
    name: text("name").notNull(),
    // whatsapp (Evolution), telegram (Bot API) or web (the gateway's own chat socket): src/providers/.
    channel: text("channel").notNull().default("whatsapp"),
    // WhatsApp only; a Telegram instance stores empty strings here.
    evolutionUrl: text("evolution_url").notNull(),
    evolutionApiKey: text("evolution_api_key").notNull(),
    ratePerMinute: integer("rate_per_minute").notNull(),
    state: text("state").notNull().default("unknown"),
    stateChangedAt: integer("state_changed_at"),
    // The pairing QR code while the number is not connected (qrcode.updated / GET /instance/connect);
    // cleared when the state becomes open. `qrCode` is Evolution's data URL of a PNG.
    qrCode: text("qr_code"),
    qrCount: integer("qr_count"),
    qrUpdatedAt: integer("qr_updated_at"),
    // Pacing (src/lanes/pacing/settings.ts): null columns mean the documented default or "off".
    burst: integer("burst"),
    gapMinMs: integer("gap_min_ms").notNull().default(0),
    gapMaxMs: integer("gap_max_ms").notNull().default(0),
    dailyCap: integer("daily_cap"),
    timeZone: text("time_zone").notNull().default("UTC"),
    warmupDays: integer("warmup_days"),
    warmupStartPerDay: integer("warmup_start_per_day"),
    warmupSince: integer("warmup_since"),
    quietStart: text("quiet_start"),
    quietEnd: text("quiet_end"),
    quietTimeZone: text("quiet_time_zone"),
    typing: integer("typing", { mode: "boolean" }).notNull().default(false),
    spikeCount: integer("spike_count").default(10),
    spikeWindowMinutes: integer("spike_window_minutes").default(10),
    overlimitPauseMinutes: integer("overlimit_pause_minutes").notNull().default(15),
    // Sending paused by the governor (mirror of its own durable state, for GET and operators).
    pausedReason: text("paused_reason"),
    pausedAt: integer("paused_at"),
    pausedUntil: integer("paused_until"),
    // Telegram: the bot token (a secret like the Evolution key: stored, never returned), the Bot API
    // base URL, the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token, and the bot's @username.
    telegramBotToken: text("telegram_bot_token"),
    telegramApiUrl: text("telegram_api_url"),
    telegramWebhookSecret: text("telegram_webhook_secret"),
    telegramBotUsername: text("telegram_bot_username"),
    // Web chat: the origins whose pages may open a visitor's socket (JSON array; null: any).
    webAllowedOrigins: text("web_allowed_origins", { mode: "json" }).$type<string[]>(),
    // Secret path segment that names and authenticates the instance's webhooks.
    webhookToken: text("webhook_token").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [uniqueIndex("instances_tenant_name").on(t.tenantId, t.name), uniqueIndex("instances_webhook_token").on(t.webhookToken)],
);

export const messages = sqliteTable(
  "messages",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    instanceId: text("instance_id").notNull(),
    instanceName: text("instance_name").notNull(),
    channel: text("channel").notNull().default("whatsapp"),
    to: text("to").notNull(),
    // tenant + instance + contact: names the ContactLane that serializes this message.
    laneKey: text("lane_key").notNull(),
    text: text("text"),
    media: text("media", { mode: "json" }).$type<MediaJson>(),
    status: text("status").notNull(),
    priority: integer("priority").notNull().default(5),
    sendAt: integer("send_at"),
    // When the message may go: sendAt, or acceptance time. Orders a lane together with priority.
    readyAt: integer("ready_at").notNull(),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull(),
    lastError: text("last_error"),
    providerMessageId: text("provider_message_id"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>(),
    callbackUrl: text("callback_url"),
    source: text("source").notNull().default("api"),
    // Per-message idempotency (batch items from the Kafka bridge): unique per tenant, with the
    // hash of the request that used it first.
    idempotencyKey: text("idempotency_key"),
    idempotencyHash: text("idempotency_hash"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    sentAt: integer("sent_at"),
    deliveredAt: integer("delivered_at"),
    readAt: integer("read_at"),
    failedAt: integer("failed_at"),
    canceledAt: integer("canceled_at"),
    // Every status change and note, oldest first: [{status, at, attempt?, detail?}]. Kept in the row
    // (appended by the same UPDATE that changes the status) rather than as rows of their own, which
    // cost two D1 rows written per entry. The view message_history reads it as rows (migration *_cost).
    history: text("history").notNull().default("[]"),
    // Lost receipts: when a `sent` message with no delivered/read is next checked with Evolution
    // (findStatusMessage), and how many checks it had. NULL: no check due.
    receiptCheckAt: integer("receipt_check_at"),
    receiptChecks: integer("receipt_checks").notNull().default(0),
  },
  (t) => [
    index("messages_tenant_created").on(t.tenantId, t.createdAt, t.id),
    index("messages_tenant_status").on(t.tenantId, t.status, t.createdAt),
    index("messages_tenant_to").on(t.tenantId, t.to, t.createdAt),
    // Partial indexes: a message is in them only while it is waiting or in flight, so the status
    // changes after `sent` (delivered, read) write no index rows here. Queries on them repeat the
    // IN (...) condition, which is how SQLite knows it may use a partial index.
    index("messages_lane_active").on(t.laneKey, t.status, t.readyAt).where(messageIsActive()),
    index("messages_active_ready").on(t.status, t.readyAt).where(messageIsActive()),
    index("messages_provider").on(t.instanceId, t.providerMessageId).where(sql`provider_message_id IS NOT NULL`),
    index("messages_receipt_check").on(t.receiptCheckAt).where(sql`status = 'sent' AND receipt_check_at IS NOT NULL`),
    uniqueIndex("messages_idempotency").on(t.tenantId, t.idempotencyKey).where(sql`idempotency_key IS NOT NULL`),
    // A message enters it once, when sent: the last minute's sends without a pass over the tenant.
    index("messages_tenant_sent").on(t.tenantId, t.sentAt, t.instanceName).where(sql`sent_at IS NOT NULL`),
  ],
);

// Messages per tenant, instance and status, kept by triggers on `messages` (migration
// *_message-counts): GET /v1/stats reads these rows instead of counting the tenant's messages.
export const messageCounts = sqliteTable(
  "message_counts",
  {
    tenantId: text("tenant_id").notNull(),
    instanceName: text("instance_name").notNull(),
    scheduled: integer("scheduled").notNull().default(0),
    queued: integer("queued").notNull().default(0),
    processing: integer("processing").notNull().default(0),
    sent: integer("sent").notNull().default(0),
    delivered: integer("delivered").notNull().default(0),
    read: integer("read").notNull().default(0),
    failed: integer("failed").notNull().default(0),
    canceled: integer("canceled").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.instanceName] })],
);

// Sends, failures, deliveries and reads per tenant and epoch minute, counted by triggers when a
// message's timestamp is set (migration *_message-counts), for GET /v1/stats/timeline; two days kept.
export const messageActivity = sqliteTable(
  "message_activity",
  {
    tenantId: text("tenant_id").notNull(),
    minute: integer("minute").notNull(),
    sent: integer("sent").notNull().default(0),
    failed: integer("failed").notNull().default(0),
    delivered: integer("delivered").notNull().default(0),
    read: integer("read").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.minute] })],
);

export type MediaJson = {
  url: string;
  type: "image" | "video" | "audio" | "document";
  caption?: string;
  fileName?: string;
  mimeType?: string;
};

export const deadLetters = sqliteTable(
  "dead_letters",
  {
    messageId: text("message_id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    attempts: integer("attempts").notNull(),
    error: text("error").notNull(),
    at: integer("at").notNull(),
    replayedAt: integer("replayed_at"),
  },
  (t) => [index("dead_letters_tenant").on(t.tenantId, t.at, t.messageId)],
);

export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    tenantId: text("tenant_id").notNull(),
    key: text("key").notNull(),
    // Which route the key was used on, so one key cannot replay another route's answer.
    scope: text("scope").notNull(),
    requestHash: text("request_hash").notNull(),
    responseStatus: integer("response_status"),
    responseBody: text("response_body"),
    // Also the time base of the ids of the messages the request creates (the same on a retry).
    createdAt: integer("created_at").notNull(),
    // The request working under the key holds it until then; past it, a retry with the same body
    // takes over. Null once answered.
    lockedUntil: integer("locked_until"),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.scope, t.key] }), index("idempotency_created").on(t.createdAt)],
);

export const inboundMessages = sqliteTable(
  "inbound_messages",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    instanceId: text("instance_id").notNull(),
    instanceName: text("instance_name").notNull(),
    channel: text("channel").notNull().default("whatsapp"),
    // The contact: phone digits, or the group JID for group messages (Telegram: the chat id).
    contact: text("contact").notNull(),
    remoteJid: text("remote_jid").notNull(),
    participant: text("participant"),
    providerMessageId: text("provider_message_id").notNull(),
    fromMe: integer("from_me", { mode: "boolean" }).notNull(),
    pushName: text("push_name"),
    messageType: text("message_type").notNull(),
    text: text("text"),
    media: text("media", { mode: "json" }).$type<Record<string, unknown>>(),
    timestamp: integer("timestamp").notNull(),
    receivedAt: integer("received_at").notNull(),
    // The provider's delivery key (Telegram: update:<update_id>), so a redelivery is stored once.
    dedupeKey: text("dedupe_key"),
    // What a message posted through the API carried besides its text (agentId, priority,
    // channelMetadata); null for messages a provider delivered.
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>(),
  },
  (t) => [
    uniqueIndex("inbound_provider").on(t.instanceId, t.providerMessageId),
    index("inbound_tenant_contact").on(t.tenantId, t.contact, t.timestamp),
    uniqueIndex("inbound_dedupe").on(t.instanceId, t.dedupeKey).where(sql`dedupe_key IS NOT NULL`),
    index("inbound_instance_received").on(t.instanceId, t.receivedAt),
  ],
);

// A chat that moved to a new address (a Telegram group upgraded to a supergroup).
export const chatMigrations = sqliteTable(
  "chat_migrations",
  {
    instanceId: text("instance_id").notNull(),
    fromChat: text("from_chat").notNull(),
    toChat: text("to_chat").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.instanceId, t.fromChat] })],
);

// Provider status updates that arrived before the send recorded its provider id; applied later.
export const pendingReceipts = sqliteTable(
  "pending_receipts",
  {
    instanceId: text("instance_id").notNull(),
    providerMessageId: text("provider_message_id").notNull(),
    status: text("status").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.instanceId, t.providerMessageId, t.status] })],
);

// The event outbox: written in the same batch as the change it describes.
export const outboxEvents = sqliteTable(
  "outbox_events",
  {
    // The rowid, without AUTOINCREMENT (which writes sqlite_sequence on every insert): seq stays
    // increasing because the purge never deletes the newest event (src/sweep/sweeper.ts).
    seq: integer("seq").primaryKey(),
    // `evt_<seq>_<random>` (src/db/queries/outbox-events.ts): found through seq, so it needs no index of its own.
    // Events written before that scheme keep their UUIDs.
    eventId: text("event_id").notNull(),
    tenantId: text("tenant_id").notNull(),
    type: text("type").notNull(),
    version: integer("version").notNull(),
    occurredAt: integer("occurred_at").notNull(),
    data: text("data", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    // Where a tenant callback should go for this event (message's own, else tenant's); null: none.
    callbackUrl: text("callback_url"),
  },
  (t) => [
    index("outbox_tenant_seq").on(t.tenantId, t.seq),
    // Callback dispatch walks only the events that have somewhere to go.
    index("outbox_callbacks").on(t.seq).where(sql`callback_url IS NOT NULL`),
  ],
);

export const consumerCursors = sqliteTable(
  "consumer_cursors",
  {
    tenantId: text("tenant_id").notNull(),
    consumer: text("consumer").notNull(),
    seq: integer("seq").notNull().default(0),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.consumer] })],
);

// One row per event and callback URL: written when the event is handed out (pending), so a lost
// queue message or a dead isolate never loses it; the cron re-dispatches rows whose turn passed.
export const callbackDeliveries = sqliteTable(
  "callback_deliveries",
  {
    eventId: text("event_id").notNull(),
    url: text("url").notNull(),
    tenantId: text("tenant_id").notNull(),
    // pending | retrying | delivered | failed
    status: text("status").notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    updatedAt: integer("updated_at").notNull(),
    // The outbox event's seq: the list's order and cursor.
    seq: integer("seq").notNull().default(0),
    eventType: text("event_type").notNull().default(""),
    createdAt: integer("created_at").notNull().default(0),
    // When the next attempt is due (pending/retrying); the cron takes up rows left past it.
    nextAt: integer("next_at"),
    lastStatus: integer("last_status"),
    deliveredAt: integer("delivered_at"),
    // A consumer's claim on the next attempt, until this time: taken before the POST, cleared with its outcome.
    leaseUntil: integer("lease_until"),
  },
  (t) => [
    primaryKey({ columns: [t.eventId, t.url] }),
    index("callback_deliveries_tenant").on(t.tenantId, t.status),
    index("callback_deliveries_tenant_seq").on(t.tenantId, t.seq),
    index("callback_deliveries_due").on(t.nextAt).where(callbackIsOpen()),
  ],
);

// A callback URL that answered 410 Gone: nothing more is sent there until the tenant enables it again.
export const disabledCallbackEndpoints = sqliteTable(
  "disabled_callback_endpoints",
  {
    tenantId: text("tenant_id").notNull(),
    url: text("url").notNull(),
    disabledAt: integer("disabled_at").notNull(),
    reason: text("reason").notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.url] })],
);

// Inbound automation of one instance: where its inbound messages go, and its circuit breaker.
export const automations = sqliteTable("automations", {
  instanceId: text("instance_id").primaryKey(),
  tenantId: text("tenant_id").notNull(),
  url: text("url").notNull(),
  // Standard Webhooks secret (whsec_…) the handler verifies with; shown once, never returned after.
  secret: text("secret").notNull(),
  // The secret before the last rotation: calls carry its signature too until secret_previous_until.
  secretPrevious: text("secret_previous"),
  secretPreviousUntil: integer("secret_previous_until"),
  enabled: integer("enabled", { mode: "boolean" }).notNull(),
  timeoutMs: integer("timeout_ms").notNull(),
  contextMessages: integer("context_messages").notNull(),
  debounceMs: integer("debounce_ms").notNull(),
  includeGroups: integer("include_groups", { mode: "boolean" }).notNull(),
  maxAttempts: integer("max_attempts").notNull(),
  // Breaker: `active`, or `paused` after consecutive failures until a probe succeeds at probe_at.
  state: text("state").notNull().default("active"),
  failures: integer("failures").notNull().default(0),
  pausedAt: integer("paused_at"),
  probeAt: integer("probe_at"),
  // When the current probe's call began (cleared by its outcome): the breaker is half-open.
  probeStartedAt: integer("probe_started_at"),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

// One row per inbound message handed to automation: its outcome, and the dead letters.
export const automationDeliveries = sqliteTable(
  "automation_deliveries",
  {
    inboundId: text("inbound_id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    instanceId: text("instance_id").notNull(),
    // tenant + instance + contact: names the AutomationLane that serializes this contact's calls.
    laneKey: text("lane_key").notNull(),
    contact: text("contact").notNull(),
    // pending, delivered, dead, canceled (automation removed while it waited), human (arrived while
    // the contact was handed to a person: context for the handler, never offered)
    status: text("status").notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    replayedAt: integer("replayed_at"),
  },
  (t) => [index("automation_deliveries_instance").on(t.instanceId, t.status, t.updatedAt), index("automation_deliveries_pending").on(t.status, t.laneKey)],
);

// Delivery records per tenant, instance and state, kept by triggers on automation_deliveries (in the
// migration), so the queue figures never count a tenant's records. waiting: pending, never called;
// retrying: pending after a failed call.
export const automationCounts = sqliteTable(
  "automation_counts",
  {
    tenantId: text("tenant_id").notNull(),
    instanceId: text("instance_id").notNull(),
    waiting: integer("waiting").notNull().default(0),
    retrying: integer("retrying").notNull().default(0),
    delivered: integer("delivered").notNull().default(0),
    dead: integer("dead").notNull().default(0),
    canceled: integer("canceled").notNull().default(0),
    human: integer("human").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.instanceId] })],
);

// Lanes waiting for a paused breaker: woken together when a probe succeeds.
export const automationParked = sqliteTable(
  "automation_parked",
  {
    instanceId: text("instance_id").notNull(),
    laneKey: text("lane_key").notNull(),
  },
  (t) => [primaryKey({ columns: [t.instanceId, t.laneKey] })],
);

// A contact handed to a person (an operator took over, or the handler asked): while its row is
// here, and until has not passed, the contact's inbound messages are stored but not offered to the
// handler. Handing back deletes the row.
export const conversationHandoffs = sqliteTable(
  "conversation_handoffs",
  {
    instanceId: text("instance_id").notNull(),
    // The canonical contact key (as inbound_messages.contact).
    contact: text("contact").notNull(),
    tenantId: text("tenant_id").notNull(),
    reason: text("reason"),
    // operator or handler
    by: text("by").notNull(),
    since: integer("since").notNull(),
    until: integer("until"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.instanceId, t.contact] }), index("conversation_handoffs_until").on(t.until)],
);

// One row per conversation (instance + contact key): its last message, the contact's name, inbound
// messages since an operator last read it. Kept by triggers on inbound_messages and messages (in
// the migrations; another gives a new row its instance's channel), so listing conversations never
// reads their messages. Rows for messages stored before the triggers come from a one-time backfill.
export const conversations = sqliteTable(
  "conversations",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    tenantId: text("tenant_id").notNull(),
    instanceId: text("instance_id").notNull(),
    instanceName: text("instance_name").notNull(),
    contact: text("contact").notNull(),
    channel: text("channel").notNull().default("whatsapp"),
    name: text("name"),
    lastAt: integer("last_at").notNull(),
    lastId: text("last_id").notNull(),
    // in or out
    lastDirection: text("last_direction").notNull(),
    lastText: text("last_text"),
    unread: integer("unread").notNull().default(0),
    readAt: integer("read_at"),
  },
  (t) => [uniqueIndex("conversations_contact").on(t.instanceId, t.contact), index("conversations_recent").on(t.tenantId, t.lastAt, t.id)],
);

// Every change of a contact's hand-off (human or bot, by operator, handler or timeout), for its timeline.
export const handoffChanges = sqliteTable(
  "handoff_changes",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    instanceId: text("instance_id").notNull(),
    instanceName: text("instance_name").notNull(),
    contact: text("contact").notNull(),
    state: text("state").notNull(),
    reason: text("reason"),
    by: text("by").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [index("handoff_changes_contact").on(t.tenantId, t.contact, t.at)],
);

// Webhook jobs whose retries ran out (the webhooks DLQ consumer parks them here), kept until an
// operator replays them: Evolution was answered 200, so this is the only copy of the event.
export const parkedWebhooks = sqliteTable(
  "parked_webhooks",
  {
    // The queue message id: a redelivery of the same DLQ message parks it once.
    id: text("id").primaryKey(),
    tenantId: text("tenant_id"),
    event: text("event"),
    job: text("job", { mode: "json" }).$type<unknown>().notNull(),
    attempts: integer("attempts").notNull(),
    parkedAt: integer("parked_at").notNull(),
    replayedAt: integer("replayed_at"),
    lastError: text("last_error"),
  },
  (t) => [index("parked_webhooks_pending").on(t.replayedAt, t.parkedAt)],
);
