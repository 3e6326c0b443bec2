// Compatibility aliases: the older services' routes and answers, on the same pipeline.
import { Hono, type Context } from "hono";
import type { AppEnv } from "../app-env.ts";
import { fromMessagingSend, fromWhatsappSchedule, fromWhatsappSend, messagingSend, whatsappScheduleMessage, whatsappSendMessage } from "../contracts/legacy.ts";
import { sendMessageSchema, type SendMessageRequest } from "../contracts/messages.ts";
import { errorResponse } from "../errors.ts";
import { parseWith, readJson } from "../http/body.ts";
import { findInstances, persistAndEnqueue, prepareMessage } from "../messages/accept.ts";
import { type Attempt, idempotent } from "../messages/idempotency.ts";
import { preferredWait, waitUntilFinished } from "../messages/wait.ts";

export const compatRoutes = new Hono<AppEnv>();

// Older clients check `success`; errors keep the gateway's error shape beside it.
compatRoutes.onError(async (err, c) => {
  const res = errorResponse(c, err);
  const body = (await res.clone().json()) as object;
  return c.json({ success: false, ...body }, res.status as 400);
});

async function accept(c: Context<AppEnv>, attempt: Attempt, input: SendMessageRequest, source: string) {
  const instances = await findInstances(c.var.db, c.var.tenant.id, [input.instance]);
  const prepared = prepareMessage(c.var.tenant, instances, input, attempt.now, source, "", attempt.messageId(0));
  await persistAndEnqueue(c.env, c.var.db, [prepared]);
  return prepared.row;
}

compatRoutes.post("/whatsapp/send-message", async (c) => {
  const body = await readJson(c);
  const legacy = parseWith(whatsappSendMessage, body);
  const input = parseWith(sendMessageSchema, fromWhatsappSend(legacy));
  return idempotent(c, "compat/send-message", body, async (attempt) => {
    const row = await accept(c, attempt, input, "compat:send-message");
    return { status: 200, body: { success: true, status: "queued", messageId: row.id } };
  });
});

compatRoutes.post("/whatsapp/schedule-message", async (c) => {
  const body = await readJson(c);
  const legacy = parseWith(whatsappScheduleMessage, body);
  const input = parseWith(sendMessageSchema, {
    ...fromWhatsappSchedule(legacy),
    ...(legacy.scheduleId || legacy.userId !== undefined ? { metadata: { scheduleId: legacy.scheduleId, userId: legacy.userId } } : {}),
  });
  return idempotent(c, "compat/schedule-message", body, async (attempt) => {
    const row = await accept(c, attempt, input, "compat:schedule-message");
    return {
      status: 202,
      body: { success: true, scheduleId: row.id, scheduledFor: new Date(row.sendAt!).toISOString(), message: "Mensagem agendada com sucesso" },
    };
  });
});

compatRoutes.post("/messaging/message/send", async (c) => {
  const body = await readJson(c);
  const legacy = parseWith(messagingSend, body);
  const input = parseWith(sendMessageSchema, fromMessagingSend(legacy));
  const wait = preferredWait(c.req.header("prefer"));
  return idempotent(c, "compat/messaging-send", body, async (attempt) => {
    const row = await accept(c, attempt, input, "compat:messaging-send");
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
          data: { messageId: row.id, channelMessageId: done.providerMessageId, status: "sent", timestamp: new Date(done.sentAt ?? Date.now()).toISOString() },
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
});
