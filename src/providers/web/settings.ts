// A web chat instance's settings: which sites' pages may open its visitors' sockets.
import { z } from "zod";

const origin = z
  .url({ protocol: /^https?$/, message: "Must be an http(s) origin, e.g. https://shop.example." })
  .max(255)
  // Zod runs this refinement even when the string failed the URL check: parse it safely.
  .refine((u) => !URL.canParse(u) || new URL(u).origin === u.replace(/\/$/, ""), "An origin only: scheme, host and port, no path.")
  .transform((u) => new URL(u).origin);

export const webInput = z.strictObject({
  allowedOrigins: z
    .array(origin)
    .max(50)
    .nullable()
    .optional()
    .describe("Origins whose pages may open a visitor's socket (the browser's Origin header); null or absent: any."),
});

export const webAnswer = z.object({ allowedOrigins: z.array(z.string()).nullable() }).meta({ id: "WebChat" });

/** Where a visitor's browser opens its socket. */
export const chatSocketUrl = (base: string) => `${base.replace(/^http/, "ws")}/v1/chat`;
