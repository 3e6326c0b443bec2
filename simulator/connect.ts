// Connecting a number by QR code, as Evolution does it: `GET /instance/connect/:instance` answers
// the QR (or `state: open`) and starts a pairing session that emits `qrcode.updated` webhooks as
// the code refreshes, until the phone scans it (the control route `POST /_sim/instances/:name/scan`)
// or the refresh limit is reached (Evolution's QRCODE_LIMIT), when the instance goes back to close.
import { Hono } from "hono";
import QRCode from "qrcode";
import { z } from "zod";
import { connectionUpdate, instanceNotFound, unauthorized } from "./shapes.ts";
import type { Instance, SimulatorState } from "./state.ts";
import { emit } from "./webhooks.ts";

export type QrCode = { pairingCode: null; code: string; base64: string; count: number };

type Pairing = { qr: QrCode; refresh: () => void };
const sessions = new WeakMap<SimulatorState, Map<string, Pairing>>();
const pairingsOf = (state: SimulatorState) => {
  const map = sessions.get(state) ?? new Map<string, Pairing>();
  sessions.set(state, map);
  return map;
};

const base64Part = (bytes: number) => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(bytes))));

// Baileys' QR payload: ref, noise key, identity key, adv secret, comma separated.
async function newQr(count: number): Promise<QrCode> {
  const code = `2@${base64Part(30)},${base64Part(32)},${base64Part(32)},${base64Part(32)}`;
  return { pairingCode: null, code, base64: await QRCode.toDataURL(code, { margin: 2, width: 264 }), count };
}

/** The pairing session's current code; starts one (state `connecting`) when there is none. */
async function pairing(state: SimulatorState, instance: Instance): Promise<QrCode> {
  const pairings = pairingsOf(state);
  const current = pairings.get(instance.name);
  if (current) return current.qr;
  const connecting = state.upsertInstance(instance.name, { apikey: instance.apikey, state: "connecting" });
  const session: Pairing = { qr: await newQr(1), refresh: () => undefined };
  session.refresh = () => {
    if (pairings.get(instance.name) !== session) return;
    const live = state.instances.get(instance.name);
    if (!live || live.state === "open") return void pairings.delete(instance.name);
    if (session.qr.count >= state.config.qrLimit) {
      pairings.delete(instance.name);
      const closed = state.upsertInstance(instance.name, { apikey: live.apikey, state: "close" });
      emit(state, closed, "connection.update", connectionUpdate(closed, "close", 408));
      return;
    }
    void newQr(session.qr.count + 1).then((qr) => {
      if (pairings.get(instance.name) !== session) return;
      session.qr = qr;
      emit(state, live, "qrcode.updated", { qrcode: { instance: live.name, ...qr } });
      state.later(state.config.qrRefreshMs, session.refresh);
    });
  };
  pairings.set(instance.name, session);
  emit(state, connecting, "connection.update", connectionUpdate(connecting, "connecting", 200));
  emit(state, connecting, "qrcode.updated", { qrcode: { instance: connecting.name, ...session.qr } });
  state.later(state.config.qrRefreshMs, session.refresh);
  return session.qr;
}

export function connectRoutes(state: SimulatorState): Hono {
  const app = new Hono();
  app.get("/instance/connect/:instance", async (c) => {
    const name = c.req.param("instance");
    const instance = state.instances.get(name);
    if (!instance) return c.json(instanceNotFound(name), 404);
    const key = c.req.header("apikey");
    if (key === undefined || (key !== instance.apikey && key !== state.config.globalApiKey)) return c.json(unauthorized(), 401);
    if (instance.state === "open") return c.json({ instance: { instanceName: name, state: "open" } });
    return c.json(await pairing(state, instance));
  });
  return app;
}

const scanInput = z.strictObject({ wait: z.boolean().default(false) });

/** `POST /_sim/instances/:name/scan`: the phone scans the code shown; the instance opens. */
export function scanRoutes(state: SimulatorState): Hono {
  const app = new Hono();
  app.post("/instances/:name/scan", async (c) => {
    const parsed = scanInput.safeParse(await c.req.json().catch(() => ({})));
    if (!parsed.success) return c.json({ error: "invalid body", issues: parsed.error.issues }, 400);
    const name = c.req.param("name");
    const instance = state.instances.get(name);
    if (!instance) return c.json({ error: `no instance "${name}"` }, 404);
    const pairings = pairingsOf(state);
    const session = pairings.get(name);
    if (!session) return c.json({ error: "no QR code is being shown: call GET /instance/connect first" }, 409);
    pairings.delete(name);
    const open = state.upsertInstance(name, { apikey: instance.apikey, state: "open" });
    const sent = emit(state, open, "connection.update", connectionUpdate(open, "open", 200));
    if (parsed.data.wait) await sent.done;
    return c.json({ instance: { ...open }, scanned: session.qr.count }, parsed.data.wait ? 200 : 202);
  });
  return app;
}
