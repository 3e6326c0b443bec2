-- Message history moves into the message row (messages.history, a JSON array appended by the same
-- UPDATE that changes the status): one D1 row written per status change instead of three.
ALTER TABLE `messages` ADD `history` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
UPDATE `messages` SET `history` = (
  SELECT json_group_array(json_object('status', h.status, 'at', h.at, 'attempt', h.attempt, 'detail', h.detail))
  FROM (SELECT * FROM `message_history` WHERE message_id = messages.id ORDER BY id) h
) WHERE EXISTS (SELECT 1 FROM `message_history` WHERE message_id = messages.id);--> statement-breakpoint
DROP TABLE `message_history`;--> statement-breakpoint
-- The history as rows, for reading (operators, tests) and for appending a note from SQL.
CREATE VIEW `message_history` AS
  SELECT m.id AS message_id, CAST(j.key AS INTEGER) AS id, json_extract(j.value, '$.status') AS status,
    json_extract(j.value, '$.at') AS at, json_extract(j.value, '$.attempt') AS attempt, json_extract(j.value, '$.detail') AS detail
  FROM messages m, json_each(m.history) j;--> statement-breakpoint
CREATE TRIGGER `message_history_append` INSTEAD OF INSERT ON `message_history` BEGIN
  UPDATE messages SET history = json_insert(history, '$[#]',
    json_object('status', NEW.status, 'at', NEW.at, 'attempt', NEW.attempt, 'detail', NEW.detail))
  WHERE id = NEW.message_id;
END;
