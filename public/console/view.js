// What every page draws with: elements built from data (never parsed as HTML), the badges and
// times the pages share, the notice line under the bar.
import { STATES } from "./terms.js";

export const $ = (id) => document.getElementById(id);

/** Builds an element; strings become text nodes, so outside data is never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
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

export const badge = (status) => h("span", { class: `badge s-${status}`, dataset: { status } }, status);
export const stateBadge = (state) => h("span", { class: `badge st-${state}`, dataset: { state } }, STATES[state] ?? state);
export const time = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
export const ago = (seconds) =>
  seconds < 90 ? `${Math.round(seconds)} s` : seconds < 5400 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;

/** A filter form's labelled select: "any" first, then the options ([value, text]); `selected` is the value shown. */
export function filterSelect(id, name, label, options, selected) {
  return h(
    "div",
    {},
    h("label", { for: id }, label),
    h(
      "select",
      { id, name },
      h("option", { value: "" }, "any"),
      options.map(([value, text]) => h("option", { value, selected: value === selected }, text)),
    ),
  );
}

export function notice(message, kind = "error") {
  const el = $("notice");
  el.textContent = message;
  el.className = kind === "info" ? "notice info" : "notice";
  el.hidden = !message;
}

// A live redraw replaces a list's rows: the row that had the keyboard focus gets it back, so an
// operator tabbing through the list does not lose their place whenever a message arrives.
export function keepingFocus(list, draw) {
  const key = list.contains(document.activeElement) ? document.activeElement.closest("li[data-key]")?.dataset.key : undefined;
  draw();
  if (key === undefined) return;
  const row = [...list.querySelectorAll("li[data-key]")].find((li) => li.dataset.key === key);
  row?.querySelector("a")?.focus();
}

/** The query of the page's address (`#/messages?status=failed`): the filters a page opens with. */
export function hashQuery() {
  return new URLSearchParams(location.hash.split("?")[1] ?? "");
}
