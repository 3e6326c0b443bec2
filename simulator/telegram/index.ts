// The Telegram Bot API stand-in, mounted by the simulator app: the Bot API routes at the root
// and the control API under /_sim/telegram.
import type { Hono } from "hono";
import type { SimulatorState } from "../state.ts";
import { telegramApiRoutes } from "./api.ts";
import type { TelegramBotSeed } from "./config.ts";
import { telegramControlRoutes } from "./control.ts";
import { TelegramState } from "./state.ts";

export { demoTelegramBot, type TelegramBotSeed } from "./config.ts";
export { TelegramState } from "./state.ts";

export function telegramSimulator(state: SimulatorState, bots: TelegramBotSeed[] = []): { telegram: TelegramState; api: Hono; control: Hono } {
  const telegram = new TelegramState(state, bots);
  return { telegram, api: telegramApiRoutes(telegram), control: telegramControlRoutes(telegram) };
}
