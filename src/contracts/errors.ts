// The one error body of the API, as documented in GET /openapi.json; clients parse answers with it.
import { z } from "zod";
import { type ErrorCode, errorStatus } from "../errors.ts";

export const errorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorStatus) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })),
      requestId: z.string().describe("The request's id, as in the gateway's log lines: quote it when asking about an error."),
    }),
  })
  .meta({ id: "Error", description: "The one error shape of every error answer." });
