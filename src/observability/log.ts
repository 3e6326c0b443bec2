// Structured logs: one JSON object a line on stdout, which Workers Logs indexes field by field.
// Everything goes through scrub(): secrets and message text never reach a log line, whatever a
// caller (or a driver's error message) hands in.

export type Level = "debug" | "info" | "warn" | "error";
export type Fields = Record<string, unknown>;

// Fields whose value is never logged, by name: credentials and message content.
const SECRET_FIELD = /secret|token|password|passphrase|authorization|cookie|api[-_]?key|^(text|caption|body|message_text|content)$/i;
export const REDACTED = "[redacted]";

// Secrets that can hide inside free text (error messages, URLs), by shape.
const SECRET_SHAPES: [RegExp, string][] = [
  [/\bmgo_[A-Za-z0-9_-]+/g, "mgo_[redacted]"], // API keys
  [/\bwhsec_[A-Za-z0-9+/=_-]+/g, "whsec_[redacted]"], // callback signing secrets
  [/\b(Bearer|Basic)\s+[^\s"',;]+/gi, "$1 [redacted]"],
  [/(\/webhooks\/evolution\/)(?!:token)[^/\s"'?#]+/g, "$1[redacted]"], // the webhook token names the instance
  [/("?(?:apikey|api[-_]key|token|secret|password)"?\s*[:=]\s*"?)[^"\s,&}]+/gi, "$1[redacted]"],
  [/([?&](?:apikey|api[-_]key|token|secret|key)=)[^&\s"']+/gi, "$1[redacted]"],
  // drizzle's "Failed query: … params: …" carries the bound values (message text, Evolution keys),
  // which may hold line breaks: everything after it goes.
  [/(\bparams: )[\s\S]*/g, "$1[redacted]"],
];

const MAX_STRING = 1000;
const MAX_DEPTH = 4;

export function scrubText(text: string): string {
  let out = text;
  for (const [shape, replacement] of SECRET_SHAPES) out = out.replace(shape, replacement);
  return out.length > MAX_STRING ? `${out.slice(0, MAX_STRING)}…` : out;
}

export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return scrubText(value);
  if (value instanceof Error) return scrubText(`${value.name}: ${value.message}`);
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_DEPTH) return "[depth]";
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => scrub(v, depth + 1));
  const out: Fields = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELD.test(k) ? REDACTED : scrub(v, depth + 1);
  return out;
}

export function log(level: Level, msg: string, fields: Fields = {}): void {
  const line = JSON.stringify({ level, msg, ...(scrub(fields) as Fields), at: new Date().toISOString() });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

/** An error as a log field: its kind and scrubbed message, never a stack with values in it. */
export const errorField = (err: unknown): string => scrubText(err instanceof Error ? `${err.name}: ${err.message}` : String(err));

/** The one line per delivery attempt. No error text: Evolution's answers can echo the message. */
export function logDeliveryAttempt(attempt: { messageId: string; attempt: number; outcome: string; evolutionLatencyMs: number; instance?: string }): void {
  log(attempt.outcome === "sent" ? "info" : "warn", "delivery attempt", attempt);
}
