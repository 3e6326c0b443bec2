-- Web chat: the origins whose pages may open a visitor's socket (a JSON array; null: any origin).
ALTER TABLE `instances` ADD `web_allowed_origins` text;
