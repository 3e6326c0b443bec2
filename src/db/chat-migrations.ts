// chat_migrations: chats that moved to a new address (a Telegram group upgraded to a supergroup).
// The lane reads the new address with the message row (contact-lane.ts messageRow) and records a
// move here when a provider reports one.
import { sql } from "drizzle-orm";

export const chatMovedStatement = (instanceId: string, fromChat: string, toChat: string, at: number) =>
  sql`INSERT INTO chat_migrations (instance_id, from_chat, to_chat, at) VALUES (${instanceId}, ${fromChat}, ${toChat}, ${at})
    ON CONFLICT (instance_id, from_chat) DO UPDATE SET to_chat = excluded.to_chat, at = excluded.at`;
