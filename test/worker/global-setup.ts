// Runs in Node before the Worker tests: the Evolution simulator they send to, on a free port.
import type { TestProject } from "vitest/node";
import { startSimulator } from "../../simulator/server.ts";
import { startReceiver } from "../support/receiver.ts";
import { startEchoBot } from "../../simulator/echo-bot.ts";

declare module "vitest" {
  export interface ProvidedContext {
    simulatorUrl: string;
    receiverUrl: string;
    botUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const simulator = await startSimulator({ port: 0, latencyMs: 0, sendMessageDelayMs: -1, deliveredDelayMs: -1, readDelayMs: -1 });
  const receiver = await startReceiver();
  const bot = await startEchoBot();
  project.provide("simulatorUrl", simulator.url);
  project.provide("receiverUrl", receiver.url);
  project.provide("botUrl", bot.url);
  return async () => {
    await simulator.close();
    await receiver.close();
    await bot.close();
  };
}
