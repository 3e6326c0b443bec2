// Test helpers: a simulator with one bot, and typed-enough calls to the Bot API and the control API.
import { createSimulator } from "../app.ts";

export const TOKEN = "123456:test-secret-AAAAAAAAAAAAAAAA";
export const OTHER_TOKEN = "654321:other-secret-BBBBBBBBBBBBBB";

// Tests read answers loosely and assert their shape.
export type Json = any;

export function setup(options: Parameters<typeof createSimulator>[0] = {}) {
  const sim = createSimulator({ telegramBots: [{ token: TOKEN, username: "loja_bot", first_name: "Loja" }], ...options });
  const request = async (path: string, init: RequestInit = {}) => {
    const res = await sim.app.request(path, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as Json };
  };
  const json = (method: string, path: string, body?: unknown) =>
    request(path, { method, headers: { "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  /** A Bot API call with a JSON body. */
  const api = (method: string, params: Record<string, unknown> = {}, token = TOKEN) => json("POST", `/bot${token}/${method}`, params);
  const control = (method: string, path: string, body?: unknown) => json(method, `/_sim/telegram${path}`, body);
  const chat = (chatId: number | string, fields: Record<string, unknown> = {}) => control("PUT", "/chats", { token: TOKEN, chatId, ...fields });
  const calls = async (query = "") => (await control("GET", `/calls?token=${encodeURIComponent(TOKEN)}${query}`)).body.calls as Json[];
  return { ...sim, request, api, control, chat, calls };
}
