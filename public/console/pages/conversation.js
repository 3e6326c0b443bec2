// One contact's conversation on one instance: the timeline both ways, who answers (the agent or a
// person), and the composer; and the lookup of a contact whose instance is not known.
import { api, apiMessage } from "../api.js";
import { onEvent } from "../page-scope.js";
import { contactKey, conversationHref } from "../terms.js";
import { debounce, throttle } from "../timing.js";
import { badge, h, keepingFocus, notice, stateBadge, time } from "../view.js";

// #/conversations/:to, the page before the inbox knew instances: the contact's conversation on its
// instance, or a choice when it talks to several.
export async function contactLookup(root, contact) {
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

export async function conversationPage(root, instanceName, contact) {
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
