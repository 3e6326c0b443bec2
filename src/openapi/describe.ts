// One call documents a route: `documented({...})` goes in front of the handler and feeds
// GET /openapi.json (src/openapi/document.ts). The schemas given here are the ones the handler
// parses with, so the document cannot drift from the validation.
import { describeRoute, resolver } from "hono-openapi";
import { z } from "zod";
import { type ErrorCode, errorStatus } from "../errors.ts";

export const errorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorStatus) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })),
    }),
  })
  .meta({ id: "Error", description: "The one error shape of every error answer." });

/** The compatibility routes' error: the one shape, with `success: false` beside it. */
export const compatErrorSchema = errorSchema
  .extend({ success: z.literal(false) })
  .meta({ id: "CompatError", description: "The error shape, with success: false." });

/** Who may call: a tenant API key, the admin token, the metrics token, or anyone. */
export type Caller = "apiKey" | "admin" | "metrics" | "public";

type Answer = { description: string; schema?: z.ZodType; contentType?: string; headers?: Record<string, string> };

export type RouteDoc = {
  summary: string;
  description?: string;
  tags: string[];
  caller: Caller;
  /** Path parameters, when the handler validates them (otherwise documented as plain strings). */
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Request headers the route reads, with what they do. */
  headers?: Record<string, string>;
  responses: Record<number, Answer>;
  /** Error answers besides those every route of this caller can give (see `commonErrors`). */
  errors?: ErrorCode[];
  /** The error body's schema when it is not the plain one (the compatibility routes add `success`). */
  errorBody?: z.ZodType;
};

const commonErrors: Record<Caller, ErrorCode[]> = {
  apiKey: ["unauthorized", "rate_limited", "internal"],
  admin: ["unauthorized", "internal"],
  metrics: ["unauthorized", "internal"],
  public: ["internal"],
};

const security: Record<Caller, { [scheme: string]: string[] }[]> = {
  apiKey: [{ apiKey: [] }],
  admin: [{ adminToken: [] }],
  metrics: [{ metricsToken: [] }],
  public: [],
};

// Query and path objects become one parameter per property.
function parametersOf(schema: z.ZodObject | undefined, where: "query" | "path") {
  if (!schema) return [];
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
    properties?: Record<string, Record<string, unknown>>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      required: where === "path" || (json.required ?? []).includes(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: rest,
    };
  });
}

// Every answer to a tenant's key carries its rate-limit budget (src/limits/rate-limit.ts); a 429
// also says when to come back. The header objects live in components (src/openapi/document.ts).
const rateLimitFields = {
  RateLimit: { $ref: "#/components/headers/RateLimit" },
  "RateLimit-Policy": { $ref: "#/components/headers/RateLimitPolicy" },
};
const retryAfterField = { "Retry-After": { $ref: "#/components/headers/RetryAfter" } };

export function documented(doc: RouteDoc) {
  const errorBody = doc.errorBody ?? errorSchema;
  const limited = doc.caller === "apiKey";
  const responses: Record<string, unknown> = {};
  for (const [status, answer] of Object.entries(doc.responses)) {
    const headers = {
      ...Object.fromEntries(Object.entries(answer.headers ?? {}).map(([k, d]) => [k, { description: d, schema: { type: "string" } }])),
      ...(limited && status !== "101" ? rateLimitFields : {}),
    };
    responses[status] = {
      description: answer.description,
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
      ...(answer.schema ? { content: { [answer.contentType ?? "application/json"]: { schema: resolver(answer.schema) } } } : {}),
    };
  }
  const errors = new Set<ErrorCode>([...commonErrors[doc.caller], ...(doc.errors ?? [])]);
  // Routes that parse a body or a query can always answer 400.
  if (doc.body || doc.query || doc.params) errors.add("invalid_request");
  if (doc.body) {
    errors.add("unsupported_media_type");
    errors.add("payload_too_large");
  }
  for (const code of errors) {
    const status = String(errorStatus[code]);
    const existing = responses[status] as { description: string } | undefined;
    responses[status] = {
      description: existing ? `${existing.description}, or ${code}` : code,
      ...(limited ? { headers: code === "rate_limited" ? { ...rateLimitFields, ...retryAfterField } : rateLimitFields } : {}),
      content: { "application/json": { schema: resolver(errorBody) } },
    };
  }
  return describeRoute({
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: doc.tags,
    security: security[doc.caller],
    parameters: [
      ...parametersOf(doc.params, "path"),
      ...parametersOf(doc.query, "query"),
      ...Object.entries(doc.headers ?? {}).map(([name, description]) => ({
        name,
        in: "header" as const,
        required: false,
        description,
        schema: { type: "string" as const },
      })),
    ],
    ...(doc.body ? { requestBody: { required: true, content: { "application/json": { schema: resolver(doc.body) } } } } : {}),
    responses: responses as never,
  });
}
