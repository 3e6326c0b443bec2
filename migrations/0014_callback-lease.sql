-- A consumer claims a callback delivery before it POSTs (lease_until: until when the claim holds),
-- so two copies of one job never both POST, and the cron re-dispatches only deliveries nobody holds.
ALTER TABLE `callback_deliveries` ADD `lease_until` integer;
