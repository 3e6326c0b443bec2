// Evolution's message store, as the gateway reconciles against it: POST /chat/findMessages and
// POST /chat/findStatusMessage (Evolution 2.3.6, chat.router.ts / channel.service.ts), plus the
// control switches a test needs: the store on or off (DATABASE_SAVE_DATA_NEW_MESSAGE), a
// receipt that reaches the store while its webhook is lost, and a message the gateway did not
// send (typed on the phone, or by another client of the instance) that looks like one it did.
import { Hono, type Context } from "hono";
import { z } from "zod";
import { dropHeader, plantLookAlike } from "./evolution.ts";
import { cuid } from "./ids.ts";
import { recipient } from "./jid.ts";
import { sendRoutes, validateSend } from "./requests.ts";
import { defaultFaultBody, errorBody, instanceNotFound, unauthorized, type MessageRaw, type ReceiptStatus } from "./shapes.ts";
import type { Instance, SimulatorState } from "./state.ts";

const findMessagesBody = z.object({
  where: z
    .object({
      key: z.object({ id: z.string().optional(), fromMe: z.boolean().optional(), remoteJid: z.string().optional() }).optional(),
      // Evolution applies the window only when both ends are given (compared in Unix seconds).
      messageTimestamp: z.object({ gte: z.string().optional(), lte: z.string().optional() }).optional(),
    })
    .optional(),
  page: z.coerce.number().int().min(1).optional(),
  offset: z.coerce.number().int().min(1).optional(),
});

const findStatusBody = z.object({
  where: z.object({ remoteJid: z.string().optional(), id: z.string().optional() }).optional(),
  page: z.coerce.number().int().min(1).optional(),
  offset: z.coerce.number().int().min(1).optional(),
});

const storeInput = z.strictObject({ enabled: z.boolean(), instance: z.string().optional() });
const receiptStatuses = ["SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED", "ERROR"] as const;
const statusInput = z.strictObject({ keyId: z.string().min(1), status: z.enum(receiptStatuses) });

const lookAlikeInput = z.strictObject({
  instance: z.string().min(1),
  /** Who sent it: typed on the phone, or another API client of the instance. */
  who: z.enum(["phone", "client"]),
  route: z.enum(sendRoutes as ["sendText", "sendMedia", "sendWhatsAppAudio"]).default("sendText"),
  /** The send body it looks like (as the gateway would post it). */
  body: z.record(z.string(), z.unknown()),
});

const unixSeconds = (iso: string | undefined) => (iso === undefined ? Number.NaN : Math.floor(Date.parse(iso) / 1000));

/** Evolution routes under /chat. */
export function chatRoutes(state: SimulatorState): Hono {
  const app = new Hono();

  app.post("/findMessages/:instance", async (c) => {
    const guard = await storeQuery(state, c, findMessagesBody);
    if (!guard.ok) return guard.response;
    const { where, page = 1, offset = 50 } = guard.query;
    // Scripted faults (route findMessages): Evolution failing, slow, or dropping the connection.
    const fault = state.takeFault({ instance: guard.instance.name, route: "findMessages", number: "", jid: where?.key?.remoteJid ?? "" });
    if (fault) {
      if (fault.delayMs) await state.sleep(fault.delayMs);
      if (fault.status === 0) return c.json(errorBody(503, "simulated network failure (connection dropped)"), 503, { [dropHeader]: "1" });
      return new Response(JSON.stringify(fault.body ?? defaultFaultBody(fault.status)), {
        status: fault.status,
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    }
    const gte = unixSeconds(where?.messageTimestamp?.gte);
    const lte = unixSeconds(where?.messageTimestamp?.lte);
    const windowed = Number.isFinite(gte) && Number.isFinite(lte);
    const matching = stored(state, guard.instance)
      .filter(
        (m) =>
          (where?.key?.id === undefined || m.key.id === where.key.id) &&
          (where?.key?.fromMe === undefined || m.key.fromMe === where.key.fromMe) &&
          (where?.key?.remoteJid === undefined || m.key.remoteJid === where.key.remoteJid) &&
          (!windowed || (m.messageTimestamp >= gte && m.messageTimestamp <= lte)),
      )
      .reverse();
    const records = matching.slice((page - 1) * offset, page * offset).map((m) => ({
      id: recordId(m.key.id),
      key: m.key,
      pushName: m.pushName,
      messageType: m.messageType,
      message: m.message,
      messageTimestamp: m.messageTimestamp,
      instanceId: m.instanceId,
      source: m.source,
      contextInfo: m.contextInfo ?? null,
      MessageUpdate: (state.statuses.get(m.key.id) ?? []).map((status) => ({ status })),
    }));
    return c.json({ messages: { total: matching.length, pages: Math.ceil(matching.length / offset), currentPage: page, records } });
  });

  app.post("/findStatusMessage/:instance", async (c) => {
    const guard = await storeQuery(state, c, findStatusBody);
    if (!guard.ok) return guard.response;
    const { where, page = 1, offset = 50 } = guard.query;
    const rows = stored(state, guard.instance)
      .filter((m) => (where?.id === undefined || m.key.id === where.id) && (where?.remoteJid === undefined || m.key.remoteJid === where.remoteJid))
      .flatMap((m) =>
        (state.statuses.get(m.key.id) ?? []).map((status) => ({
          id: cuid(),
          keyId: m.key.id,
          remoteJid: m.key.remoteJid,
          fromMe: true,
          participant: null,
          pollUpdates: null,
          status,
          instanceId: guard.instance.instanceId,
          messageId: recordId(m.key.id),
        })),
      );
    return c.json(rows.slice((page - 1) * offset, page * offset));
  });

  return app;
}

/** Control routes under /_sim/chat. */
export function chatControlRoutes(state: SimulatorState): Hono {
  const app = new Hono();

  app.get("/store", (c) => c.json({ enabled: state.store.enabled, offFor: [...state.store.offFor] }));

  // Turns the message store off (or on again), for every instance or one.
  app.put("/store", async (c) => {
    const input = storeInput.safeParse(await jsonOf(c));
    if (!input.success) return c.json({ error: "invalid body", issues: input.error.issues }, 400);
    const { enabled, instance } = input.data;
    if (instance === undefined) state.store.enabled = enabled;
    else if (enabled) state.store.offFor.delete(instance);
    else state.store.offFor.add(instance);
    return c.json({ enabled: state.store.enabled, offFor: [...state.store.offFor] });
  });

  // A look-alike in the store: same chat, same text (a caption-less media: another file of the same type).
  app.post("/look-alike", async (c) => {
    const input = lookAlikeInput.safeParse(await jsonOf(c));
    if (!input.success) return c.json({ error: "invalid body", issues: input.error.issues }, 400);
    const instance = state.instances.get(input.data.instance);
    if (!instance) return c.json({ error: `no instance "${input.data.instance}"` }, 404);
    const checked = validateSend(input.data.route, input.data.body);
    if (!checked.ok) return c.json({ error: "invalid send body", message: checked.message }, 400);
    const raw = plantLookAlike(state, instance, recipient(checked.request.body.number), checked.request, input.data.who);
    return c.json(raw, 201);
  });

  // A receipt Evolution stored while its webhook never reached the gateway.
  app.post("/status", async (c) => {
    const input = statusInput.safeParse(await jsonOf(c));
    if (!input.success) return c.json({ error: "invalid body", issues: input.error.issues }, 400);
    if (!state.sentMessage(input.data.keyId)) return c.json({ error: "no such message" }, 404);
    state.recordStatus(input.data.keyId, input.data.status satisfies ReceiptStatus);
    return c.json({ keyId: input.data.keyId, statuses: state.statuses.get(input.data.keyId) ?? [] });
  });

  return app;
}

// Evolution's database row id of a message, stable across queries.
const recordId = (keyId: string) => `cmsim${keyId.toLowerCase()}`;

function stored(state: SimulatorState, instance: Instance): MessageRaw[] {
  if (!state.store.enabled || state.store.offFor.has(instance.name)) return [];
  return [...state.sentMessages()].filter((m) => m.instanceId === instance.instanceId);
}

type Guard = { ok: true; instance: Instance } | { ok: false; response: Response };

// Evolution's guard order: the instance exists, then the apikey.
function instanceFor(state: SimulatorState, c: Context): Guard {
  const name = c.req.param("instance") ?? "";
  const instance = state.instances.get(name);
  if (!instance) return { ok: false, response: c.json(instanceNotFound(name), 404) };
  const apikey = c.req.header("apikey");
  const authorised = apikey !== undefined && (apikey === instance.apikey || (state.config.globalApiKey !== null && apikey === state.config.globalApiKey));
  if (!authorised) return { ok: false, response: c.json(unauthorized(), 401) };
  return { ok: true, instance };
}

// Both store routes: the guard, then the body, refused the way Evolution's validator refuses it.
async function storeQuery<T extends z.ZodType>(
  state: SimulatorState,
  c: Context,
  schema: T,
): Promise<{ ok: true; instance: Instance; query: z.infer<T> } | { ok: false; response: Response }> {
  const guard = instanceFor(state, c);
  if (!guard.ok) return guard;
  const parsed = schema.safeParse(await jsonOf(c));
  if (!parsed.success)
    return {
      ok: false,
      response: c.json(
        errorBody(
          400,
          parsed.error.issues.map((i) => i.message),
        ),
        400,
      ),
    };
  return { ok: true, instance: guard.instance, query: parsed.data };
}

async function jsonOf(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    return {};
  }
}
