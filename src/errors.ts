// One error taxonomy, one body shape: {"error":{"code","message","details":[{"path","message"}],"requestId"}}.
import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { errorField, log } from "./observability/log.ts";

export const errorStatus = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;
export type ErrorDetail = { path: string; message: string };
export type ErrorBody = { error: { code: ErrorCode; message: string; details: ErrorDetail[]; requestId?: string } };

/** An expected failure: thrown anywhere, answered by the app's one onError in the one shape. */
export class ApiError extends HTTPException {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(errorStatus[code], { message });
  }
  /** The body; `requestId` (the id the request's log lines carry) is left out of a batch item's error. */
  body(requestId?: string): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details, ...(requestId ? { requestId } : {}) } };
  }
  override getResponse(): Response {
    return Response.json(this.body(), { status: this.status, headers: this.headers });
  }
}

export function zodDetails(error: z.ZodError, prefix = ""): ErrorDetail[] {
  return error.issues.map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter(Boolean).join("."),
    message: issue.message,
  }));
}

export function invalid(error: z.ZodError, prefix = ""): ApiError {
  return new ApiError("invalid_request", "The request is invalid.", zodDetails(error, prefix));
}

// Hono's own exceptions (bad JSON, body limit) mapped into the taxonomy.
function fromHttpException(err: HTTPException): ApiError {
  if (err.status === 413) return new ApiError("payload_too_large", "The request body is too large.");
  if (err.status === 401) return new ApiError("unauthorized", "Missing or invalid credentials.");
  if (err.status === 415) return new ApiError("unsupported_media_type", err.message || "Expected application/json.");
  if (err.status === 400) return new ApiError("invalid_request", err.message || "The request is invalid.");
  if (err.status === 404) return new ApiError("not_found", err.message || "Not found.");
  return new ApiError(err.status >= 500 ? "unavailable" : "invalid_request", err.message || "Request failed.");
}

export function toApiError(err: unknown): ApiError | null {
  if (err instanceof ApiError) return err;
  if (err instanceof HTTPException) return fromHttpException(err);
  if (err instanceof z.ZodError) return invalid(err);
  return null;
}

/** The app's one onError: every error answer in the one shape, with the request id of its log lines.
 *  The compatibility routes (`compatErrors` set) keep `success: false` beside it for older clients. */
export function errorResponse(c: Context<AppEnv>, err: Error): Response {
  const requestId = c.get("requestId");
  const apiError = toApiError(err);
  // A 500 is a bug: logged with the request id, never shown with a stack.
  if (!apiError) log("error", "unhandled error", { requestId, error: errorField(err), stack: err.stack });
  const body = apiError?.body(requestId) ?? { error: { code: "internal", message: `Internal error (request ${requestId}).`, details: [], requestId } };
  return c.json(c.get("compatErrors") ? { success: false, ...body } : body, apiError?.status ?? 500, apiError?.headers);
}
