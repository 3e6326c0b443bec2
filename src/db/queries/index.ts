// One owner per table: src/db/queries/<table>.ts is the only module that reads or writes its table;
// everything else calls it. Import the owners through this index, one namespace per table:
//   import { apiKeys, tenants } from "../db/queries/index.ts";   tenants.exists(db, id)
// - Every function takes the drizzle client (`Db`) first and is named from the domain
//   (`messages.claimForSend`, not `update1`).
// - The query builder where it serves. Where raw SQL is right (changes() guards, INSERT … SELECT,
//   json functions), the statement sits here beside a zod schema of its row: `row.parse(r)` or
//   `z.array(row).parse(rows)`, never a `db.all<T>` cast.
// - A statement meant for a `db.batch()` / runBatch() is returned un-awaited, so callers batch it
//   with others (D1 has no interactive transactions; one batch is one transaction).
// - A statement that touches several tables (a JOIN, an INSERT … SELECT, a subquery) lives with the
//   table it writes, or for a read with the table it answers about.
// - Status lists and the conditions built on them are written once, in ./statuses.ts.
// - Owners import each other by file (never through this index), and nothing above src/db/.
// - Biome refuses `sql` from drizzle-orm outside src/db/ (biome.json: noRestrictedImports); the
//   files still listed in its override are the ones whose SQL has yet to move here.
export * as apiKeys from "./api-keys.ts";
export * as automationParked from "./automation-parked.ts";
export * as inboundMessages from "./inbound-messages.ts";
export * as parkedWebhooks from "./parked-webhooks.ts";
export * as tenants from "./tenants.ts";
export * as instances from "./instances.ts";
export * as outboxEvents from "./outbox-events.ts";
export * as consumerCursors from "./consumer-cursors.ts";
export * as callbackDeliveries from "./callback-deliveries.ts";
export * as disabledCallbackEndpoints from "./disabled-callback-endpoints.ts";
export * as deadLetters from "./dead-letters.ts";
export * as conversations from "./conversations.ts";
export * as conversationHandoffs from "./conversation-handoffs.ts";
export * as messages from "./messages.ts";
export * as automations from "./automations.ts";
export * as automationDeliveries from "./automation-deliveries.ts";
export * as messageCounts from "./message-counts.ts";
export * as pendingReceipts from "./pending-receipts.ts";
export * as messageActivity from "./message-activity.ts";
export * as idempotencyKeys from "./idempotency-keys.ts";
