// Request bodies: JSON only, size-limited, parsed with zod into the one error shape.
import type { Context, MiddlewareHandler } from "hono";
import type { z } from "zod";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "../contracts/json-depth.ts";
import { ApiError, invalid } from "../errors.ts";

export const MAX_BODY_BYTES = 256 * 1024;
export const MAX_BATCH_BODY_BYTES = 5 * 1024 * 1024;

export async function readJson(c: Context, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  // The media type as Hono's validator reads it (parameters after ";" aside), so both agree on what is JSON.
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim();
  if (!/^application\/([\w.-]+\+)?json$/i.test(type)) {
    throw new ApiError("unsupported_media_type", "Send the body as JSON with Content-Type: application/json.");
  }
  const declared = Number(c.req.header("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const buffer = await c.req.arrayBuffer();
  if (buffer.byteLength > maxBytes) throw tooLarge(maxBytes);
  const text = new TextDecoder().decode(buffer);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError("invalid_request", "The body is not valid JSON.");
  }
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) {
    throw new ApiError("invalid_request", `The body nests deeper than ${MAX_JSON_DEPTH} levels.`, [{ path: "", message: "Too deeply nested." }]);
  }
  return value;
}

const tooLarge = (max: number) => new ApiError("payload_too_large", `The body is larger than ${Math.floor(max / 1024)} KiB.`);

/** Reads the JSON body with the limits above before a route's validator checks it. `optional`: a
 *  request without a body (no Content-Type, no length) passes on, checked as `{}`. */
export function jsonBody(maxBytes = MAX_BODY_BYTES, optional = false): MiddlewareHandler {
  return async (c, next) => {
    if (optional && c.req.header("content-type") === undefined && !(Number(c.req.header("content-length") ?? 0) > 0)) return next();
    const value = await readJson(c, maxBytes);
    // The validator reads the body through c.req.json(): it gets the value read here, not a second parse.
    c.req.json = async <T>() => value as T;
    await next();
  };
}

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix = ""): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(result.error, prefix);
  return result.data;
}

export async function parseBody<S extends z.ZodType>(c: Context, schema: S, maxBytes = MAX_BODY_BYTES): Promise<z.infer<S>> {
  return parseWith(schema, await readJson(c, maxBytes));
}
