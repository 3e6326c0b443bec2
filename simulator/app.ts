// The Evolution API simulator as a plain Hono app (no Node APIs), so it runs under Node, in
// workerd or in-process: Evolution's send routes, the Telegram Bot API, plus a /_sim control API.
import { Hono } from "hono";
import { chatControlRoutes, chatRoutes } from "./chat.ts";
import { defaultConfig, instanceSettings, type SimulatorConfig as EvolutionConfig } from "./config.ts";
import { connectRoutes, scanRoutes } from "./connect.ts";
import { chaosRoutes } from "./chaos.ts";
import { controlRoutes } from "./control.ts";
import { evolutionRoutes } from "./evolution.ts";
import { errorBody } from "./shapes.ts";
import { SimulatorState } from "./state.ts";
import { type TelegramBotSeed, type TelegramState, telegramSimulator } from "./telegram/index.ts";

/** `telegramBots`: Telegram bots present from the start. */
export type SimulatorConfig = EvolutionConfig & { telegramBots: TelegramBotSeed[] };
export type { CallRecord, Instance, WebhookRecord } from "./state.ts";
export { SimulatorState } from "./state.ts";
export { demoTelegramBot, TelegramState } from "./telegram/index.ts";

export function createSimulator(options: Partial<SimulatorConfig> = {}): { app: Hono; state: SimulatorState; telegram: TelegramState } {
  const { instances = [], telegramBots = [], ...settings } = { ...defaultConfig(), ...options };
  const state = new SimulatorState(settings);
  for (const { name, ...seed } of instances) state.upsertInstance(name, instanceSettings.parse(seed));

  const telegram = telegramSimulator(state, telegramBots);
  const app = new Hono();
  app.route("/_sim/telegram", telegram.control);
  app.route("/", telegram.api);
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
  return { app, state, telegram: telegram.telegram };
}
