-- The cron's automation catch-up looks for an instance's inbound messages received in the last hour
-- that were never recorded for its automation: a range on (instance_id, received_at).
CREATE INDEX `inbound_instance_received` ON `inbound_messages` (`instance_id`,`received_at`);
