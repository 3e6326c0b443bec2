CREATE TABLE `disabled_callback_endpoints` (
	`tenant_id` text NOT NULL,
	`url` text NOT NULL,
	`disabled_at` integer NOT NULL,
	`reason` text NOT NULL,
	PRIMARY KEY(`tenant_id`, `url`)
);
--> statement-breakpoint
DROP INDEX `dead_letters_tenant`;--> statement-breakpoint
CREATE INDEX `dead_letters_tenant` ON `dead_letters` (`tenant_id`,`at`,`message_id`);--> statement-breakpoint
ALTER TABLE `callback_deliveries` ADD `seq` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `callback_deliveries` ADD `event_type` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `callback_deliveries` ADD `created_at` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `callback_deliveries` ADD `next_at` integer;--> statement-breakpoint
ALTER TABLE `callback_deliveries` ADD `last_status` integer;--> statement-breakpoint
ALTER TABLE `callback_deliveries` ADD `delivered_at` integer;--> statement-breakpoint
CREATE INDEX `callback_deliveries_tenant_seq` ON `callback_deliveries` (`tenant_id`,`seq`);--> statement-breakpoint
CREATE INDEX `callback_deliveries_due` ON `callback_deliveries` (`next_at`) WHERE status IN ('pending', 'retrying');--> statement-breakpoint
ALTER TABLE `tenants` ADD `callback_secret_previous` text;--> statement-breakpoint
ALTER TABLE `tenants` ADD `callback_secret_previous_until` integer;