// Web chat test support: a web instance, visitor tokens, and visitor sockets that collect their frames.
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { api, createTenant, eventually, json, unique } from "./helpers.ts";

export type Frame = { type: string; data: Record<string, any> };

export async function webInstance(web?: Record<string, unknown>) {
  const tenant = await createTenant();
  const instance = unique("site");
  const res = await api(`/v1/instances/${instance}`, { method: "PUT", key: tenant.key, json: { channel: "web", ...(web ? { web } : {}) } });
  expect(res.status).toBe(201);
  const body = await json(res);
  const { id: instanceId } = (await env.DB.prepare("SELECT id FROM instances WHERE name = ?").bind(instance).first<{ id: string }>())!;
  return { ...tenant, instance, instanceId, body };
}

export async function visitorToken(key: string, instance: string, body: Record<string, unknown>) {
  const res = await api(`/v1/instances/${instance}/visitors`, { method: "POST", key, json: body });
  expect(res.status).toBe(201);
  return json<{ token: string; expiresAt: string; url: string }>(res);
}

/** Opens a visitor socket; frames are collected in order, and the close once it comes. */
export async function open(token: string, headers: Record<string, string> = {}, path = "/v1/chat") {
  const res = await exports.default.fetch(
    new Request(`https://gateway.test${path}?token=${encodeURIComponent(token)}`, { headers: { upgrade: "websocket", ...headers } }),
  );
  const frames: Frame[] = [];
  const state: { closed?: { code: number; reason: string } } = {};
  const ws = res.webSocket;
  if (!ws) return { res, frames, state, send: (_f: unknown) => undefined, close: () => undefined };
  ws.accept();
  ws.addEventListener("message", (m) => {
    frames.push(JSON.parse(String(m.data)));
  });
  ws.addEventListener("close", (e) => {
    state.closed = { code: e.code, reason: e.reason };
  });
  return {
    res,
    frames,
    state,
    send: (f: unknown) => ws.send(typeof f === "string" ? f : JSON.stringify(f)),
    close: () => {
      try {
        ws.close(1000, "done");
      } catch {
        // Closed by the gateway already.
      }
    },
  };
}

export const ofType = (frames: Frame[], type: string) => frames.filter((f) => f.type === type);
export const waitFrames = (frames: Frame[], type: string, n: number, what = type) =>
  eventually(async () => ofType(frames, type).length >= n, 15_000, `${n} ${what} frame(s)`);
