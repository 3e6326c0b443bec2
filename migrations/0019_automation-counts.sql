-- Automation delivery records per tenant, instance and state, kept by triggers on
-- `automation_deliveries`, so the queue figures of the older system's API read one row per instance
-- instead of counting a tenant's records. `waiting`: pending, never called; `retrying`: pending after a
-- failed call; the others are the record's status.
CREATE TABLE `automation_counts` (
	`tenant_id` text NOT NULL,
	`instance_id` text NOT NULL,
	`waiting` integer DEFAULT 0 NOT NULL,
	`retrying` integer DEFAULT 0 NOT NULL,
	`delivered` integer DEFAULT 0 NOT NULL,
	`dead` integer DEFAULT 0 NOT NULL,
	`canceled` integer DEFAULT 0 NOT NULL,
	`human` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`tenant_id`, `instance_id`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `automation_counts` (`tenant_id`, `instance_id`, `waiting`, `retrying`, `delivered`, `dead`, `canceled`, `human`)
SELECT `tenant_id`, `instance_id`,
  SUM(`status` = 'pending' AND `attempts` = 0), SUM(`status` = 'pending' AND `attempts` > 0), SUM(`status` = 'delivered'),
  SUM(`status` = 'dead'), SUM(`status` = 'canceled'), SUM(`status` = 'human')
FROM `automation_deliveries` GROUP BY `tenant_id`, `instance_id`;
--> statement-breakpoint
CREATE TRIGGER `automation_counts_insert` AFTER INSERT ON `automation_deliveries` BEGIN
  -- Only when missing: an INSERT OR IGNORE of an existing row still costs a row written.
  INSERT INTO `automation_counts` (`tenant_id`, `instance_id`) SELECT NEW.`tenant_id`, NEW.`instance_id`
    WHERE NOT EXISTS (SELECT 1 FROM `automation_counts` WHERE `tenant_id` = NEW.`tenant_id` AND `instance_id` = NEW.`instance_id`);
  UPDATE `automation_counts` SET
    `waiting` = `waiting` + (NEW.`status` = 'pending' AND NEW.`attempts` = 0), `retrying` = `retrying` + (NEW.`status` = 'pending' AND NEW.`attempts` > 0),
    `delivered` = `delivered` + (NEW.`status` = 'delivered'), `dead` = `dead` + (NEW.`status` = 'dead'),
    `canceled` = `canceled` + (NEW.`status` = 'canceled'), `human` = `human` + (NEW.`status` = 'human')
  WHERE `tenant_id` = NEW.`tenant_id` AND `instance_id` = NEW.`instance_id`;
END;
--> statement-breakpoint
-- Only when the record changes state: a retry's attempt count or an updated_at alone writes nothing here.
CREATE TRIGGER `automation_counts_update` AFTER UPDATE OF `status`, `attempts` ON `automation_deliveries`
WHEN OLD.`status` IS NOT NEW.`status` OR (OLD.`attempts` > 0) IS NOT (NEW.`attempts` > 0) BEGIN
  UPDATE `automation_counts` SET
    `waiting` = `waiting` + (NEW.`status` = 'pending' AND NEW.`attempts` = 0) - (OLD.`status` = 'pending' AND OLD.`attempts` = 0),
    `retrying` = `retrying` + (NEW.`status` = 'pending' AND NEW.`attempts` > 0) - (OLD.`status` = 'pending' AND OLD.`attempts` > 0),
    `delivered` = `delivered` + (NEW.`status` = 'delivered') - (OLD.`status` = 'delivered'),
    `dead` = `dead` + (NEW.`status` = 'dead') - (OLD.`status` = 'dead'),
    `canceled` = `canceled` + (NEW.`status` = 'canceled') - (OLD.`status` = 'canceled'),
    `human` = `human` + (NEW.`status` = 'human') - (OLD.`status` = 'human')
  WHERE `tenant_id` = NEW.`tenant_id` AND `instance_id` = NEW.`instance_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `automation_counts_delete` AFTER DELETE ON `automation_deliveries` BEGIN
  UPDATE `automation_counts` SET
    `waiting` = `waiting` - (OLD.`status` = 'pending' AND OLD.`attempts` = 0), `retrying` = `retrying` - (OLD.`status` = 'pending' AND OLD.`attempts` > 0),
    `delivered` = `delivered` - (OLD.`status` = 'delivered'), `dead` = `dead` - (OLD.`status` = 'dead'),
    `canceled` = `canceled` - (OLD.`status` = 'canceled'), `human` = `human` - (OLD.`status` = 'human')
  WHERE `tenant_id` = OLD.`tenant_id` AND `instance_id` = OLD.`instance_id`;
END;
--> statement-breakpoint
-- What a message posted through the API carried besides its text (the older system's agentId,
-- priority and channelMetadata); null for messages a provider delivered.
ALTER TABLE `inbound_messages` ADD `metadata` text;
