-- Outbox event ids carry their event's seq (evt_<seq>_<random>, src/outbox/event-id.ts), so events are
-- found through the primary key and the unique index of event ids (one D1 row written per event) goes.
-- Deliveries from before they recorded their event's seq get it first, while the index still helps.
UPDATE `callback_deliveries` SET `seq` = COALESCE((SELECT e.seq FROM `outbox_events` e WHERE e.event_id = `callback_deliveries`.`event_id`), 0)
  WHERE `seq` = 0;--> statement-breakpoint
DROP INDEX `outbox_event_id`;