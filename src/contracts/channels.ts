// The channels a message can travel on: what the recipient sees. Every message, inbound message,
// event, callback, Kafka record and automation call says which.
import { z } from "zod";

export const channels = ["whatsapp", "telegram", "web"] as const;
export const channel = z.enum(channels);
export type Channel = z.infer<typeof channel>;
