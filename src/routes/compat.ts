// Compatibility aliases: the older services' routes and answers, on the same pipeline.
import { Hono, type Context } from "hono";
import { z } from "zod";
import type { AppEnv } from "../app-env.ts";
import { requireApiKey } from "../auth/api-keys.ts";
import { fromMessagingSend, fromWhatsappSchedule, fromWhatsappSend, messagingSend, whatsappScheduleMessage, whatsappSendMessage } from "../contracts/legacy.ts";
import { legacySendMessageSchema, type SendMessageRequest } from "../contracts/messages.ts";
import { refusePrivateMessageUrls } from "../http/outbound-url.ts";
import { rateLimit } from "../limits/rate-limit.ts";
import { agentQueueRoutes } from "./compat-agent.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../messages/accept.ts";
import { type Attempt, idempotent } from "../messages/idempotency.ts";
import { preferredWait, waitUntilFinished } from "../messages/wait.ts";
import { compatErrorSchema, documented } from "../openapi/describe.ts";

// An older format is checked, translated, then checked as a send (the errors of POST /v1/messages).
const asSend = <S extends z.ZodType>(format: S, translate: (legacy: z.output<S>) => unknown) => format.transform(translate).pipe(legacySendMessageSchema);

const compatDoc = <B extends z.ZodType>(summary: string, body: z.ZodType, bodyCheck: B, status: 200 | 202, answer: z.ZodType) =>
  documented({
    summary,
    description: "Compatibility alias of POST /v1/messages for the older services: their request and answer formats.",
    tags: ["Compatibility"],
    caller: "apiKey",
    body,
    bodyCheck,
    headers: { "Idempotency-Key": "As on POST /v1/messages." },
    responses: { [status]: { description: "Accepted.", schema: answer } },
    errors: ["conflict", "unprocessable"],
    errorBody: compatErrorSchema,
  });

/** `waitsForSend`: the request waits for the send (Prefer: wait), so its message goes straight to its
 *  lane, as on POST /v1/messages; otherwise through the sends queue. */
async function accept(c: Context<AppEnv>, attempt: Attempt, input: SendMessageRequest, source: string, waitsForSend = false) {
  refusePrivateMessageUrls(c.env, input);
  const instances = await findInstances(c.var.db, c.var.tenant.id, [input.instance]);
  const prepared = prepareMessage(c.var.tenant, instances, input, attempt.now, source, "", attempt.messageId(0));
  await persistAndEnqueue(c.env, c.var.db, [prepared], waitsForSend && !input.sendAt ? { direct: true } : {});
  return prepared.row;
}

export const compatRoutes = new Hono<AppEnv>()
  // Older clients check `success`: the app's onError puts `success: false` beside the error shape,
  // set before the key check so that a refused key answers the same way.
  .use(
    "*",
    async (c, next) => {
      c.set("compatErrors", true);
      await next();
    },
    requireApiKey,
    rateLimit,
  )
  // The older agent queue's API (POST /api/messages, its status, stats and health).
  .route("/messages", agentQueueRoutes)
  .post(
    "/whatsapp/send-message",
    compatDoc(
      "Send (whatsapp-send-message format)",
      whatsappSendMessage,
      asSend(whatsappSendMessage, fromWhatsappSend),
      200,
      z.object({ success: z.literal(true), status: z.literal("queued"), messageId: z.string() }),
    ),
    async (c) => {
      const input = c.req.valid("json");
      const body = await c.req.json();
      return idempotent(c, "compat/send-message", body, async (attempt) => {
        const row = await accept(c, attempt, input, "compat:send-message");
        return { status: 200, body: { success: true, status: "queued", messageId: row.id } };
      });
    },
  )
  .post(
    "/whatsapp/schedule-message",
    compatDoc(
      "Schedule (whatsapp-schedule-message format)",
      whatsappScheduleMessage,
      asSend(whatsappScheduleMessage, (legacy) => ({
        ...fromWhatsappSchedule(legacy),
        ...(legacy.scheduleId || legacy.userId !== undefined ? { metadata: { scheduleId: legacy.scheduleId, userId: legacy.userId } } : {}),
      })),
      202,
      z.object({ success: z.literal(true), scheduleId: z.string(), scheduledFor: z.string(), message: z.string() }),
    ),
    async (c) => {
      const input = c.req.valid("json");
      const body = await c.req.json();
      return idempotent(c, "compat/schedule-message", body, async (attempt) => {
        const row = await accept(c, attempt, input, "compat:schedule-message");
        return {
          status: 202,
          body: { success: true, scheduleId: row.id, scheduledFor: new Date(row.sendAt!).toISOString(), message: "Mensagem agendada com sucesso" },
        };
      });
    },
  )
  .post(
    "/messaging/message/send",
    compatDoc(
      "Send (messaging.send format)",
      messagingSend,
      asSend(messagingSend, fromMessagingSend),
      200,
      z.object({
        success: z.literal(true),
        message: z.string(),
        data: z.looseObject({ messageId: z.string(), status: z.string(), channelMessageId: z.string().optional(), queued: z.boolean().optional() }),
      }),
    ),
    async (c) => {
      const input = c.req.valid("json");
      const body = await c.req.json();
      const wait = preferredWait(c.req.header("prefer"));
      return idempotent(c, "compat/messaging-send", body, async (attempt) => {
        const row = await accept(c, attempt, input, "compat:messaging-send", wait !== undefined);
        const queued = {
          status: 200,
          body: { success: true, message: "Mensagem enviada com sucesso", data: { messageId: row.id, status: "queued", queued: true } },
        } as const;
        if (wait) await attempt.provisional(queued);
        const done = wait ? await waitUntilFinished(c.var.db, row.id, wait) : undefined;
        if (done?.providerMessageId) {
          return {
            status: 200,
            body: {
              success: true,
              message: "Mensagem enviada com sucesso",
              data: {
                messageId: row.id,
                channelMessageId: done.providerMessageId,
                status: "sent",
                timestamp: new Date(done.sentAt ?? Date.now()).toISOString(),
              },
            },
          };
        }
        return {
          status: 200,
          body: {
            success: true,
            message: "Mensagem enviada com sucesso",
            data: { messageId: row.id, status: done?.status ?? "queued", queued: !done, ...(done?.lastError ? { error: done.lastError } : {}) },
          },
        };
      });
    },
  );
