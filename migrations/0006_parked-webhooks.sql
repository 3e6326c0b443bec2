CREATE TABLE `parked_webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text,
	`event` text,
	`job` text NOT NULL,
	`attempts` integer NOT NULL,
	`parked_at` integer NOT NULL,
	`replayed_at` integer,
	`last_error` text
);
--> statement-breakpoint
CREATE INDEX `parked_webhooks_pending` ON `parked_webhooks` (`replayed_at`,`parked_at`);