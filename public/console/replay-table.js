import { h, notice } from "./view.js";

// A table of dead letters to select and replay: a select-all box, a replay button that is enabled
// while something is selected, and a result cell per row. Both dead-letter tables are one of these.
export function replayTable({ tableId, selectAllId, replayId, selectAllLabel, rowKey, columns }) {
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
