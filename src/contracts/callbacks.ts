// Answers of /v1/callbacks and /v1/dead-letters: the shapes the handlers return (checked with
// `satisfies`), kept as zod schemas so the API description can be generated from them.
import { z } from "zod";

const when = z.string().describe("ISO 8601 time.");

export const callbackSettings = z
  .object({
    url: z.string().nullable().describe("The tenant's callback URL (a message's own callbackUrl wins for its events)."),
    signing: z.object({
      scheme: z.literal("standard-webhooks"),
      secretFormat: z
        .enum(["whsec", "legacy-token"])
        .describe("legacy-token: a secret from before Standard Webhooks; its whsec_ form is whsec_ + base64(token)."),
      previousSecretValidUntil: when.optional().describe("While set, callbacks carry a second signature with the previous secret."),
      legacyHeader: z.boolean().describe("Whether X-Mensageiro-Signature is still sent alongside."),
    }),
    disabledEndpoints: z.array(z.object({ url: z.string(), disabledAt: when.optional(), reason: z.string() })),
  })
  .meta({ id: "CallbackSettings" });

export const rotatedSecret = z
  .object({ secret: z.string().describe("The new whsec_ secret, shown once."), previousSecretValidUntil: when.optional(), rotatedAt: when.optional() })
  .meta({ id: "RotatedCallbackSecret" });

export const enabledEndpoint = z.object({ url: z.string(), enabled: z.literal(true) });

export const deliveryStatuses = ["pending", "retrying", "delivered", "failed"] as const;

export const callbackDelivery = z
  .object({
    eventId: z.string().describe("Also the webhook-id header of every attempt."),
    eventType: z.string().optional(),
    url: z.string(),
    status: z.enum(deliveryStatuses),
    attempts: z.int(),
    lastError: z.string().optional(),
    lastResponseStatus: z.int().optional(),
    nextAttemptAt: when.optional(),
    deliveredAt: when.optional(),
    createdAt: when.optional(),
    updatedAt: when.optional(),
  })
  .meta({ id: "CallbackDelivery" });

export const callbackDeliveryPage = z.object({ data: z.array(callbackDelivery), nextCursor: z.string().nullable() });

export const callbackReplay = z.object({
  replayed: z.int().describe("How many deliveries were started again."),
  eventIds: z.array(z.string()),
  more: z.boolean().describe("More failed deliveries match: call again."),
});

export const deadLetter = z
  .object({
    messageId: z.string(),
    instance: z.string(),
    to: z.string(),
    status: z.string().describe("The message's status now (failed until replayed)."),
    attempts: z.int(),
    error: z.string(),
    mayHaveSent: z
      .boolean()
      .describe(
        "It may have gone out after all (Evolution accepted it but its answer was unreadable, or it could not say; Telegram did not answer in time): bulk replay skips it unless force.",
      ),
    failedAt: when.optional(),
    replayedAt: when.optional(),
  })
  .meta({ id: "DeadLetter" });

export const deadLetterPage = z.object({ data: z.array(deadLetter), nextCursor: z.string().nullable() });

export const deadLetterReplay = z.object({
  replayed: z.int().describe("How many messages were queued again."),
  ids: z.array(z.string()).describe("The replayed message ids, in the order they were handed to their lanes."),
  skipped: z.array(z.object({ id: z.string(), reason: z.string() })),
  more: z.boolean().describe("With a filter: more dead letters match, call again."),
});
