// TenantStream: one per tenant. Fans the tenant's outbox events out to WebSocket clients (the
// console, tenants' web apps) with the hibernation API, in outbox order, each socket from its own
// cursor, so a client that reconnects with `after=<last seq seen>` misses and repeats nothing.
//
// Events reach it by reading the outbox (D1) on its alarm, only while sockets are connected: every
// writer of the outbox (API, lanes, webhook consumer, sweep) stays untouched, no nudge can be lost,
// and the outbox stays the one order. The alarm runs every STREAM_POLL_MS (0.3 s) while a socket
// is open and stops with the last one: an accepted message is on screen well within a second.
//
// Each socket is tagged with the API key that opened it (directly, or through the key that got
// its ticket): revoking the key closes its sockets at once, and the alarm checks the keys again
// every STREAM_REVALIDATE_MS in case that close was missed.
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import { liveKeyIds } from "../auth/api-keys.ts";
import { database } from "../db/client.ts";
import { randomToken } from "../ids.ts";
import { type EventRow, eventView } from "../outbox/view.ts";

export const STREAM_POLL_MS = 300;
const PAGE = 200;
const TICKET_TTL_MS = 60_000;
export const STREAM_REVALIDATE_MS = 60_000;
/** Close code for a socket whose API key was revoked (1008: policy violation). */
export const KEY_REVOKED_CLOSE = 1008;

const keyTag = (keyId: string) => `key:${keyId}`;

export const streamEventTypes = ["message.status", "message.received", "instance.status", "conversation.handoff"] as const;

export const streamOptions = z.object({
  tenantId: z.string().min(1),
  keyId: z.string().min(1),
  after: z.int().min(0).optional(),
  types: z.array(z.enum(streamEventTypes)).optional(),
  contact: z.string().optional(),
  instance: z.string().optional(),
});
export type StreamOptions = z.infer<typeof streamOptions>;

// What each socket remembers across hibernation (at most 2 KiB serialized).
const attachment = z.object({
  cursor: z.int(),
  keyId: z.string().optional(),
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
    const sql = ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS tickets (ticket TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, key_id TEXT)");
    // Objects created before tickets named their key.
    if (
      !sql
        .exec<{ name: string }>("SELECT name FROM pragma_table_info('tickets')")
        .toArray()
        .some((c) => c.name === "key_id")
    ) {
      sql.exec("ALTER TABLE tickets ADD COLUMN key_id TEXT");
    }
    sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    // Keep-alives answered without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  /** A one-time ticket for a browser, which cannot put an API key on a WebSocket request. */
  issueTicket(tenantId: string, keyId: string, now = Date.now()): { ticket: string; expiresAt: number } {
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM tickets WHERE expires_at < ?", now);
    const ticket = `${tenantId}.${randomToken(24)}`;
    sql.exec("INSERT INTO tickets (ticket, expires_at, key_id) VALUES (?, ?, ?)", ticket, now + TICKET_TTL_MS, keyId);
    return { ticket, expiresAt: now + TICKET_TTL_MS };
  }

  /** Spends a ticket: the id of the key that got it, once, within its lifetime. */
  redeemTicket(ticket: string, now = Date.now()): string | undefined {
    const rows = this.ctx.storage.sql
      .exec<{ expires_at: number; key_id: string | null }>("DELETE FROM tickets WHERE ticket = ? RETURNING expires_at, key_id", ticket)
      .toArray();
    const row = rows[0];
    return row && row.expires_at >= now && row.key_id ? row.key_id : undefined;
  }

  /** A key was revoked: its sockets close now. Answers how many. */
  closeKey(keyId: string): number {
    const sockets = this.ctx.getWebSockets(keyTag(keyId));
    for (const ws of sockets) closeQuietly(ws, KEY_REVOKED_CLOSE, "API key revoked");
    return sockets.length;
  }

  /** The upgrade, already authenticated by the Worker, which passes the options in a header. */
  async fetch(request: Request): Promise<Response> {
    const options = streamOptions.parse(JSON.parse(request.headers.get("x-stream-options") ?? "null"));
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('tenantId', ?)", options.tenantId);
    const cursor = options.after ?? (await this.lastSeq(options.tenantId));
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [keyTag(options.keyId)]);
    const state: Attachment = { cursor, keyId: options.keyId, types: options.types, contact: options.contact, instance: options.instance };
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
      await this.revalidate(sockets);
      again = (await this.pump(this.ctx.getWebSockets())) ? 0 : STREAM_POLL_MS;
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

  /** Every STREAM_REVALIDATE_MS: closes the sockets whose key has been revoked since they opened. */
  private async revalidate(sockets: WebSocket[], now = Date.now()): Promise<void> {
    const sql = this.ctx.storage.sql;
    const checkedAt = Number(sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'keysCheckedAt'").toArray()[0]?.value ?? 0);
    if (now - checkedAt < STREAM_REVALIDATE_MS) return;
    const keyOf = new Map(sockets.map((ws) => [ws, attachment.safeParse(ws.deserializeAttachment()).data?.keyId]));
    const keyIds = [...new Set([...keyOf.values()].filter((k) => k !== undefined))];
    const live = await liveKeyIds(database(this.env.DB), keyIds);
    for (const [ws, keyId] of keyOf) if (keyId === undefined || !live.has(keyId)) closeQuietly(ws, KEY_REVOKED_CLOSE, "API key revoked");
    sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('keysCheckedAt', ?)", String(now));
  }

  /** Sends one page of events to every socket behind it; true when a full page suggests more. */
  private async pump(sockets: WebSocket[]): Promise<boolean> {
    const tenantId = this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'tenantId'").toArray()[0]?.value;
    if (!tenantId) return false;
    // A closing socket no longer holds the others back.
    const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
    const states = open.map((ws) => ({ ws, state: attachment.safeParse(ws.deserializeAttachment()).data }));
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
      } catch (err) {
        // A socket that cannot take a message is dropped: kept, its cursor would hold every other
        // socket back and the full page behind it would re-run at once, forever.
        console.error(JSON.stringify({ level: "warn", msg: "stream socket dropped", error: String(err) }));
        closeQuietly(ws, 1011, "send failed");
      }
    }
    return results.length === PAGE;
  }

  private async lastSeq(tenantId: string): Promise<number> {
    const row = await this.env.DB.prepare("SELECT MAX(seq) AS seq FROM outbox_events WHERE tenant_id = ?").bind(tenantId).first<{ seq: number | null }>();
    return row?.seq ?? 0;
  }
}

function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed.
  }
}
