CREATE TABLE `automation_deliveries` (
	`inbound_id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`instance_id` text NOT NULL,
	`lane_key` text NOT NULL,
	`contact` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_error` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`replayed_at` integer
);
--> statement-breakpoint
CREATE INDEX `automation_deliveries_instance` ON `automation_deliveries` (`instance_id`,`status`,`updated_at`);--> statement-breakpoint
CREATE INDEX `automation_deliveries_pending` ON `automation_deliveries` (`status`,`lane_key`);--> statement-breakpoint
CREATE TABLE `automation_parked` (
	`instance_id` text NOT NULL,
	`lane_key` text NOT NULL,
	PRIMARY KEY(`instance_id`, `lane_key`)
);
--> statement-breakpoint
CREATE TABLE `automations` (
	`instance_id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`url` text NOT NULL,
	`secret` text NOT NULL,
	`enabled` integer NOT NULL,
	`timeout_ms` integer NOT NULL,
	`context_messages` integer NOT NULL,
	`debounce_ms` integer NOT NULL,
	`include_groups` integer NOT NULL,
	`max_attempts` integer NOT NULL,
	`state` text DEFAULT 'active' NOT NULL,
	`failures` integer DEFAULT 0 NOT NULL,
	`paused_at` integer,
	`probe_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
