// Messages: the list, filtered and updated live; one message's facts, actions and history.
import { api, apiMessage } from "../api.js";
import { onEvent } from "../page-scope.js";
import { CHANNELS, contactKey, conversationHref, STATUSES } from "../terms.js";
import { badge, filterSelect, h, hashQuery, notice, time } from "../view.js";

export async function messagesPage(root) {
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
    filterSelect(
      "f-status",
      "status",
      "Status",
      STATUSES.map((s) => [s, s]),
      initial.get("status"),
    ),
    filterSelect(
      "f-instance",
      "instance",
      "Instance",
      instances.map((i) => [i.name, i.name]),
    ),
    filterSelect(
      "f-channel",
      "channel",
      "Channel",
      CHANNELS.map((c) => [c, c]),
      initial.get("channel"),
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
      notice(apiMessage(err));
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

export async function messagePage(root, id) {
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
