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
--> statement-breakpoint
-- Sends, failures, deliveries and reads per tenant and minute, for GET /v1/stats/timeline: counted
-- when a message's sent_at, failed_at, delivered_at or read_at is set (one row written each), so the
-- timeline reads at most a day of minutes instead of the tenant's messages. Kept for two days.
CREATE TABLE `message_activity` (
	`tenant_id` text NOT NULL,
	`minute` integer NOT NULL,
	`sent` integer DEFAULT 0 NOT NULL,
	`failed` integer DEFAULT 0 NOT NULL,
	`delivered` integer DEFAULT 0 NOT NULL,
	`read` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`tenant_id`, `minute`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `message_activity` (`tenant_id`, `minute`, `sent`, `failed`, `delivered`, `read`)
SELECT `tenant_id`, `minute`, SUM(`kind` = 'sent'), SUM(`kind` = 'failed'), SUM(`kind` = 'delivered'), SUM(`kind` = 'read') FROM (
  SELECT `tenant_id`, `sent_at` / 60000 AS `minute`, 'sent' AS `kind` FROM `messages` WHERE `sent_at` >= (CAST(strftime('%s', 'now') AS INTEGER) - 172800) * 1000
  UNION ALL SELECT `tenant_id`, `failed_at` / 60000, 'failed' FROM `messages` WHERE `failed_at` >= (CAST(strftime('%s', 'now') AS INTEGER) - 172800) * 1000
  UNION ALL SELECT `tenant_id`, `delivered_at` / 60000, 'delivered' FROM `messages` WHERE `delivered_at` >= (CAST(strftime('%s', 'now') AS INTEGER) - 172800) * 1000
  UNION ALL SELECT `tenant_id`, `read_at` / 60000, 'read' FROM `messages` WHERE `read_at` >= (CAST(strftime('%s', 'now') AS INTEGER) - 172800) * 1000
) GROUP BY `tenant_id`, `minute`;
--> statement-breakpoint
CREATE TRIGGER `message_activity_sent` AFTER UPDATE OF `sent_at` ON `messages` WHEN NEW.`sent_at` IS NOT NULL AND OLD.`sent_at` IS NOT NEW.`sent_at` BEGIN
  INSERT INTO `message_activity` (`tenant_id`, `minute`, `sent`) VALUES (NEW.`tenant_id`, NEW.`sent_at` / 60000, 1)
  ON CONFLICT (`tenant_id`, `minute`) DO UPDATE SET `sent` = `sent` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `message_activity_failed` AFTER UPDATE OF `failed_at` ON `messages` WHEN NEW.`failed_at` IS NOT NULL AND OLD.`failed_at` IS NOT NEW.`failed_at` BEGIN
  INSERT INTO `message_activity` (`tenant_id`, `minute`, `failed`) VALUES (NEW.`tenant_id`, NEW.`failed_at` / 60000, 1)
  ON CONFLICT (`tenant_id`, `minute`) DO UPDATE SET `failed` = `failed` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `message_activity_delivered` AFTER UPDATE OF `delivered_at` ON `messages` WHEN NEW.`delivered_at` IS NOT NULL AND OLD.`delivered_at` IS NOT NEW.`delivered_at` BEGIN
  INSERT INTO `message_activity` (`tenant_id`, `minute`, `delivered`) VALUES (NEW.`tenant_id`, NEW.`delivered_at` / 60000, 1)
  ON CONFLICT (`tenant_id`, `minute`) DO UPDATE SET `delivered` = `delivered` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `message_activity_read` AFTER UPDATE OF `read_at` ON `messages` WHEN NEW.`read_at` IS NOT NULL AND OLD.`read_at` IS NOT NEW.`read_at` BEGIN
  INSERT INTO `message_activity` (`tenant_id`, `minute`, `read`) VALUES (NEW.`tenant_id`, NEW.`read_at` / 60000, 1)
  ON CONFLICT (`tenant_id`, `minute`) DO UPDATE SET `read` = `read` + 1;
END;
