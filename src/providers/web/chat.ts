// VisitorChat: one per visitor conversation (tenant, instance, visitor). Holds the visitor's sockets
// with the hibernation API (a visitor may have several tabs open; each gets every frame) and the
// messages sent to the visitor, kept until a tab acknowledges them: every connect replays, in order,
// each one not acknowledged yet, so nothing sent while the visitor was away is lost.
//
// A visitor's `message` frame becomes an inbound message of the instance (stored in D1 and offered to
// its automation like a WhatsApp or Telegram one); `ack` and `read` are the receipts of the messages
// sent to the visitor. Both go through the gateway's inbound door: this room only hands them over
// (`received`, `receipted`), and the Durable Object class the Worker exports (src/webhooks/) is this
// room with its door.
//
// A socket lives no longer than its token: each remembers its token's expiry, and the object's alarm
// (armed for the earliest one) closes those past it. Revoking the visitor's tokens (a time kept in
// storage: tokens minted up to it are refused at connect) closes its open sockets at once. Closing
// sends a last `error` frame saying why, then close code 1008.
import { DurableObject } from "cloudflare:workers";
import { and, eq } from "drizzle-orm";
import { z } from "zod";
import { database } from "../../db/client.ts";
import { instances, type MediaJson } from "../../db/schema.ts";
import { newId } from "../../ids.ts";
import { log } from "../../observability/log.ts";
import type { InboundMessage, ReceiptKind } from "../provider.ts";
import { clientFrame, type ErrorCode, FRAMES_PER_MINUTE, frame, MAX_FRAME_BYTES, MESSAGES_PER_MINUTE } from "./frames.ts";

export const chatOf = (env: Env, tenantId: string, instanceId: string, visitorId: string) =>
  env.WEB_CHATS.get(env.WEB_CHATS.idFromName(`${tenantId}:${instanceId}:${visitorId}`));

/** The visitor, as the Worker checked it from the token, handed to the object in this header. */
export const VISITOR_HEADER = "x-web-chat-visitor";

export type Delivery = { messageId: string; text: string | null; media: MediaJson | null; at: number };

const visitor = z.object({
  tenantId: z.string().min(1),
  instanceId: z.string().min(1),
  instanceName: z.string().min(1),
  visitorId: z.string().min(1),
  name: z.string().nullable(),
  // The token's, epoch ms.
  issuedAt: z.number().default(0),
  expiresAt: z.number().default(Number.MAX_SAFE_INTEGER),
});
// What each socket remembers across hibernation: who, its token's times, and its frames in the current minute.
const attachment = visitor.extend({ socketId: z.string(), windowStart: z.number().default(0), frames: z.int().default(0) });
type Attachment = z.infer<typeof attachment>;

const MINUTE_MS = 60_000;
/** Close code of a socket whose token no longer holds (policy violation). */
const CLOSE_POLICY = 1008;
const REVOKED_BEFORE = "revokedBefore";

type OutboundRow = { message_id: string; text: string | null; media: string | null; at: number };

/** Whose conversation a frame came in on. */
export type VisitorTarget = { tenantId: string; instanceId: string; instanceName: string };

export abstract class VisitorChatRoom extends DurableObject<Env> {
  /** Stores the visitor's message as an inbound message of the instance; answers its stored id. */
  protected abstract received(target: VisitorTarget, message: InboundMessage): Promise<string | undefined>;
  /** A receipt for a message sent to the visitor (its provider id is its own id). */
  protected abstract receipted(instanceId: string, messageId: string, status: ReceiptKind, at: number): Promise<void>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS outbound (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      message_id TEXT NOT NULL UNIQUE,
      text TEXT,
      media TEXT,
      at INTEGER NOT NULL,
      acked INTEGER NOT NULL DEFAULT 0)`);
    // Keep-alives answered without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  private get conversationId(): string {
    return this.ctx.id.toString();
  }

  /** Stores a message for the visitor and pushes it to every open tab; a second call with the same
   *  id stores and pushes nothing. */
  deliver(m: Delivery): void {
    const media = m.media ? JSON.stringify(m.media) : null;
    const cursor = this.ctx.storage.sql.exec(
      "INSERT INTO outbound (message_id, text, media, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING seq",
      m.messageId,
      m.text,
      media,
      m.at,
    );
    if (cursor.toArray().length === 0) return;
    const out = JSON.stringify(frame.message({ ...m, conversationId: this.conversationId }));
    for (const ws of this.ctx.getWebSockets()) sendQuietly(ws, out);
  }

  /** The visitor's messages went to the handler: every tab hears it. */
  processing(inboundIds: string[]): void {
    for (const id of inboundIds) {
      const out = JSON.stringify(frame.processing(id, this.conversationId));
      for (const ws of this.ctx.getWebSockets()) sendQuietly(ws, out);
    }
  }

  /** Whether a message with this id was stored for the visitor. */
  holds(messageId: string): boolean {
    return this.ctx.storage.sql.exec("SELECT 1 FROM outbound WHERE message_id = ?", messageId).toArray().length > 0;
  }

  /** Revokes every token of the visitor minted up to now and closes the sockets they opened. */
  revoke(): { revokedBefore: number; socketsClosed: number } {
    const revokedBefore = Date.now();
    this.ctx.storage.kv.put(REVOKED_BEFORE, revokedBefore);
    let socketsClosed = 0;
    for (const ws of this.ctx.getWebSockets()) {
      const s = attachment.safeParse(ws.deserializeAttachment()).data;
      if (s && s.issuedAt > revokedBefore) continue;
      this.end(ws, "token_revoked", "This visitor's token was revoked.");
      socketsClosed++;
    }
    return { revokedBefore, socketsClosed };
  }

  /** Whether a token minted at issuedAt still admits the visitor (not revoked since). */
  admits(issuedAt: number): boolean {
    return !this.revoked(issuedAt);
  }

  private revoked(issuedAt: number): boolean {
    const before = this.ctx.storage.kv.get<number>(REVOKED_BEFORE);
    return before !== undefined && issuedAt <= before;
  }

  /** The upgrade, the token's signature and expiry already checked by the Worker; a revoked token
   *  is refused here (401), before the upgrade. */
  async fetch(request: Request): Promise<Response> {
    const v = visitor.parse(JSON.parse(request.headers.get(VISITOR_HEADER) ?? "null"));
    if (this.revoked(v.issuedAt)) return new Response(null, { status: 401 });
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    const state: Attachment = { ...v, socketId: newId("sock"), windowStart: 0, frames: 0 };
    server.serializeAttachment(state);
    server.send(JSON.stringify(frame.connected(state.socketId, this.conversationId, v.visitorId)));
    // What arrived while the visitor was away, in the order it was sent.
    const waiting = this.ctx.storage.sql.exec<OutboundRow>("SELECT message_id, text, media, at FROM outbound WHERE acked = 0 ORDER BY seq").toArray();
    for (const row of waiting) server.send(JSON.stringify(frame.message(this.viewOf(row))));
    await this.armFor(v.expiresAt);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Closes the sockets whose token expired, and re-arms for the next expiry. */
  async alarm(): Promise<void> {
    const now = Date.now();
    let next: number | undefined;
    for (const ws of this.ctx.getWebSockets()) {
      const s = attachment.safeParse(ws.deserializeAttachment()).data;
      if (!s) continue;
      if (s.expiresAt <= now) this.end(ws, "token_expired", "This visitor's token expired: get a new one from the site.");
      else next = Math.min(next ?? s.expiresAt, s.expiresAt);
    }
    if (next !== undefined) await this.armFor(next);
  }

  // The alarm serves the earliest expiry of the open sockets.
  private async armFor(expiresAt: number): Promise<void> {
    if (expiresAt >= Number.MAX_SAFE_INTEGER) return;
    const armed = await this.ctx.storage.getAlarm();
    if (armed === null || armed > expiresAt) await this.ctx.storage.setAlarm(expiresAt);
  }

  /** A last error frame saying why, then the close. */
  private end(ws: WebSocket, code: ErrorCode, message: string): void {
    sendQuietly(ws, JSON.stringify(frame.error(code, message)));
    closeQuietly(ws, CLOSE_POLICY, code);
  }

  async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    const state = attachment.safeParse(ws.deserializeAttachment()).data;
    if (!state) return closeQuietly(ws, 1011, "lost state");
    const now = Date.now();
    // The alarm may run late, and a revocation closes sockets itself; checked again here, cheaply.
    if (state.expiresAt <= now) return this.end(ws, "token_expired", "This visitor's token expired: get a new one from the site.");
    if (this.revoked(state.issuedAt)) return this.end(ws, "token_revoked", "This visitor's token was revoked.");
    const fresh = now - state.windowStart >= MINUTE_MS;
    const counted = { ...state, windowStart: fresh ? now : state.windowStart, frames: fresh ? 1 : state.frames + 1 };
    ws.serializeAttachment(counted);
    if (counted.frames > FRAMES_PER_MINUTE) return this.refuse(ws, "rate_limited", `At most ${FRAMES_PER_MINUTE} frames a minute per socket.`);
    const size = typeof data === "string" ? new TextEncoder().encode(data).byteLength : data.byteLength;
    if (size > MAX_FRAME_BYTES) return this.refuse(ws, "too_large", `Frames are at most ${MAX_FRAME_BYTES} bytes.`);
    if (typeof data !== "string") return this.refuse(ws, "bad_frame", "Frames are JSON text.");
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return this.refuse(ws, "bad_frame", "Not JSON.");
    }
    const f = clientFrame.safeParse(parsed);
    if (!f.success) {
      const issue = f.error.issues[0];
      return this.refuse(ws, "bad_frame", `${issue?.path.join(".") || "frame"}: ${issue?.message ?? "invalid"}`);
    }
    try {
      if (f.data.type === "message") {
        if (!this.takeMessageSlot(now)) return this.refuse(ws, "rate_limited", `At most ${MESSAGES_PER_MINUTE} messages a minute; wait a moment.`);
        // A removed instance's sockets stay open until their token expires or they write: then they close.
        if (!(await this.instanceExists(state))) return this.end(ws, "instance_removed", "This chat was removed.");
        await this.inbound(ws, state, f.data.data.content, f.data.data.clientMessageId ?? null);
      } else await this.receipt(ws, state, f.data.data.messageId, f.data.type === "ack" ? "delivered" : "read");
    } catch (err) {
      log("warn", "web chat frame failed", { conversationId: this.conversationId, error: String(err) });
      this.refuse(ws, "unavailable", "Could not handle the frame now; send it again.");
    }
  }

  webSocketClose(ws: WebSocket, code: number, reason: string): void {
    // 1005/1006 have no wire form; answer the close with a normal one.
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  webSocketError(ws: WebSocket): void {
    closeQuietly(ws, 1011, "error");
  }

  // The visitor wrote: an inbound message of the instance, offered to its automation, then `queued`.
  private async inbound(ws: WebSocket, s: Attachment, content: string, clientMessageId: string | null): Promise<void> {
    const now = Date.now();
    // The client's id makes a resend after a dropped socket a duplicate, not a second message.
    const providerMessageId = clientMessageId ? `${s.visitorId}:${clientMessageId}` : newId("wchat");
    const storedId = await this.received(
      { tenantId: s.tenantId, instanceId: s.instanceId, instanceName: s.instanceName },
      {
        dedupeKey: `web:${providerMessageId}`,
        kind: "message",
        contact: s.visitorId,
        replyTo: s.visitorId,
        chat: s.visitorId,
        participant: null,
        providerMessageId,
        pushName: s.name,
        messageType: "text",
        text: content,
        media: null,
        isGroup: false,
        timestamp: now,
      },
    );
    // The inbound message's id: the one `processing` frames and the message's events carry.
    sendQuietly(ws, JSON.stringify(frame.queued(storedId ?? providerMessageId, clientMessageId)));
  }

  // A tab received (`ack`) or showed (`read`) a message sent to the visitor.
  private async receipt(ws: WebSocket, s: Attachment, messageId: string, status: ReceiptKind): Promise<void> {
    if (!this.holds(messageId)) return this.refuse(ws, "unknown_message", `No message ${messageId} in this conversation.`);
    // Acknowledged: not replayed on the next connect.
    this.ctx.storage.sql.exec("UPDATE outbound SET acked = 1 WHERE message_id = ?", messageId);
    await this.receipted(s.instanceId, messageId, status, Date.now());
  }

  private async instanceExists(s: Attachment): Promise<boolean> {
    const [row] = await database(this.env.DB)
      .select({ id: instances.id })
      .from(instances)
      .where(and(eq(instances.id, s.instanceId), eq(instances.tenantId, s.tenantId)));
    return row !== undefined;
  }

  // The visitor's messages this minute, across tabs (kept in storage: it survives hibernation).
  private takeMessageSlot(now: number): boolean {
    const kv = this.ctx.storage.kv;
    const w = kv.get<{ start: number; count: number }>("messageWindow");
    const next = w && now - w.start < MINUTE_MS ? { start: w.start, count: w.count + 1 } : { start: now, count: 1 };
    if (next.count > MESSAGES_PER_MINUTE) return false;
    kv.put("messageWindow", next);
    return true;
  }

  private refuse(ws: WebSocket, code: ErrorCode, message: string): void {
    sendQuietly(ws, JSON.stringify(frame.error(code, message)));
  }

  private viewOf(row: OutboundRow) {
    return { messageId: row.message_id, conversationId: this.conversationId, text: row.text, media: row.media ? JSON.parse(row.media) : null, at: row.at };
  }
}

function sendQuietly(ws: WebSocket, data: string): void {
  try {
    ws.send(data);
  } catch {
    // Closing: the message waits for the next connect.
  }
}

function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed.
  }
}
