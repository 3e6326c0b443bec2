// Control API under /_sim: instances, settings, scripted faults, the record of calls and
// webhooks, and events a test can make Evolution emit (inbound messages, connection changes).
import { Hono, type Context } from "hono";
import { z } from "zod";
import { configPatch, connectionStates, faultsInput, instanceSettings } from "./config.ts";
import { connectionUpdate, inboundText, statusInstanceClosed } from "./shapes.ts";
import type { Instance, SimulatorState } from "./state.ts";
import { emit } from "./webhooks.ts";

const callsQuery = z.object({
  instance: z.string().optional(),
  number: z.string().optional(),
  since: z.coerce.number().int().optional(),
  pending: z.enum(["true", "false", "1", "0"]).optional(),
});

const webhooksQuery = z.object({
  instance: z.string().optional(),
  event: z.string().optional(),
  keyId: z.string().optional(),
  since: z.coerce.number().int().optional(),
});

const inboundInput = z.strictObject({
  instance: z.string(),
  from: z.string().min(1),
  text: z.string(),
  fromMe: z.boolean().default(false),
  pushName: z.string().nullable().optional(),
  id: z.string().min(1).optional(),
  remoteJidAlt: z.string().optional(),
  participant: z.string().optional(),
  participantAlt: z.string().optional(),
  quoted: z.object({ id: z.string().min(1), text: z.string(), participant: z.string().optional() }).optional(),
  /** Wait for the webhook delivery (with retries) before answering. */
  wait: z.boolean().default(false),
});

const connectionInput = z.strictObject({
  instance: z.string(),
  state: z.enum(connectionStates),
  /** Baileys DisconnectReason for close (default 401 loggedOut); 200 otherwise. */
  statusReason: z.number().int().optional(),
  wait: z.boolean().default(false),
});

type Body<T> = { ok: true; data: T } | { ok: false; response: Response };

async function body<T>(c: Context, schema: z.ZodType<T>): Promise<Body<T>> {
  let json: unknown;
  try {
    json = await c.req.json();
  } catch {
    return { ok: false, response: c.json({ error: "body must be JSON" }, 400) };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return { ok: false, response: c.json({ error: "invalid body", issues: parsed.error.issues }, 400) };
  return { ok: true, data: parsed.data };
}

function query<T>(c: Context, schema: z.ZodType<T>): Body<T> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) return { ok: false, response: c.json({ error: "invalid query", issues: parsed.error.issues }, 400) };
  return { ok: true, data: parsed.data };
}

const instanceView = (i: Instance) => ({ ...i });

export function controlRoutes(state: SimulatorState): Hono {
  const app = new Hono();

  app.get("/health", (c) => c.json({ ok: true }));

  app.get("/instances", (c) => c.json({ instances: [...state.instances.values()].map(instanceView) }));

  app.put("/instances/:name", async (c) => {
    const input = await body(c, instanceSettings);
    if (!input.ok) return input.response;
    const existed = state.instances.has(c.req.param("name"));
    const instance = state.upsertInstance(c.req.param("name"), input.data);
    return c.json({ instance: instanceView(instance) }, existed ? 200 : 201);
  });

  app.delete("/instances/:name", (c) => {
    const removed = state.instances.delete(c.req.param("name"));
    return removed ? c.body(null, 204) : c.json({ error: "no such instance" }, 404);
  });

  app.get("/config", (c) => c.json(state.config));

  app.patch("/config", async (c) => {
    const input = await body(c, configPatch);
    if (!input.ok) return input.response;
    // Absent keys stay absent in zod's output, so the spread only changes what was sent.
    state.config = { ...state.config, ...input.data };
    return c.json(state.config);
  });

  app.get("/faults", (c) => c.json({ faults: state.faults }));

  app.post("/faults", async (c) => {
    const input = await body(c, faultsInput);
    if (!input.ok) return input.response;
    for (const fault of Array.isArray(input.data) ? input.data : [input.data]) state.addFault(fault);
    return c.json({ faults: state.faults }, 201);
  });

  app.delete("/faults", (c) => {
    state.faults = [];
    return c.body(null, 204);
  });

  app.get("/calls", (c) => {
    const q = query(c, callsQuery);
    if (!q.ok) return q.response;
    const { instance, number, since, pending } = q.data;
    const withPending = pending === "true" || pending === "1";
    const calls = state.calls.filter(
      (call) =>
        (withPending || !call.pending) &&
        (instance === undefined || call.instance === instance) &&
        (number === undefined || call.number === number) &&
        (since === undefined || call.seq > since),
    );
    return c.json({ calls });
  });

  app.delete("/calls", (c) => {
    state.clearRecords();
    return c.body(null, 204);
  });

  app.get("/webhooks", (c) => {
    const q = query(c, webhooksQuery);
    if (!q.ok) return q.response;
    const { instance, event, keyId, since } = q.data;
    const webhooks = state.webhooks.filter(
      (w) =>
        (instance === undefined || w.instance === instance) &&
        (event === undefined || w.event === event) &&
        (keyId === undefined || w.keyId === keyId) &&
        (since === undefined || w.seq > since),
    );
    return c.json({ webhooks });
  });

  app.post("/inbound", async (c) => {
    const input = await body(c, inboundInput);
    if (!input.ok) return input.response;
    const { instance: name, wait, ...message } = input.data;
    const instance = state.instances.get(name);
    if (!instance) return c.json({ error: `no instance "${name}"` }, 404);
    const data = inboundText(instance, message);
    const sent = emit(state, instance, "messages.upsert", data, data.key.id);
    if (wait) await sent.done;
    return c.json({ event: "messages.upsert", data, webhook: sent.record ?? null }, wait ? 200 : 202);
  });

  app.post("/connection", async (c) => {
    const input = await body(c, connectionInput);
    if (!input.ok) return input.response;
    const { instance: name, state: next, wait } = input.data;
    const current = state.instances.get(name);
    if (!current) return c.json({ error: `no instance "${name}"` }, 404);
    const instance = state.upsertInstance(name, { apikey: current.apikey, state: next });
    const reason = input.data.statusReason ?? (next === "close" ? 401 : 200);
    const deliveries = [emit(state, instance, "connection.update", connectionUpdate(instance, next, reason))];
    if (next === "close") deliveries.push(emit(state, instance, "status.instance", statusInstanceClosed(instance, reason)));
    if (wait) await Promise.all(deliveries.map((d) => d.done));
    return c.json({ instance: instanceView(instance), webhooks: deliveries.flatMap((d) => (d.record ? [d.record] : [])) }, wait ? 200 : 202);
  });

  return app;
}
