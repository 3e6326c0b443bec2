// The live stream: a WebSocket opened with a one-time ticket (the key never travels in a URL),
// resumed after the last event seen, reopened with a growing wait when it drops, closed when the
// session ends. The bar's "live" mark says whether it is open.
import { api } from "./api.js";
import { onSessionEnd, session } from "./session.js";
import { $ } from "./view.js";

export const stream = {
  ws: null,
  seq: null,
  retry: 0,
  stopped: true,
  listeners: new Set(),
  async start() {
    this.stopped = false;
    if (this.ws) return;
    try {
      const { ticket } = await api("/v1/events/stream/tickets", { method: "POST" });
      const url = new URL("/v1/events/stream", location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("ticket", ticket);
      // Resume where the last connection stopped: nothing missed, nothing twice.
      if (this.seq !== null) url.searchParams.set("after", String(this.seq));
      const ws = new WebSocket(url);
      this.ws = ws;
      ws.onmessage = (m) => {
        const event = JSON.parse(m.data);
        if (event.type === "stream.ready") {
          this.seq ??= event.cursor;
          this.retry = 0;
          setLive(true);
          return;
        }
        this.seq = event.seq;
        for (const listener of this.listeners) listener(event);
      };
      ws.onclose = () => {
        this.ws = null;
        setLive(false);
        if (!this.stopped) setTimeout(() => this.start(), Math.min(10_000, 500 * 2 ** this.retry++));
      };
    } catch {
      this.ws = null;
      if (!this.stopped && session()) setTimeout(() => this.start(), Math.min(10_000, 500 * 2 ** this.retry++));
    }
  },
  stop() {
    this.stopped = true;
    this.seq = null;
    this.ws?.close(1000, "signed out");
    this.ws = null;
    setLive(false);
  },
};

onSessionEnd(() => stream.stop());

function setLive(on) {
  const el = $("live");
  el.textContent = on ? "live" : "offline";
  el.classList.toggle("on", on);
}
