/*
 * mensageiro web chat widget: no dependencies, no build step.
 *
 *   <script src="https://GATEWAY/chat/widget.js" data-token="VISITOR_TOKEN" async></script>
 *
 * or, from the page's own script:
 *
 *   MensageiroChat.open({ token, url, getToken, target, title });
 *
 * token     the visitor token the site's backend minted (POST /v1/instances/:name/visitors);
 * url       the `url` of that answer (optional: derived from the script's origin);
 * getToken  async () => ({ token, url? }) for a fresh token when the one held expired
 *           (data-token-url="/path" does the same with a GET to the site's own backend);
 * target    an element or CSS selector to show the chat in; without it, a chat button in the corner;
 * title     the panel's heading (data-title), "Chat" by default.
 *
 * The widget lives in a shadow root with a constructed stylesheet, so it needs no inline style or
 * script in the page: a strict Content-Security-Policy only has to allow the gateway in script-src
 * and connect-src.
 */
(() => {
  if (window.MensageiroChat) return;

  const script = document.currentScript;
  const scriptOrigin = script?.src ? new URL(script.src, location.href).origin : location.origin;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 30_000;
  const PING_EVERY_MS = 25_000;
  // No frame (not even the answer to a ping) for this long: the connection is dead, open another.
  const SILENCE_MS = 60_000;
  const HISTORY_LIMIT = 50;
  // A handler that answers nothing: stop showing "Answering…" after this long.
  const TYPING_MS = 60_000;

  const CSS = `
:host { all: initial; display: block; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24; line-height: 1.4; }
* { box-sizing: border-box; }
.launcher { position: fixed; right: 16px; bottom: 16px; z-index: 2147483000; border: 0; border-radius: 24px; padding: 12px 18px;
  background: #0b5cad; color: #fff; font: inherit; font-weight: 600; cursor: pointer; box-shadow: 0 2px 8px rgba(0,0,0,.25); }
.panel { display: flex; flex-direction: column; background: #fff; border: 1px solid #d4d8de; border-radius: 12px; overflow: hidden; }
.floating { position: fixed; right: 16px; bottom: 76px; z-index: 2147483000; width: min(380px, calc(100vw - 16px));
  height: min(560px, calc(100vh - 96px)); box-shadow: 0 4px 24px rgba(0,0,0,.2); }
.inline { width: 100%; height: 100%; min-height: 360px; }
.floating[hidden], .launcher[hidden] { display: none; }
header { display: flex; align-items: center; gap: 8px; padding: 10px 12px; background: #f4f6f8; border-bottom: 1px solid #d4d8de; }
h2 { flex: 1; margin: 0; font-size: 1rem; }
.state { font-size: .8rem; color: #4f5661; }
.state.on::before { content: ""; display: inline-block; width: 8px; height: 8px; margin-right: 4px; border-radius: 50%; background: #146c2e; }
.close { border: 0; background: transparent; font: inherit; font-size: 1.3rem; line-height: 1; padding: 2px 6px; cursor: pointer; color: #1b1f24; }
ol { flex: 1; list-style: none; margin: 0; padding: 12px; overflow-y: auto; display: flex; flex-direction: column; gap: 8px; }
li { max-width: 85%; padding: 8px 10px; border-radius: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
li.outbound { align-self: flex-start; background: #eef1f4; border-bottom-left-radius: 4px; }
li.inbound { align-self: flex-end; background: #0b5cad; color: #fff; border-bottom-right-radius: 4px; }
li.inbound.failed { background: #fbe9e7; color: #1b1f24; border: 1px solid #b3261e; }
li a { color: inherit; }
.meta { display: block; margin-top: 2px; font-size: .72rem; opacity: .85; text-align: right; }
.typing { align-self: flex-start; font-size: .85rem; color: #4f5661; padding: 0 12px 6px; }
.notice { margin: 0; padding: 6px 12px; font-size: .85rem; background: #fff4e0; color: #5c3a00; }
.notice:empty, .typing:empty { display: none; }
form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #d4d8de; }
textarea { flex: 1; resize: none; min-height: 40px; max-height: 120px; padding: 8px 10px; border: 1px solid #8a929c; border-radius: 8px; font: inherit; color: inherit; }
button.send { border: 0; border-radius: 8px; padding: 0 16px; background: #0b5cad; color: #fff; font: inherit; font-weight: 600; cursor: pointer; }
button.retry { margin-left: 6px; border: 1px solid #b3261e; border-radius: 6px; background: #fff; color: #b3261e; font: inherit; font-size: .75rem; cursor: pointer; }
:focus-visible { outline: 3px solid #f2a900; outline-offset: 2px; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

  let instances = 0;

  /** The socket URL for a token: the mint answer's `url` with this token, or the gateway's /v1/chat. */
  function socketUrl(token, url) {
    const u = new URL(url || `${scriptOrigin.replace(/^http/, "ws")}/v1/chat`);
    u.searchParams.set("token", token);
    return u.toString();
  }

  /** The token's expiry (seconds), read from its payload without checking it (the gateway does). */
  function expiryOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).exp || 0;
    } catch {
      return 0;
    }
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function randomId() {
    return crypto.randomUUID ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  function open(options) {
    const opts = options || {};
    if (!opts.token && !opts.getToken) throw new Error("MensageiroChat.open needs a token (or getToken).");
    const n = ++instances;
    let token = opts.token || "";
    let url = opts.url || "";
    const title = opts.title || "Chat";
    const target = typeof opts.target === "string" ? document.querySelector(opts.target) : opts.target;

    // ── the view ──────────────────────────────────────────────────────────────────────────────
    const host = el("div", { "data-mensageiro-chat": "" });
    (target || document.body).appendChild(host);
    const root = host.attachShadow({ mode: "open" });
    if ("adoptedStyleSheets" in root && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.appendChild(el("style", {}, CSS));
    }
    const panelId = `mensageiro-chat-${n}`;
    const panel = el("section", { class: `panel ${target ? "inline" : "floating"}`, id: panelId, "aria-label": title });
    const header = el("header");
    header.append(el("h2", {}, title));
    const state = el("span", { class: "state", role: "status" }, "Connecting…");
    header.append(state);
    const list = el("ol", { role: "log", "aria-live": "polite", "aria-label": "Messages" });
    const typing = el("p", { class: "typing", "aria-live": "polite" });
    const notice = el("p", { class: "notice", role: "alert" });
    const form = el("form");
    const inputId = `${panelId}-input`;
    form.append(el("label", { for: inputId, class: "sr-only" }, "Your message"));
    const input = el("textarea", { id: inputId, rows: "1", maxlength: "4096", placeholder: "Write a message…", autocomplete: "off" });
    form.append(input, el("button", { type: "submit", class: "send" }, "Send"));
    let launcher = null;
    if (!target) {
      launcher = el("button", { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": panelId }, title);
      const close = el("button", { type: "button", class: "close", "aria-label": "Close chat" }, "×");
      header.append(close);
      panel.hidden = true;
      launcher.addEventListener("click", () => setOpen(panel.hidden));
      close.addEventListener("click", () => setOpen(false));
      panel.addEventListener("keydown", (e) => {
        if (e.key === "Escape") setOpen(false);
      });
      root.append(launcher);
    }
    panel.append(header, list, typing, notice, form);
    root.append(panel);

    function setOpen(show) {
      panel.hidden = !show;
      if (launcher) {
        launcher.setAttribute("aria-expanded", String(show));
        launcher.hidden = show && window.innerWidth < 480;
      }
      if (show) {
        input.focus();
        readShown();
      } else launcher?.focus();
    }

    // ── the conversation ──────────────────────────────────────────────────────────────────────
    // Items by key: "c:<clientMessageId>" for what this visitor wrote, "m:<messageId>" otherwise.
    // The order shown: the server's history first (its order), then what arrived since (arrival order).
    const items = new Map();
    let historyOrder = [];
    const arrivalOrder = [];
    const byMessageId = new Map();
    const pending = new Map();
    const readSent = new Set();

    function put(key, fields) {
      const item = items.get(key) || { key };
      Object.assign(item, fields);
      if (!items.has(key)) {
        items.set(key, item);
        arrivalOrder.push(key);
      }
      if (item.messageId) byMessageId.set(item.messageId, key);
      return item;
    }

    function render() {
      const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
      const inHistory = new Set(historyOrder);
      const keys = [...historyOrder, ...arrivalOrder.filter((k) => !inHistory.has(k))];
      list.replaceChildren(
        ...keys
          .map((k) => items.get(k))
          .filter(Boolean)
          .map(view),
      );
      if (nearBottom) list.scrollTop = list.scrollHeight;
    }

    function view(item) {
      const li = el("li", {
        class: `${item.direction}${item.status === "failed" ? " failed" : ""}`,
        "data-direction": item.direction,
        "data-status": item.status || "",
      });
      if (item.messageId) li.setAttribute("data-message-id", item.messageId);
      li.append(document.createTextNode(item.text));
      const media = item.media;
      if (media && typeof media.url === "string" && /^https?:/i.test(media.url)) {
        if (item.text) li.append(document.createTextNode("\n"));
        const a = el(
          "a",
          { href: media.url, target: "_blank", rel: "noopener noreferrer" },
          media.caption || media.fileName || `${media.type || "file"} attachment`,
        );
        li.append(a);
      }
      const when = item.at ? new Date(item.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
      const label = item.direction === "inbound" ? statusLabel(item.status) : "";
      const meta = el("span", { class: "meta" }, [when, label].filter(Boolean).join(" · "));
      li.append(meta);
      if (item.status === "failed") {
        const retry = el("button", { type: "button", class: "retry" }, "Retry");
        retry.addEventListener("click", () => {
          put(item.key, { status: "sending" });
          pending.set(item.clientMessageId, item);
          render();
          transmit(item);
        });
        meta.append(retry);
      }
      return li;
    }

    function statusLabel(status) {
      return { sending: "Sending…", queued: "Sent", processing: "Sent", failed: "Not sent" }[status] || "";
    }

    function showMessage(data) {
      const key = byMessageId.get(data.messageId) || `m:${data.messageId}`;
      put(key, {
        direction: "outbound",
        messageId: data.messageId,
        text: data.message || "",
        media: data.metadata?.media,
        at: Date.parse(data.timestamp) || Date.now(),
      });
      typing.textContent = "";
      clearTimeout(typingTimer);
    }

    // Read receipts for what the visitor can see: the panel open and the tab in front.
    function readShown() {
      if (panel.hidden || document.visibilityState !== "visible") return;
      for (const item of items.values()) {
        if (item.direction !== "outbound" || !item.messageId || item.read || readSent.has(item.messageId)) continue;
        if (sendFrame({ type: "read", data: { messageId: item.messageId } })) readSent.add(item.messageId);
      }
    }
    document.addEventListener("visibilitychange", readShown);

    async function loadHistory() {
      try {
        const base = new URL(socketUrl(token, url));
        base.protocol = base.protocol === "wss:" ? "https:" : "http:";
        const res = await fetch(`${base.origin}/v1/chat/history?limit=${HISTORY_LIMIT}`, { headers: { authorization: `Bearer ${token}` } });
        if (!res.ok) return;
        const body = await res.json();
        const keys = [];
        for (const m of body.messages || []) {
          const key = m.direction === "inbound" && m.clientMessageId ? `c:${m.clientMessageId}` : byMessageId.get(m.messageId) || `m:${m.messageId}`;
          const known = items.get(key);
          put(key, {
            direction: m.direction,
            messageId: m.messageId,
            clientMessageId: m.clientMessageId,
            text: m.message || "",
            media: m.metadata?.media,
            at: Date.parse(m.timestamp) || known?.at,
            status: m.direction === "inbound" ? (known?.status === "processing" ? "processing" : "queued") : m.status,
            read: m.status === "read" || known?.read,
          });
          if (m.clientMessageId) pending.delete(m.clientMessageId);
          keys.push(key);
        }
        historyOrder = keys;
        render();
        readShown();
      } catch {
        // The frames still carry what is new; the history is a courtesy.
      }
    }

    // ── the socket ────────────────────────────────────────────────────────────────────────────
    let ws = null;
    let attempt = 0;
    let failedOpens = 0;
    let retryTimer = 0;
    let pingTimer = 0;
    let lastFrameAt = 0;
    let stopped = false;
    let typingTimer = 0;

    function sendFrame(f) {
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(f));
      return true;
    }

    function transmit(item) {
      sendFrame({ type: "message", data: { content: item.text, clientMessageId: item.clientMessageId } });
    }

    async function freshToken() {
      if (!opts.getToken) return;
      try {
        const next = await opts.getToken();
        if (next?.token) {
          token = next.token;
          url = next.url || url;
        }
      } catch {
        // Try again at the next reconnect.
      }
    }

    async function connect() {
      if (stopped) return;
      const expired = expiryOf(token) * 1000 < Date.now() + 5_000;
      if (!token || expired || failedOpens >= 2) await freshToken();
      if (stopped || !token) return;
      if (expiryOf(token) * 1000 < Date.now() && !opts.getToken) {
        // Nothing to open the socket with: say so instead of knocking forever.
        state.textContent = "Offline";
        notice.textContent = "This chat session has expired. Reload the page to continue.";
        return;
      }
      state.textContent = attempt ? "Reconnecting…" : "Connecting…";
      state.className = "state";
      let opened = false;
      const socket = new WebSocket(socketUrl(token, url));
      ws = socket;
      socket.addEventListener("open", () => {
        opened = true;
        failedOpens = 0;
      });
      socket.addEventListener("message", (e) => {
        lastFrameAt = Date.now();
        if (e.data === "pong") return;
        let f;
        try {
          f = JSON.parse(e.data);
        } catch {
          return;
        }
        onFrame(f);
      });
      socket.addEventListener("close", () => {
        if (ws !== socket) return;
        ws = null;
        clearInterval(pingTimer);
        if (!opened) failedOpens++;
        scheduleReconnect();
      });
    }

    function scheduleReconnect() {
      if (stopped) return;
      // Exponential backoff with full jitter: many visitors dropped together do not come back together.
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
      const delay = Math.max(250, Math.random() * ceiling);
      attempt++;
      state.className = "state";
      state.textContent = navigator.onLine === false ? "Offline" : `Reconnecting in ${Math.ceil(delay / 1000)} s…`;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, delay);
    }
    window.addEventListener("online", () => {
      if (!ws && !stopped) {
        clearTimeout(retryTimer);
        connect();
      }
    });

    function onFrame(f) {
      const data = f.data || {};
      switch (f.type) {
        case "connected": {
          attempt = 0;
          state.textContent = "Online";
          state.className = "state on";
          notice.textContent = "";
          clearInterval(pingTimer);
          pingTimer = setInterval(() => {
            if (Date.now() - lastFrameAt > SILENCE_MS) ws?.close(4000, "silent");
            else ws?.send("ping");
          }, PING_EVERY_MS);
          // Written while the socket was down: sent again with the same clientMessageId, stored once.
          for (const item of pending.values()) if (item.status === "sending") transmit(item);
          loadHistory();
          break;
        }
        case "queued": {
          const item = data.clientMessageId && items.get(`c:${data.clientMessageId}`);
          if (item) {
            pending.delete(data.clientMessageId);
            put(item.key, { messageId: data.messageId, status: item.status === "processing" ? "processing" : "queued" });
            render();
          }
          break;
        }
        case "processing": {
          const key = byMessageId.get(data.messageId);
          if (key) put(key, { status: "processing" });
          // Written in another tab: fetch it, so this tab shows the question before the answer.
          else loadHistory();
          typing.textContent = "Answering…";
          clearTimeout(typingTimer);
          typingTimer = setTimeout(() => {
            typing.textContent = "";
          }, TYPING_MS);
          render();
          break;
        }
        case "message": {
          showMessage(data);
          sendFrame({ type: "ack", data: { messageId: data.messageId } });
          render();
          readShown();
          break;
        }
        case "error": {
          notice.textContent = data.message || "Something went wrong.";
          // A refused message frame: what this socket sent and is still waiting on can be retried.
          if (["rate_limited", "unavailable", "too_large", "bad_frame"].includes(data.code)) {
            for (const item of pending.values()) if (item.status === "sending") item.status = "failed";
            render();
          }
          break;
        }
      }
    }

    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      const clientMessageId = randomId();
      const item = put(`c:${clientMessageId}`, { direction: "inbound", clientMessageId, text, at: Date.now(), status: "sending" });
      pending.set(clientMessageId, item);
      render();
      transmit(item);
      list.scrollTop = list.scrollHeight;
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });

    connect();
    return {
      /** Closes the socket and removes the widget. */
      close() {
        stopped = true;
        clearTimeout(retryTimer);
        clearInterval(pingTimer);
        ws?.close(1000, "closed");
        document.removeEventListener("visibilitychange", readShown);
        host.remove();
      },
      /** Shows (or hides) the floating panel. */
      show(visible = true) {
        if (launcher) setOpen(visible);
      },
    };
  }

  window.MensageiroChat = { open };

  // <script … data-token="…"> (and optionally data-url, data-token-url, data-target, data-title).
  const d = script?.dataset;
  if (d && (d.token || d.tokenUrl)) {
    const start = () =>
      open({
        token: d.token,
        url: d.url,
        target: d.target,
        title: d.title,
        getToken: d.tokenUrl ? () => fetch(d.tokenUrl, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)) : undefined,
      });
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})();
