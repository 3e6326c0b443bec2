ALTER TABLE `messages` ADD `receipt_check_at` integer;--> statement-breakpoint
ALTER TABLE `messages` ADD `receipt_checks` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `messages_receipt_check` ON `messages` (`receipt_check_at`) WHERE status = 'sent' AND receipt_check_at IS NOT NULL;