// A Bot API call's parameters, read like Telegram reads them: the query string, then a JSON,
// form-urlencoded or multipart body. Form values are strings; arrays and objects arrive as JSON
// text (allowed_updates, reply_markup), and multipart may carry uploaded files.
import type { Context } from "hono";
import { z } from "zod";
import { chatIdInput } from "./config.ts";

export type Params = Record<string, unknown>;
export type Read = { ok: true; params: Params } | { ok: false; description: string };

export async function readParams(c: Context): Promise<Read> {
  const params: Params = { ...c.req.query() };
  if (c.req.method !== "POST") return { ok: true, params };
  const type = (c.req.header("content-type") ?? "").toLowerCase();
  if (type.includes("multipart/form-data") || type.includes("application/x-www-form-urlencoded")) {
    try {
      const form = await c.req.formData();
      for (const [key, value] of form.entries()) params[key] = value;
    } catch {
      return { ok: false, description: "Bad Request: can't parse request body" };
    }
    return { ok: true, params };
  }
  const text = await c.req.text();
  if (text.trim() === "") return { ok: true, params };
  if (!type.includes("json")) return { ok: true, params };
  try {
    const json = z.record(z.string(), z.unknown()).safeParse(JSON.parse(text));
    if (!json.success) return { ok: false, description: "Bad Request: can't parse JSON object" };
    return { ok: true, params: { ...params, ...json.data } };
  } catch {
    return { ok: false, description: "Bad Request: can't parse JSON object" };
  }
}

export function text(params: Params, key: string): string | undefined {
  const value = params[key];
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

export function integer(params: Params, key: string): number | undefined {
  const value = text(params, key);
  return value !== undefined && /^-?\d+$/.test(value.trim()) ? Number(value) : undefined;
}

export function flag(params: Params, key: string): boolean {
  const value = params[key];
  return value === true || value === "true" || value === "1" || value === 1;
}

/** An array parameter given as JSON or as JSON text. */
export function list(params: Params, key: string): string[] | undefined | "invalid" {
  let value = params[key];
  if (value === undefined || value === "") return undefined;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return "invalid";
    }
  }
  const parsed = z.array(z.string()).safeParse(value);
  return parsed.success ? parsed.data : "invalid";
}

/** chat_id: an integer (also as text) or @channelusername. */
export function chatId(params: Params): number | string | undefined {
  const parsed = chatIdInput.safeParse(typeof params.chat_id === "string" ? params.chat_id.trim() : params.chat_id);
  return parsed.success ? parsed.data : undefined;
}

/** What goes in the call record: uploads as their name and size, not their bytes. */
export function recordable(params: Params): Params {
  return Object.fromEntries(
    Object.entries(params).map(([k, v]) => [k, v instanceof Blob ? { upload: v instanceof File ? v.name : "blob", size: v.size, type: v.type } : v]),
  );
}
