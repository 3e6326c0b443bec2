CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`key_hash` text NOT NULL,
	`prefix` text NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_hash` ON `api_keys` (`key_hash`);--> statement-breakpoint
CREATE INDEX `api_keys_tenant` ON `api_keys` (`tenant_id`);--> statement-breakpoint
CREATE TABLE `callback_deliveries` (
	`event_id` text NOT NULL,
	`url` text NOT NULL,
	`tenant_id` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_error` text,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`event_id`, `url`)
);
--> statement-breakpoint
CREATE INDEX `callback_deliveries_tenant` ON `callback_deliveries` (`tenant_id`,`status`);--> statement-breakpoint
CREATE TABLE `consumer_cursors` (
	`tenant_id` text NOT NULL,
	`consumer` text NOT NULL,
	`seq` integer DEFAULT 0 NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `consumer`)
);
--> statement-breakpoint
CREATE TABLE `dead_letters` (
	`message_id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`attempts` integer NOT NULL,
	`error` text NOT NULL,
	`at` integer NOT NULL,
	`replayed_at` integer
);
--> statement-breakpoint
CREATE INDEX `dead_letters_tenant` ON `dead_letters` (`tenant_id`,`at`);--> statement-breakpoint
CREATE TABLE `idempotency_keys` (
	`tenant_id` text NOT NULL,
	`key` text NOT NULL,
	`scope` text NOT NULL,
	`request_hash` text NOT NULL,
	`response_status` integer,
	`response_body` text,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`tenant_id`, `scope`, `key`)
);
--> statement-breakpoint
CREATE INDEX `idempotency_created` ON `idempotency_keys` (`created_at`);--> statement-breakpoint
CREATE TABLE `inbound_messages` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`instance_id` text NOT NULL,
	`instance_name` text NOT NULL,
	`contact` text NOT NULL,
	`remote_jid` text NOT NULL,
	`participant` text,
	`provider_message_id` text NOT NULL,
	`from_me` integer NOT NULL,
	`push_name` text,
	`message_type` text NOT NULL,
	`text` text,
	`media` text,
	`timestamp` integer NOT NULL,
	`received_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `inbound_provider` ON `inbound_messages` (`instance_id`,`provider_message_id`);--> statement-breakpoint
CREATE INDEX `inbound_tenant_contact` ON `inbound_messages` (`tenant_id`,`contact`,`timestamp`);--> statement-breakpoint
CREATE TABLE `instances` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`name` text NOT NULL,
	`evolution_url` text NOT NULL,
	`evolution_api_key` text NOT NULL,
	`rate_per_minute` integer NOT NULL,
	`state` text DEFAULT 'unknown' NOT NULL,
	`state_changed_at` integer,
	`webhook_token` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`tenant_id`) REFERENCES `tenants`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `instances_tenant_name` ON `instances` (`tenant_id`,`name`);--> statement-breakpoint
CREATE UNIQUE INDEX `instances_webhook_token` ON `instances` (`webhook_token`);--> statement-breakpoint
CREATE TABLE `message_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`message_id` text NOT NULL,
	`status` text NOT NULL,
	`at` integer NOT NULL,
	`attempt` integer,
	`detail` text
);
--> statement-breakpoint
CREATE INDEX `message_history_message` ON `message_history` (`message_id`,`id`);--> statement-breakpoint
CREATE TABLE `messages` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`instance_id` text NOT NULL,
	`instance_name` text NOT NULL,
	`to` text NOT NULL,
	`lane_key` text NOT NULL,
	`text` text,
	`media` text,
	`status` text NOT NULL,
	`priority` integer DEFAULT 5 NOT NULL,
	`send_at` integer,
	`ready_at` integer NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer NOT NULL,
	`last_error` text,
	`provider_message_id` text,
	`metadata` text,
	`callback_url` text,
	`source` text DEFAULT 'api' NOT NULL,
	`idempotency_key` text,
	`idempotency_hash` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`sent_at` integer,
	`delivered_at` integer,
	`read_at` integer,
	`failed_at` integer,
	`canceled_at` integer
);
--> statement-breakpoint
CREATE INDEX `messages_tenant_created` ON `messages` (`tenant_id`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `messages_tenant_status` ON `messages` (`tenant_id`,`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `messages_tenant_to` ON `messages` (`tenant_id`,`to`,`created_at`);--> statement-breakpoint
CREATE INDEX `messages_lane_status` ON `messages` (`lane_key`,`status`,`ready_at`);--> statement-breakpoint
CREATE INDEX `messages_status_updated` ON `messages` (`status`,`updated_at`);--> statement-breakpoint
CREATE INDEX `messages_provider` ON `messages` (`instance_id`,`provider_message_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `messages_idempotency` ON `messages` (`tenant_id`,`idempotency_key`);--> statement-breakpoint
CREATE TABLE `outbox_events` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`event_id` text NOT NULL,
	`tenant_id` text NOT NULL,
	`type` text NOT NULL,
	`version` integer NOT NULL,
	`occurred_at` integer NOT NULL,
	`data` text NOT NULL,
	`callback_url` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `outbox_event_id` ON `outbox_events` (`event_id`);--> statement-breakpoint
CREATE INDEX `outbox_tenant_seq` ON `outbox_events` (`tenant_id`,`seq`);--> statement-breakpoint
CREATE INDEX `outbox_callbacks` ON `outbox_events` (`seq`) WHERE callback_url IS NOT NULL;--> statement-breakpoint
CREATE TABLE `pending_receipts` (
	`instance_id` text NOT NULL,
	`provider_message_id` text NOT NULL,
	`status` text NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`instance_id`, `provider_message_id`, `status`)
);
--> statement-breakpoint
CREATE TABLE `tenants` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`max_attempts` integer DEFAULT 3 NOT NULL,
	`callback_url` text,
	`callback_secret` text NOT NULL,
	`created_at` integer NOT NULL
);
