// Callbacks: deliveries of events to the tenant's callback URL, by status; replay one.
import { api, missingRoute } from "../api.js";
import { badge, h, notice, time } from "../view.js";

export async function callbacksPage(root) {
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
