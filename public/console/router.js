// Hash routes to pages. Each page draws into a root of its own and subscribes through page-scope,
// so leaving it drops its listeners and timers.
import { ApiFailure } from "./api.js";
import { leavePage } from "./page-scope.js";
import { callbacksPage } from "./pages/callbacks.js";
import { contactLookup, conversationPage } from "./pages/conversation.js";
import { deadLettersPage } from "./pages/dead-letters.js";
import { inboxPage } from "./pages/inbox.js";
import { instancesPage } from "./pages/instances.js";
import { messagePage, messagesPage } from "./pages/messages.js";
import { overview } from "./pages/overview.js";
import { session } from "./session.js";
import { showSignIn } from "./sign-in.js";
import { $, h, notice } from "./view.js";

const routes = [
  [/^#\/overview$/, overview],
  [/^#\/instances$/, instancesPage],
  [/^#\/messages(?:\?.*)?$/, messagesPage],
  [/^#\/messages\/([\w-]+)$/, messagePage],
  [/^#\/inbox(?:\?.*)?$/, inboxPage],
  [/^#\/conversations\/([^/]+)\/([^/]+)$/, conversationPage],
  [/^#\/conversations(?:\/([^/]+))?$/, contactLookup],
  [/^#\/dead-letters$/, deadLettersPage],
  [/^#\/callbacks$/, callbacksPage],
];

export async function render() {
  leavePage();
  if (!session()) return showSignIn();
  const hash = location.hash || "#/overview";
  const match = routes.map(([re, page]) => [hash.match(re), page]).find(([m]) => m);
  if (!match) {
    location.hash = "#/overview";
    return;
  }
  const [m, page] = match;
  for (const a of document.querySelectorAll(".bar nav a")) {
    // A conversation's page belongs to the inbox.
    if (hash.startsWith(a.getAttribute("href")) || (a.id === "nav-inbox" && hash.startsWith("#/conversations"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  notice("");
  // Each render draws into a container of its own: a page still loading or redrawing for the route
  // just left writes into a detached node, never over the page now shown.
  const root = h("div");
  $("page").replaceChildren(root);
  root.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    await page(root, ...m.slice(1).map((p) => (p ? decodeURIComponent(p) : p)));
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) return;
    root.replaceChildren(h("h1", {}, "Something went wrong"), h("p", { class: "error" }, err.message));
  }
}
