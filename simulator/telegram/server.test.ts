// The Node server serves the Bot API beside Evolution's routes on one port, with seeded bots,
// and a status-0 fault resets the connection as a network failure.
import { afterEach, expect, it } from "vitest";
import { demoTelegramBot } from "../app.ts";
import { type RunningSimulator, startSimulator } from "../server.ts";

let simulator: RunningSimulator | undefined;
afterEach(async () => {
  await simulator?.close();
  simulator = undefined;
});

it("serves the Bot API and the Evolution routes on the same port, with the seeded demo bot", async () => {
  simulator = await startSimulator({ port: 0, telegramBots: [demoTelegramBot], instances: [{ name: "demo", apikey: "k" }] });
  const me = await fetch(`${simulator.url}/bot${demoTelegramBot.token}/getMe`);
  expect(me.status).toBe(200);
  expect(await me.json()).toMatchObject({ ok: true, result: { username: demoTelegramBot.username, is_bot: true } });
  expect((await fetch(`${simulator.url}/instance/connectionState/demo`, { headers: { apikey: "k" } })).status).toBe(200);
  // Express's 404 stays for paths that are neither.
  expect(await (await fetch(`${simulator.url}/nothing-here`)).json()).toMatchObject({ status: 404, error: "Not Found" });
});

it("drops the connection on a status-0 fault; the call is recorded", async () => {
  simulator = await startSimulator({ port: 0, telegramBots: [demoTelegramBot] });
  const control = (path: string, body: unknown, method = "POST") =>
    fetch(`${simulator?.url}/_sim/telegram${path}`, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  await control("/chats", { token: demoTelegramBot.token, chatId: 5 }, "PUT");
  await control("/faults", { status: 0 });
  const send = fetch(`${simulator.url}/bot${demoTelegramBot.token}/sendMessage`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ chat_id: 5, text: "x" }),
  });
  await expect(send).rejects.toThrow();
  const calls = await (await fetch(`${simulator.url}/_sim/telegram/calls`)).json();
  expect(calls).toHaveProperty("calls");
  expect((calls as { calls: unknown }).calls).toMatchObject([{ method: "sendMessage", status: 0, sent: false }]);
});
