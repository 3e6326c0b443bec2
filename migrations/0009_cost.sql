-- Cost per message (see docs/capacity.md): the status history moves into the message row (appended
-- by the UPDATE that changes the status), partial indexes hold only waiting and in-flight messages,
-- and the outbox's seq drops AUTOINCREMENT (one sqlite_sequence write per event).
ALTER TABLE `messages` ADD `history` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
UPDATE `messages` SET `history` = (
  SELECT json_group_array(json_object('status', h.status, 'at', h.at, 'attempt', h.attempt, 'detail', h.detail))
  FROM (SELECT * FROM `message_history` WHERE message_id = messages.id ORDER BY id) h
) WHERE EXISTS (SELECT 1 FROM `message_history` WHERE message_id = messages.id);--> statement-breakpoint
DROP TABLE `message_history`;--> statement-breakpoint
DROP INDEX `messages_lane_status`;--> statement-breakpoint
DROP INDEX `messages_status_updated`;--> statement-breakpoint
DROP INDEX `messages_provider`;--> statement-breakpoint
DROP INDEX `messages_idempotency`;--> statement-breakpoint
CREATE INDEX `messages_lane_active` ON `messages` (`lane_key`,`status`,`ready_at`) WHERE status IN ('scheduled', 'queued', 'processing');--> statement-breakpoint
CREATE INDEX `messages_active_ready` ON `messages` (`status`,`ready_at`) WHERE status IN ('scheduled', 'queued', 'processing');--> statement-breakpoint
CREATE INDEX `messages_provider` ON `messages` (`instance_id`,`provider_message_id`) WHERE provider_message_id IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `messages_idempotency` ON `messages` (`tenant_id`,`idempotency_key`) WHERE idempotency_key IS NOT NULL;--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_outbox_events` (
	`seq` integer PRIMARY KEY NOT NULL,
	`event_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`type` text NOT NULL,
	`version` integer NOT NULL,
	`occurred_at` integer NOT NULL,
	`data` text NOT NULL,
	`callback_url` text
);
--> statement-breakpoint
INSERT INTO `__new_outbox_events`("seq", "event_id", "tenant_id", "type", "version", "occurred_at", "data", "callback_url") SELECT "seq", "event_id", "tenant_id", "type", "version", "occurred_at", "data", "callback_url" FROM `outbox_events`;--> statement-breakpoint
DROP TABLE `outbox_events`;--> statement-breakpoint
ALTER TABLE `__new_outbox_events` RENAME TO `outbox_events`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE UNIQUE INDEX `outbox_event_id` ON `outbox_events` (`event_id`);--> statement-breakpoint
CREATE INDEX `outbox_tenant_seq` ON `outbox_events` (`tenant_id`,`seq`);--> statement-breakpoint
CREATE INDEX `outbox_callbacks` ON `outbox_events` (`seq`) WHERE callback_url IS NOT NULL;--> statement-breakpoint
-- The history as rows, for reading (operators, tests) and for appending a note from SQL.
CREATE VIEW `message_history` AS
  SELECT m.id AS message_id, CAST(j.key AS INTEGER) AS id, json_extract(j.value, '$.status') AS status,
    json_extract(j.value, '$.at') AS at, json_extract(j.value, '$.attempt') AS attempt, json_extract(j.value, '$.detail') AS detail
  FROM messages m, json_each(m.history) j;--> statement-breakpoint
CREATE TRIGGER `message_history_append` INSTEAD OF INSERT ON `message_history` BEGIN
  UPDATE messages SET history = json_insert(history, '$[#]',
    json_object('status', NEW.status, 'at', NEW.at, 'attempt', NEW.attempt, 'detail', NEW.detail))
  WHERE id = NEW.message_id;
END;
