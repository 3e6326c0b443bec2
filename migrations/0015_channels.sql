-- Channels: every instance, message and inbound message says which channel it is on. Rows written
-- before channels existed are WhatsApp.
ALTER TABLE `instances` ADD `channel` text DEFAULT 'whatsapp' NOT NULL;
--> statement-breakpoint
-- Telegram connection: the bot token is a secret like the Evolution key (stored, never returned).
ALTER TABLE `instances` ADD `telegram_bot_token` text;
--> statement-breakpoint
ALTER TABLE `instances` ADD `telegram_api_url` text;
--> statement-breakpoint
ALTER TABLE `instances` ADD `telegram_webhook_secret` text;
--> statement-breakpoint
ALTER TABLE `instances` ADD `telegram_bot_username` text;
--> statement-breakpoint
ALTER TABLE `messages` ADD `channel` text DEFAULT 'whatsapp' NOT NULL;
--> statement-breakpoint
ALTER TABLE `inbound_messages` ADD `channel` text DEFAULT 'whatsapp' NOT NULL;
--> statement-breakpoint
-- What the provider keys a delivery by (Telegram: update_id): a redelivered update is stored once.
ALTER TABLE `inbound_messages` ADD `dedupe_key` text;
--> statement-breakpoint
CREATE UNIQUE INDEX `inbound_dedupe` ON `inbound_messages` (`instance_id`,`dedupe_key`) WHERE dedupe_key IS NOT NULL;
--> statement-breakpoint
-- A chat that moved to a new address (a Telegram group upgraded to a supergroup): later messages
-- to the old address go to the new one.
CREATE TABLE `chat_migrations` (
	`instance_id` text NOT NULL,
	`from_chat` text NOT NULL,
	`to_chat` text NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`instance_id`, `from_chat`)
);
