// Evolution's `POST /chat/sendPresence/{instance}` (chat router, Baileys `sendPresence`): the same
// guards as a send (instance → apikey), the number pre-check, then presence `composing` (or the
// one asked for) held for `delay` ms and `paused` after it. Evolution answers only when the delay
// is over; the simulator holds the request that long only with `honourDelay`.
import type { Hono } from "hono";
import { z } from "zod";
import { recipient } from "./jid.ts";
import { defaultFaultBody, errorBody, instanceNotFound, notOnWhatsApp, unauthorized } from "./shapes.ts";
import type { SimulatorState } from "./state.ts";

// Evolution's presenceSchema: number, presence and delay are all required.
const presenceBody = z.object({
  number: z.string().min(1),
  presence: z.enum(["unavailable", "available", "composing", "recording", "paused"]),
  delay: z.number(),
});

export function presenceRoutes(
  app: Hono,
  state: SimulatorState,
  helpers: { authorised: (apikey: string | undefined, name: string) => boolean; isNotOnWhatsApp: (number: string) => boolean },
) {
  app.post("/chat/sendPresence/:instance", async (c) => {
    const name = c.req.param("instance");
    let body: unknown = {};
    try {
      body = (c.req.header("content-type") ?? "").includes("json") ? await c.req.json() : {};
    } catch {
      return c.json(errorBody(400, ["Unexpected token in JSON"]), 400);
    }
    const number = z.object({ number: z.string() }).safeParse(body);
    const to = number.success ? recipient(number.data.number) : undefined;
    const call = state.beginCall({ instance: name, route: "sendPresence", number: to?.number ?? "", body });
    const answer = async (): Promise<{ status: number; body: unknown }> => {
      const instance = state.instances.get(name);
      if (!instance) return { status: 404, body: instanceNotFound(name) };
      if (!helpers.authorised(c.req.header("apikey"), name)) return { status: 401, body: unauthorized() };
      const fault = state.takeFault({ instance: name, route: "sendPresence", number: to?.number ?? "", jid: to?.jid ?? "" });
      if (fault) return { status: fault.status, body: fault.body ?? defaultFaultBody(fault.status) };
      const parsed = presenceBody.safeParse(body);
      if (!parsed.success || !to) {
        return { status: 400, body: errorBody(400, parsed.error?.issues.map((i) => [`instance requires property "${i.path.join(".")}"`]) ?? []) };
      }
      if (instance.state !== "open") return { status: 400, body: errorBody(400, ["Error: Connection Closed"]) };
      if (helpers.isNotOnWhatsApp(to.number)) return { status: 400, body: notOnWhatsApp(to) };
      if (state.config.honourDelay) await state.sleep(parsed.data.delay);
      return { status: 201, body: { presence: parsed.data.presence } };
    };
    const result = await answer();
    call.status = result.status;
    delete call.pending;
    return new Response(JSON.stringify(result.body), { status: result.status, headers: { "content-type": "application/json; charset=utf-8" } });
  });
}
