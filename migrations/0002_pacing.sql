ALTER TABLE `instances` ADD `burst` integer;--> statement-breakpoint
ALTER TABLE `instances` ADD `gap_min_ms` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `instances` ADD `gap_max_ms` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `instances` ADD `daily_cap` integer;--> statement-breakpoint
ALTER TABLE `instances` ADD `time_zone` text DEFAULT 'UTC' NOT NULL;--> statement-breakpoint
ALTER TABLE `instances` ADD `warmup_days` integer;--> statement-breakpoint
ALTER TABLE `instances` ADD `warmup_start_per_day` integer;--> statement-breakpoint
ALTER TABLE `instances` ADD `warmup_since` integer;--> statement-breakpoint
ALTER TABLE `instances` ADD `quiet_start` text;--> statement-breakpoint
ALTER TABLE `instances` ADD `quiet_end` text;--> statement-breakpoint
ALTER TABLE `instances` ADD `quiet_time_zone` text;--> statement-breakpoint
ALTER TABLE `instances` ADD `typing` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `instances` ADD `spike_count` integer DEFAULT 10;--> statement-breakpoint
ALTER TABLE `instances` ADD `spike_window_minutes` integer DEFAULT 10;--> statement-breakpoint
ALTER TABLE `instances` ADD `overlimit_pause_minutes` integer DEFAULT 15 NOT NULL;--> statement-breakpoint
ALTER TABLE `instances` ADD `paused_reason` text;--> statement-breakpoint
ALTER TABLE `instances` ADD `paused_at` integer;--> statement-breakpoint
ALTER TABLE `instances` ADD `paused_until` integer;