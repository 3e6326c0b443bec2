// The Evolution API simulator as a plain Hono app (no Node APIs), so it runs under Node, in
// workerd or in-process: Evolution's send routes plus a /_sim control API.
import { Hono } from "hono";
import { chatControlRoutes, chatRoutes } from "./chat.ts";
import { defaultConfig, instanceSettings, type SimulatorConfig } from "./config.ts";
import { connectRoutes, scanRoutes } from "./connect.ts";
import { chaosRoutes } from "./chaos.ts";
import { controlRoutes } from "./control.ts";
import { evolutionRoutes } from "./evolution.ts";
import { errorBody } from "./shapes.ts";
import { SimulatorState } from "./state.ts";

export type { SimulatorConfig } from "./config.ts";
export type { CallRecord, Instance, WebhookRecord } from "./state.ts";
export { SimulatorState } from "./state.ts";

export function createSimulator(options: Partial<SimulatorConfig> = {}): { app: Hono; state: SimulatorState } {
  const { instances = [], ...settings } = { ...defaultConfig(), ...options };
  const state = new SimulatorState(settings);
  for (const { name, ...seed } of instances) state.upsertInstance(name, instanceSettings.parse(seed));

  const app = new Hono();
  app.route("/_sim/chaos", chaosRoutes(state));
  app.route("/_sim/chat", chatControlRoutes(state));
  app.route("/_sim", controlRoutes(state));
  app.route("/_sim", scanRoutes(state));
  app.route("/chat", chatRoutes(state));
  app.route("/", evolutionRoutes(state));
  app.route("/", connectRoutes(state));
  // Express's answer for a route it does not have.
  app.notFound((c) => c.json(errorBody(404, [`Cannot ${c.req.method} ${c.req.path}`]), 404));
  app.onError((err, c) => c.json(errorBody(500, [String(err)]), 500));
  return { app, state };
}
