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
--> statement-breakpoint
-- One row per conversation (an instance and a contact), kept by the triggers below as messages are
-- stored, so the inbox lists conversations by their last activity without reading their messages.
CREATE TABLE `conversations` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`tenant_id` text NOT NULL,
	`instance_id` text NOT NULL,
	`instance_name` text NOT NULL,
	`contact` text NOT NULL,
	`channel` text DEFAULT 'whatsapp' NOT NULL,
	`name` text,
	`last_at` integer NOT NULL,
	`last_id` text NOT NULL,
	`last_direction` text NOT NULL,
	`last_text` text,
	`unread` integer DEFAULT 0 NOT NULL,
	`read_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `conversations_contact` ON `conversations` (`instance_id`,`contact`);
--> statement-breakpoint
CREATE INDEX `conversations_recent` ON `conversations` (`tenant_id`,`last_at`,`id`);
--> statement-breakpoint
-- An inbound message (or one the phone sent, from_me): the contact's name from what they sent,
-- the last message when it is the newest, one more unread when the contact wrote.
CREATE TRIGGER `conversations_inbound` AFTER INSERT ON `inbound_messages`
BEGIN
	-- Only when missing: an INSERT OR IGNORE of an existing row still costs a row written.
	INSERT INTO conversations (tenant_id, instance_id, instance_name, contact, last_at, last_id, last_direction)
		SELECT NEW.tenant_id, NEW.instance_id, NEW.instance_name, NEW.contact, 0, '', 'in'
		WHERE NOT EXISTS (SELECT 1 FROM conversations WHERE instance_id = NEW.instance_id AND contact = NEW.contact);
	UPDATE conversations SET
		name = CASE WHEN NEW.from_me = 0 AND NEW.push_name IS NOT NULL AND substr(NEW.contact, -5) != '@g.us' THEN NEW.push_name ELSE name END,
		unread = unread + (CASE WHEN NEW.from_me = 0 THEN 1 ELSE 0 END),
		last_id = CASE WHEN NEW.received_at >= last_at THEN NEW.id ELSE last_id END,
		last_direction = CASE WHEN NEW.received_at >= last_at THEN (CASE WHEN NEW.from_me = 1 THEN 'out' ELSE 'in' END) ELSE last_direction END,
		last_text = CASE WHEN NEW.received_at >= last_at THEN substr(NEW.text, 1, 200) ELSE last_text END,
		last_at = MAX(last_at, NEW.received_at)
	WHERE instance_id = NEW.instance_id AND contact = NEW.contact;
END;
--> statement-breakpoint
-- A message sent through the gateway, under its contact's key (a Brazilian mobile in its 13-digit
-- form: 55, an area code without zeros, a mobile's 8 digits; D1 limits GLOB patterns to 50 bytes).
CREATE TRIGGER `conversations_outbound` AFTER INSERT ON `messages`
BEGIN
	INSERT INTO conversations (tenant_id, instance_id, instance_name, contact, last_at, last_id, last_direction)
		SELECT NEW.tenant_id, NEW.instance_id, NEW.instance_name,
			CASE WHEN length(NEW."to") = 12 AND NEW."to" NOT GLOB '*[^0-9]*' AND substr(NEW."to", 1, 2) = '55'
			AND substr(NEW."to", 3, 1) != '0' AND substr(NEW."to", 4, 1) != '0' AND substr(NEW."to", 5, 1) BETWEEN '6' AND '9'
			THEN substr(NEW."to", 1, 4) || '9' || substr(NEW."to", 5) ELSE NEW."to" END,
			0, '', 'out'
		WHERE NOT EXISTS (SELECT 1 FROM conversations WHERE instance_id = NEW.instance_id AND contact = CASE WHEN length(NEW."to") = 12 AND NEW."to" NOT GLOB '*[^0-9]*' AND substr(NEW."to", 1, 2) = '55'
			AND substr(NEW."to", 3, 1) != '0' AND substr(NEW."to", 4, 1) != '0' AND substr(NEW."to", 5, 1) BETWEEN '6' AND '9'
			THEN substr(NEW."to", 1, 4) || '9' || substr(NEW."to", 5) ELSE NEW."to" END);
	UPDATE conversations SET
		last_id = CASE WHEN NEW.created_at >= last_at THEN NEW.id ELSE last_id END,
		last_direction = CASE WHEN NEW.created_at >= last_at THEN 'out' ELSE last_direction END,
		last_text = CASE WHEN NEW.created_at >= last_at THEN substr(NEW.text, 1, 200) ELSE last_text END,
		last_at = MAX(last_at, NEW.created_at)
	WHERE instance_id = NEW.instance_id
		AND contact = CASE WHEN length(NEW."to") = 12 AND NEW."to" NOT GLOB '*[^0-9]*' AND substr(NEW."to", 1, 2) = '55'
			AND substr(NEW."to", 3, 1) != '0' AND substr(NEW."to", 4, 1) != '0' AND substr(NEW."to", 5, 1) BETWEEN '6' AND '9'
			THEN substr(NEW."to", 1, 4) || '9' || substr(NEW."to", 5) ELSE NEW."to" END;
END;
