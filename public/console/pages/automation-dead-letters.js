import { ApiFailure, api } from "../api.js";
import { replayTable } from "../replay-table.js";
import { conversationHref } from "../terms.js";
import { badge, h, time } from "../view.js";

// Inbound messages an instance's automation handler never took, per instance with automation, and
// that instance's breaker (closed, paused, probing). Replay hands one back to its contact's lane.
export function automationDeadLetters() {
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
