-- A contact handed to a person: while its row is here (and until, when set, has not passed) the
-- contact's inbound messages are stored but not offered to the automation handler.
CREATE TABLE `conversation_handoffs` (
	`instance_id` text NOT NULL,
	`contact` text NOT NULL,
	`tenant_id` text NOT NULL,
	`reason` text,
	`by` text NOT NULL,
	`since` integer NOT NULL,
	`until` integer,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`instance_id`, `contact`)
);
--> statement-breakpoint
-- The cron finds hand-offs whose until passed without their lane handing back.
CREATE INDEX `conversation_handoffs_until` ON `conversation_handoffs` (`until`);
--> statement-breakpoint
-- Every change of a contact's hand-off, for its timeline.
CREATE TABLE `handoff_changes` (
	`id` text PRIMARY KEY NOT NULL,
	`tenant_id` text NOT NULL,
	`instance_id` text NOT NULL,
	`instance_name` text NOT NULL,
	`contact` text NOT NULL,
	`state` text NOT NULL,
	`reason` text,
	`by` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `handoff_changes_contact` ON `handoff_changes` (`tenant_id`,`contact`,`at`);
