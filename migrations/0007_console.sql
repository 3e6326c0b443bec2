ALTER TABLE `instances` ADD `qr_code` text;--> statement-breakpoint
ALTER TABLE `instances` ADD `qr_count` integer;--> statement-breakpoint
ALTER TABLE `instances` ADD `qr_updated_at` integer;