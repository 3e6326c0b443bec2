// The sign-in form, shown in place of the pages when there is no session.
import { endSession, takeEndReason } from "./session.js";
import { $, notice } from "./view.js";

export function showSignIn(message) {
  const reason = takeEndReason();
  if (message === undefined) message = reason;
  // Already shown (a background refresh or the idle check came second): keep its message and
  // whatever the operator is typing.
  if (!$("sign-in").hidden && !message) return;
  $("bar").hidden = true;
  $("page").replaceChildren();
  $("sign-in").hidden = false;
  notice("");
  const error = $("sign-in-error");
  error.textContent = message ?? "";
  error.hidden = !message;
  $("api-key").value = "";
  $("api-key").focus();
}

export function signOut(message) {
  endSession();
  showSignIn(message);
}
