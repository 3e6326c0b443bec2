// A typed client of the gateway's HTTP API, built from the app's own routes (`AppType`): paths,
// path parameters, queries and JSON bodies are checked by the compiler against the same schemas the
// routes validate with, and answers a handler types (`c.json(...)`) come back typed.
//   const gateway = gatewayClient("https://gateway.example.com", { apiKey });
//   const res = await gateway.v1.messages[":id"].$get({ param: { id } });
//   if (res.ok) (await res.json()).status;
import { hc } from "hono/client";
import type { AppType } from "./index.ts";

// Built once here, so that editors and tsc do not compute the app's type again at every use.
const typed = (...args: Parameters<typeof hc>) => hc<AppType>(...args);
export type GatewayClient = ReturnType<typeof typed>;

export type GatewayClientOptions = {
  /** A tenant API key (mgo_…) or the admin token, sent as Authorization: Bearer. */
  apiKey?: string;
  headers?: Record<string, string>;
  /** Another fetch (tests hand the Worker's own). */
  fetch?: typeof fetch;
};

export function gatewayClient(baseUrl: string, options: GatewayClientOptions = {}): GatewayClient {
  const headers = { ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}), ...options.headers };
  return typed(baseUrl, { headers, ...(options.fetch ? { fetch: options.fetch } : {}) });
}
