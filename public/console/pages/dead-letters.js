// Dead letters: messages that failed for good, to replay; below them, the automation's own.
import { api, missingRoute } from "../api.js";
import { onEvent } from "../page-scope.js";
import { replayTable } from "../replay-table.js";
import { debounce } from "../timing.js";
import { badge, h, notice, time } from "../view.js";
import { automationDeadLetters } from "./automation-dead-letters.js";

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

export async function deadLettersPage(root) {
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
