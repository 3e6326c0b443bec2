// One call documents and checks a route: `documented({...})` goes in front of the handler, feeds
// GET /openapi.json (src/openapi/document.ts) and validates the path, query and JSON body with the
// same schemas (hono-openapi's validator()); the handler reads them with `c.req.valid(...)`. The
// document cannot drift from the validation: they are one thing.
import type { Env, MiddlewareHandler, Next, ValidationTargets } from "hono";
import { describeRoute, resolver, validator } from "hono-openapi";
import type { InferInput } from "hono/validator";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { errorSchema } from "../contracts/errors.ts";
import { ApiError, type ErrorCode, type ErrorDetail, errorStatus } from "../errors.ts";
import { jsonBody, MAX_BODY_BYTES } from "../http/body.ts";

export { errorSchema };

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
  /** Path parameters, checked (otherwise documented as plain strings and left to the handler). */
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The body's check when it differs from the documented body: a batch checks each item itself,
   *  an older format is checked, translated and checked again as a send. */
  bodyCheck?: z.ZodType;
  /** The body may be left out (no Content-Type, no length): it is then checked as `{}`. */
  bodyOptional?: boolean;
  /** The body's size limit (src/http/body.ts), when not the default. */
  maxBodyBytes?: number;
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

// What the route's checks hand the handler (`c.req.valid(...)`), and what a typed client sends.
type Checked<S, K extends "param" | "query" | "json", Optional = false> = S extends z.ZodType
  ? {
      in: Optional extends true
        ? { [k in K]?: [z.input<S>] extends [ValidationTargets[k]] ? z.input<S> : InferInput<z.input<S>, k> }
        : { [k in K]: [z.input<S>] extends [ValidationTargets[k]] ? z.input<S> : InferInput<z.input<S>, k> };
      out: { [k in K]: z.output<S> };
    }
  : // biome-ignore lint/complexity/noBannedTypes: Hono's own "no input" is `{}`; another type would not merge with it.
    { in: {}; out: {} };
type BodyCheck<D extends RouteDoc> = D extends { bodyCheck: infer B } ? B : D["body"];
type Optional<D extends RouteDoc> = D extends { bodyOptional: true } ? true : false;
export type Validated<D extends RouteDoc> = {
  in: Checked<D["params"], "param">["in"] & Checked<D["query"], "query">["in"] & Checked<BodyCheck<D>, "json", Optional<D>>["in"];
  out: Checked<D["params"], "param">["out"] & Checked<D["query"], "query">["out"] & Checked<BodyCheck<D>, "json">["out"];
};

/** A failed check answers 400 invalid_request, with one detail per issue (path as `a.b.0`). */
const refuse = (result: { success: boolean; error?: readonly { message: string; path?: readonly (PropertyKey | { key: PropertyKey })[] }[] }) => {
  if (result.success) return;
  const details: ErrorDetail[] = (result.error ?? []).map((issue) => ({
    path: (issue.path ?? []).map((segment) => String(typeof segment === "object" ? segment.key : segment)).join("."),
    message: issue.message,
  }));
  throw new ApiError("invalid_request", "The request is invalid.", details);
};

/** The route's checks, in the order a handler parsed them before: path, query, then the body
 *  (read by the capped reader first, so size, media type and nesting keep their answers). */
function checksOf(doc: RouteDoc): MiddlewareHandler[] {
  const checks: MiddlewareHandler[] = [];
  if (doc.params) checks.push(validator("param", doc.params, refuse));
  if (doc.query) checks.push(validator("query", doc.query, refuse));
  const body = doc.bodyCheck ?? doc.body;
  if (body) checks.push(jsonBody(doc.maxBodyBytes ?? MAX_BODY_BYTES, doc.bodyOptional ?? false), validator("json", body, refuse));
  return checks;
}

export function documented<const D extends RouteDoc, E extends Env = AppEnv, P extends string = string>(doc: D): MiddlewareHandler<E, P, Validated<D>> {
  const description = describe(doc);
  const checks = checksOf(doc);
  const run: MiddlewareHandler = (c, next) => checks.reduceRight<Next>((after, check) => async () => void (await check(c, after)), next)();
  // The description's mark (hono-openapi's symbol) goes on the one middleware: only it feeds the
  // document, whose parameters and body already show the schemas the checks use.
  return Object.assign(run, description) as MiddlewareHandler<E, P, Validated<D>>;
}

function describe(doc: RouteDoc) {
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
