// TenantStream: one per tenant. Fans the tenant's outbox events out to WebSocket clients (the
// console, tenants' web apps) with the hibernation API, in outbox order, each socket from its own
// cursor, so a client that reconnects with `after=<last seq seen>` misses and repeats nothing.
//
// Events reach it by reading the outbox (D1) on its alarm, only while sockets are connected: every
// writer of the outbox (API, lanes, webhook consumer, sweep) stays untouched, no nudge can be lost,
// and the outbox stays the one order. The alarm runs every STREAM_POLL_MS (0.3 s) while a socket
// is open and stops with the last one: an accepted message is on screen well within a second.
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { randomToken } from "../ids.ts";
import { eventView, type EventRow } from "../routes/events.ts";

export const STREAM_POLL_MS = 300;
const PAGE = 200;
const TICKET_TTL_MS = 60_000;

export const streamEventTypes = ["message.status", "message.received", "instance.status", "conversation.handoff"] as const;

export const streamOptions = z.object({
  tenantId: z.string().min(1),
  after: z.int().min(0).optional(),
  types: z.array(z.enum(streamEventTypes)).optional(),
  contact: z.string().optional(),
  instance: z.string().optional(),
});
export type StreamOptions = z.infer<typeof streamOptions>;

// What each socket remembers across hibernation (at most 2 KiB serialized).
const attachment = z.object({
  cursor: z.int(),
  types: z.array(z.string()).optional(),
  contact: z.string().optional(),
  instance: z.string().optional(),
});
type Attachment = z.infer<typeof attachment>;

function matches(a: Attachment, e: ReturnType<typeof eventView>): boolean {
  if (a.types && !a.types.includes(e.type)) return false;
  const data = z.object({ to: z.string().optional(), contact: z.string().optional(), instance: z.string().optional() }).safeParse(e.data).data;
  if (a.contact && data?.to !== a.contact && data?.contact !== a.contact) return false;
  if (a.instance && data?.instance !== a.instance) return false;
  return true;
}

export class TenantStream extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS tickets (ticket TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)");
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    // Keep-alives answered without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /** A one-time ticket for a browser, which cannot put an API key on a WebSocket request. */
  issueTicket(tenantId: string, now = Date.now()): { ticket: string; expiresAt: number } {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM tickets WHERE expires_at < ?", now);
    const ticket = `${tenantId}.${randomToken(24)}`;
    sql.exec("INSERT INTO tickets (ticket, expires_at) VALUES (?, ?)", ticket, now + TICKET_TTL_MS);
    return { ticket, expiresAt: now + TICKET_TTL_MS };
  }

  /** Spends a ticket: true once, within its lifetime. */
  redeemTicket(ticket: string, now = Date.now()): boolean {
    const rows = this.ctx.storage.sql.exec<{ expires_at: number }>("DELETE FROM tickets WHERE ticket = ? RETURNING expires_at", ticket).toArray();
    return rows.length === 1 && rows[0]!.expires_at >= now;
  }

  /** The upgrade, already authenticated by the Worker, which passes the options in a header. */
  async fetch(request: Request): Promise<Response> {
    const options = streamOptions.parse(JSON.parse(request.headers.get("x-stream-options") ?? "null"));
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('tenantId', ?)", options.tenantId);
    const cursor = options.after ?? (await this.lastSeq(options.tenantId));
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    const state: Attachment = { cursor, types: options.types, contact: options.contact, instance: options.instance };
    server.serializeAttachment(state);
    server.send(JSON.stringify({ type: "stream.ready", cursor }));
    // Backlog (a resume) goes out at once; then the poll.
    await this.ctx.storage.setAlarm(Date.now());
    return new Response(null, { status: 101, webSocket: client });
  }

  async alarm(): Promise<void> {
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) return;
    let again = STREAM_POLL_MS;
    try {
      again = (await this.pump(sockets)) ? 0 : STREAM_POLL_MS;
    } catch (err) {
      console.error(JSON.stringify({ level: "error", msg: "stream pump failed", error: String(err) }));
    } finally {
      if (this.ctx.getWebSockets().length > 0) await this.ctx.storage.setAlarm(Date.now() + again);
    }
  }

  webSocketClose(ws: WebSocket, code: number, reason: string): void {
    // 1005/1006 have no wire form; answer the close with a normal one.
    ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  webSocketError(ws: WebSocket): void {
    ws.close(1011, "error");
  }

  /** Sends one page of events to every socket behind it; true when a full page suggests more. */
  private async pump(sockets: WebSocket[]): Promise<boolean> {
    const tenantId = this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'tenantId'").toArray()[0]?.value;
    if (!tenantId) return false;
    const states = sockets.map((ws) => ({ ws, state: attachment.safeParse(ws.deserializeAttachment()).data }));
    const cursors = states.flatMap((s) => (s.state ? [s.state.cursor] : []));
    if (cursors.length === 0) return false;
    const from = Math.min(...cursors);
    const { results } = await this.env.DB.prepare(
      "SELECT seq, event_id, type, version, occurred_at, data FROM outbox_events WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    )
      .bind(tenantId, from, PAGE)
      .all<EventRow>();
    const last = results.at(-1)?.seq;
    if (last === undefined) return false;
    const events = results.map(eventView);
    for (const { ws, state } of states) {
      if (!state || state.cursor >= last) continue;
      try {
        for (const e of events) if (e.seq > state.cursor && matches(state, e)) ws.send(JSON.stringify(e));
        // Filtered-out events move the cursor too: it says how far this socket has been served.
        ws.serializeAttachment({ ...state, cursor: last });
      } catch {
        // A socket closing under us: its close handler cleans up.
      }
    }
    return results.length === PAGE;
  }

  private async lastSeq(tenantId: string): Promise<number> {
    const row = await this.env.DB.prepare("SELECT MAX(seq) AS seq FROM outbox_events WHERE tenant_id = ?").bind(tenantId).first<{ seq: number | null }>();
    return row?.seq ?? 0;
  }
}
