// Instances: each number's channel, connection, sending, pacing and automation breaker; the QR code
// to scan while a WhatsApp number is not connected.
import { ApiFailure, api } from "../api.js";
import { every, onEvent } from "../page-scope.js";
import { badge, h, time } from "../view.js";

export async function instancesPage(root) {
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
    qrTimers.set(name, every(3000, load));
  }

  await draw();
  onEvent((e) => {
    if (e.type === "instance.status" || e.type.startsWith("automation.")) draw();
  });
  every(15_000, () => draw().catch(() => undefined));
}
