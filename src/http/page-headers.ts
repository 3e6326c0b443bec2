// The gateway's own pages (the console, the web chat demo) and the static files behind them.
import type { Context, Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "../app-env.ts";

/** Everything from this origin only (images also as data: URLs, for Evolution's QR codes), never framed. */
const pageHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", "data:"],
    connectSrc: ["'self'"],
    formAction: ["'none'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
  },
  referrerPolicy: "no-referrer",
  crossOriginEmbedderPolicy: false,
});

/** Puts the pages' headers on every answer of `paths` (Hono paths, `*` included). */
export function usePageHeaders(routes: Hono<AppEnv>, ...paths: string[]): void {
  for (const path of paths) routes.use(path, pageHeaders);
}

/**
 * The static asset (public/) the request names, with `headers` over its own. A fresh copy: the
 * asset's answer is immutable, and middleware adds headers to what the handler returns.
 */
export async function servedAsset(c: Context<AppEnv>, headers: Record<string, string> = {}): Promise<Response> {
  const asset = await c.env.ASSETS.fetch(c.req.raw);
  const res = new Response(asset.body, asset);
  for (const [name, value] of Object.entries(headers)) res.headers.set(name, value);
  return res;
}
