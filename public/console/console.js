// mensageiro operator console: native ES modules, no framework, no build step, no request to any
// host but this one. The tenant API key lives in this tab's sessionStorage only (session.js); the
// live stream opens with a one-time ticket, so the key never travels in a URL (stream.js).
import { api } from "./api.js";
import { render } from "./router.js";
import { session, startSession, touch } from "./session.js";
import { showSignIn, signOut } from "./sign-in.js";
import { stream } from "./stream.js";
import { $ } from "./view.js";

const IDLE_CHECK_MS = 10_000;

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const error = $("sign-in-error");
  error.hidden = true;
  try {
    await api("/v1/stats", { key });
  } catch (err) {
    error.textContent = err.status === 401 ? "That API key is wrong or has been revoked." : err.message;
    error.hidden = false;
    return;
  }
  startSession(key);
  enter();
}

function enter() {
  $("sign-in").hidden = true;
  $("bar").hidden = false;
  const s = session();
  $("tenant").textContent = s ? `key ${s.key.slice(0, 10)}…` : "";
  stream.start();
  if (!location.hash || location.hash === "#") location.hash = "#/overview";
  else render();
  $("main").focus();
}

$("sign-in-form").addEventListener("submit", signIn);
for (const input of ["pointerdown", "keydown", "wheel", "touchstart"]) window.addEventListener(input, touch, { capture: true, passive: true });
// A tab left open signs out on time, not at the next click.
setInterval(() => {
  if (!$("bar").hidden && !session()) showSignIn();
}, IDLE_CHECK_MS);
$("sign-out").addEventListener("click", () => signOut("You are signed out."));
window.addEventListener("hashchange", () => {
  if (session()) render();
  else showSignIn();
});
if (session()) enter();
else showSignIn();
