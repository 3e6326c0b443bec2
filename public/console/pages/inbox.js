// The inbox: every conversation, newest activity first, filtered and searched; a message that comes
// in moves its conversation to the top at once.
import { api, apiMessage } from "../api.js";
import { onEvent } from "../page-scope.js";
import { CHANNELS, contactKey, conversationHref, STATES } from "../terms.js";
import { throttle } from "../timing.js";
import { filterSelect, h, hashQuery, keepingFocus, notice, stateBadge, time } from "../view.js";

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : d.toLocaleDateString();
}

export async function inboxPage(root) {
  const initial = hashQuery();
  const { data: instances } = await api("/v1/instances");
  const select = (id, name, label, options) => filterSelect(id, name, label, options, initial.get(name));
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
