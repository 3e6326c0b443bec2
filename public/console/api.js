// The gateway's API, called with the session's key as a Bearer header to this origin only. Its
// errors arrive as ApiFailure; a key the gateway no longer takes signs the operator out.
import { session } from "./session.js";
import { showSignIn, signOut } from "./sign-in.js";

export class ApiFailure extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details ?? [];
  }
}

/** `key` checks a key before it is the session's (sign-in): a refusal then signs nobody out. */
export async function api(path, { method = "GET", body, key } = {}) {
  const s = key ? { key } : session();
  if (!s) {
    showSignIn();
    throw new ApiFailure(401, { error: { code: "unauthorized", message: "Not signed in." } });
  }
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: { authorization: `Bearer ${s.key}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiFailure(0, { error: { code: "unavailable", message: "Could not reach the gateway. Check the connection and try again." } });
  }
  const data = await res.json().catch(() => null);
  if (res.status === 401 && !key) {
    signOut("This API key is no longer valid (revoked or unknown). Sign in with a current key.");
  }
  if (!res.ok) throw new ApiFailure(res.status, data);
  return data;
}

/** An API error with the fields it names. */
export const apiMessage = (err) => (err.details?.length ? `${err.message} ${err.details.map((d) => `${d.path}: ${d.message}`).join("; ")}` : err.message);

/** True when the route is simply not on this gateway (an older build): the page falls back or says so. */
export const missingRoute = (err) => err instanceof ApiFailure && err.status === 404 && err.message === "No such route.";
