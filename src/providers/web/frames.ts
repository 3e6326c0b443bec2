// The frames of the visitor's socket, in the shapes the older web chat used: {"type", "data"}.
import { z } from "zod";
import { MAX_TEXT } from "./limits.ts";

/** Larger frames are refused with an error frame before they are parsed. */
export const MAX_FRAME_BYTES = 16 * 1024;
/** Frames of any kind one socket may send a minute, and `message` frames one visitor may send a
 *  minute (all tabs together); past them, an error frame and the frame is dropped. */
export const FRAMES_PER_MINUTE = 120;
export const MESSAGES_PER_MINUTE = 30;

const messageId = z.string().min(1).max(100);

export const clientFrame = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("message"),
    data: z.object({ content: z.string().trim().min(1).max(MAX_TEXT), clientMessageId: z.string().min(1).max(100).optional() }),
  }),
  z.object({ type: z.literal("ack"), data: z.object({ messageId }) }),
  z.object({ type: z.literal("read"), data: z.object({ messageId }) }),
]);
export type ClientFrame = z.infer<typeof clientFrame>;

export type ErrorCode =
  | "bad_frame"
  | "too_large"
  | "rate_limited"
  | "unknown_message"
  | "unavailable"
  // The last frame before the gateway closes the socket (close code 1008).
  | "token_revoked"
  | "token_expired"
  | "instance_removed";

export const frame = {
  connected: (socketId: string, conversationId: string, visitorId: string) => ({ type: "connected", data: { socketId, conversationId, visitorId } }),
  queued: (messageId: string, clientMessageId: string | null) => ({ type: "queued", data: { messageId, clientMessageId } }),
  processing: (messageId: string, conversationId: string) => ({ type: "processing", data: { messageId, conversationId, status: "processing" } }),
  message: (m: { messageId: string; conversationId: string; text: string | null; media: unknown; at: number }) => ({
    type: "message",
    data: {
      messageId: m.messageId,
      conversationId: m.conversationId,
      message: m.text ?? "",
      timestamp: new Date(m.at).toISOString(),
      metadata: m.media ? { media: m.media } : {},
    },
  }),
  error: (code: ErrorCode, message: string) => ({ type: "error", data: { code, message } }),
};
