// Request bodies: JSON only, size-limited, parsed with zod into the one error shape.
import type { Context } from "hono";
import type { z } from "zod";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "../contracts/json-depth.ts";
import { ApiError, invalid } from "../errors.ts";

export const MAX_BODY_BYTES = 256 * 1024;
export const MAX_BATCH_BODY_BYTES = 5 * 1024 * 1024;

export async function readJson(c: Context, maxBytes = MAX_BODY_BYTES): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
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

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, prefix = ""): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(result.error, prefix);
  return result.data;
}

export async function parseBody<S extends z.ZodType>(c: Context, schema: S, maxBytes = MAX_BODY_BYTES): Promise<z.infer<S>> {
  return parseWith(schema, await readJson(c, maxBytes));
}
