// The signed-in key. It lives in this tab's sessionStorage only (never a cookie), is gone when the
// tab closes, and sign-out removes it.

const SESSION = "mensageiro.console.session";
// Why the sign-in form is back, said once on it (kept across a reload of the tab).
const REASON = "mensageiro.console.reason";
// An idle tab signs itself out: a key left in an unattended browser is a key someone else can use.
// Only the operator's own input counts as use: the console's background refreshes and the live
// stream do not keep a session alive.
const IDLE_MS = 30 * 60_000;

const ended = new Set();

/** Runs `listener` when the session ends (signed out or expired): what the key opened closes with it. */
export function onSessionEnd(listener) {
  ended.add(listener);
}

/** Forgets the key. */
export function endSession() {
  sessionStorage.removeItem(SESSION);
  for (const listener of ended) listener();
}

/** The session, or null when there is none or it has expired. */
export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION) ?? "null");
    if (!s || typeof s.key !== "string") return null;
    if (Date.now() - s.lastUsed > IDLE_MS) {
      endSession();
      sessionStorage.setItem(REASON, "Your session expired after 30 minutes without use. Sign in again.");
      return null;
    }
    return s;
  } catch {
    return null;
  }
}

export function startSession(key) {
  sessionStorage.setItem(SESSION, JSON.stringify({ key, lastUsed: Date.now() }));
}

/** The operator's input: the session stays alive. */
export function touch() {
  const s = session();
  // At most one write a second, however fast the input.
  if (s && Date.now() - s.lastUsed > 1000) sessionStorage.setItem(SESSION, JSON.stringify({ ...s, lastUsed: Date.now() }));
}

/** Why the session ended, if it said so; read once. */
export function takeEndReason() {
  const reason = sessionStorage.getItem(REASON);
  sessionStorage.removeItem(REASON);
  return reason;
}
