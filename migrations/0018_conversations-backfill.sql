-- A conversation's channel is its instance's (the inbox filters by it); the triggers that create
-- conversations leave the column at its default.
CREATE TRIGGER `conversations_channel` AFTER INSERT ON `conversations`
BEGIN
	UPDATE conversations SET channel = COALESCE((SELECT channel FROM instances WHERE id = NEW.instance_id), channel) WHERE id = NEW.id;
END;
--> statement-breakpoint
UPDATE conversations SET channel = (SELECT i.channel FROM instances i WHERE i.id = conversations.instance_id)
	WHERE EXISTS (SELECT 1 FROM instances i WHERE i.id = conversations.instance_id AND i.channel != conversations.channel);
--> statement-breakpoint
-- Conversations whose messages were all stored before the triggers existed: one row per instance
-- and contact, with the same columns the triggers keep. The contact key of an outbound message is
-- the triggers' (a Brazilian mobile in its 13-digit form). Unread counts the contact's messages
-- after the last one the other side sent (a reply means someone read them). A conversation the
-- triggers already made keeps its row (its last message is the newest), gaining a missing name.
WITH stored AS (
	SELECT tenant_id, instance_id, instance_name, channel, contact, id, received_at AS at,
		CASE WHEN from_me = 1 THEN 'out' ELSE 'in' END AS direction, text,
		CASE WHEN from_me = 0 AND substr(contact, -5) != '@g.us' THEN push_name END AS name
	FROM inbound_messages
	UNION ALL
	SELECT tenant_id, instance_id, instance_name, channel,
		CASE WHEN length("to") = 12 AND "to" NOT GLOB '*[^0-9]*' AND substr("to", 1, 2) = '55'
			AND substr("to", 3, 1) != '0' AND substr("to", 4, 1) != '0' AND substr("to", 5, 1) BETWEEN '6' AND '9'
			THEN substr("to", 1, 4) || '9' || substr("to", 5) ELSE "to" END,
		id, created_at, 'out', text, NULL
	FROM messages
),
ranked AS (
	SELECT *,
		ROW_NUMBER() OVER (PARTITION BY instance_id, contact ORDER BY at DESC, id DESC) AS newest,
		MAX(CASE WHEN direction = 'out' THEN at END) OVER (PARTITION BY instance_id, contact) AS replied_at,
		FIRST_VALUE(name) OVER (PARTITION BY instance_id, contact ORDER BY name IS NULL, at DESC) AS last_name
	FROM stored
),
counted AS (
	SELECT *, SUM(CASE WHEN direction = 'in' AND at > COALESCE(replied_at, -1) THEN 1 ELSE 0 END) OVER (PARTITION BY instance_id, contact) AS unread
	FROM ranked
)
INSERT INTO conversations (tenant_id, instance_id, instance_name, contact, channel, name, last_at, last_id, last_direction, last_text, unread)
SELECT tenant_id, instance_id, instance_name, contact, channel, last_name, at, id, direction, substr(text, 1, 200), unread
FROM counted
WHERE newest = 1
ON CONFLICT (instance_id, contact) DO UPDATE SET name = COALESCE(conversations.name, excluded.name);
