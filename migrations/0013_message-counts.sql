-- Message counts per tenant, instance and status, kept by triggers on `messages`, so GET /v1/stats
-- reads one row per instance instead of counting every message of the tenant. One row per
-- (tenant, instance) with a column per status: a status change is one row written, and no code
-- path that writes messages can forget it.
CREATE TABLE `message_counts` (
	`tenant_id` text NOT NULL,
	`instance_name` text NOT NULL,
	`scheduled` integer DEFAULT 0 NOT NULL,
	`queued` integer DEFAULT 0 NOT NULL,
	`processing` integer DEFAULT 0 NOT NULL,
	`sent` integer DEFAULT 0 NOT NULL,
	`delivered` integer DEFAULT 0 NOT NULL,
	`read` integer DEFAULT 0 NOT NULL,
	`failed` integer DEFAULT 0 NOT NULL,
	`canceled` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`tenant_id`, `instance_name`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `message_counts` (`tenant_id`, `instance_name`, `scheduled`, `queued`, `processing`, `sent`, `delivered`, `read`, `failed`, `canceled`)
SELECT `tenant_id`, `instance_name`,
  SUM(`status` = 'scheduled'), SUM(`status` = 'queued'), SUM(`status` = 'processing'), SUM(`status` = 'sent'),
  SUM(`status` = 'delivered'), SUM(`status` = 'read'), SUM(`status` = 'failed'), SUM(`status` = 'canceled')
FROM `messages` GROUP BY `tenant_id`, `instance_name`;
--> statement-breakpoint
CREATE TRIGGER `message_counts_insert` AFTER INSERT ON `messages` BEGIN
  INSERT INTO `message_counts` (`tenant_id`, `instance_name`) VALUES (NEW.`tenant_id`, NEW.`instance_name`) ON CONFLICT DO NOTHING;
  UPDATE `message_counts` SET
    `scheduled` = `scheduled` + (NEW.`status` = 'scheduled'), `queued` = `queued` + (NEW.`status` = 'queued'),
    `processing` = `processing` + (NEW.`status` = 'processing'), `sent` = `sent` + (NEW.`status` = 'sent'),
    `delivered` = `delivered` + (NEW.`status` = 'delivered'), `read` = `read` + (NEW.`status` = 'read'),
    `failed` = `failed` + (NEW.`status` = 'failed'), `canceled` = `canceled` + (NEW.`status` = 'canceled')
  WHERE `tenant_id` = NEW.`tenant_id` AND `instance_name` = NEW.`instance_name`;
END;
--> statement-breakpoint
CREATE TRIGGER `message_counts_status` AFTER UPDATE OF `status` ON `messages` WHEN OLD.`status` IS NOT NEW.`status` BEGIN
  UPDATE `message_counts` SET
    `scheduled` = `scheduled` + (NEW.`status` = 'scheduled') - (OLD.`status` = 'scheduled'),
    `queued` = `queued` + (NEW.`status` = 'queued') - (OLD.`status` = 'queued'),
    `processing` = `processing` + (NEW.`status` = 'processing') - (OLD.`status` = 'processing'),
    `sent` = `sent` + (NEW.`status` = 'sent') - (OLD.`status` = 'sent'),
    `delivered` = `delivered` + (NEW.`status` = 'delivered') - (OLD.`status` = 'delivered'),
    `read` = `read` + (NEW.`status` = 'read') - (OLD.`status` = 'read'),
    `failed` = `failed` + (NEW.`status` = 'failed') - (OLD.`status` = 'failed'),
    `canceled` = `canceled` + (NEW.`status` = 'canceled') - (OLD.`status` = 'canceled')
  WHERE `tenant_id` = NEW.`tenant_id` AND `instance_name` = NEW.`instance_name`;
END;
--> statement-breakpoint
CREATE TRIGGER `message_counts_delete` AFTER DELETE ON `messages` BEGIN
  UPDATE `message_counts` SET
    `scheduled` = `scheduled` - (OLD.`status` = 'scheduled'), `queued` = `queued` - (OLD.`status` = 'queued'),
    `processing` = `processing` - (OLD.`status` = 'processing'), `sent` = `sent` - (OLD.`status` = 'sent'),
    `delivered` = `delivered` - (OLD.`status` = 'delivered'), `read` = `read` - (OLD.`status` = 'read'),
    `failed` = `failed` - (OLD.`status` = 'failed'), `canceled` = `canceled` - (OLD.`status` = 'canceled')
  WHERE `tenant_id` = OLD.`tenant_id` AND `instance_name` = OLD.`instance_name`;
END;
--> statement-breakpoint
-- Sends of the last minute (and the timeline's sent series) through the tenant's sends only; a
-- message enters this index once, when it is sent (with its instance, so the count needs no row).
CREATE INDEX `messages_tenant_sent` ON `messages` (`tenant_id`, `sent_at`, `instance_name`) WHERE `sent_at` IS NOT NULL;
