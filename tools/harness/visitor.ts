// A web chat visitor for end-to-end tests and the benchmark, as a page would be: one socket (Node's
// WebSocket), reconnecting after a drop, acknowledging every message frame it receives, and sending
// its messages with a clientMessageId again until one is answered `queued` (the gateway stores a
// resend once).

export type Frame = { type: string; data: Record<string, any> };
type Pending = { content: string; clientMessageId: string };

export type Visitor = {
  /** Every frame received, over every connection, in order. */
  frames: Frame[];
  /** How many times the socket opened. */
  connects: number;
  /** Sends a message; resent on each reconnect until it is `queued`. */
  say(content: string, clientMessageId: string): void;
  /** Sends a raw frame on the open socket (nothing when closed). */
  raw(data: string): boolean;
  isOpen(): boolean;
  /** Called with each frame as it arrives. */
  onFrame?: (f: Frame, at: number) => void;
  close(): void;
};

export function openVisitor(url: string, opts: { ack?: boolean; retryMs?: number } = {}): Visitor {
  const pending = new Map<string, Pending>();
  let ws: WebSocket | undefined;
  let stopped = false;
  const retryMs = opts.retryMs ?? 250;

  const v: Visitor = {
    frames: [],
    connects: 0,
    say(content, clientMessageId) {
      pending.set(clientMessageId, { content, clientMessageId });
      v.raw(JSON.stringify({ type: "message", data: { content, clientMessageId } }));
    },
    raw(data) {
      if (ws?.readyState !== WebSocket.OPEN) return false;
      ws.send(data);
      return true;
    },
    isOpen: () => ws?.readyState === WebSocket.OPEN,
    close() {
      stopped = true;
      ws?.close(1000, "done");
    },
  };

  const connect = () => {
    const socket = new WebSocket(url);
    ws = socket;
    socket.addEventListener("open", () => {
      v.connects++;
      for (const p of pending.values()) socket.send(JSON.stringify({ type: "message", data: p }));
    });
    socket.addEventListener("message", (e) => {
      const f = JSON.parse(String(e.data)) as Frame;
      v.frames.push(f);
      v.onFrame?.(f, performance.now());
      if (f.type === "queued" && f.data.clientMessageId) pending.delete(f.data.clientMessageId);
      if (f.type === "message" && opts.ack !== false) socket.send(JSON.stringify({ type: "ack", data: { messageId: f.data.messageId } }));
    });
    // A refused upgrade or a dropped socket: try again after a pause (the page's backoff). A failed
    // connect may report only `error` (Node's WebSocket), a drop only `close`: once per socket.
    let retried = false;
    const retry = () => {
      if (stopped || retried) return;
      retried = true;
      setTimeout(connect, retryMs);
    };
    socket.addEventListener("close", retry);
    socket.addEventListener("error", retry);
  };
  connect();
  return v;
}
