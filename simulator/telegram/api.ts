// `GET|POST /bot<token>/<method>`: the Bot API's guard order (token → method → parameters),
// its `{ok, result}` / `{ok:false, error_code, description, parameters}` answers with the HTTP
// status equal to error_code, scripted and random faults, and a record of every call.
import { Hono } from "hono";
import { roll, sendAttemptKey } from "../chaos.ts";
import { dropHeader } from "../evolution.ts";
import { type Method, methods, type TelegramFault } from "./config.ts";
import { held, holdFor } from "./limits.ts";
import { handlers, isSend, type Outcome } from "./methods.ts";
import { chatId, readParams, recordable } from "./params.ts";
import { type Answer, badRequest, failure, notFound, serverError, tooManyRequests, unauthorized } from "./shapes.ts";
import type { Bot, TelegramCall, TelegramState } from "./state.ts";

export function telegramApiRoutes(tg: TelegramState): Hono {
  const app = new Hono();
  const handle = async (token: string, methodName: string, c: Parameters<typeof readParams>[0]) => {
    const bot = tg.botByToken(token);
    if (!bot) return reply(unauthorized());
    // Method names are case-insensitive in the Bot API.
    const method = methods.find((m) => m.toLowerCase() === methodName.toLowerCase());
    const read = await readParams(c);
    const params = read.ok ? read.params : {};
    const ref = chatId(params);
    const call = tg.beginCall({ botId: bot.user.id, method: method ?? methodName, params: recordable(params), ...(ref !== undefined ? { chatId: ref } : {}) });
    // Whatever the answer, a send made while a retry_after runs is what a well-behaved client never does.
    if (method && isSend(method)) call.insideRetryAfter = held(bot, ref === undefined ? undefined : tg.findChat(bot, ref));
    const outcome: Outcome = !method
      ? notFound()
      : !read.ok
        ? badRequest(read.description.replace(/^Bad Request: /, ""))
        : await run(tg, bot, method, params, call);
    finish(call, outcome);
    if (outcome.status === 0) return new Response(JSON.stringify(failure(503, "connection dropped").body), { status: 503, headers: { [dropHeader]: "1" } });
    return reply(outcome);
  };
  app.on(["GET", "POST"], "/:bot{bot[^/]+}/:method", (c) => handle(c.req.param("bot").slice(3), c.req.param("method"), c));
  app.on(["GET", "POST"], "/:bot{bot[^/]+}", () => reply(notFound()));
  return app;
}

async function run(tg: TelegramState, bot: Bot, method: Method, params: Record<string, unknown>, call: TelegramCall): Promise<Outcome> {
  const fault = tg.takeFault({ token: bot.token, method, ...(call.chatId !== undefined ? { chatId: call.chatId } : {}) });
  if (fault) return scripted(tg, bot, method, params, call, fault);

  const { serverErrorRate, sentThenErrorRate, hangRate, hangMs } = tg.settings.faults;
  const random = isSend(method) && serverErrorRate + sentThenErrorRate + hangRate > 0;
  const attempt = random ? sendAttemptKey(tg.sim, `telegram:${bot.user.id}`, { method, params: call.params }) : "";
  if (random && roll(tg.sim, `tg-5xx:${attempt}`) < serverErrorRate) return serverError(roll(tg.sim, `tg-which:${attempt}`) < 0.5 ? 500 : 502);

  const outcome = await handlers[method](tg, bot, params);
  if (!random || !outcome.message) return outcome;
  // The message went out; the answer is lost (5xx) or comes after the caller gave up.
  if (roll(tg.sim, `tg-sent-5xx:${attempt}`) < sentThenErrorRate) return { ...serverError(502), message: outcome.message };
  if (roll(tg.sim, `tg-hang:${attempt}`) < hangRate) {
    markSent(call, outcome);
    await tg.sim.sleep(hangMs);
  }
  return outcome;
}

/** A fault queued through the control API: an error, a late answer, or an error after the send. */
async function scripted(
  tg: TelegramState,
  bot: Bot,
  method: Method,
  params: Record<string, unknown>,
  call: TelegramCall,
  fault: TelegramFault,
): Promise<Outcome> {
  const late = fault.status >= 200 && fault.status < 300;
  if (late || fault.sent) {
    const outcome = await handlers[method](tg, bot, params);
    markSent(call, outcome);
    await tg.sim.sleep(fault.delayMs ?? 0);
    return late ? outcome : { ...faultAnswer(tg, bot, params, fault), ...(outcome.message ? { message: outcome.message } : {}) };
  }
  await tg.sim.sleep(fault.delayMs ?? 0);
  return faultAnswer(tg, bot, params, fault);
}

function faultAnswer(tg: TelegramState, bot: Bot, params: Record<string, unknown>, fault: TelegramFault): Answer {
  if (fault.status === 0) return { status: 0, body: failure(0, "").body };
  if (fault.status === 429) {
    const retryAfter = fault.parameters?.retry_after ?? 5;
    // Like a real flood wait: later calls inside the window are refused too.
    const ref = chatId(params);
    const chat = ref === undefined ? undefined : tg.findChat(bot, ref);
    holdFor(chat ?? bot, retryAfter);
    return fault.description ? failure(429, fault.description, { ...fault.parameters, retry_after: retryAfter }) : tooManyRequests(retryAfter);
  }
  if (fault.description) return failure(fault.status, fault.description, fault.parameters);
  if (fault.status >= 500) return serverError(fault.status);
  return failure(fault.status, fault.status === 400 ? "Bad Request" : fault.status === 403 ? "Forbidden" : "Error", fault.parameters);
}

function markSent(call: TelegramCall, outcome: Outcome): void {
  if (!outcome.message) return;
  call.sent = true;
  call.messageId = outcome.message.message_id;
}

function finish(call: TelegramCall, outcome: Outcome): void {
  call.status = outcome.status;
  call.answeredAt = Date.now();
  delete call.pending;
  markSent(call, outcome);
  if (!outcome.body.ok) call.description = outcome.body.description;
  if (!outcome.body.ok && outcome.body.parameters?.retry_after !== undefined) call.retryAfter = outcome.body.parameters.retry_after;
}

const reply = (answer: Answer) => new Response(JSON.stringify(answer.body), { status: answer.status, headers: { "content-type": "application/json" } });
