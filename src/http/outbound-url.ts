// URLs a tenant gives us and the Worker later fetches (evolutionUrl, callbackUrl, media URLs)
// must name public hosts: a private, loopback or link-local address would let a tenant make the
// gateway call into a network it cannot reach itself. ALLOW_PRIVATE_URLS=true lifts this for
// local development (the Evolution simulator on 127.0.0.1). Host names are not resolved here
// (Workers have no DNS API); a public name that resolves to a private address is not caught.
import ipaddr from "ipaddr.js";
import { ApiError, type ErrorDetail } from "../errors.ts";

/** The setting, as a string: wrangler.toml declares it empty, tests and `npm start` set "true". */
export type UrlPolicy = { ALLOW_PRIVATE_URLS?: string };

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
  // process() reads ::ffff:127.0.0.1 as the IPv4 address it maps; NAT64 (64:ff9b::/96), 6to4,
  // Teredo and the other transition forms that embed an IPv4 address have ranges of their own.
  const address = ipaddr.process(bare);
  const range = address.range();
  if (range !== "unicast") return range;
  // Of IPv6, only global unicast is public. The rest ipaddr.js calls unicast is unassigned space,
  // including the old IPv4-compatible ::/96 (`[::7f00:1]` is 127.0.0.1).
  if (address.kind() === "ipv6" && !address.match(GLOBAL_UNICAST)) return address.match(IPV4_COMPATIBLE) ? "ipv4Compatible" : "reserved";
  return undefined;
}

const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");
const IPV4_COMPATIBLE = ipaddr.parseCIDR("::/96");

export function allowsPrivateUrls(env: UrlPolicy): boolean {
  return env.ALLOW_PRIVATE_URLS === "true";
}

/** Why `url` may not be fetched (a non-public address while the setting is off), as an error detail naming `path`. */
export function privateUrlDetail(env: UrlPolicy, url: string | undefined, path: string): ErrorDetail | undefined {
  if (url === undefined || allowsPrivateUrls(env)) return undefined;
  const range = nonPublicHost(url);
  if (!range) return undefined;
  return { path, message: `Must be a public address; this one is ${range} (ALLOW_PRIVATE_URLS=true allows it for local development).` };
}

/** Throws a 400 naming `path` when `url` points at a non-public address and the setting is off. */
export function refusePrivateUrl(env: UrlPolicy, url: string | undefined, path: string): void {
  const detail = privateUrlDetail(env, url, path);
  if (detail) throw new ApiError("invalid_request", "The request is invalid.", [detail]);
}

/** The first URL of a send request (API call or automation reply) that names a non-public address. */
export function privateMessageUrl(env: UrlPolicy, input: { media?: { url: string }; callbackUrl?: string }, pathPrefix = ""): ErrorDetail | undefined {
  return privateUrlDetail(env, input.media?.url, `${pathPrefix}media.url`) ?? privateUrlDetail(env, input.callbackUrl, `${pathPrefix}callbackUrl`);
}

/** The URLs of a send request. */
export function refusePrivateMessageUrls(env: UrlPolicy, input: { media?: { url: string }; callbackUrl?: string }, pathPrefix = ""): void {
  const detail = privateMessageUrl(env, input, pathPrefix);
  if (detail) throw new ApiError("invalid_request", "The request is invalid.", [detail]);
}
