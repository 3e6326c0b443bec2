// mensageiro operator console: plain modules, no framework, no request to any host but this one.
// The tenant API key lives in this tab's sessionStorage only (never a cookie): it is sent as a
// Bearer header to this origin, is gone when the tab closes, and sign-out removes it. The live
// stream is a WebSocket opened with a one-time ticket, so the key never travels in a URL.

const SESSION = "mensageiro.console.session";
// An idle tab signs itself out: a key left in an unattended browser is a key someone else can use.
// Only the operator's own input counts as use: the console's background refreshes and the live
// stream do not keep a session alive.
const IDLE_MS = 30 * 60_000;
const IDLE_CHECK_MS = 10_000;
const STATUSES = ["scheduled", "queued", "processing", "sent", "delivered", "read", "failed", "canceled"];
const CHANNELS = ["whatsapp", "telegram", "web"];
const SERIES = [
  ["sent", "Sends"],
  ["failed", "Failures"],
  ["delivered", "Deliveries"],
  ["read", "Reads"],
];

const $ = (id) => document.getElementById(id);

/** Builds an element; strings become text nodes, so outside data is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Number.POSITIVE_INFINITY))
    if (child !== undefined && child !== null && child !== false) el.append(child instanceof Node ? child : String(child));
  return el;
}

const badge = (status) => h("span", { class: `badge s-${status}`, dataset: { status } }, status);
const time = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const ago = (seconds) => (seconds < 90 ? `${Math.round(seconds)} s` : seconds < 5400 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`);

// ---- session -------------------------------------------------------------------------------

// Why the sign-in form is back, said once on it (kept across a reload of the tab).
const REASON = "mensageiro.console.reason";

function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION) ?? "null");
    if (!s || typeof s.key !== "string") return null;
    if (Date.now() - s.lastUsed > IDLE_MS) {
      sessionStorage.removeItem(SESSION);
      stream.stop();
      sessionStorage.setItem(REASON, "Your session expired after 30 minutes without use. Sign in again.");
      return null;
    }
    return s;
  } catch {
    return null;
  }
}

function touch() {
  const s = session();
  // At most one write a second, however fast the input.
  if (s && Date.now() - s.lastUsed > 1000) sessionStorage.setItem(SESSION, JSON.stringify({ ...s, lastUsed: Date.now() }));
}

function signOut(message) {
  sessionStorage.removeItem(SESSION);
  stream.stop();
  showSignIn(message);
}

class ApiFailure extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details ?? [];
  }
}

async function api(path, { method = "GET", body, key } = {}) {
  const s = key ? { key } : session();
  if (!s) {
    showSignIn();
    throw new ApiFailure(401, { error: { code: "unauthorized", message: "Not signed in." } });
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${s.key}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiFailure(0, { error: { code: "unavailable", message: "Could not reach the gateway. Check the connection and try again." } });
  }
  const data = await res.json().catch(() => null);
  if (res.status === 401 && !key) {
    signOut("This API key is no longer valid (revoked or unknown). Sign in with a current key.");
  }
  if (!res.ok) throw new ApiFailure(res.status, data);
  return data;
}

function notice(message, kind = "error") {
  const el = $("notice");
  el.textContent = message;
  el.className = kind === "info" ? "notice info" : "notice";
  el.hidden = !message;
}

// ---- live stream -----------------------------------------------------------------------------

const stream = {
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

function setLive(on) {
  const el = $("live");
  el.textContent = on ? "live" : "offline";
  el.classList.toggle("on", on);
}

/** Page-scoped listener: dropped when the page changes. */
let pageListeners = [];
function onEvent(listener) {
  stream.listeners.add(listener);
  pageListeners.push(listener);
}
let pageTimers = [];
function every(ms, task) {
  pageTimers.push(setInterval(task, ms));
}
function debounce(ms, task) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(task, ms);
  };
}

// At most one run per `ms`, trailing: a burst of calls is one run, after `settleMs` when the last
// run is long past, else when `ms` has passed since it. A busy tenant's stream of events then costs
// the server one request per `ms`, not one per event (a debounce alone would do that for events
// spaced just past its wait, and never run for a steady stream).
function throttle(ms, task, settleMs = 300) {
  let timer;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(settleMs, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = undefined;
      last = Date.now();
      task();
    }, wait);
  };
}

// ---- routing ---------------------------------------------------------------------------------

const routes = [
  [/^#\/overview$/, overview],
  [/^#\/instances$/, instancesPage],
  [/^#\/messages(?:\?.*)?$/, messagesPage],
  [/^#\/messages\/([\w-]+)$/, messagePage],
  [/^#\/inbox(?:\?.*)?$/, inboxPage],
  [/^#\/conversations\/([^/]+)\/([^/]+)$/, conversationPage],
  [/^#\/conversations(?:\/([^/]+))?$/, contactLookup],
  [/^#\/dead-letters$/, deadLettersPage],
  [/^#\/callbacks$/, callbacksPage],
];

async function render() {
  for (const l of pageListeners) stream.listeners.delete(l);
  pageListeners = [];
  for (const t of pageTimers) clearInterval(t);
  pageTimers = [];
  if (!session()) return showSignIn();
  const hash = location.hash || "#/overview";
  const match = routes.map(([re, page]) => [hash.match(re), page]).find(([m]) => m);
  if (!match) {
    location.hash = "#/overview";
    return;
  }
  const [m, page] = match;
  for (const a of document.querySelectorAll(".bar nav a")) {
    // A conversation's page belongs to the inbox.
    if (hash.startsWith(a.getAttribute("href")) || (a.id === "nav-inbox" && hash.startsWith("#/conversations"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  notice("");
  // Each render draws into a container of its own: a page still loading or redrawing for the route
  // just left writes into a detached node, never over the page now shown.
  const root = h("div");
  $("page").replaceChildren(root);
  root.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    await page(root, ...m.slice(1).map((p) => (p ? decodeURIComponent(p) : p)));
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) return;
    root.replaceChildren(h("h1", {}, "Something went wrong"), h("p", { class: "error" }, err.message));
  }
}

function showSignIn(message = sessionStorage.getItem(REASON)) {
  sessionStorage.removeItem(REASON);
  // Already shown (a background refresh or the idle check came second): keep its message and
  // whatever the operator is typing.
  if (!$("sign-in").hidden && !message) return;
  $("bar").hidden = true;
  $("page").replaceChildren();
  $("sign-in").hidden = false;
  notice("");
  const error = $("sign-in-error");
  error.textContent = message ?? "";
  error.hidden = !message;
  $("api-key").value = "";
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const error = $("sign-in-error");
  error.hidden = true;
  try {
    await api("/v1/stats", { key });
  } catch (err) {
    error.textContent = err.status === 401 ? "That API key is wrong or has been revoked." : err.message;
    error.hidden = false;
    return;
  }
  sessionStorage.setItem(SESSION, JSON.stringify({ key, lastUsed: Date.now() }));
  enter();
}

function enter() {
  $("sign-in").hidden = true;
  $("bar").hidden = false;
  const s = session();
  $("tenant").textContent = s ? `key ${s.key.slice(0, 10)}…` : "";
  stream.start();
  if (!location.hash || location.hash === "#") location.hash = "#/overview";
  else render();
  $("main").focus();
}

// ---- overview --------------------------------------------------------------------------------

async function overview(root) {
  let range = "hour";
  const cards = h("div", { class: "cards", id: "counts" });
  const alarms = h("div", { class: "cards", id: "alarms" });
  const chart = h("div", { class: "chart" });
  const toggle = h(
    "div",
    { class: "toggle", role: "group", "aria-label": "Chart range" },
    ["hour", "day"].map((r) =>
      h(
        "button",
        {
          type: "button",
          "aria-pressed": String(r === range),
          onclick: (e) => {
            range = r;
            for (const b of toggle.children) b.setAttribute("aria-pressed", String(b === e.currentTarget));
            drawChart();
          },
        },
        r === "hour" ? "Last hour" : "Last day",
      ),
    ),
  );
  root.replaceChildren(h("h1", {}, "Overview"), alarms, h("h2", {}, "Messages by status"), cards, h("h2", {}, "Activity"), toggle, chart);

  async function drawCounts() {
    const stats = await api("/v1/stats");
    cards.replaceChildren(
      ...STATUSES.map((s) =>
        h("a", { class: "card", href: `#/messages?status=${s}`, dataset: { count: s } }, h("span", { class: "n" }, stats.messages.total[s] ?? 0), badge(s)),
      ),
    );
    const problems = [];
    // Shown only when something is wrong: an empty area means all is well.
    if (stats.deadLetters > 0)
      problems.push(h("a", { class: "card alarm", href: "#/dead-letters", id: "alarm-dead" }, h("span", { class: "n" }, stats.deadLetters), "dead letters"));
    if (stats.oldestQueuedAgeSeconds > 60)
      problems.push(h("div", { class: "card alarm", id: "alarm-queued" }, h("span", { class: "n" }, ago(stats.oldestQueuedAgeSeconds)), "oldest queued"));
    alarms.replaceChildren(...problems);
    alarms.hidden = problems.length === 0;
  }

  async function drawChart() {
    const t = await api(`/v1/stats/timeline?range=${range}`);
    chart.replaceChildren(activityChart(t));
  }

  await Promise.all([drawCounts(), drawChart()]);
  onEvent(throttle(5_000, () => drawCounts().catch(() => undefined)));
  every(30_000, () => drawChart().catch(() => undefined));
  onEvent(throttle(15_000, () => drawChart().catch(() => undefined)));
}

/**
 * The four series as small multiples: one row of bars per series, each scaled to its own peak, so a
 * handful of failures stays visible next to thousands of sends. SVG built here, no library.
 */
function activityChart(t) {
  const W = t.buckets.length * 10;
  const H = 48;
  const NS = "http://www.w3.org/2000/svg";
  const s = (tag, attrs) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    return el;
  };
  const fmt = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const per = t.bucketSeconds >= 3600 ? `${t.bucketSeconds / 3600} h` : `${t.bucketSeconds / 60} min`;
  const rows = SERIES.map(([k, label]) => {
    const values = t.buckets.map((b) => b[k]);
    const total = values.reduce((a, b) => a + b, 0);
    const peak = Math.max(...values);
    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `${label}: ${total} in the last ${t.range}, at most ${peak} per ${per}`,
      "data-series": k,
    });
    svg.append(s("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: "axis" }));
    values.forEach((v, i) => {
      if (v === 0) return;
      const height = Math.max(2, (v / peak) * (H - 2));
      const bar = s("rect", { x: i * 10 + 1, y: H - height, width: 8, height, class: `bar-${k}` });
      const tip = s("title", {});
      tip.textContent = `${fmt(t.buckets[i].at)}: ${v}`;
      bar.append(tip);
      svg.append(bar);
    });
    return h(
      "div",
      { class: "series", dataset: { total: k } },
      h(
        "div",
        { class: "series-head" },
        h("span", { class: `key key-${k}` }, label),
        h("strong", {}, total),
        peak > 0 ? h("span", { class: "muted" }, ` peak ${peak} / ${per}`) : "",
      ),
      svg,
    );
  });
  const axis = h("div", { class: "series-axis muted" }, h("span", {}, fmt(t.from)), h("span", {}, "now"));
  return h("div", {}, rows, axis);
}

// ---- instances -------------------------------------------------------------------------------

async function instancesPage(root) {
  const list = h("div", { class: "instances" });
  root.replaceChildren(h("h1", {}, "Instances"), list);
  const qrTimers = new Map();

  async function draw() {
    const [{ data }, stats] = await Promise.all([api("/v1/instances"), api("/v1/stats")]);
    const automations = await Promise.all(data.map((i) => automationOf(i.name)));
    if (data.length === 0) list.replaceChildren(h("p", { class: "muted" }, "No instances yet: register one with PUT /v1/instances/:name."));
    else list.replaceChildren(...data.map((i, n) => instanceCard(i, stats, automations[n])));
  }

  // null: this instance hands its inbound messages to no handler.
  async function automationOf(name) {
    try {
      return await api(`/v1/instances/${encodeURIComponent(name)}/automation`);
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 404) return null;
      throw err;
    }
  }

  function instanceCard(i, stats, automation) {
    const qr = h("div", { class: "qr-area" });
    const card = h(
      "section",
      { class: "card", dataset: { instance: i.name }, "aria-labelledby": `inst-${i.name}` },
      h("h2", { id: `inst-${i.name}` }, i.name),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Channel"),
        h(
          "dd",
          { dataset: { channel: i.channel ?? "whatsapp" } },
          i.channel ?? "whatsapp",
          i.telegram?.botUsername ? h("span", { class: "muted" }, ` @${i.telegram.botUsername}`) : "",
          // Telegram gives bots no delivery or read receipts: its messages end at sent.
          i.channel === "telegram" ? h("span", { class: "muted" }, " · messages end at sent (no receipts)") : "",
        ),
        h("dt", {}, "Connection"),
        h("dd", {}, badge(i.state), i.stateChangedAt ? h("span", { class: "muted" }, ` since ${time(i.stateChangedAt)}`) : ""),
        h("dt", {}, "Sending"),
        h(
          "dd",
          { dataset: { sending: i.sending?.paused ? "paused" : "on" } },
          i.sending?.paused
            ? h("span", { class: "error" }, `paused: ${i.sending.reason}${i.sending.until ? ` until ${time(i.sending.until)}` : ""}`)
            : "not paused",
        ),
        h("dt", {}, "Pacing"),
        h(
          "dd",
          {},
          `${i.pacing?.ratePerMinute ?? i.ratePerMinute} per minute`,
          i.pacing?.dailyCap ? `, at most ${i.pacing.dailyCap} a day` : "",
          i.pacing?.quietHours ? `, quiet ${i.pacing.quietHours.start}–${i.pacing.quietHours.end}` : "",
        ),
        h("dt", {}, "Sent, last minute"),
        h("dd", { dataset: { sentLastMinute: i.name } }, stats.sentLastMinuteByInstance?.[i.name] ?? 0),
        h("dt", {}, "Automation"),
        h(
          "dd",
          { dataset: { automation: automation ? automation.breaker : "none" } },
          automation
            ? [
                "breaker ",
                badge(automation.breaker),
                automation.counts.dead > 0 ? h("a", { href: "#/dead-letters" }, ` ${automation.counts.dead} dead letters`) : "",
              ]
            : h("span", { class: "muted" }, "none"),
        ),
      ),
      qr,
    );
    if (i.state !== "open" && (i.channel ?? "whatsapp") === "whatsapp") showQr(i.name, qr);
    return card;
  }

  // The code Evolution shows refreshes about every 20 s; ask again until the number is connected.
  function showQr(name, area) {
    const load = async () => {
      try {
        const answer = await api(`/v1/instances/${encodeURIComponent(name)}/qr`);
        if (answer.state === "open") return draw();
        area.replaceChildren(
          h("p", {}, "Scan this code with WhatsApp on the phone (Linked devices) to connect the number."),
          h("img", {
            class: "qr",
            src: answer.qr.base64,
            alt: `QR code to connect ${name} (code ${answer.qr.count ?? 1})`,
            dataset: { count: answer.qr.count ?? "" },
          }),
        );
      } catch (err) {
        area.replaceChildren(h("p", { class: "error" }, err.message));
      }
    };
    load();
    clearInterval(qrTimers.get(name));
    const timer = setInterval(load, 3000);
    qrTimers.set(name, timer);
    pageTimers.push(timer);
  }

  await draw();
  onEvent((e) => {
    if (e.type === "instance.status" || e.type.startsWith("automation.")) draw();
  });
  every(15_000, () => draw().catch(() => undefined));
}

// ---- inbox -----------------------------------------------------------------------------------

const STATES = { agent: "agent", human: "human", failed: "agent failed" };

// A conversation's page: its instance and its contact (a contact is per instance).
const conversationHref = (instance, contact) => `#/conversations/${encodeURIComponent(instance)}/${encodeURIComponent(contact)}`;

// The gateway's key for a WhatsApp chat: a Brazilian mobile in its 13-digit form (55, area code,
// 9, eight digits), so an event addressed to either form is this conversation's. Other channels'
// addresses are their keys.
const contactKey = (address, channel = "whatsapp") => {
  const m = channel === "whatsapp" ? /^55([1-9]{2})([6-9]\d{7})$/.exec(address ?? "") : null;
  return m ? `55${m[1]}9${m[2]}` : address;
};

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : d.toLocaleDateString();
}

const stateBadge = (state) => h("span", { class: `badge st-${state}`, dataset: { state } }, STATES[state] ?? state);

// A live redraw replaces a list's rows: the row that had the keyboard focus gets it back, so an
// operator tabbing through the list does not lose their place whenever a message arrives.
function keepingFocus(list, draw) {
  const key = list.contains(document.activeElement) ? document.activeElement.closest("li[data-key]")?.dataset.key : undefined;
  draw();
  if (key === undefined) return;
  const row = [...list.querySelectorAll("li[data-key]")].find((li) => li.dataset.key === key);
  row?.querySelector("a")?.focus();
}

async function inboxPage(root) {
  const initial = hashQuery();
  const { data: instances } = await api("/v1/instances");
  const select = (id, name, label, options) =>
    h(
      "div",
      {},
      h("label", { for: id }, label),
      h(
        "select",
        { id, name },
        h("option", { value: "" }, "any"),
        options.map(([value, text]) => h("option", { value, selected: initial.get(name) === value }, text)),
      ),
    );
  const form = h(
    "form",
    { class: "filters", role: "search", id: "inbox-filters" },
    h(
      "div",
      { class: "grow" },
      h("label", { for: "i-q" }, "Search name, address or text"),
      h("input", { id: "i-q", name: "q", type: "search", maxlength: 40, value: initial.get("q") ?? "" }),
    ),
    select(
      "i-channel",
      "channel",
      "Channel",
      CHANNELS.map((c) => [c, c]),
    ),
    select(
      "i-instance",
      "instance",
      "Instance",
      instances.map((i) => [i.name, i.name]),
    ),
    select("i-state", "state", "State", Object.entries(STATES)),
    h(
      "div",
      { class: "check" },
      h("input", { id: "i-unread", name: "unread", type: "checkbox", value: "true", checked: initial.get("unread") === "true" }),
      h("label", { for: "i-unread" }, "Unread only"),
    ),
    h("button", { type: "submit" }, "Filter"),
  );
  const list = h("ol", { class: "inbox", id: "inbox", "aria-label": "Conversations, newest activity first" });
  const more = h("button", { type: "button", class: "secondary", id: "inbox-more", hidden: true }, "More");
  root.replaceChildren(h("h1", {}, "Inbox"), form, list, more);

  let filters = Object.fromEntries([...initial].filter(([k, v]) => v && ["q", "channel", "instance", "state", "unread"].includes(k)));
  let shown = [];
  let cursor = null;
  const keyOf = (c) => `${c.instance}\n${c.contact}`;

  const item = (c) =>
    h(
      "li",
      { dataset: { key: keyOf(c), instance: c.instance, contact: c.contact, unread: c.unread, ...(c.state ? { state: c.state } : {}) } },
      h(
        "a",
        { href: conversationHref(c.instance, c.contact), class: c.unread > 0 ? "unread" : undefined },
        h("span", { class: "who" }, h("strong", {}, c.name ?? c.contact), c.name ? h("span", { class: "muted mono" }, ` ${c.contact}`) : ""),
        h("span", { class: "when" }, h("time", { datetime: c.lastMessage.at, title: time(c.lastMessage.at) }, when(c.lastMessage.at))),
        h(
          "span",
          { class: "preview" },
          c.lastMessage.direction === "out" ? h("span", { class: "muted" }, "You: ") : "",
          c.lastMessage.text ?? h("span", { class: "muted" }, "(media)"),
        ),
        h(
          "span",
          { class: "meta" },
          h("span", { class: "muted" }, `${c.channel} · ${c.instance}`),
          c.state ? [" ", stateBadge(c.state)] : "",
          c.unread > 0 ? h("span", { class: "count" }, c.unread, h("span", { class: "visually-hidden" }, " unread")) : "",
        ),
      ),
    );

  function draw() {
    keepingFocus(list, () => list.replaceChildren(...(shown.length === 0 ? [h("li", { class: "muted empty" }, "No conversations match.")] : shown.map(item))));
    more.hidden = !cursor;
  }

  const query = (extra = {}) => {
    const q = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) q.set(k, v);
    return q;
  };

  // The first page again. Conversations loaded with "More" stay below it, each listed once, and the
  // cursor stays the last page's.
  let loadedMore = false;
  async function refresh() {
    const page = await api(`/v1/conversations?${query()}`);
    const first = new Set(page.data.map(keyOf));
    shown = [...page.data, ...(loadedMore ? shown.filter((c) => !first.has(keyOf(c))) : [])];
    if (!loadedMore) cursor = page.nextCursor;
    draw();
  }

  async function loadMore() {
    const page = await api(`/v1/conversations?${query({ cursor })}`);
    const seen = new Set(shown.map(keyOf));
    shown = [...shown, ...page.data.filter((c) => !seen.has(keyOf(c)))];
    cursor = page.nextCursor;
    loadedMore = true;
    draw();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    filters = {};
    for (const k of ["q", "channel", "instance", "state", "unread"]) {
      const v = String(data.get(k) ?? "").trim();
      if (v) filters[k] = v;
    }
    // The filters stay in the address (a reload or a shared link shows the same list) without a new render.
    history.replaceState(null, "", `#/inbox${Object.keys(filters).length ? `?${new URLSearchParams(filters)}` : ""}`);
    shown = [];
    cursor = null;
    loadedMore = false;
    refresh().catch((err) => notice(apiMessage(err)));
  });
  more.addEventListener("click", () => loadMore().catch((err) => notice(apiMessage(err))));

  // A message that just came in goes to the top at once, from its event; the next refresh (at most
  // one a second, however busy the tenant) brings the rest: state, a conversation new to the list.
  function arrived(m) {
    if (filters.q || filters.state || filters.unread === "false") return;
    if ((filters.instance && filters.instance !== m.instance) || (filters.channel && filters.channel !== m.channel)) return;
    const contact = contactKey(m.contact, m.channel);
    const known = shown.find((c) => c.instance === m.instance && c.contact === contact);
    if (!known && filters.unread === "true" && m.fromMe) return;
    const group = contact.endsWith("@g.us");
    const next = {
      ...(known ?? { instance: m.instance, channel: m.channel, contact, name: null, unread: 0, state: null }),
      lastMessage: { id: m.id, direction: m.fromMe ? "out" : "in", text: m.text ?? null, at: m.timestamp },
    };
    if (!m.fromMe) {
      next.unread += 1;
      if (m.pushName && !group) next.name = m.pushName;
    }
    shown = [next, ...shown.filter((c) => c !== known)];
    draw();
  }

  await refresh();
  const live = throttle(1000, () => refresh().catch(() => undefined), 30);
  onEvent((e) => {
    if (e.type === "message.received") arrived(e.data);
    if (e.type === "message.received" || e.type === "message.status" || e.type === "conversation.handoff" || e.type.startsWith("automation.")) live();
  });
}

/** An API error with the fields it names. */
const apiMessage = (err) => (err.details?.length ? `${err.message} ${err.details.map((d) => `${d.path}: ${d.message}`).join("; ")}` : err.message);

// ---- messages --------------------------------------------------------------------------------

function hashQuery() {
  return new URLSearchParams(location.hash.split("?")[1] ?? "");
}

async function messagesPage(root) {
  const initial = hashQuery();
  const { data: instances } = await api("/v1/instances");
  const form = h(
    "form",
    { class: "filters", role: "search" },
    h(
      "div",
      {},
      h("label", { for: "f-to" }, "Recipient"),
      h("input", { id: "f-to", name: "to", inputmode: "tel", placeholder: "5511987654321", value: initial.get("to") ?? "" }),
    ),
    h(
      "div",
      {},
      h("label", { for: "f-status" }, "Status"),
      h(
        "select",
        { id: "f-status", name: "status" },
        h("option", { value: "" }, "any"),
        STATUSES.map((s) => h("option", { value: s, selected: initial.get("status") === s }, s)),
      ),
    ),
    h(
      "div",
      {},
      h("label", { for: "f-instance" }, "Instance"),
      h(
        "select",
        { id: "f-instance", name: "instance" },
        h("option", { value: "" }, "any"),
        instances.map((i) => h("option", { value: i.name }, i.name)),
      ),
    ),
    h(
      "div",
      {},
      h("label", { for: "f-channel" }, "Channel"),
      h(
        "select",
        { id: "f-channel", name: "channel" },
        h("option", { value: "" }, "any"),
        CHANNELS.map((c) => h("option", { value: c, selected: initial.get("channel") === c }, c)),
      ),
    ),
    h("div", {}, h("label", { for: "f-since" }, "Since"), h("input", { id: "f-since", name: "since", type: "datetime-local" })),
    h("button", { type: "submit" }, "Search"),
  );
  const body = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const table = h(
    "table",
    { class: "stack", id: "messages" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Status", "Recipient", "Instance", "Channel", "Created", "Id"].map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    body,
  );
  root.replaceChildren(h("h1", {}, "Messages"), form, table, more);
  let cursor = null;
  let filters = {};

  const row = (m) =>
    h(
      "tr",
      { dataset: { id: m.id } },
      h("td", { "data-label": "Status" }, badge(m.status)),
      h("td", { "data-label": "Recipient" }, h("a", { href: conversationHref(m.instance, contactKey(m.to, m.channel)) }, m.to)),
      h("td", { "data-label": "Instance" }, m.instance),
      h("td", { "data-label": "Channel" }, m.channel ?? "whatsapp"),
      h("td", { "data-label": "Created" }, time(m.createdAt)),
      h("td", { "data-label": "Id", class: "mono" }, h("a", { href: `#/messages/${m.id}` }, m.id)),
    );

  async function load(append) {
    const q = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (append && cursor) q.set("cursor", cursor);
    try {
      const page = await api(`/v1/messages?${q}`);
      if (!append) body.replaceChildren();
      body.append(...page.data.map(row));
      if (!append && page.data.length === 0) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No messages match.")));
      cursor = page.nextCursor;
      more.hidden = !cursor;
    } catch (err) {
      notice(err.details?.length ? `${err.message} ${err.details.map((d) => `${d.path}: ${d.message}`).join("; ")}` : err.message);
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const since = String(data.get("since") ?? "");
    filters = {
      to: String(data.get("to") ?? "").trim(),
      status: data.get("status"),
      instance: data.get("instance"),
      channel: data.get("channel"),
      since: since ? new Date(since).toISOString() : "",
    };
    load(false);
  });
  more.addEventListener("click", () => load(true));
  filters = { status: initial.get("status") ?? "", to: initial.get("to") ?? "", channel: initial.get("channel") ?? "" };
  await load(false);

  // Live: a status change updates its row; a new message that fits the filters appears on top.
  onEvent((e) => {
    if (e.type !== "message.status") return;
    const d = e.data;
    const existing = body.querySelector(`tr[data-id="${CSS.escape(d.messageId)}"]`);
    const fits =
      (!filters.status || filters.status === d.status) &&
      (!filters.to || filters.to === d.to) &&
      (!filters.instance || filters.instance === d.instance) &&
      (!filters.channel || filters.channel === (d.channel ?? "whatsapp"));
    if (existing) {
      if (fits) existing.querySelector("td").replaceChildren(badge(d.status));
      else if (filters.status) existing.remove();
    } else if (fits && (d.status === "queued" || d.status === "scheduled" || filters.status)) {
      body.querySelector("td[colspan]")?.parentElement.remove();
      body.prepend(row({ id: d.messageId, status: d.status, to: d.to, instance: d.instance, channel: d.channel, createdAt: e.occurredAt }));
    }
  });
}

async function messagePage(root, id) {
  async function draw() {
    const m = await api(`/v1/messages/${encodeURIComponent(id)}`);
    const facts = [
      ["Status", badge(m.status)],
      ["Recipient", h("a", { href: conversationHref(m.instance, contactKey(m.to, m.channel)) }, m.to)],
      ["Instance", m.instance],
      ["Channel", m.channel === "telegram" ? `telegram (no delivery or read receipts: ends at sent)` : (m.channel ?? "whatsapp")],
      ["Text", m.text ?? (m.media ? `${m.media.type}: ${m.media.url}` : "—")],
      ["Attempts", `${m.attempts} of ${m.maxAttempts}`],
      ["Last error", m.lastError ?? "—"],
      ["Provider id", h("span", { class: "mono" }, m.providerMessageId ?? "—")],
      ["Created", time(m.createdAt)],
      ["Send at", time(m.sendAt)],
      ["Sent", time(m.sentAt)],
      ["Delivered", time(m.deliveredAt)],
      ["Read", time(m.readAt)],
      ["Failed", time(m.failedAt)],
    ];
    const actions = h("div", { class: "actions" });
    if (m.status === "failed")
      actions.append(h("button", { type: "button", id: "retry", onclick: () => act("POST", `/v1/messages/${m.id}/retry`, "Sent again.") }, "Retry"));
    if (m.status === "scheduled" || m.status === "queued")
      actions.append(
        h("button", { type: "button", class: "danger", id: "cancel", onclick: () => act("DELETE", `/v1/messages/${m.id}`, "Canceled.") }, "Cancel"),
      );
    if (m.status === "scheduled") {
      const input = h("input", { id: "send-at", type: "datetime-local" });
      actions.append(
        h("div", {}, h("label", { for: "send-at" }, "New send time"), input),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            id: "reschedule",
            onclick: () =>
              input.value
                ? act("PATCH", `/v1/messages/${m.id}`, "Rescheduled.", { sendAt: new Date(input.value).toISOString() })
                : notice("Pick the new send time first."),
          },
          "Reschedule",
        ),
      );
    }
    const history = h(
      "table",
      { class: "stack", id: "history" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["When", "Status", "Attempt", "Detail"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h(
        "tbody",
        {},
        m.history.map((e) =>
          h(
            "tr",
            {},
            h("td", { "data-label": "When" }, time(e.at)),
            h("td", { "data-label": "Status" }, badge(e.status)),
            h("td", { "data-label": "Attempt" }, e.attempt ?? ""),
            h("td", { "data-label": "Detail" }, e.detail ?? ""),
          ),
        ),
      ),
    );
    root.replaceChildren(
      h("p", {}, h("a", { href: "#/messages" }, "← Messages")),
      h("h1", {}, "Message ", h("span", { class: "mono" }, m.id)),
      h(
        "dl",
        { class: "facts" },
        facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      actions,
      h("h2", {}, "History"),
      history,
    );
  }
  async function act(method, path, done, body) {
    try {
      await api(path, { method, body });
      notice(done, "info");
      await draw();
    } catch (err) {
      notice(err.message);
    }
  }
  await draw();
  onEvent((e) => {
    if (e.type === "message.status" && e.data.messageId === id) draw().catch(() => undefined);
  });
}

// ---- conversations ---------------------------------------------------------------------------

// #/conversations/:to, the page before the inbox knew instances: the contact's conversation on its
// instance, or a choice when it talks to several.
async function contactLookup(root, contact) {
  const form = h(
    "form",
    { class: "filters", role: "search" },
    h(
      "div",
      {},
      h("label", { for: "c-to" }, "Contact (number, group JID, chat id or visitor id)"),
      h("input", { id: "c-to", name: "to", value: contact ?? "", required: true }),
    ),
    h("button", { type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/conversations/${encodeURIComponent(String(new FormData(form).get("to")).trim())}`;
  });
  root.replaceChildren(h("h1", {}, "Find a conversation"), h("p", { class: "muted" }, "Or pick one in the ", h("a", { href: "#/inbox" }, "inbox"), "."), form);
  if (!contact) return;
  // [instance, the conversation's contact]: a WhatsApp number is keyed in its 13-digit form.
  let found = [];
  const q = contactKey(contact);
  if (new TextEncoder().encode(q).byteLength <= 40) {
    const { data } = await api(`/v1/conversations?${new URLSearchParams({ q, limit: "100" })}`);
    found = data.filter((c) => c.contact === contactKey(contact, c.channel)).map((c) => [c.instance, c.contact]);
  }
  if (found.length === 0) {
    // Not in the inbox yet (or too long to search): the instances its timeline names.
    const { data } = await api(`/v1/contacts/${encodeURIComponent(contact)}/messages?limit=100`);
    found = [...new Map(data.map((m) => [m.instance, contactKey(contact, m.channel)])).entries()];
  }
  if (found.length === 1) {
    location.replace(conversationHref(...found[0]));
    return;
  }
  root.append(
    found.length === 0
      ? h("p", { class: "muted", id: "no-conversation" }, "Nothing with this contact yet.")
      : h(
          "ul",
          { id: "contact-instances" },
          found.map(([i, key]) => h("li", {}, h("a", { href: conversationHref(i, key) }, `${contact} on ${i}`))),
        ),
  );
}

async function conversationPage(root, instanceName, contact) {
  const instance = await api(`/v1/instances/${encodeURIComponent(instanceName)}`);
  const channel = instance.channel ?? "whatsapp";
  const base = `/v1/instances/${encodeURIComponent(instanceName)}/contacts/${encodeURIComponent(contact)}`;
  const title = h("h1", { id: "conversation-title" }, contact);
  const facts = h("p", { class: "muted" }, h("span", { class: "mono" }, contact), ` · ${channel} · ${instanceName}`);
  const handoff = h("section", { class: "handoff", id: "handoff", "aria-labelledby": "handoff-title" });
  const list = h("ol", { class: "timeline", id: "timeline", "aria-label": "Messages, oldest first" });
  const text = h("textarea", { id: "compose-text", name: "text", rows: 3, maxlength: 4096, placeholder: "Write an answer…" });
  const mediaUrl = h("input", { id: "compose-media", name: "mediaUrl", type: "url", inputmode: "url", placeholder: "https://…" });
  const mediaType = h(
    "select",
    { id: "compose-media-type", name: "mediaType" },
    ["image", "document", "video", "audio"].map((t) => h("option", { value: t }, t)),
  );
  const sendButton = h("button", { type: "submit", id: "compose-send" }, "Send");
  const composer = h(
    "form",
    { class: "composer", id: "composer", "aria-label": "Answer" },
    h("label", { for: "compose-text" }, `Answer ${contact}`),
    text,
    h(
      "details",
      {},
      h("summary", {}, "Attach media by URL"),
      h(
        "div",
        { class: "filters" },
        h("div", { class: "grow" }, h("label", { for: "compose-media" }, "Media URL"), mediaUrl),
        h("div", {}, h("label", { for: "compose-media-type" }, "Type"), mediaType),
      ),
    ),
    h("div", { class: "actions" }, sendButton, h("span", { class: "muted" }, "Sent in order with this contact's other messages.")),
  );
  root.replaceChildren(h("p", {}, h("a", { href: "#/inbox" }, "← Inbox")), title, facts, handoff, list, composer);

  // Whether the agent gave up on one of its messages: the inbox's state (searched by address; one
  // too long to search shows only the hand-off's state).
  async function agentFailed() {
    if (new TextEncoder().encode(contact).byteLength > 40) return false;
    const q = new URLSearchParams({ instance: instanceName, q: contact, state: "failed", limit: "100" });
    const { data } = await api(`/v1/conversations?${q}`);
    return data.some((c) => c.contact === contact);
  }

  async function drawHandoff() {
    const [state, failed] = await Promise.all([api(`${base}/handoff`), agentFailed()]);
    const human = state.state === "human";
    const button = human
      ? h("button", { type: "button", id: "hand-back", class: "secondary", onclick: () => change("DELETE") }, "Hand back to the agent")
      : h("button", { type: "button", id: "take-over", onclick: () => change("POST") }, "Take over");
    handoff.dataset.state = state.state;
    handoff.dataset.agent = failed ? "failed" : "ok";
    handoff.replaceChildren(
      h("h2", { id: "handoff-title", class: "visually-hidden" }, "Who answers"),
      h(
        "p",
        { id: "handoff-state" },
        human
          ? [
              stateBadge("human"),
              state.by === "handler" ? " The agent asked for a person" : ` With a person since ${time(state.since)}`,
              state.reason ? [": ", h("q", { id: "handoff-reason" }, state.reason)] : "",
              state.until ? ` (back to the agent at ${time(state.until)})` : "",
              ". The agent gets none of this contact's messages.",
            ]
          : failed
            ? [
                stateBadge("failed"),
                " The agent gave up on a message of this contact (",
                h("a", { href: "#/dead-letters" }, "dead letters"),
                "). Take over to answer yourself.",
              ]
            : [stateBadge("agent"), " The agent answers this contact. Take over to answer yourself."],
      ),
      button,
    );
  }

  async function change(method) {
    try {
      await api(`${base}/handoff`, { method });
      await drawHandoff();
      document.querySelector("#handoff button")?.focus();
    } catch (err) {
      notice(apiMessage(err));
    }
  }

  const mediaText = (m) => {
    const type = m.messageType ?? m.media?.type ?? "media";
    const url = typeof m.media?.url === "string" && /^https?:/.test(m.media.url) ? m.media.url : null;
    return [m.media?.caption ?? "", " ", url ? h("a", { href: url, rel: "noreferrer", target: "_blank" }, `[${type}]`) : `[${type}]`];
  };

  async function drawTimeline() {
    const q = new URLSearchParams({ limit: "100", instance: instanceName, include: "handoffs" });
    const { data } = await api(`/v1/contacts/${encodeURIComponent(contact)}/messages?${q}`);
    // As the contact saw it: oldest first.
    const items = data.toReversed();
    // A group's messages carry their senders' names, not the group's.
    const named = contact.endsWith("@g.us") ? null : items.findLast((m) => m.direction === "inbound" && !m.fromMe && m.pushName);
    if (named) title.textContent = named.pushName;
    if (items.length === 0) return list.replaceChildren(h("li", { class: "muted" }, "Nothing with this contact yet."));
    keepingFocus(list, () =>
      list.replaceChildren(
        ...items.map((m) =>
          m.direction === "handoff"
            ? h(
                "li",
                { class: "change", dataset: { id: m.id, handoff: m.handoff.state } },
                m.handoff.state === "human"
                  ? `${m.handoff.by === "handler" ? "The agent handed over to a person" : "An operator took over"}${m.handoff.reason ? `: ${m.handoff.reason}` : ""}`
                  : `Back to the agent${m.handoff.by === "timeout" ? " (time was up)" : ""}`,
                h("small", {}, time(m.at)),
              )
            : h(
                "li",
                { class: m.direction === "outbound" || m.fromMe ? "outbound" : "inbound", dataset: { id: m.id, key: m.id } },
                m.text ?? (m.media ? mediaText(m) : `[${m.messageType ?? "message"}]`),
                m.text && m.media ? [" ", mediaText(m)] : "",
                h(
                  "small",
                  {},
                  `${m.direction === "outbound" ? "sent by the gateway" : m.fromMe ? "sent from the phone" : (m.pushName ?? "contact")} · ${time(m.at)} `,
                  m.status ? badge(m.status) : "",
                  m.direction === "outbound" ? [" ", h("a", { href: `#/messages/${m.id}` }, "details")] : "",
                ),
              ),
        ),
      ),
    );
  }

  // Opening it is reading it; so is a message that arrives while it is open.
  const markRead = () => api(`${base}/read`, { method: "POST" }).catch(() => undefined);

  composer.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { instance: instanceName, to: contact, metadata: { source: "console" } };
    if (text.value.trim()) body.text = text.value;
    if (mediaUrl.value.trim()) body.media = { url: mediaUrl.value.trim(), type: mediaType.value };
    if (!body.text && !body.media) {
      notice("Write a message or give a media URL.");
      text.focus();
      return;
    }
    sendButton.disabled = true;
    try {
      await api("/v1/messages", { method: "POST", body });
      text.value = "";
      mediaUrl.value = "";
      notice("");
      await drawTimeline();
    } catch (err) {
      notice(apiMessage(err));
    } finally {
      sendButton.disabled = false;
      text.focus();
    }
  });

  await Promise.all([drawTimeline(), drawHandoff(), markRead()]);
  const key = contactKey(contact, channel);
  const mine = (d) => d?.instance === instanceName && (contactKey(d.contact, channel) === key || contactKey(d.to, channel) === key);
  const redraw = debounce(150, () => drawTimeline().catch(() => undefined));
  const read = throttle(2000, markRead);
  onEvent((e) => {
    if (!mine(e.data)) return;
    redraw();
    if (e.type === "message.received") read();
    if (e.type === "conversation.handoff" || e.type.startsWith("automation.")) drawHandoff().catch(() => undefined);
  });
}

// ---- dead letters ----------------------------------------------------------------------------

/** True when the route is simply not on this gateway (an older build): the page falls back or says so. */
const missingRoute = (err) => err instanceof ApiFailure && err.status === 404 && err.message === "No such route.";

// GET /v1/dead-letters when the gateway has it, else the failed messages (the same records).
async function listDeadLetters(filters) {
  try {
    const q = new URLSearchParams({ limit: "200" });
    if (filters.instance) q.set("instance", filters.instance);
    const { data } = await api(`/v1/dead-letters?${q}`);
    return { replayMany: true, data: data.filter((d) => !filters.to || d.to === filters.to) };
  } catch (err) {
    if (!missingRoute(err)) throw err;
  }
  const q = new URLSearchParams({ status: "failed", limit: "200" });
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  const { data } = await api(`/v1/messages?${q}`);
  return {
    replayMany: false,
    data: data.map((m) => ({ messageId: m.id, to: m.to, instance: m.instance, error: m.lastError, attempts: m.attempts, failedAt: m.failedAt })),
  };
}

async function deadLettersPage(root) {
  const form = h(
    "form",
    { class: "filters", role: "search" },
    h("div", {}, h("label", { for: "d-to" }, "Recipient"), h("input", { id: "d-to", name: "to", inputmode: "tel" })),
    h("div", {}, h("label", { for: "d-instance" }, "Instance"), h("input", { id: "d-instance", name: "instance" })),
    h("button", { type: "submit" }, "Filter"),
  );
  const dead = replayTable({
    tableId: "dead-letters",
    selectAllId: "select-all",
    replayId: "replay",
    selectAllLabel: "Select all",
    rowKey: "id",
    columns: ["Recipient", "Instance", "Error", "Failed", "Result"],
  });
  const { replay, resultCell } = dead;
  root.replaceChildren(
    h("h1", {}, "Dead letters"),
    h(
      "p",
      { class: "muted" },
      "Messages that failed for good. Replay sends them again with a fresh attempt budget; those marked \u201cmay have been sent\u201d are left out (Evolution may have delivered them), and the API replays them only with force: true.",
    ),
    form,
    h("div", { class: "actions" }, replay),
    dead.table,
  );
  let filters = {};
  let replayMany = false;

  async function load() {
    const list = await listDeadLetters(filters);
    replayMany = list.replayMany;
    dead.fill(
      list.data.map((d) => ({
        key: d.messageId,
        cells: [
          ["Recipient", h("a", { href: `#/messages/${d.messageId}` }, d.to)],
          ["Instance", d.instance],
          [
            "Error",
            // Bulk replay leaves these out unless forced: say why before the operator wonders.
            d.mayHaveSent
              ? [
                  h("span", { class: "badge s-processing", title: "Evolution may have sent it: replaying it may deliver it twice." }, "may have been sent"),
                  " ",
                  d.error ?? "",
                ]
              : (d.error ?? ""),
          ],
          ["Failed", time(d.failedAt)],
        ],
      })),
      "No dead letters. All is well.",
    );
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    filters = { to: String(data.get("to") ?? "").trim(), instance: String(data.get("instance") ?? "").trim() };
    load().catch((err) => notice(err.message));
  });
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    const ids = dead.selected().map((c) => c.value);
    let ok = 0;
    if (replayMany) {
      // One call for the whole selection (at most 100 ids a call).
      for (let i = 0; i < ids.length; i += 100) {
        const chunk = ids.slice(i, i + 100);
        try {
          const answer = await api("/v1/dead-letters/replay", { method: "POST", body: { ids: chunk } });
          for (const id of answer.ids) resultCell(id)?.replaceChildren(h("span", { class: "result-ok" }, "replayed"));
          for (const s of answer.skipped) resultCell(s.id)?.replaceChildren(h("span", { class: "result-bad" }, s.reason));
          ok += answer.replayed;
        } catch (err) {
          for (const id of chunk) resultCell(id)?.replaceChildren(h("span", { class: "result-bad" }, err.message));
        }
      }
    } else {
      for (const id of ids) {
        try {
          const answer = await api(`/v1/messages/${encodeURIComponent(id)}/retry`, { method: "POST" });
          resultCell(id)?.replaceChildren(h("span", { class: "result-ok" }, "replayed: "), badge(answer.status));
          ok++;
        } catch (err) {
          resultCell(id)?.replaceChildren(h("span", { class: "result-bad" }, err.message));
        }
      }
    }
    dead.done(`Replayed ${ok} of ${ids.length}.`, ok === ids.length);
  });
  const automation = automationDeadLetters();
  root.append(automation.section);
  form.addEventListener("submit", () => automation.load(filters).catch((err) => notice(err.message)));
  await Promise.all([load(), automation.load(filters)]);
  // A handler failing for good, a breaker pausing or resuming: the section follows without a reload.
  const redraw = debounce(300, () => automation.load(filters).catch(() => undefined));
  onEvent((e) => {
    if (e.type.startsWith("automation.")) redraw();
  });
}

// Inbound messages an instance's automation handler never took, per instance with automation, and
// that instance's breaker (closed, paused, probing). Replay hands one back to its contact's lane.
function automationDeadLetters() {
  const breakers = h("ul", { class: "breakers", id: "automation-breakers" });
  const dead = replayTable({
    tableId: "automation-dead-letters",
    selectAllId: "automation-select-all",
    replayId: "automation-replay",
    selectAllLabel: "Select all automation dead letters",
    rowKey: "inbound",
    columns: ["Contact", "Instance", "Message", "Error", "Failed", "Result"],
  });
  const section = h(
    "section",
    { id: "automation", "aria-labelledby": "automation-title" },
    h("h2", { id: "automation-title" }, "Automation dead letters"),
    h(
      "p",
      { class: "muted" },
      "Inbound messages your automation handler did not take after all its attempts. Replay hands them to it again, in the contact's order.",
    ),
    breakers,
    h("div", { class: "actions" }, dead.replay),
    dead.table,
  );
  const breakerText = { closed: "closed: calls flow", paused: "paused after failures", probing: "probing: one call is testing the handler" };

  async function load(filters = {}) {
    const { data: instances } = await api("/v1/instances");
    const shown = instances.filter((i) => !filters.instance || i.name === filters.instance);
    const found = await Promise.all(
      shown.map(async (i) => {
        const base = `/v1/instances/${encodeURIComponent(i.name)}/automation`;
        try {
          const [config, dead] = await Promise.all([api(base), api(`${base}/dead-letters?limit=200`)]);
          return { instance: i.name, config, dead: dead.data };
        } catch (err) {
          // No automation on this instance (or a gateway without it): nothing to show for it.
          if (err instanceof ApiFailure && err.status === 404) return null;
          throw err;
        }
      }),
    );
    const withAutomation = found.filter(Boolean);
    breakers.replaceChildren(
      ...(withAutomation.length === 0
        ? [h("li", { class: "muted" }, "No instance hands its inbound messages to a handler.")]
        : withAutomation.map(({ instance, config }) =>
            h(
              "li",
              { dataset: { instance, breaker: config.breaker ?? (config.state === "paused" ? "paused" : "closed") } },
              h("strong", {}, instance),
              " breaker ",
              badge(config.breaker ?? config.state),
              h(
                "span",
                { class: "muted" },
                ` ${breakerText[config.breaker] ?? ""}${config.state === "paused" && config.probeAt ? `, next probe ${time(config.probeAt)}` : ""}`,
                ` · ${config.counts.delivered} delivered, ${config.counts.retrying} retrying, ${config.counts.dead} dead`,
              ),
            ),
          )),
    );
    const rows = withAutomation.flatMap(({ instance, dead }) => dead.filter((d) => !filters.to || d.contact === filters.to).map((d) => ({ ...d, instance })));
    dead.fill(
      rows.map((d) => ({
        key: d.inboundId,
        instance: d.instance,
        cells: [
          ["Contact", h("a", { href: conversationHref(d.instance, d.contact) }, d.contact)],
          ["Instance", d.instance],
          ["Message", d.text ?? h("span", { class: "muted" }, "(media)")],
          ["Error", d.error ?? ""],
          ["Failed", time(d.failedAt)],
        ],
      })),
      "No automation dead letters.",
    );
  }

  dead.replay.addEventListener("click", async () => {
    dead.replay.disabled = true;
    const picked = dead.selected().map((c) => ({ id: c.value, instance: c.dataset.instance }));
    let ok = 0;
    for (const { id, instance } of picked) {
      try {
        const answer = await api(`/v1/instances/${encodeURIComponent(instance)}/automation/dead-letters/${encodeURIComponent(id)}/replay`, { method: "POST" });
        dead.resultCell(id)?.replaceChildren(h("span", { class: "result-ok" }, "replayed: "), badge(answer.status));
        ok++;
      } catch (err) {
        dead.resultCell(id)?.replaceChildren(h("span", { class: "result-bad" }, err.message));
      }
    }
    dead.done(`Replayed ${ok} of ${picked.length} automation dead letters.`, ok === picked.length);
  });
  return { section, load };
}

// A table of dead letters to select and replay: a select-all box, a replay button that is enabled
// while something is selected, and a result cell per row. Both dead-letter tables are one of these.
function replayTable({ tableId, selectAllId, replayId, selectAllLabel, rowKey, columns }) {
  const body = h("tbody");
  const all = h("input", { type: "checkbox", id: selectAllId, "aria-label": selectAllLabel });
  const replay = h("button", { type: "button", id: replayId, disabled: true }, "Replay selected");
  const table = h(
    "table",
    { class: "stack", id: tableId },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, all),
        columns.map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    body,
  );
  const selected = () => [...body.querySelectorAll("input[type=checkbox]:checked")];
  const sync = () => {
    replay.disabled = selected().length === 0;
  };
  all.addEventListener("change", () => {
    for (const c of body.querySelectorAll("input[type=checkbox]")) c.checked = all.checked;
    sync();
  });
  return {
    table,
    body,
    replay,
    selected,
    resultCell: (key) => body.querySelector(`tr[data-${rowKey}="${CSS.escape(key)}"] .result`),
    // rows: [{ key, instance?, cells: [[label, content], …] }]; the result column comes last.
    fill(rows, emptyText) {
      body.replaceChildren(
        ...(rows.length === 0
          ? [h("tr", {}, h("td", { colspan: columns.length + 1, class: "muted" }, emptyText))]
          : rows.map((r) =>
              h(
                "tr",
                { dataset: { [rowKey]: r.key, ...(r.instance ? { instance: r.instance } : {}) } },
                h(
                  "td",
                  {},
                  h("input", {
                    type: "checkbox",
                    value: r.key,
                    dataset: r.instance ? { instance: r.instance } : {},
                    "aria-label": `Select ${r.key}`,
                    onchange: sync,
                  }),
                ),
                r.cells.map(([label, content]) => h("td", { "data-label": label }, content)),
                h("td", { "data-label": "Result", class: "result" }),
              ),
            )),
      );
      all.checked = false;
      sync();
    },
    // After a replay: clear the selection and say how it went.
    done(message, allOk) {
      for (const c of selected()) c.checked = false;
      notice(message, allOk ? "info" : "error");
      sync();
    },
  };
}

// ---- callbacks -------------------------------------------------------------------------------

async function callbacksPage(root) {
  const status = h(
    "select",
    { id: "cb-status", name: "status" },
    ["failed", "retrying", "pending", "delivered"].map((s) => h("option", { value: s }, s)),
  );
  const form = h(
    "form",
    { class: "filters", role: "search" },
    h("div", {}, h("label", { for: "cb-status" }, "Status"), status),
    h("button", { type: "submit" }, "Show"),
  );
  const body = h("tbody");
  const table = h(
    "table",
    { class: "stack", id: "callbacks" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Event", "URL", "Status", "Attempts", "Last error", "Updated", ""].map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    body,
  );
  root.replaceChildren(h("h1", {}, "Callbacks"), h("p", { class: "muted" }, "Deliveries of events to your callback URL. Replay sends one again."), form, table);

  async function load() {
    let page;
    try {
      page = await api(`/v1/callbacks/deliveries?status=${status.value}&limit=100`);
    } catch (err) {
      if (!missingRoute(err)) throw err;
      table.replaceWith(
        h("p", { class: "muted", id: "callbacks-absent" }, "This gateway does not list callback deliveries yet (GET /v1/callbacks/deliveries)."),
      );
      form.remove();
      return;
    }
    body.replaceChildren(
      ...(page.data.length === 0
        ? [h("tr", {}, h("td", { colspan: 7, class: "muted" }, `No ${status.value} deliveries.`))]
        : page.data.map((d) => {
            const result = h("span", { class: "result" });
            return h(
              "tr",
              { dataset: { event: d.eventId } },
              h("td", { "data-label": "Event", class: "mono" }, d.eventType ? `${d.eventType} ` : "", d.eventId),
              h("td", { "data-label": "URL", class: "mono" }, d.url),
              h("td", { "data-label": "Status" }, badge(d.status)),
              h("td", { "data-label": "Attempts" }, d.attempts),
              h("td", { "data-label": "Last error" }, [d.lastResponseStatus ? `HTTP ${d.lastResponseStatus} ` : "", d.lastError ?? ""]),
              h("td", { "data-label": "Updated" }, time(d.updatedAt)),
              h(
                "td",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "secondary",
                    onclick: async () => {
                      try {
                        await api("/v1/callbacks/replay", { method: "POST", body: { eventId: d.eventId } });
                        result.replaceChildren(h("span", { class: "result-ok" }, " queued again"));
                      } catch (err) {
                        result.replaceChildren(h("span", { class: "result-bad" }, ` ${err.message}`));
                      }
                    },
                  },
                  "Replay",
                ),
                result,
              ),
            );
          })),
    );
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load().catch((err) => notice(err.message));
  });
  await load();
}

// ---- start -----------------------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", signIn);
for (const input of ["pointerdown", "keydown", "wheel", "touchstart"]) window.addEventListener(input, touch, { capture: true, passive: true });
// A tab left open signs out on time, not at the next click.
setInterval(() => {
  if (!$("bar").hidden && !session()) showSignIn();
}, IDLE_CHECK_MS);
$("sign-out").addEventListener("click", () => signOut("You are signed out."));
window.addEventListener("hashchange", () => {
  if (session()) render();
  else showSignIn();
});
if (session()) enter();
else showSignIn();
