// URLs a tenant gives us and the Worker later fetches (evolutionUrl, callbackUrl, media URLs)
// must name public hosts: a private, loopback or link-local address would let a tenant make the
// gateway call into a network it cannot reach itself. ALLOW_PRIVATE_URLS=true lifts this for
// local development (the Evolution simulator on 127.0.0.1). Host names are not resolved here
// (Workers have no DNS API); a public name that resolves to a private address is not caught.
import ipaddr from "ipaddr.js";
import { ApiError } from "../errors.ts";

/** The setting, as a string: wrangler.toml declares it empty, tests and `npm start` set "true". */
type UrlPolicy = { ALLOW_PRIVATE_URLS?: string };

/** Why this URL's host is not a public address ("loopback", "private", "linkLocal"…), or undefined. */
export function nonPublicHost(url: string): string | undefined {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return undefined; // not a URL: the schema refuses it
  }
  const bare = host.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  if (bare === "localhost" || bare.endsWith(".localhost")) return "loopback";
  if (!ipaddr.isValid(bare)) return undefined;
  // process() reads ::ffff:127.0.0.1 as the IPv4 address it maps.
  const range = ipaddr.process(bare).range();
  return range === "unicast" ? undefined : range;
}

export function allowsPrivateUrls(env: UrlPolicy): boolean {
  return env.ALLOW_PRIVATE_URLS === "true";
}

/** Throws a 400 naming `path` when `url` points at a non-public address and the setting is off. */
export function refusePrivateUrl(env: UrlPolicy, url: string | undefined, path: string): void {
  if (url === undefined || allowsPrivateUrls(env)) return;
  const range = nonPublicHost(url);
  if (!range) return;
  throw new ApiError("invalid_request", "The request is invalid.", [
    { path, message: `Must be a public address; this one is ${range} (ALLOW_PRIVATE_URLS=true allows it for local development).` },
  ]);
}

/** The URLs of a send request. */
export function refusePrivateMessageUrls(env: UrlPolicy, input: { media?: { url: string }; callbackUrl?: string }, pathPrefix = ""): void {
  refusePrivateUrl(env, input.media?.url, `${pathPrefix}media.url`);
  refusePrivateUrl(env, input.callbackUrl, `${pathPrefix}callbackUrl`);
}
