ALTER TABLE `automations` ADD `secret_previous` text;--> statement-breakpoint
ALTER TABLE `automations` ADD `secret_previous_until` integer;--> statement-breakpoint
ALTER TABLE `automations` ADD `probe_started_at` integer;