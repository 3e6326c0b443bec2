// Overview: counts by status, the alarms (dead letters, a queue that waits), and the activity chart.
import { api } from "../api.js";
import { every, onEvent } from "../page-scope.js";
import { STATUSES } from "../terms.js";
import { throttle } from "../timing.js";
import { ago, badge, h } from "../view.js";

const SERIES = [
  ["sent", "Sends"],
  ["failed", "Failures"],
  ["delivered", "Deliveries"],
  ["read", "Reads"],
];

export async function overview(root) {
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
